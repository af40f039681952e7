"""The inference plan of a module, kept between calls and checked at every call.

Inference (:mod:`.inference`) prepares a network's plain operations from its
weights: padded copies of the weight matrices and BatchNorm statistics, the
activations' settings, whether the plan's walk may run at all
(:func:`~.module.plan_blocker`, hooks, an instance ``forward``). Rebuilding
that at every call costs more than a one-row prediction itself, so it is kept
per module and reused while the module's **layout** is unchanged, and its
padded copies are **refreshed** from the live tensors at every call:

- the layout (:func:`layout_key`): every module of the tree, its children
  (the objects themselves), its parameters and buffers (object, storage
  pointer, shape, dtype), its public settings (slopes, ``eps``, ``approximate``, ...) and
  whether it has hooks or a ``forward`` of its own — a walk of plain
  dictionaries, no tensor operation;
- the contents are never trusted to be unchanged: torch's ``_version``
  counters miss edits through ``.data``, numpy views and fused optimizer
  kernels, so every padded copy is re-copied (one ``copy_`` per tensor, what
  the plan reads); unpadded tensors are read in place.

The cache holds each network weakly (its submodules, tensors and non-scalar
settings strongly: they are compared by identity, since an ``id`` is reused
once its object is freed); a network's entry is replaced when its layout
changes.
"""

from __future__ import annotations

import weakref

__all__ = ["cached", "layout_key"]

_SCALARS = (int, float, str, bool, type(None))
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _tensor_key(t):
    return None if t is None else (t.data_ptr(), t.shape, t.dtype)


class _Same:
    """Compares equal to a tuple of the very same objects (identity, not ``==``).

    The key holds the submodules, tensors and non-scalar settings themselves:
    an ``id`` alone is reused once its object is freed, so a submodule
    replaced twice between two predictions could take the first one's id and
    the cache would serve the old plan (found in review).
    """

    __slots__ = ("objects",)

    def __init__(self, objects):
        self.objects = objects

    def __eq__(self, other):
        return len(self.objects) == len(other.objects) and all(
            a is b for a, b in zip(self.objects, other.objects, strict=True))

    __hash__ = None


def _module_key(state, public):
    """The layout of one module (``state`` its ``__dict__``, ``public`` its setting names)."""
    try:
        settings = tuple(map(state.__getitem__, public))
        modules = tuple(state["_modules"].values())
        params = tuple(state["_parameters"].values())
        buffers = tuple(state["_buffers"].values())
        return (
            len(state), bool(state["_forward_hooks"] or state["_forward_pre_hooks"]),
            "forward" in state,
            tuple(v if type(v) in _SCALARS else None for v in settings),
            tuple(state["_modules"]), tuple(map(_tensor_key, params)), tuple(state["_parameters"]),
            tuple(map(_tensor_key, buffers)), tuple(state["_buffers"]),
            _Same((*(v for v in settings if type(v) not in _SCALARS), *modules, *params,
                   *buffers)),
        )
    except KeyError:  # a setting was deleted: not the layout recorded
        return None


def _records(module):
    """``[(a module's __dict__, its setting names), ...]`` for the whole tree (no
    module itself: the cache must not keep its key alive)."""
    records, stack = [], [module]
    while stack:
        m = stack.pop()
        state = m.__dict__
        records.append((state, tuple(k for k in state if k[0] != "_" and k != "training")))
        stack.extend(c for c in state["_modules"].values() if c is not None)
    return records


def layout_key(records):
    """Everything a plan depends on besides tensor contents, as a comparable tuple.

    ``records`` (from :func:`_records`) is the tree when the key was first
    taken: a module added or replaced anywhere changes its parent's key, a
    setting added or removed changes its module's number of attributes.
    """
    return tuple(_module_key(state, public) for state, public in records)


def cached(module, build):
    """``build(module)``'s plan, reused while ``module``'s layout is unchanged.

    ``build`` returns ``(plan, refresh)``: ``refresh()`` re-copies the live
    tensors into the plan's padded copies; it runs at every call (a hit), so
    the plan never serves stale weights.
    """
    entry = _CACHE.get(module)
    if entry is not None:
        records, key, (plan, refresh) = entry
        if layout_key(records) == key:
            refresh()
            return plan
    records = _records(module)
    key = layout_key(records)
    plan, refresh = build(module)
    _CACHE[module] = (records, key, (plan, refresh))
    return plan
