"""Inference: batch-invariant, bounded, fast predictions (``_inference.predict_raw``)."""

import numpy as np
import pytest
import torch

from sklearn_deepnet import DeepMLPClassifier
from sklearn_deepnet._engine.activations import ACTIVATIONS
from sklearn_deepnet._engine.inference import predict_raw
from sklearn_deepnet._engine.module import MLP


def _net(activation="relu", widths=(64, 33), n_outputs=3, seed=0, **kwargs):
    torch.manual_seed(seed)
    net = MLP(20, list(widths), n_outputs, activation=activation, **kwargs).initialize_()
    # Non-trivial BatchNorm statistics and affine parameters.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net


def _assert_batch_invariant(net, n_threads, n=1000, members=False):
    X = np.random.default_rng(0).normal(size=(n, 20)).astype(np.float32)
    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    kw = dict(n_threads=n_threads, members=members)
    try:
        full = predict_raw(net, X, "cpu", **kw)
        for size in (1, 3, 7, 13, 64, 100, 999):
            pieces = np.vstack([predict_raw(net, X[i : i + size], "cpu", **kw)
                                for i in range(0, n, size)])
            np.testing.assert_array_equal(pieces, full, err_msg=f"chunks of {size}")
        np.testing.assert_array_equal(predict_raw(net, X, "cpu", batch_size=13, **kw), full)
        perm = np.random.default_rng(1).permutation(n)[:517]
        np.testing.assert_array_equal(predict_raw(net, X[perm], "cpu", **kw), full[perm])
    finally:
        torch.set_num_threads(before)
    return X, full


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_predictions_are_batch_invariant_for_every_activation(activation, n_threads):
    # Transcendental activations round differently in ATen's vectorized loop
    # and its scalar tail; predict_raw must not let the batch decide which.
    net = _net(activation, widths=(100, 37, 256))
    X, full = _assert_batch_invariant(net, n_threads)
    assert net.training  # mode untouched
    with torch.no_grad():
        np.testing.assert_allclose(net.eval()(torch.from_numpy(X)).numpy(), full,
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs", [
    dict(batch_norm="before"), dict(batch_norm="after", dropout=0.3),
    dict(batch_norm_input=True, activation="selu", dropout=0.2),
    dict(activation="prelu", batch_norm="after"), dict(activation="rrelu"),
], ids=str)
@pytest.mark.parametrize("n_outputs", [1, 3, 40])
def test_predictions_are_batch_invariant_with_batch_norm_and_dropout(kwargs, n_outputs):
    net = _net(n_outputs=n_outputs, **kwargs)
    X, full = _assert_batch_invariant(net, n_threads=2)
    with torch.no_grad():
        np.testing.assert_allclose(net.eval()(torch.from_numpy(X)).numpy(), full,
                                   rtol=1e-5, atol=1e-5)


_ENSEMBLES = [
    dict(ensemble_sharing="mini", member_combine="softmax", activation="elu"),
    dict(ensemble_sharing="batch", member_combine="softmax", batch_norm="after", dropout=0.2),
    dict(ensemble_sharing="batch", member_combine="sigmoid", activation="gelu",
         batch_norm="before", batch_norm_input=True),
    dict(ensemble_sharing="mini", member_combine="identity", activation="selu", dropout=0.1),
    dict(ensemble_sharing="batch", member_combine="exp", activation="swish"),
]


@pytest.mark.parametrize("kwargs", _ENSEMBLES, ids=str)
@pytest.mark.parametrize("n_threads", [1, 3])
def test_ensemble_predictions_are_batch_invariant(kwargs, n_threads):
    # Efficient ensembles (TabM): the combined output and each member's, both
    # bit-identical whatever the batch, and what the module computes.
    net = _net(widths=(100, 37), n_members=4, **kwargs)
    X, full = _assert_batch_invariant(net, n_threads)
    _, members = _assert_batch_invariant(net, n_threads, members=True)
    assert full.shape == (1000, 3) and members.shape == (1000, 12)
    with torch.no_grad():
        np.testing.assert_allclose(net.eval()(torch.from_numpy(X)).numpy(), full,
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(net.forward_members(torch.from_numpy(X)).numpy(), members,
                                   rtol=1e-5, atol=1e-5)
    net.train()
    assert predict_raw(net, X[:0], "cpu", members=True).shape == (0, 12)


def test_ensemble_combination_is_read_from_the_module():
    # Like the other settings, the combining rule comes from the module (and a
    # change of it is a change of the plan cache's layout).
    net = _net(n_members=3, member_combine="softmax")
    X = np.random.default_rng(0).normal(size=(10, 20)).astype(np.float32)
    first = predict_raw(net, X, "cpu")
    net.output.combine.combine = "identity"
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(X)).numpy()
    net.train()
    np.testing.assert_allclose(predict_raw(net, X, "cpu"), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(first, expected)


def test_ensemble_with_a_user_activation_runs_its_modules():
    class Noisy(torch.nn.Module):  # differs between train and eval mode
        def forward(self, x):
            return x + 1.0 if self.training else x

    net = _net(Noisy, n_members=3, ensemble_sharing="batch", member_combine="softmax")
    X = np.random.default_rng(0).normal(size=(10, 20)).astype(np.float32)
    with torch.no_grad():
        net.eval()
        expected = net(torch.from_numpy(X)).numpy()
        members = net.forward_members(torch.from_numpy(X)).numpy()
    net.train()
    np.testing.assert_allclose(predict_raw(net, X, "cpu"), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(predict_raw(net, X, "cpu", members=True), members, rtol=1e-5,
                               atol=1e-5)
    assert net.training


def test_linear_model_and_one_row():
    net = _net(widths=())
    X = np.random.default_rng(0).normal(size=(5, 20)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(predict_raw(net, X[:1], "cpu"), expected[:1], rtol=1e-5)
    assert predict_raw(net, X[:0], "cpu").shape == (0, 3)


def test_predictions_follow_weight_changes():
    net = _net("elu")
    X = np.random.default_rng(0).normal(size=(10, 20)).astype(np.float32)
    first = predict_raw(net, X, "cpu")
    with torch.no_grad():
        net.hidden[0].linear.weight.mul_(2.0)  # in place: same tensor, new version
    second = predict_raw(net, X, "cpu")
    with torch.no_grad():
        np.testing.assert_allclose(second, net.eval()(torch.from_numpy(X)).numpy(),
                                   rtol=1e-5, atol=1e-5)
    assert not np.allclose(first, second)
    net.load_state_dict(_net("elu", seed=1).state_dict())
    with torch.no_grad():
        np.testing.assert_allclose(predict_raw(net, X, "cpu"),
                                   net.eval()(torch.from_numpy(X)).numpy(), rtol=1e-5,
                                   atol=1e-5)


def test_a_global_forward_hook_runs_in_predictions_after_the_plan_is_cached():
    # The plan walk never calls the modules; a hook registered on every module
    # (register_module_forward_hook) after the plan was cached must still run,
    # one-row (serving) requests included, and the plan comes back after it goes.
    from torch.nn.modules.module import (
        register_module_forward_hook,
        register_module_forward_pre_hook,
    )

    net = _net("elu")
    X = np.random.default_rng(0).normal(size=(10, 20)).astype(np.float32)
    plain = predict_raw(net, X, "cpu")
    shift_output = lambda m, i, o: o + 1 if m is net.output.linear else o  # noqa: E731
    zero_inputs = lambda m, i: (i[0] * 0,)  # noqa: E731
    for register, hook in ((register_module_forward_hook, shift_output),
                           (register_module_forward_pre_hook, zero_inputs)):
        handle = register(hook)
        try:
            with torch.no_grad():
                expected = net.eval()(torch.from_numpy(X)).numpy()
            assert not np.allclose(expected, plain)
            np.testing.assert_allclose(predict_raw(net, X, "cpu"), expected, rtol=1e-5,
                                       atol=1e-6)
            np.testing.assert_allclose(predict_raw(net, X[:1], "cpu"), expected[:1],
                                       rtol=1e-5, atol=1e-6)
        finally:
            handle.remove()
        np.testing.assert_array_equal(predict_raw(net, X, "cpu"), plain)
    # registered before the first call (nothing cached yet), on a new network
    fresh = _net("elu", seed=3)
    handle = register_module_forward_hook(
        lambda m, i, o: o + 1 if m is fresh.output.linear else o)
    try:
        with torch.no_grad():
            expected = fresh.eval()(torch.from_numpy(X)).numpy()
        np.testing.assert_allclose(predict_raw(fresh, X, "cpu"), expected, rtol=1e-5, atol=1e-6)
    finally:
        handle.remove()
    np.testing.assert_allclose(predict_raw(fresh, X, "cpu"), expected - 1, rtol=1e-5,
                               atol=1e-5)


def test_user_supplied_activation_runs_in_eval_mode():
    class Noisy(torch.nn.Module):  # differs between train and eval mode
        def forward(self, x):
            return x + 1.0 if self.training else x

    net = _net(Noisy)
    X = np.random.default_rng(0).normal(size=(10, 20)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(predict_raw(net, X, "cpu"),
                                   net.eval()(torch.from_numpy(X)).numpy(), rtol=1e-5,
                                   atol=1e-5)
    assert not net.training  # it was in eval mode: left so
    net.train()
    predict_raw(net, X, "cpu")
    assert net.training  # and in training mode: left so


def test_small_predictions_use_one_thread_and_restore_the_callers(monkeypatch):
    seen = []
    original = torch.addmm

    def addmm(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    net = _net(widths=(512, 512))
    X = np.random.default_rng(0).normal(size=(2000, 20)).astype(np.float32)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        # The plan is built, and its row probe runs (products too) at each
        # thread count the first time.
        predict_raw(net, X[:1], "cpu")
        predict_raw(net, X, "cpu")
        monkeypatch.setattr(torch, "addmm", addmm)
        predict_raw(net, X[:1], "cpu")
        assert set(seen) == {1}  # 4 to 64 padded rows x 512 x 512: small
        seen.clear()
        predict_raw(net, X, "cpu")
        assert set(seen) == {2}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_estimator_predictions_are_batch_invariant_with_selu(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((32, 32), activation="selu", max_iter=3, random_state=0).fit(X, y)
    full = clf.predict_proba(X)
    one_by_one = np.vstack([clf.predict_proba(X[i : i + 1]) for i in range(len(X))])
    np.testing.assert_array_equal(one_by_one, full)


@pytest.mark.parametrize("solver", ["adam", "sgd", "rmsprop"])
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_predictions_follow_every_training_step(solver, dropout, clf_data):
    # torch's fused optimizers do not bump tensor versions: predictions must
    # still see their updates (partial_fit, and scoring between epochs).
    X, y = clf_data
    clf = DeepMLPClassifier((16,), solver=solver, dropout=dropout, batch_size=50,
                            random_state=0, early_stopping=True, max_iter=3).fit(X, y)
    X32 = X.astype(np.float32)
    clf.set_params(early_stopping=False)  # partial_fit does not early-stop
    for _ in range(2):
        before = clf.predict_proba(X)
        clf.partial_fit(X, y)
        with torch.no_grad():
            expected = torch.softmax(clf.module_.eval()(torch.from_numpy(X32)), 1).numpy()
        clf.module_.train()
        np.testing.assert_allclose(clf.predict_proba(X), expected, rtol=1e-4, atol=1e-6)
        assert not np.allclose(clf.predict_proba(X), before)
    # Validation between epochs used each epoch's weights too.
    valid_losses = [h["valid_loss"] for h in clf.history_ if "valid_loss" in h]
    assert len(valid_losses) == 3 and len(set(valid_losses)) == 3


@pytest.mark.parametrize("activation", ["relu", "elu", "gelu"])
@pytest.mark.parametrize("threads", [2, 3, 4, 5])
def test_one_row_alone_equals_the_same_row_in_a_large_batch(activation, threads):
    # With n_threads=None a large batch runs on all threads and one row on
    # one: the row's outputs must still be identical.
    net = _net(activation, widths=(100, 37, 256))
    X = np.random.default_rng(0).normal(size=(20000, 20)).astype(np.float32)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        full = predict_raw(net, X, "cpu")
        rows = [0, 1, 8191, 8192, 19999]
        alone = np.vstack([predict_raw(net, X[i : i + 1], "cpu") for i in rows])
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(alone, full[rows])


def test_predictions_follow_every_kind_of_manual_change(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((16,), max_iter=2, random_state=0).fit(X, y)
    X32 = torch.from_numpy(X.astype(np.float32))

    def truth():
        with torch.no_grad():
            out = torch.softmax(clf.module_.eval()(X32), 1).numpy()
        clf.module_.train()
        return out

    clf.predict_proba(X)
    clf.module_.output.linear.weight.data.mul_(0.5)  # .data: no version bump
    np.testing.assert_allclose(clf.predict_proba(X), truth(), rtol=1e-5, atol=1e-6)
    clf.module_.hidden[0].activation = torch.nn.Tanh()  # a parameter-free swap
    np.testing.assert_allclose(clf.predict_proba(X), truth(), rtol=1e-5, atol=1e-6)
    opt = torch.optim.Adam(clf.module_.parameters(), lr=0.1, fused=True)  # no version bump
    loss = clf.module_(X32).pow(2).mean()
    loss.backward()
    opt.step()
    np.testing.assert_allclose(clf.predict_proba(X), truth(), rtol=1e-5, atol=1e-6)
    handle = clf.module_.output.register_forward_hook(lambda m, i, o: o * 0)  # hooks run
    np.testing.assert_allclose(clf.predict_proba(X), np.full((len(X), 3), 1 / 3), rtol=1e-6)
    handle.remove()


@pytest.mark.parametrize("layout", [dict(), dict(batch_norm="before", dropout=0.2),
                                    dict(batch_norm="after", batch_norm_input=True)], ids=str)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_the_plan_walk_equals_the_module_in_evaluation_mode(activation, layout):
    # Generated from the tables (issue 23): inference walks the layer plan
    # instead of calling the modules; for every activation row and layout it
    # must compute what the module computes in evaluation mode.
    from sklearn_deepnet._engine.module import plan_blocker

    net = _net(activation, **layout)
    assert plan_blocker(net) is None
    X = np.random.default_rng(2).normal(size=(200, 20)).astype(np.float32)
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(X)).numpy()
    net.train()
    np.testing.assert_allclose(predict_raw(net, X, "cpu"), expected, rtol=1e-5, atol=1e-6)
    assert net.training  # the plan walk switches no mode


def test_the_plan_cache_follows_layout_changes_and_keeps_no_module_alive():
    import gc
    import weakref

    from sklearn_deepnet._engine import plan_cache

    net = _net("leaky_relu", widths=(20,))
    X = np.random.default_rng(3).normal(size=(5, 20)).astype(np.float32)
    before = predict_raw(net, X, "cpu")
    net.hidden[0].activation.negative_slope = 0.5  # a setting: the plan is rebuilt
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(X)).numpy()
    net.train()
    after = predict_raw(net, X, "cpu")
    assert not np.array_equal(before, after)
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-6)
    net.output.linear.weight.data = net.output.linear.weight.data * 2  # new storage
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(X)).numpy()
    net.train()
    np.testing.assert_allclose(predict_raw(net, X, "cpu"), expected, rtol=1e-5, atol=1e-6)
    ref = weakref.ref(net)
    del net
    gc.collect()
    assert ref() is None  # the cache holds modules weakly, and their entries no module
    assert all(ref() is not m for m in list(plan_cache._CACHE))


@pytest.mark.parametrize("how", ["output layer", "activation"])
def test_a_submodule_replaced_twice_between_predictions_is_seen(how, clf_data):
    # Found in review: the plan cache keyed submodules by id(); replaced twice,
    # the second new module could take the freed first one's id, and
    # predictions kept the old head or slope (0.68 off) without an error.
    X, y = clf_data
    clf = DeepMLPClassifier((16,), activation="leaky_relu", max_iter=3,
                            random_state=0).fit(X, y)
    clf.predict_proba(X)  # the plan is cached
    for attempt in range(3):
        torch.manual_seed(attempt)
        if how == "output layer":
            clf.module_.output.linear = torch.nn.Linear(16, clf.module_.plan.n_outputs)
            clf.module_.output.linear = torch.nn.Linear(16, clf.module_.plan.n_outputs)
        else:
            clf.module_.hidden[0].activation = torch.nn.LeakyReLU(0.9)
            clf.module_.hidden[0].activation = torch.nn.LeakyReLU(0.05 * attempt)
        with torch.no_grad():
            expected = torch.softmax(
                clf.module_.eval()(torch.from_numpy(X.astype(np.float32))), 1).numpy()
        clf.module_.train()
        np.testing.assert_allclose(clf.predict_proba(X), expected, rtol=1e-4, atol=1e-6)


def test_the_plan_cache_compares_tensors_by_identity_and_sees_deep_changes():
    # The layout check compares registries with dict/tuple equality in C; a
    # one-element tensor's == is element-wise, so a PReLU slope replaced by an
    # equal-valued new Parameter must still count as a new tensor (the plan
    # would otherwise keep reading the old one after the new one is edited).
    net = _net("prelu", widths=(20,))
    X = np.random.default_rng(5).normal(size=(7, 20)).astype(np.float32)

    def truth():
        with torch.no_grad():
            out = net.eval()(torch.from_numpy(X)).numpy()
        net.train()
        return out

    predict_raw(net, X, "cpu")
    act = net.hidden[0].activation
    act.weight = torch.nn.Parameter(act.weight.detach().clone())  # equal value, new tensor
    predict_raw(net, X, "cpu")
    with torch.no_grad():
        act.weight.fill_(-3.0)
    np.testing.assert_allclose(predict_raw(net, X, "cpu"), truth(), rtol=1e-5, atol=1e-6)
    # A forward hook on a submodule: the plan walk would skip it.
    handle = net.hidden[0].linear.register_forward_hook(lambda m, i, o: o * 0 + 1)
    np.testing.assert_allclose(predict_raw(net, X, "cpu"), truth(), rtol=1e-5, atol=1e-6)
    handle.remove()
    np.testing.assert_allclose(predict_raw(net, X, "cpu"), truth(), rtol=1e-5, atol=1e-6)
    # A setting deleted, then one added (the module's attributes change).
    net.hidden[0].linear.extra_setting = 1.0
    np.testing.assert_allclose(predict_raw(net, X, "cpu"), truth(), rtol=1e-5, atol=1e-6)
    del net.hidden[0].linear.extra_setting
    np.testing.assert_allclose(predict_raw(net, X, "cpu"), truth(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "selu"])
def test_the_small_request_path_gives_the_chunked_paths_array(activation):
    # predict_raw serves a small dense float32 array in one chunk without the
    # chunk loop, padded and cut in numpy (read-only, Fortran-ordered and
    # strided arrays copied first); anything else (here: several chunks)
    # takes the loop. Same plan walk: the same bits, the same kind of array.
    net = _net(activation, widths=(40, 24))
    X = np.random.default_rng(4).normal(size=(50, 20)).astype(np.float32)
    lean = predict_raw(net, X, "cpu")
    np.testing.assert_array_equal(predict_raw(net, X, "cpu", batch_size=7), lean)
    read_only = X.copy()
    read_only.flags.writeable = False
    for other in (read_only, np.asfortranarray(X), np.repeat(X, 2, axis=0)[::2],
                  read_only[:3]):
        np.testing.assert_array_equal(predict_raw(net, other, "cpu"), lean[: len(other)])
    assert not read_only.flags.writeable  # (the caller's array untouched)
    for out in (lean, predict_raw(net, X[:1], "cpu")):
        assert out.dtype == np.float32 and out.flags.c_contiguous and out.flags.owndata
    assert lean.shape == (50, 3)


def test_the_plans_refreshed_copies_never_require_grad():
    # The plan re-copies the live weights at every call without switching
    # autograd off: every source it copies from must be detached, or its padded
    # copies would join the autograd graph (and every prediction would build one).
    from sklearn_deepnet._engine.eval_plan import prepare
    from sklearn_deepnet._engine.plan_cache import cached

    net = _net("prelu", widths=(40, 24), batch_norm="before")
    X = np.random.default_rng(5).normal(size=(5, 20)).astype(np.float32)
    assert torch.is_grad_enabled()
    first = predict_raw(net, X, "cpu")
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1.5)
    second = predict_raw(net, X, "cpu")  # (refreshed, under grad mode)
    assert not np.array_equal(first, second)
    _, plan, _ = cached(net, prepare)
    tensors = [t for op in plan.ops for t in vars(op).values() if isinstance(t, torch.Tensor)]
    tensors += [t for op in plan.ops if hasattr(op, "keywords")
                for t in op.keywords.values() if isinstance(t, torch.Tensor)]
    assert tensors and not any(t.requires_grad for t in tensors)
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(second, expected, rtol=1e-5, atol=1e-6)
