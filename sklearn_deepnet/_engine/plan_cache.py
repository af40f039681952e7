"""The inference plan of a module, kept between calls and checked at every call.

Inference (:mod:`.inference`) prepares a network's plain operations from its
weights: padded copies of the weight matrices and BatchNorm statistics, the
activations' settings, whether the plan's walk may run at all
(:func:`~.module.plan_blocker`, hooks, an instance ``forward``). Rebuilding
that at every call costs more than a one-row prediction itself, so it is kept
per module and reused while the module's **layout** is unchanged, and its
padded copies are **refreshed** from the live tensors at every call:

- the layout (:func:`layout_key`): every module of the tree, its type, its
  children, its parameters and buffers (object, storage pointer, shape,
  dtype), its public settings (slopes, ``eps``, ``approximate``, ...) and
  whether it has hooks or a ``forward`` of its own — a walk of plain
  dictionaries, no tensor operation;
- the contents are never trusted to be unchanged: torch's ``_version``
  counters miss edits through ``.data``, numpy views and fused optimizer
  kernels, so every padded copy is re-copied (one ``copy_`` per tensor, what
  the plan reads); unpadded tensors are read in place.

The cache holds modules weakly; a module's entry is replaced when its layout
changes.
"""

from __future__ import annotations

import weakref

from .kernels import has_hooks

__all__ = ["cached", "layout_key"]

_SCALARS = (int, float, str, bool, type(None))
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _tensor_key(name, t):
    if t is None:
        return name, None
    return name, id(t), t.data_ptr(), t.shape, t.dtype


def layout_key(module):
    """Everything a plan depends on besides tensor contents, as a comparable tuple."""
    parts = []
    stack = [module]
    while stack:
        m = stack.pop()
        state = m.__dict__
        children = state["_modules"]
        parts.append((
            id(m), type(m), has_hooks(m), "forward" in state,
            tuple((k, v if type(v) in _SCALARS else id(v)) for k, v in state.items()
                  if k[0] != "_" and k != "training"),
            tuple((k, id(c)) for k, c in children.items()),
            tuple(_tensor_key(k, p) for k, p in state["_parameters"].items()),
            tuple(_tensor_key(k, b) for k, b in state["_buffers"].items()),
        ))
        stack.extend(c for c in children.values() if c is not None)
    return tuple(parts)


def cached(module, build):
    """``build(module)``'s plan, reused while ``module``'s layout is unchanged.

    ``build`` returns ``(plan, refresh)``: ``refresh()`` re-copies the live
    tensors into the plan's padded copies; it runs at every call (a hit), so
    the plan never serves stale weights.
    """
    key = layout_key(module)
    entry = _CACHE.get(module)
    if entry is not None and entry[0] == key:
        plan, refresh = entry[1]
        refresh()
        return plan
    built = build(module)
    _CACHE[module] = (key, built)
    return built[0]
