"""Self-normalizing nets: SELU's conditions, checked at init and warned about at fit."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from sklearn_deepnet import DeepMLPClassifier
from sklearn_deepnet._engine.module import MLP


def _layer_stats(module, X):
    """Mean and std of every hidden layer's output for ``X``."""
    stats = []
    hooks = [block.register_forward_hook(
        lambda m, i, out: stats.append((out.mean().item(), out.std().item())))
        for block in module.hidden]
    with torch.no_grad():
        module(torch.as_tensor(X))
    for h in hooks:
        h.remove()
    return np.array(stats)


def test_100_layer_selu_stack_self_normalizes_at_initialization():
    # Standardized inputs, LeCun normal: every one of 100 layers stays near
    # mean 0 and std 1; logistic with N(0, 1) weights does not.
    X = np.random.default_rng(0).standard_normal((1000, 100)).astype(np.float32)
    torch.manual_seed(0)
    selu = MLP(100, [100] * 100, 10, activation="selu").initialize_("lecun_normal")
    stats = _layer_stats(selu, X)
    assert np.abs(stats[:, 0]).max() < 0.15 and np.abs(stats[:, 1] - 1).max() < 0.15
    torch.manual_seed(0)
    logistic = MLP(100, [100] * 100, 10, activation="logistic")
    for lin in logistic.linears():
        torch.nn.init.normal_(lin.weight, 0.0, 1.0)
        torch.nn.init.zeros_(lin.bias)
    stats = _layer_stats(logistic, X)
    assert np.abs(stats[:, 0]).max() > 0.15 or np.abs(stats[:, 1] - 1).max() > 0.15


@pytest.mark.parametrize("params, scale, reason", [
    (dict(batch_norm="before"), 1.0, "BatchNorm"),
    (dict(alpha=0.01), 1.0, "L1/L2 penalty"),
    (dict(max_norm=2.0), 1.0, "max-norm"),
    (dict(kernel_initializer="he_normal"), 1.0, "instead of LeCun normal"),
    (dict(), 10.0, "not standardized.*StandardScaler"),
])
def test_selu_warns_when_self_normalization_breaks(params, scale, reason):
    X = np.random.default_rng(0).standard_normal((100, 5)) * scale
    y = (X[:, 0] > 0).astype(int)
    with pytest.warns(UserWarning, match=f"self-normalizes.*{reason}"):
        DeepMLPClassifier((8,), activation="selu", max_iter=2, random_state=0,
                          **params).fit(X, y)


def test_selu_on_standardized_inputs_does_not_warn():
    X = np.random.default_rng(0).standard_normal((100, 5))
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # (2 epochs on purpose)
        DeepMLPClassifier((8,), activation="selu", dropout=0.1, max_iter=2,
                          random_state=0).fit(X, y)
        DeepMLPClassifier((8,), activation="relu", batch_norm="before", max_iter=2,
                          random_state=0).fit(X * 10, y)  # not SELU: no warning


def test_selu_warning_checks_the_rows_trained_on_and_sparse_input():
    import scipy.sparse as sp

    from sklearn_deepnet import VarianceScaling

    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 5))
    y = (X[:, 0] > 0).astype(int)
    X_bad, w = np.vstack([X, np.full((5, 5), 500.0)]), np.r_[np.ones(100), np.zeros(5)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        DeepMLPClassifier((8,), activation="selu", max_iter=2, random_state=0).fit(
            X_bad, np.r_[y, y[:5]], sample_weight=w)  # zero-weight rows do not count
    for params, data in [(dict(), sp.csr_matrix(X * 100 + 50)),
                         (dict(kernel_initializer=VarianceScaling(2.0)), X),
                         (dict(solver="adamw", weight_decay=0.1, alpha=0.0), X)]:
        with pytest.warns(UserWarning, match="self-normalizes"):
            DeepMLPClassifier((8,), activation="selu", max_iter=2, random_state=0,
                              **params).fit(data, y)
    clf = DeepMLPClassifier((8,), activation="selu", batch_norm="before", random_state=0)
    with pytest.warns(UserWarning, match="self-normalizes"):
        clf.partial_fit(X, y, classes=[0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        clf.partial_fit(X, y)  # warned once, when the network was built


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_deep_selu_stack_trains_faster_than_the_same_relu_stack(seed):
    """40 x 64 on the standardized digits, momentum SGD at 3e-4, batch 32, 2 epochs:
    SELU + LeCun ends near 0.8-1.0 where ReLU + He is still near chance (2.3)."""
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    losses = {}
    for activation in ("selu", "relu"):
        clf = DeepMLPClassifier((64,) * 40, activation=activation, solver="momentum",
                                learning_rate_init=3e-4, batch_size=32, alpha=0.0, max_iter=2,
                                n_iter_no_change=99, random_state=seed).fit(X, y)
        losses[activation] = clf.loss_
    assert losses["selu"] < losses["relu"] - 0.5, losses


def test_one_hot_columns_next_to_standardized_ones_do_not_warn():
    # Issue 24: the "inputs not standardized" warning fired on every fit of a
    # search whose numeric columns were scaled, because of one-hot columns.
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    numeric = rng.standard_normal((200, 3))
    one_hot = np.eye(4)[rng.integers(0, 4, 200)]
    y = (numeric[:, 0] > 0).astype(int)
    kw = dict(hidden_layer_sizes=(8,), activation="selu", max_iter=2, random_state=0)
    for X in (np.hstack([numeric, one_hot]), sp.csr_matrix(np.hstack([numeric, one_hot]))):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            DeepMLPClassifier(**kw).fit(X, y)
    with pytest.warns(UserWarning, match="not standardized.*indicator columns aside"):
        DeepMLPClassifier(**kw).fit(np.hstack([numeric * 10, one_hot]), y)


def test_the_standardization_warning_shows_once_per_configuration_in_a_search():
    # Issue 24: "one warning per fit configuration is enough". The message
    # holds no figures of the fold's data, and settings warnings are shown once
    # per process (scikit-learn's parallel helpers reset Python's own registry
    # around every fit, so the 5 folds showed it 5 times); "always" shows all.
    from sklearn.model_selection import cross_validate

    rng = np.random.default_rng(1)
    X = rng.standard_normal((150, 4)) * 10 + 3
    y = (X[:, 0] > 3).astype(int)
    for width in (7, 9):  # two configurations: each warns once
        clf = DeepMLPClassifier((width,), activation="selu", max_iter=2, random_state=0,
                                alpha=1e-3 * width)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            cross_validate(clf, X, y, cv=5)
        shown = [w for w in caught if "not standardized" in str(w.message)]
        assert len(shown) == 1
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cross_validate(clf, X, y, cv=3)
        assert len([w for w in caught if "not standardized" in str(w.message)]) == 3


def test_a_settings_warning_ignored_once_is_shown_later():
    # Found in review: a fit under an "ignore" filter used up the one showing.
    X = np.random.default_rng(2).standard_normal((40, 3))
    y = (X[:, 0] > 0).astype(int)
    clf = DeepMLPClassifier((5,), max_iter=1, momentum=0.37, random_state=0)  # no effect: adam
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        clf.fit(X, y)
    assert any("momentum=0.37 has no effect" in str(w.message) for w in caught)
