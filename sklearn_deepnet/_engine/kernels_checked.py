"""Private torch entry points: looked up once, and checked, not trusted.

Part of :mod:`.kernels` (the only modules that touch private torch names
are ``kernels.py`` and its ``kernels_*.py`` parts; the package imports them
through :mod:`.kernels`). This one holds what the other parts share:

- ``_private``: the lookup of a private entry point, ``None`` when this
  torch lacks it (each part keeps what it looked up in its own module
  globals, where the tests switch them off);
- ``_Checked``: a private kernel behind its public formula, used only once
  it has matched the formula in this process, on a small input, on its
  first use. A kernel that is missing, whose signature changed (any
  exception) or whose result differs is replaced by the public formula for
  the rest of the process;
- :func:`kernel_fallbacks`: which private kernels this process does not
  use, and why; the registry of checks behind it (``_REGISTRY``,
  ``_GENERATION``), which :mod:`.kernels`' test switches reset.
"""

from __future__ import annotations

import torch

__all__ = ["kernel_fallbacks"]


def _private(owner, name):
    """``owner.name`` when this torch has it and it is callable, else ``None``."""
    try:
        fn = getattr(owner, name)
    except (AttributeError, RuntimeError):  # torch.ops raises RuntimeError for unknown ops
        return None
    return fn if callable(fn) else None


# ------------------------------------------------------- checked, not trusted
# A private kernel is used only once it has matched its public formula in this
# process, on a small input, on its first use: a kernel that is missing, whose
# signature changed (any exception) or whose result differs is replaced by the
# public formula for the rest of the process, and ``kernel_fallbacks`` says why.

_FALLBACKS = {}  # private name -> why this process does not use it
_REGISTRY = []  # every _Checked made in this process
_GENERATION = [0]  # bumped when tests switch private entry points off and on


def kernel_fallbacks(names=None):
    """``{private name: why}`` for the private kernels this process does not use.

    Parameters
    ----------
    names : iterable of str or None
        Only these (``None``: every kernel checked so far).
    """
    if names is None:
        return dict(_FALLBACKS)
    return {n: _FALLBACKS[n] for n in names if n in _FALLBACKS}


def _close(got, want):
    got = got if isinstance(got, tuple | list) else (got,)
    want = want if isinstance(want, tuple | list) else (want,)
    return len(got) == len(want) and all(
        (a is None and b is None) or (
            isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
            and torch.allclose(a, b, rtol=1e-4, atol=1e-5))
        for a, b in zip(got, want, strict=True))


class _Checked:
    """A private kernel (``fast``) behind its public formula, used once checked.

    Parameters
    ----------
    name : str or tuple of str
        The module global (of ``namespace``) holding the private kernel
        (``None`` when this torch lacks it, or tests switched it off), or
        several; the first is the name :func:`kernel_fallbacks` reports.
    fast, public : callable
        The same computation through the kernel and in public operations.
    cases : callable
        ``cases()`` returns ``[(args, kwargs), ...]`` to compare both on.
    requires : tuple of str or None, default=None
        The module globals that must be present (``None``: those of ``name``;
        ``()`` when ``name`` only labels a check, e.g. a fused optimizer's).
    namespace : dict or None, default=None
        The globals of the module holding them (its ``globals()``, read at
        every check: the tests switch them off there); needed unless
        ``requires`` is ``()``.
    """

    def __init__(self, name, fast, public, cases, requires=None, *, namespace=None):
        self.name, self.fast, self.public, self.cases = name, fast, public, cases
        self.requires = ((name,) if isinstance(name, str) else name) if requires is None \
            else requires
        if self.requires and namespace is None:
            raise TypeError("_Checked needs the namespace holding its private kernels")
        self.namespace = namespace
        self.ok = None  # the check's verdict (None: not run yet)
        self._answer = (None, False)  # (generation, usable) last computed
        _REGISTRY.append(self)

    def usable(self):
        """Whether the kernel is here and matched its formula (checked once)."""
        generation, answer = self._answer
        if generation == _GENERATION[0]:  # the hot path: one comparison
            return answer
        missing = [n for n in self.requires if self.namespace[n] is None]
        if missing:
            _FALLBACKS[self.key] = f"not in this torch ({', '.join(missing)})"
            answer = False
        else:
            if self.ok is None:
                self.ok = self._check()
            answer = self.ok
            if answer:
                _FALLBACKS.pop(self.key, None)
        self._answer = (_GENERATION[0], answer)
        return answer

    @property
    def key(self):
        """The name this kernel is reported under in :func:`kernel_fallbacks`."""
        return self.name if isinstance(self.name, str) else self.name[0]

    def _check(self):
        try:
            for args, kwargs in self.cases():
                # (copies: a kernel may update its inputs in place)
                fast = self.fast(*_copies(args), **kwargs)
                public = self.public(*_copies(args), **kwargs)
                if not _close(fast, public):
                    raise AssertionError("its result differs from the public formula")
        except Exception as exc:  # any failure: the public formula from now on
            _FALLBACKS[self.key] = f"{type(exc).__name__}: {exc}"[:300]
            return False
        _FALLBACKS.pop(self.key, None)
        return True

    def resolved(self):
        """The function to call: the kernel once it has passed, else the formula."""
        return self.fast if self.usable() else self.public

    def __call__(self, *args, **kwargs):
        return self.resolved()(*args, **kwargs)


def _copies(args):
    return [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
