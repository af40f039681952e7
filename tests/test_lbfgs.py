"""solver="lbfgs" against scikit-learn's MLP (issue 24): SciPy's L-BFGS-B in float64."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from sklearn_deepnet import DeepMLPClassifier

# scikit-learn's user-guide example (neural_networks_supervised.rst)
UG_X, UG_y, UG_T = [[0.0, 0.0], [1.0, 1.0]], [0, 1], [[2.0, 2.0], [-1.0, -2.0]]
UG = dict(solver="lbfgs", alpha=1e-5, hidden_layer_sizes=(5, 2), random_state=1)
MATCHED = dict(kernel_initializer="glorot_uniform")  # scikit-learn's bound for relu


def _sklearn_initial_weights(layer_units, seed):
    """``MLPClassifier._init_coef``'s draws: weights then bias, layer by layer (relu)."""
    rng = np.random.RandomState(seed)
    out = []
    for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:], strict=False):
        bound = np.sqrt(6 / (fan_in + fan_out))
        out.append((rng.uniform(-bound, bound, (fan_in, fan_out)),
                    rng.uniform(-bound, bound, fan_out)))
    return out


def _fit_from(weights, X, y, **params):
    """Fit ``DeepMLPClassifier(**params)`` starting from ``weights`` (a warm start)."""
    clf = DeepMLPClassifier(**{**params, "max_iter": 1, "warm_start": True})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    with torch.no_grad():
        for linear, (W, b) in zip(clf.module_.linears(), weights, strict=True):
            linear.weight.copy_(torch.from_numpy(W.T))
            linear.bias.copy_(torch.from_numpy(b))
    return clf.set_params(max_iter=params.get("max_iter", 200)).fit(X, y)


def test_user_guide_example_takes_scikit_learns_path_from_its_weights():
    # From the same initial weights, the run is scikit-learn's: same iterations,
    # same loss (float64 throughout), same answer.
    theirs = MLPClassifier(**UG).fit(UG_X, UG_y)
    ours = _fit_from(_sklearn_initial_weights([2, 5, 2, 1], 1), UG_X, UG_y, **UG, **MATCHED)
    assert list(theirs.predict(UG_T)) == list(ours.predict(UG_T)) == [1, 0]
    assert ours.n_iter_ == theirs.n_iter_ == 15
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-6)
    assert ours.history_[-1, "lbfgs_converged"] and ours.history_[-1, "lbfgs_status"] == 0


def test_user_guide_example_from_its_own_weights():
    # random_state=1 draws other weights than scikit-learn's (and zero biases):
    # documented answer or not is the draw's; the run itself must not stall
    # (the torch LBFGS run stopped after 1 iteration at probability 0.5).
    clf = DeepMLPClassifier(**UG, **MATCHED).fit(UG_X, UG_y)
    assert clf.n_iter_ >= 3 and clf.history_[-1, "lbfgs_converged"]
    assert len(clf.loss_curve_) == clf.n_iter_ and not hasattr(
        MLPClassifier(**UG).fit(UG_X, UG_y), "loss_curve_")


@pytest.fixture(scope="module")
def moons():
    # scikit-learn's plot_mlp_alpha example
    X, y = make_moons(noise=0.3, random_state=0)
    X = StandardScaler().fit_transform(X)
    return train_test_split(X, y, test_size=0.4, random_state=42)


@pytest.mark.parametrize("alpha", [0.1, np.sqrt(0.1), 1.0])
def test_moons_reaches_scikit_learns_loss(moons, alpha):
    # Measured: scikit-learn 0.0849/112, 0.1685/206, 0.3375/177 (loss/iterations);
    # ours 0.0870/140, 0.1689/211, 0.3363/111. L-BFGS paths are chaotic (scikit-learn's
    # own loss moves by 0.3% and its iterations by 30% when its initial weights are
    # rounded to float32), so the loss is compared with a 5% tolerance.
    Xtr, Xte, ytr, yte = moons
    kw = dict(solver="lbfgs", hidden_layer_sizes=(10, 10), alpha=alpha, max_iter=2000,
              random_state=1)
    theirs = MLPClassifier(**kw).fit(Xtr, ytr)
    ours = DeepMLPClassifier(**kw, **MATCHED).fit(Xtr, ytr)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=0.05)
    assert ours.n_iter_ > 100 and ours.history_[-1, "lbfgs_converged"]
    assert ours.score(Xte, yte) >= theirs.score(Xte, yte) - 0.05


def test_limits_are_honoured_and_warned_as_scikit_learn(moons):
    Xtr, _, ytr, _ = moons
    kw = dict(solver="lbfgs", hidden_layer_sizes=(10, 10), alpha=0.1, random_state=1)
    with pytest.warns(ConvergenceWarning, match="reached max_iter=20"):
        clf = DeepMLPClassifier(max_iter=20, **kw).fit(Xtr, ytr)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        MLPClassifier(max_iter=20, **kw).fit(Xtr, ytr)
    assert clf.n_iter_ == 20 == len(clf.loss_curve_)
    assert clf.history_[-1, "lbfgs_status"] == 1
    with pytest.warns(ConvergenceWarning, match="reached max_fun=15"):
        clf = DeepMLPClassifier(max_fun=15, **kw).fit(Xtr, ytr)
    assert clf.history_[-1, "lbfgs_evaluations"] <= 15 + 20  # SciPy stops within a line search
    assert clf.n_iter_ <= 15
    # a loose tol stops earlier than the default, without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        loose = DeepMLPClassifier(tol=1e-1, **kw).fit(Xtr, ytr)
    assert loose.n_iter_ < DeepMLPClassifier(max_iter=2000, **kw).fit(Xtr, ytr).n_iter_


def test_runs_in_float64_and_keeps_the_module_float32():
    from sklearn_deepnet._engine import lbfgs

    seen = []
    real = lbfgs.LbfgsStep._network

    def spy(self):
        net = real(self)
        seen.append({p.dtype for p in net.parameters()})
        return net

    lbfgs.LbfgsStep._network = spy
    try:
        clf = DeepMLPClassifier(**UG).fit(UG_X, UG_y)
    finally:
        lbfgs.LbfgsStep._network = real
    assert seen == [{torch.float64}]
    assert {p.dtype for p in clf.module_.parameters()} == {torch.float32}
    assert type(clf.net_.optimizer_).__name__ == "LbfgsSettings"
    assert not clf.net_.optimizer_.state_dict()["state"]
    with pytest.raises(RuntimeError, match="SciPy"):
        clf.net_.optimizer_.step()
