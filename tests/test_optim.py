import pytest
import torch

from sklearn_deepnet import DeepMLPClassifier
from sklearn_deepnet._optim import SOLVERS
from sklearn_deepnet._validation import InvalidParameterError

EXPECTED = {
    "sgd": (torch.optim.SGD, {"momentum": 0.8, "nesterov": True}),  # MLPClassifier's meaning
    "momentum": (torch.optim.SGD, {"momentum": 0.8, "nesterov": False}),
    "nesterov": (torch.optim.SGD, {"momentum": 0.8, "nesterov": True}),
    "adagrad": (torch.optim.Adagrad, {"eps": 1e-6}),
    "rmsprop": (torch.optim.RMSprop, {"alpha": 0.95, "eps": 1e-6}),
    "adam": (torch.optim.Adam, {"betas": (0.8, 0.99), "eps": 1e-6}),
    "adamax": (torch.optim.Adamax, {"betas": (0.8, 0.99), "eps": 1e-6}),
    "nadam": (torch.optim.NAdam, {"betas": (0.8, 0.99), "eps": 1e-6}),
    "adamw": (torch.optim.AdamW, {"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01}),
}


def test_table_and_expectations_agree():
    assert set(EXPECTED) == set(SOLVERS)


@pytest.mark.parametrize("solver", sorted(EXPECTED))
def test_solver_builds_that_optimizer(solver, clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier(
        (8,), solver=solver, learning_rate_init=0.02, momentum=0.8, beta_1=0.8,
        beta_2=0.99, epsilon=1e-6, rho=0.95, max_iter=3, random_state=0,
    ).fit(X, y)
    cls, expected = EXPECTED[solver]
    opt = clf.net_.optimizer_
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["lr"] == 0.02
    for key, value in expected.items():
        assert group[key] == value, key
    assert all(g["weight_decay"] == 0 for g in opt.param_groups[1:])  # no decay on biases


def test_learning_rate_changes_training(clf_data):
    X, y = clf_data
    slow = DeepMLPClassifier((8,), solver="sgd", learning_rate_init=1e-5, max_iter=3,
                             random_state=0).fit(X, y)
    fast = DeepMLPClassifier((8,), solver="sgd", learning_rate_init=0.5, max_iter=3,
                             random_state=0).fit(X, y)
    assert fast.loss_curve_[-1] < slow.loss_curve_[-1] - 0.1


def test_weight_decay_is_decoupled_and_shrinks_weights(clf_data):
    X, y = clf_data
    norms = {}
    for wd in (0.0, 0.5):
        clf = DeepMLPClassifier((16,), solver="adamw", weight_decay=wd, alpha=0.0,
                                learning_rate_init=0.01, batch_size=20, max_iter=20,
                                random_state=0).fit(X, y)
        norms[wd] = clf.net_.module_.hidden[0].linear.weight.norm().item()
        assert clf.net_.optimizer_.param_groups[0]["weight_decay"] == wd
    assert norms[0.5] < 0.7 * norms[0.0]


@pytest.mark.parametrize("solver", ["sgd", "momentum", "rmsprop", "adagrad", "adamax"])
def test_weight_decay_rejected_without_decoupled_form(solver, clf_data):
    X, y = clf_data
    with pytest.raises(InvalidParameterError, match="weight_decay.*decoupled"):
        DeepMLPClassifier(solver=solver, weight_decay=0.1).fit(X, y)


def test_unknown_solver(clf_data):
    X, y = clf_data
    with pytest.raises(InvalidParameterError, match="'solver' parameter.*adam"):
        DeepMLPClassifier(solver="lbfgs").fit(X, y)


def test_partial_fit_keeps_optimizer_state(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((8,), random_state=0)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    opt = clf.net_.optimizer_
    clf.partial_fit(X, y)
    assert clf.net_.optimizer_ is opt
    assert next(iter(opt.state.values()))["step"].item() == 2


def test_adam_with_weight_decay_is_adamw(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((8,), solver="adam", weight_decay=0.1, max_iter=1,
                            random_state=0).fit(X, y)
    assert type(clf.net_.optimizer_) is torch.optim.AdamW
    assert clf.net_.optimizer_.param_groups[0]["weight_decay"] == 0.1


def test_sgd_means_what_it_means_in_mlp_classifier(clf_data):
    # MLPClassifier's "sgd" is Nesterov momentum 0.9 by default; momentum and
    # nesterovs_momentum change it, momentum=0 is plain SGD.
    X, y = clf_data
    kw = dict(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=0.01, batch_size=50,
              max_iter=5, tol=0, random_state=0)
    curves = {}
    for name, extra in {"default": {}, "momentum=0.99": dict(momentum=0.99),
                        "classical": dict(nesterovs_momentum=False),
                        "plain": dict(momentum=0.0)}.items():
        clf = DeepMLPClassifier(**kw, **extra).fit(X, y)
        curves[name] = clf.loss_curve_
        group = clf.net_.optimizer_.param_groups[0]
        assert group["momentum"] == extra.get("momentum", 0.9)
        assert group["nesterov"] == (name in ("default", "momentum=0.99"))
    assert len({tuple(c) for c in curves.values()}) == 4  # every setting changes training
    assert curves["default"][-1] < curves["plain"][-1]  # momentum speeds this up
