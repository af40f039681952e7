"""recommended_params: the chapter's default configurations as plain parameter values."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits, make_regression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import type_of_target

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor, recommended_params
from sklearn_deepnet._presets import PRESETS, TARGET_TYPES


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("cls", [DeepMLPClassifier, DeepMLPRegressor])
def test_every_preset_is_a_valid_configuration(cls, preset):
    params = recommended_params(preset)
    est = cls(**params, random_state=0)
    assert {k: est.get_params()[k] for k in params} == params
    assert clone(est).get_params() == est.get_params()
    X, y = make_regression(n_samples=64, n_features=5, random_state=0)
    if cls is DeepMLPClassifier:
        y = (y > 0).astype(int)
    est.set_params(max_iter=2).fit(X, y)  # passes parameter validation and trains
    assert est.n_iter_ <= 2


def test_preset_follows_the_chapter_tables():
    default, snn = recommended_params(), recommended_params("self_normalizing")
    # Table 11-3: He init (auto for ELU), ELU, no BatchNorm for a shallow net,
    # early stopping, 1cycle
    assert default["activation"] == "elu" and default["kernel_initializer"] == "auto"
    assert len(default["hidden_layer_sizes"]) <= 3 and default["batch_norm"] is None
    assert default["early_stopping"]
    assert default["learning_rate"] == "1cycle" and default["solver"] in ("adamw", "nadam")
    # Table 11-4: LeCun init (auto for SELU), SELU, no BatchNorm
    assert snn["activation"] == "selu" and snn["batch_norm"] is None
    X = np.random.default_rng(0).normal(size=(40, 4))
    fitted = DeepMLPClassifier(**{**default, "max_iter": 1}, random_state=0).fit(
        X, np.arange(40) % 2)
    assert fitted.module_.hidden[0].linear.weight.shape == (256, 4)


def test_tabular_preset_is_the_default_network_with_periodic_embeddings():
    tabular, default = recommended_params("tabular"), recommended_params()
    assert {k: v for k, v in tabular.items() if k in default} == default
    assert tabular["numeric_embedding"] == "periodic" and tabular["frequency_scale"] == "auto"


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("target_type", TARGET_TYPES)
def test_every_preset_fits_every_target_type_it_is_asked_for(preset, target_type):
    # The parameters for a target type are accepted by the estimator that fits
    # that type of target, and it trains on one.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = {"binary": X[:, 0] > 0, "multiclass": np.arange(60) % 3,
         "multilabel-indicator": (X[:, :2] > 0).astype(int), "continuous": X[:, 0],
         "continuous-multioutput": X[:, :2]}[target_type]
    assert type_of_target(y) == target_type
    cls = DeepMLPRegressor if target_type.startswith("continuous") else DeepMLPClassifier
    params = recommended_params(preset, target_type=target_type)
    est = cls(**{**params, "max_iter": 2}, random_state=0).fit(X, y)
    assert {k: est.get_params()[k] for k in params if k != "max_iter"} == {
        k: v for k, v in params.items() if k != "max_iter"}


def test_tabular_preset_adds_what_was_measured_for_a_target_type():
    tabular = recommended_params("tabular")
    assert recommended_params("tabular", target_type="multiclass") == {
        **tabular, "label_smoothing": 0.2, "n_iter_no_change": 30}
    assert tabular["n_iter_no_change"] == 20
    assert recommended_params("tabular", target_type="binary") == {**tabular, "dropout": 0.1}
    for target_type in set(TARGET_TYPES) - {"multiclass", "binary"}:
        assert recommended_params("tabular", target_type=target_type) == tabular
    for preset in set(PRESETS) - {"tabular"}:  # (nothing measured for the others)
        for target_type in TARGET_TYPES:
            assert (recommended_params(preset, target_type=target_type)
                    == recommended_params(preset))
    # a new dict each time: the table itself is never handed out
    recommended_params("tabular", target_type="multiclass")["label_smoothing"] = 0.5
    assert recommended_params("tabular", target_type="multiclass")["label_smoothing"] == 0.2


@pytest.mark.parametrize("bad", ["Multiclass", "multiclass-multioutput", "unknown", 3,
                                 np.array(["multiclass"]), ["binary"]])
def test_unknown_target_type_names_the_choices(bad):
    with pytest.raises(ValueError, match="target_type must be None or one of.*binary.*"
                                         "multiclass.*continuous"):
        recommended_params("tabular", target_type=bad)


def test_the_docstring_examples_run():
    import doctest

    import sklearn_deepnet._presets as presets

    result = doctest.testmod(presets)
    assert result.attempted >= 3 and not result.failed


def test_each_call_returns_a_new_dict():
    params = recommended_params()
    params["activation"] = "tanh"
    params["hidden_layer_sizes"] = (3,)
    assert recommended_params()["activation"] == "elu"
    assert recommended_params()["hidden_layer_sizes"] == (256, 256, 256)


@pytest.mark.parametrize("bad", ["Default", "fast", None, 3])
def test_unknown_preset_names_the_choices(bad):
    with pytest.raises(ValueError, match="default.*self_normalizing.*tabular"):
        recommended_params(bad)


def test_overriding_a_preset_value():
    clf = DeepMLPClassifier(**{**recommended_params(), "dropout": 0.2})
    assert clf.dropout == 0.2 and clf.activation == "elu"


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_trains_a_good_digits_model(preset):
    # Measured (seeds 0-2): default 0.961-0.972, self_normalizing 0.961-0.972, plain
    # defaults (200 epochs) 0.959-0.974:
    # on 1,257 rows the preset is no better; its gains show on the larger sets of
    # benchmarks/bench_accuracy.py. This checks the preset trains well out of the box.
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    model = make_pipeline(StandardScaler(),
                          DeepMLPClassifier(**recommended_params(preset), random_state=0))
    assert model.fit(X_train, y_train).score(X_test, y_test) >= 0.94
