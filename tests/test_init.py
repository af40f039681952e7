import math

import pytest
import torch

from sklearn_deepnet import DeepMLPClassifier, VarianceScaling
from sklearn_deepnet._engine.init import INITIALIZERS, resolve_initializer
from sklearn_deepnet._engine.module import MLP
from sklearn_deepnet._validation import InvalidParameterError

FAN_IN, FAN_OUT = 1200, 800
EXPECTED_VAR = {
    "glorot": 2.0 / (FAN_IN + FAN_OUT),
    "he": 2.0 / FAN_IN,
    "lecun": 1.0 / FAN_IN,
}


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
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
