"""The plan cache (``_engine/plan_cache.py``): ``cached``, its ``_Layout`` and ``_Is``.

Exercised directly with a counting ``build`` (the cache knows nothing of the
plan it holds); ``tests/test_inference.py`` checks that predictions follow
layout changes through it end to end.
"""

import gc
import weakref

import pytest
import torch
from torch import nn

from sklearn_deepnet._engine import plan_cache
from sklearn_deepnet._engine.plan_cache import _expected, _Is, _Layout, cached


class _Counter:
    """A ``build`` that counts its calls and the refreshes of the plans it built."""

    def __init__(self):
        self.builds = 0
        self.refreshes = 0

    def __call__(self, module):
        self.builds += 1
        plan = ("plan", self.builds)

        def refresh():
            self.refreshes += 1

        return plan, refresh


def _net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(0.1), nn.BatchNorm1d(4),
                        nn.Sequential(nn.Linear(4, 2), nn.ReLU()))
    net[0].extra = [1, 2]  # a non-scalar public setting: compared by identity
    return net


def _hit_after(change):
    """Whether ``cached`` reuses its plan after ``change(net)`` (and refreshed it)."""
    net, build = _net(), _Counter()
    first = cached(net, build)
    assert (build.builds, build.refreshes) == (1, 0)  # a miss builds, no refresh
    change(net)
    plan = cached(net, build)
    hit = build.builds == 1
    assert (plan is first) == hit
    assert build.refreshes == (1 if hit else 0)  # a hit refreshes the padded copies
    return hit


def test_a_hit_returns_the_same_plan_and_refreshes_it_every_time():
    net, build = _net(), _Counter()
    plans = [cached(net, build) for _ in range(4)]
    assert all(p is plans[0] for p in plans)
    assert (build.builds, build.refreshes) == (1, 3)
    other = _net()
    assert cached(other, build) is not plans[0]  # one entry per module
    assert build.builds == 2


def _set_data(attr):
    def change(net):
        lin = net[0]
        getattr(lin, attr).data = getattr(lin, attr).data.clone()  # same object, new storage
    return change


def _assign(path, value):
    def change(net):
        owner = net.get_submodule(path.rpartition(".")[0]) if "." in path else net
        setattr(owner, path.rpartition(".")[2], value() if callable(value) else value)
    return change


CHANGES = {
    # public settings: scalars by value
    "slope changed": _assign("1.negative_slope", 0.2),
    "eps changed": _assign("2.eps", 1e-3),
    "setting added": _assign("0.added", 1),
    "setting deleted": lambda net: delattr(net[1], "inplace"),
    "non-scalar setting replaced by an equal one": _assign("0.extra", lambda: [1, 2]),
    # children, tensors: by identity
    "child replaced by an equal one": _assign("1", lambda: nn.LeakyReLU(0.1)),
    "deep child replaced": _assign("3.1", lambda: nn.ReLU()),
    "child added": lambda net: net[3].add_module("extra", nn.Identity()),
    "parameter replaced by an equal one": lambda net: setattr(
        net[0], "bias", nn.Parameter(net[0].bias.detach().clone())),
    "buffer replaced": lambda net: setattr(net[2], "running_mean", torch.zeros(4)),
    "parameter removed": lambda net: setattr(net[0], "bias", None),
    "weight storage replaced": _set_data("weight"),
    "weight reshaped": lambda net: setattr(net[0].weight, "data", torch.zeros(4, 3).t()),
    "weight dtype changed": lambda net: net[3][0].double(),
    # hooks and an instance forward
    "forward hook": lambda net: net[3][1].register_forward_hook(lambda m, i, o: o),
    "forward pre-hook": lambda net: net.register_forward_pre_hook(lambda m, i: None),
    "instance forward": _assign("1.forward", lambda: (lambda x: x)),
}

UNCHANGED = {
    "nothing": lambda net: None,
    "weights edited in place": lambda net: net[0].weight.data.mul_(2),
    "running statistics updated": lambda net: net.train()(torch.randn(5, 3)),
    "mode switched": lambda net: net.eval(),
    "requires_grad switched": lambda net: net.requires_grad_(False),
    "setting set to its own value": _assign("1.negative_slope", 0.1),
    "gradients computed": lambda net: net(torch.randn(5, 3)).sum().backward(),
    "backward hook": lambda net: net[0].weight.register_hook(lambda g: g),
}


@pytest.mark.parametrize("how", CHANGES)
def test_a_layout_change_builds_a_new_plan(how):
    assert not _hit_after(CHANGES[how])


@pytest.mark.parametrize("how", UNCHANGED)
def test_what_the_plan_does_not_depend_on_keeps_it(how):
    assert _hit_after(UNCHANGED[how])


def test_a_removed_hook_and_a_new_layout_are_kept_anew():
    net, build = _net(), _Counter()
    cached(net, build)
    handle = net[0].register_forward_hook(lambda m, i, o: o)
    cached(net, build)
    handle.remove()
    cached(net, build)  # back to no hook: a layout of its own
    assert build.builds == 3
    cached(net, build)
    assert (build.builds, build.refreshes) == (3, 1)


def test_a_child_replaced_twice_is_seen_even_when_ids_could_be_reused():
    # The layout holds the children themselves: the first replacement cannot be
    # freed and its id taken by the second (an id-keyed cache served the old plan).
    net, build = _net(), _Counter()
    cached(net, build)
    for _ in range(3):
        net[1] = nn.LeakyReLU(0.1)
        net[1] = nn.LeakyReLU(0.1)
        gc.collect()
        before = build.builds
        cached(net, build)
        assert build.builds == before + 1


def test_the_cache_holds_its_modules_weakly():
    net, build = _net(), _Counter()
    cached(net, build)
    ref = weakref.ref(net)
    n = len(plan_cache._CACHE)
    del net
    gc.collect()
    assert ref() is None and len(plan_cache._CACHE) == n - 1


def test_is_compares_by_identity_whatever_the_objects_eq():
    t = torch.tensor([1.0])
    assert _Is(t) == t and not (_Is(t) == torch.tensor([1.0]))
    assert [_Is(t)] == [t]  # in a container comparison (the layout's) too
    assert {"w": _Is(t)} == {"w": t} and {"w": _Is(t)} != {"w": t.clone()}
    with pytest.raises(TypeError):
        hash(_Is(t))


def test_expected_keeps_scalars_and_identity_objects_and_wraps_the_rest():
    for v in (1, 0.5, "tanh", True, None):
        assert _expected(v) is v
    module = nn.ReLU()  # nn.Module's == is identity already
    assert _expected(module) is module
    for v in (torch.zeros(2), (0.1, 0.2), [1]):
        wrapped = _expected(v)
        assert isinstance(wrapped, _Is) and wrapped.obj is v


def test_a_layout_reads_every_module_and_tensor_of_the_tree():
    net = _net()
    net[0].bias = None
    layout = _Layout(net)
    assert len(layout.states) == len(list(net.modules()))
    expected = [t for m in net.modules() for t in (*m._parameters.values(), *m._buffers.values())
                if t is not None]
    assert {id(t) for t in layout.tensors} == {id(t) for t in expected}
    assert len(layout.tensors) == len(expected)
    assert layout.unchanged()
    net[2].momentum = 0.5
    assert not layout.unchanged()
