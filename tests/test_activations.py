import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sklearn_deepnet import DeepMLPClassifier
from sklearn_deepnet._engine.activations import (
    ACTIVATIONS,
    build_activation,
    check_activation_alpha,
)
from sklearn_deepnet._validation import InvalidParameterError

Z = torch.linspace(-3, 3, 61)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_builds_and_fits(name, clf_data):
    X, y = clf_data
    module = build_activation(name)
    assert isinstance(module, nn.Module)
    assert torch.isfinite(module(Z)).all()
    clf = DeepMLPClassifier((8,), activation=name, max_iter=2, random_state=0).fit(X, y)
    assert type(clf.net_.module_.hidden[0].activation) is type(module)


def test_expected_modules():
    assert isinstance(build_activation("swish"), nn.SiLU)
    assert isinstance(build_activation("silu"), nn.SiLU)
    assert isinstance(build_activation("logistic"), nn.Sigmoid)
    assert isinstance(build_activation("sigmoid"), nn.Sigmoid)
    assert isinstance(build_activation("identity"), nn.Identity)
    assert isinstance(build_activation("mish"), nn.Mish)
    assert isinstance(build_activation("gelu"), nn.GELU)


def test_leaky_relu_slope():
    assert build_activation("leaky_relu")(torch.tensor([-1.0])).item() == pytest.approx(-0.2)
    assert build_activation("leaky_relu", 0.05)(torch.tensor([-2.0])).item() == pytest.approx(
        -0.1
    )


def test_elu_alpha():
    out = build_activation("elu", 2.0)(torch.tensor([-50.0])).item()
    assert out == pytest.approx(-2.0)


def test_prelu_initial_slope_and_learned(clf_data):
    assert build_activation("prelu", 0.1).weight.item() == pytest.approx(0.1)
    X, y = clf_data
    clf = DeepMLPClassifier(
        (8,), activation="prelu", activation_alpha=0.1, max_iter=5, random_state=0,
        learning_rate_init=0.05,
    ).fit(X, y)
    assert clf.net_.module_.hidden[0].activation.weight.item() != pytest.approx(0.1)


def test_rrelu_range_train_vs_eval():
    act = build_activation("rrelu", (0.1, 0.3))
    act.train()
    slopes = -act(-torch.ones(10_000))
    assert slopes.min() >= 0.1 - 1e-6 and slopes.max() <= 0.3 + 1e-6
    act.eval()
    assert (-act(-torch.ones(3))).allclose(torch.tensor(0.2))
    # Inference evaluates it as the leaky ReLU of the mean slope: the same bits.
    from sklearn_deepnet._engine.activations import activation_row

    z = torch.randn(1000, 48) * 3
    for lower, upper in [(0.1, 0.3), (1 / 8, 1 / 3), (0.01, 0.5)]:
        act = build_activation("rrelu", (lower, upper))
        evaluate = activation_row(act).evaluation(act, 48)
        assert torch.equal(evaluate(z), F.rrelu(z, lower, upper, training=False))


@pytest.mark.parametrize(
    "name, alpha",
    [("relu", 0.1), ("selu", 1.0), ("leaky_relu", (0.1, 0.2)), ("rrelu", 0.1),
     ("rrelu", (0.4, 0.2)), ("elu", -1.0)],
)
def test_bad_alpha_rejected(name, alpha, clf_data):
    assert check_activation_alpha(name, alpha) is not None
    X, y = clf_data
    with pytest.raises(InvalidParameterError, match="activation_alpha"):
        DeepMLPClassifier(activation=name, activation_alpha=alpha).fit(X, y)


def test_user_supplied_module_class(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((8, 8), activation=nn.Hardswish, max_iter=2, random_state=0)
    clf.fit(X, y)
    acts = [b.activation for b in clf.net_.module_.hidden]
    assert all(isinstance(a, nn.Hardswish) for a in acts)
    assert acts[0] is not acts[1]


def test_user_callable_must_return_module(clf_data):
    X, y = clf_data
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        DeepMLPClassifier((8,), activation=lambda: "relu").fit(X, y)


def test_unknown_activation_name(clf_data):
    X, y = clf_data
    with pytest.raises(InvalidParameterError, match="'activation' parameter"):
        DeepMLPClassifier(activation="relu6").fit(X, y)


def test_activation_alpha_with_custom_module_is_an_error(clf_data):
    X, y = clf_data
    with pytest.raises(InvalidParameterError, match="only applies to named activations"):
        DeepMLPClassifier(activation=nn.Hardswish, activation_alpha=0.1).fit(X, y)


def test_error_message_reads_as_a_sentence(clf_data):
    X, y = clf_data
    with pytest.raises(InvalidParameterError) as exc:
        DeepMLPClassifier(activation="relu", activation_alpha=0.3).fit(X, y)
    assert str(exc.value) == (
        "Invalid value 0.3 for the 'activation_alpha' parameter of DeepMLPClassifier: "
        "activation='relu' has no parameter; leave activation_alpha=None."
    )


def test_factory_returning_a_shared_instance_is_refused(clf_data):
    # Issue 22, item 9: every layer, and every clone in a search, shared the
    # one PReLU's parameters: fitting a clone changed the original's predictions.
    from sklearn.base import clone

    X, y = clf_data
    shared = nn.PReLU()
    wrapped = nn.PReLU()
    for factory in (lambda: shared, lambda: nn.Sequential(wrapped)):
        clf = DeepMLPClassifier((8, 8), activation=factory, max_iter=2)
        with pytest.raises(InvalidParameterError,
                           match="builds a new module on every call.*shared by every layer"):
            clf.fit(X, y)
    # A class or a partial builds one per call: each layer and clone owns its own.
    import functools

    clf = DeepMLPClassifier((8, 8), activation=functools.partial(nn.PReLU, init=0.1),
                            max_iter=2, random_state=0).fit(X, y)
    before = clf.predict_proba(X)
    clone(clf).set_params(max_iter=5).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), before)
    slopes = [m.weight for m in clf.module_.modules() if isinstance(m, nn.PReLU)]
    assert len(slopes) == 2 and slopes[0] is not slopes[1]


def test_a_stateless_shared_instance_is_allowed(clf_data):
    # Without parameters or buffers, one instance serving every layer is harmless.
    X, y = clf_data
    relu = nn.ReLU()
    clf = DeepMLPClassifier((8, 8), activation=lambda: relu, max_iter=2, random_state=0)
    reference = DeepMLPClassifier((8, 8), max_iter=2, random_state=0,
                                  kernel_initializer="glorot_uniform").fit(X, y)
    np.testing.assert_allclose(clf.fit(X, y).predict_proba(X), reference.predict_proba(X),
                               rtol=1e-5)


def test_checking_a_custom_factory_leaves_the_callers_rng_alone(clf_data):
    X, y = clf_data

    class Noisy(nn.Module):  # draws random numbers when built
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.rand(1) + 0.5)

        def forward(self, x):
            return torch.relu(x) * self.scale

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    DeepMLPClassifier((8,), activation=Noisy, max_iter=1, random_state=0).fit(X, y)
    assert torch.equal(torch.rand(3), expected)
