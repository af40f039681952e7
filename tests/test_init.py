import copy
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.neural_network import MLPClassifier, MLPRegressor

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor, VarianceScaling
from sklearn_deepnet._base import BaseDeepMLP
from sklearn_deepnet._engine.init import INITIALIZERS, SklearnUniform, resolve_initializer
from sklearn_deepnet._engine.module import MLP
from sklearn_deepnet._validation import InvalidParameterError

FAN_IN, FAN_OUT = 1200, 800
EXPECTED_VAR = {
    "glorot": 2.0 / (FAN_IN + FAN_OUT),
    "he": 2.0 / FAN_IN,
    "lecun": 1.0 / FAN_IN,
}


@pytest.mark.parametrize(
    "name", sorted(k for k, v in INITIALIZERS.items() if isinstance(v, VarianceScaling)))
def test_variance_matches_formula(name):
    torch.manual_seed(0)
    w = INITIALIZERS[name].initialize_(torch.empty(FAN_OUT, FAN_IN))
    expected = EXPECTED_VAR[name.split("_")[0]]
    assert w.var().item() == pytest.approx(expected, rel=0.05)
    assert abs(w.mean().item()) < 0.05 * math.sqrt(expected)
    std = math.sqrt(expected)
    if name.endswith("_uniform"):
        assert w.abs().max().item() <= math.sqrt(3 * expected) + 1e-7
    else:  # truncated at two (rescaled) standard deviations, as Keras does
        assert w.abs().max().item() <= 2 * std / 0.87962566103423978 + 1e-6


@pytest.mark.parametrize(
    "mode, fan", [("fan_in", FAN_IN), ("fan_out", FAN_OUT), ("fan_avg", (FAN_IN + FAN_OUT) / 2)]
)
@pytest.mark.parametrize("distribution", ["uniform", "normal", "untruncated_normal"])
def test_general_variance_scaling(mode, fan, distribution):
    torch.manual_seed(0)
    init = VarianceScaling(scale=3.0, mode=mode, distribution=distribution)
    w = init.initialize_(torch.empty(FAN_OUT, FAN_IN))
    assert w.var().item() == pytest.approx(3.0 / fan, rel=0.05)


@pytest.mark.parametrize(
    "activation, expected",
    [("relu", "he_normal"), ("elu", "he_normal"), ("gelu", "he_normal"),
     ("swish", "he_normal"), ("mish", "he_normal"), ("leaky_relu", "he_normal"),
     ("selu", "lecun_normal"), ("tanh", "glorot_uniform"), ("logistic", "glorot_uniform"),
     ("identity", "glorot_uniform")],
)
def test_auto_follows_table_11_1(activation, expected):
    from sklearn_deepnet._engine.activations import activation_init_family

    assert resolve_initializer("auto", activation_init_family(activation)) == INITIALIZERS[
        expected
    ]


def test_auto_in_a_wide_network():
    torch.manual_seed(0)
    net = MLP(1000, [1000, 1000], 10, activation="relu").initialize_("auto")
    for lin in net.hidden_linears():
        assert lin.weight.var().item() == pytest.approx(2.0 / lin.in_features, rel=0.05)
        assert torch.count_nonzero(lin.bias) == 0
    out = net.output.linear
    assert out.weight.var().item() == pytest.approx(2.0 / (1000 + 10), rel=0.05)
    torch.manual_seed(0)
    net = MLP(1000, [1000], 10, activation="selu").initialize_("auto")
    assert net.hidden[0].linear.weight.var().item() == pytest.approx(1.0 / 1000, rel=0.05)


def test_explicit_initializer_applies_to_the_hidden_layers_the_output_keeps_glorot():
    torch.manual_seed(0)
    net = MLP(1000, [1000, 1000], 500, activation="relu").initialize_("lecun_uniform")
    for lin in net.hidden_linears():
        assert lin.weight.var().item() == pytest.approx(1.0 / lin.in_features, rel=0.05)
    out = net.output.linear.weight
    assert out.var().item() == pytest.approx(2.0 / (1000 + 500), rel=0.05)
    assert out.abs().max().item() <= (6.0 / 1500) ** 0.5  # uniform, as Keras' default


def test_estimator_uses_initializer(clf_data):
    X, y = clf_data
    a = DeepMLPClassifier((8,), kernel_initializer="he_uniform", max_iter=1, random_state=0)
    b = DeepMLPClassifier((8,), kernel_initializer="glorot_normal", max_iter=1, random_state=0)
    wa = a.fit(X, y).net_.module_.hidden[0].linear.weight
    wb = b.fit(X, y).net_.module_.hidden[0].linear.weight
    assert not torch.allclose(wa, wb)


@pytest.mark.parametrize(
    "bad", [VarianceScaling(scale=-1.0), VarianceScaling(mode="fan"),
            VarianceScaling(distribution="cauchy")]
)
def test_invalid_variance_scaling(bad, clf_data):
    X, y = clf_data
    with pytest.raises(InvalidParameterError, match="kernel_initializer"):
        DeepMLPClassifier(kernel_initializer=bad).fit(X, y)


# --- kernel_initializer="sklearn": scikit-learn's MLP draws, number for number --------------


def _sklearn_initial(est, X, y):
    """scikit-learn's initial ``coefs_`` and ``intercepts_`` (copied as ``_initialize`` ends)."""
    seen = {}
    original = type(est)._initialize

    def record(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen["coefs"] = [c.copy() for c in self.coefs_]
        seen["intercepts"] = [b.copy() for b in self.intercepts_]

    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mp.setattr(type(est), "_initialize", record)
        est.set_params(max_iter=1).fit(X, y)
    return seen["coefs"], seen["intercepts"]


def _our_initial(est, X, y):
    """Our network as ``_build_module`` returns it: ``(coefs, intercepts)`` as scikit-learn's."""
    seen = {}
    original = BaseDeepMLP._build_module

    def record(self, *args, **kwargs):
        module = original(self, *args, **kwargs)
        seen["module"] = copy.deepcopy(module)
        return module

    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mp.setattr(BaseDeepMLP, "_build_module", record)
        est.set_params(max_iter=1).fit(X, y)
    linears = seen["module"].linears()
    return ([lin.weight.detach().numpy().T for lin in linears],
            [None if lin.bias is None else lin.bias.detach().numpy() for lin in linears])


def _assert_same_start(ours, theirs):
    for (oc, ob), (tc, tb) in zip(zip(*ours, strict=True), zip(*theirs, strict=True), strict=True):
        assert oc.dtype == np.float32 and oc.shape == tc.shape
        np.testing.assert_array_equal(oc, tc.astype(np.float32))
        if ob is not None:
            np.testing.assert_array_equal(ob, tb.astype(np.float32))


_RNG = np.random.RandomState(0)
_X = _RNG.normal(size=(40, 5))
_TARGETS = {
    "binary": _RNG.randint(0, 2, 40),  # one logistic output unit in both
    "multiclass": _RNG.randint(0, 3, 40),  # three softmax units in both
    "multilabel": _RNG.randint(0, 2, (40, 4)),
    "regression": _RNG.normal(size=40),
    "multioutput": _RNG.normal(size=(40, 2)),
}


@pytest.mark.parametrize("activation", ["relu", "logistic", "tanh", "identity"])
@pytest.mark.parametrize("sizes", [(7,), (5, 2), (6, 4, 3)])
@pytest.mark.parametrize("target", list(_TARGETS))
def test_sklearn_initializer_starts_from_sklearn_numbers(activation, sizes, target):
    y = _TARGETS[target]
    regression = target in ("regression", "multioutput")
    ours_cls, theirs_cls = ((DeepMLPRegressor, MLPRegressor) if regression
                            else (DeepMLPClassifier, MLPClassifier))
    params = dict(hidden_layer_sizes=sizes, activation=activation, random_state=3)
    theirs = _sklearn_initial(theirs_cls(**params), _X, y)
    ours = _our_initial(ours_cls(kernel_initializer="sklearn", **params), _X, y)
    _assert_same_start(ours, theirs)


def test_sklearn_initializer_random_state_kinds():
    y = _TARGETS["multiclass"]
    params = dict(hidden_layer_sizes=(5, 2), activation="tanh")
    # A RandomState: the numbers scikit-learn draws from an instance in the same state.
    theirs = _sklearn_initial(MLPClassifier(random_state=np.random.RandomState(7), **params),
                              _X, y)
    rs = np.random.RandomState(7)
    ours = _our_initial(DeepMLPClassifier(kernel_initializer="sklearn", random_state=rs,
                                          **params), _X, y)
    _assert_same_start(ours, theirs)
    once = np.random.RandomState(7)
    once.randint(2**31 - 1)  # advanced by the fit's one seed draw only, as with any initializer
    assert rs.randint(2**31 - 1) == once.randint(2**31 - 1)
    # None: NumPy's global state, as scikit-learn (reproducible under np.random.seed).
    np.random.seed(11)  # noqa: NPY002 - the global state is what None means
    ours = _our_initial(DeepMLPClassifier(kernel_initializer="sklearn", **params), _X, y)
    np.random.seed(11)  # noqa: NPY002 - the global state is what None means
    theirs = _sklearn_initial(MLPClassifier(**params), _X, y)
    _assert_same_start(ours, theirs)


def test_sklearn_initializer_with_batch_norm_keeps_every_weight_matrix():
    """A layer without a bias (BatchNorm before the activation) still draws and drops it."""
    y = _TARGETS["multiclass"]
    params = dict(hidden_layer_sizes=(6, 4), random_state=0)
    theirs = _sklearn_initial(MLPClassifier(**params), _X, y)
    ours = _our_initial(DeepMLPClassifier(kernel_initializer="sklearn", batch_norm="before",
                                          **params), _X, y)
    assert ours[1][0] is None and ours[1][1] is None and ours[1][2] is not None
    _assert_same_start(ours, theirs)


def test_sklearn_initializer_engine_side():
    net = MLP(3, [4], 2, activation="sigmoid")
    net.initialize_("sklearn", 5)
    rs = np.random.RandomState(5)
    b = math.sqrt(2.0 / (3 + 4))  # factor 2 for the logistic activation (alias sigmoid)
    np.testing.assert_array_equal(net.hidden[0].linear.weight.detach().numpy(),
                                  rs.uniform(-b, b, (3, 4)).T.astype(np.float32))
    assert isinstance(INITIALIZERS["sklearn"], SklearnUniform)
    # None: a RandomState seeded from torch's global generator (reproducible under its seed).
    torch.manual_seed(0)
    first = MLP(3, [4], 2).initialize_("sklearn").output.linear.bias.detach().clone()
    torch.manual_seed(0)
    second = MLP(3, [4], 2).initialize_("sklearn").output.linear.bias.detach()
    assert torch.equal(first, second) and torch.count_nonzero(first) == 2
    gen = MLP(3, [4], 2).initialize_("sklearn", np.random.default_rng(0))  # a Generator works
    assert torch.count_nonzero(gen.output.linear.bias) == 2


def test_sklearn_initializer_reproduces_the_user_guide_lbfgs_example():
    X, y = [[0.0, 0.0], [1.0, 1.0]], [0, 1]
    clf = DeepMLPClassifier(hidden_layer_sizes=(5, 2), solver="lbfgs", alpha=1e-5,
                            kernel_initializer="sklearn", random_state=1).fit(X, y)
    assert clf.predict([[2.0, 2.0], [-1.0, -2.0]]).tolist() == [1, 0]
    assert clf.n_iter_ == 15
