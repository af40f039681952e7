"""The inference plan of a module, kept between calls and checked at every call.

Inference (:func:`.eval_plan.prepare`) prepares a network's plain operations from its
weights: padded copies of the weight matrices and BatchNorm statistics, the
activations' settings, whether the plan's walk may run at all
(:func:`~.module.plan_blocker`, hooks, an instance ``forward``). Rebuilding
that at every call costs more than a one-row prediction itself, so it is kept
per module and reused while the module's **layout** is unchanged, and its
padded copies are **refreshed** from the live tensors at every call:

- the layout (:class:`_Layout`): every module of the tree, its children
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
from operator import attrgetter, call, itemgetter

from torch import Tensor

__all__ = ["cached"]

_SCALARS = (int, float, str, bool, type(None))
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _Is:
    """Compares equal to its object only (identity, whatever the object's ``__eq__``)."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other):
        return self.obj is other

    __hash__ = None


# What a module's layout reads besides its public settings: its children,
# tensors and forward hooks (in this order: see _Layout).
_REGISTRIES = ("_modules", "_parameters", "_buffers", "_forward_hooks", "_forward_pre_hooks")


def _expected(v):
    """``v`` as a layout compares it: a scalar by value, an object whose ``==`` is
    identity as itself (``==`` starts with an identity test, in C), any other
    object (a tensor, an array) through :class:`_Is`."""
    if type(v) in _SCALARS or type(v).__eq__ is object.__eq__:
        return v
    return _Is(v)


class _Layout:
    """Everything a plan depends on besides tensor contents, for a module tree.

    Taken from every module of the tree when its plan is built: the module's
    ``__dict__`` (not the module: the cache must not keep its key alive), its
    number of attributes (one added or deleted, e.g. an instance ``forward``,
    changes it), its public settings (slopes, ``eps``, ``approximate``, ...:
    scalars by value, other objects by identity), its children and tensors
    (by identity) and its forward hooks (copies of the registries: one hook
    added changes them), then each tensor's storage pointer, shape and dtype.

    Objects are held strongly and compared by identity: an ``id`` alone is
    reused once its object is freed, so a submodule replaced twice between two
    predictions could take the first one's id and the cache would serve the
    old plan (found in review). Written for a one-row prediction's budget:
    :meth:`unchanged` is a handful of loops in C over the whole tree (``map``,
    tuple and dictionary comparisons), no Python frame per module.
    """

    __slots__ = ("states", "lengths", "getters", "expected", "tensors", "pointers", "shapes",
                 "dtypes")

    def __init__(self, module):
        states, stack = [], [module]
        while stack:
            state = stack.pop().__dict__
            states.append(state)
            stack.extend(c for c in state["_modules"].values() if c is not None)
        self.states = tuple(states)
        self.lengths = tuple(map(len, states))
        getters, expected, tensors = [], [], []
        for state in states:
            public = tuple(k for k in state if k[0] != "_" and k != "training")
            getters.append(itemgetter(*public, *_REGISTRIES))
            modules, params, buffers, hooks, pre_hooks = map(state.__getitem__, _REGISTRIES)
            expected.append((*map(_expected, map(state.__getitem__, public)),
                             {k: _expected(v) for k, v in modules.items()},
                             {k: _Is(v) for k, v in params.items()},
                             {k: _Is(v) for k, v in buffers.items()},
                             hooks.copy(), pre_hooks.copy()))
            tensors.extend(t for t in (*params.values(), *buffers.values()) if t is not None)
        self.getters, self.expected, self.tensors = tuple(getters), tuple(expected), tuple(tensors)
        self.pointers, self.shapes, self.dtypes = self._tensor_layout()

    def _tensor_layout(self):
        return (tuple(map(_DATA_PTR, self.tensors)), tuple(map(_SHAPE, self.tensors)),
                tuple(map(_DTYPE, self.tensors)))

    def unchanged(self):
        """Whether the tree still has this layout (no tensor contents compared)."""
        try:
            same = (tuple(map(len, self.states)) == self.lengths
                    and self.expected == tuple(map(call, self.getters, self.states)))
            # (the expected values on the left: their ``__eq__`` decides)
        except KeyError:  # a setting or registry was deleted
            return False
        # (the same tensor objects, as compared: their storage, shape, dtype)
        return same and self._tensor_layout() == (self.pointers, self.shapes, self.dtypes)


_DATA_PTR, _SHAPE, _DTYPE = Tensor.data_ptr, attrgetter("shape"), attrgetter("dtype")


def cached(module, build):
    """``build(module)``'s plan, reused while ``module``'s layout is unchanged.

    ``build`` returns ``(plan, refresh)``: ``refresh()`` re-copies the live
    tensors into the plan's padded copies; it runs at every call (a hit), so
    the plan never serves stale weights.
    """
    entry = _CACHE.get(module)
    if entry is not None:
        layout, (plan, refresh) = entry
        if layout.unchanged():
            refresh()
            return plan
    layout = _Layout(module)
    plan, refresh = build(module)
    _CACHE[module] = (layout, (plan, refresh))
    return plan
