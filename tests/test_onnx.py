"""ONNX export through skl2onnx (``sklearn_deepnet.onnx``), checked in onnxruntime."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor
from sklearn_deepnet._engine.activations import ACTIVATIONS

skl2onnx = pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")

from sklearn_deepnet.onnx import ONNX_ACTIVATIONS, register, to_onnx  # noqa: E402

FAST = dict(hidden_layer_sizes=(24, 17), max_iter=4, random_state=0)


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=240, n_features=10, n_informative=6, n_classes=3,
                               random_state=0)
    return X.astype(np.float32), y


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


def _run(onx, X):
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    if isinstance(X, dict):
        return sess.run(None, X)
    return sess.run(None, {sess.get_inputs()[0].name: X})


def _check_classifier(est, X, dtype=np.float32, **options):
    onx = to_onnx(est, X[:1].astype(dtype), options={"zipmap": False, **options})
    label, proba = _run(onx, X.astype(dtype))
    np.testing.assert_array_equal(label, est.predict(X))
    np.testing.assert_allclose(proba, est.predict_proba(X), atol=1e-5, rtol=0)
    assert proba.dtype == dtype


def test_every_activation_has_an_onnx_emission():
    # A new row of the activation table cannot be forgotten here.
    for name, row in ACTIVATIONS.items():
        assert row.module in ONNX_ACTIVATIONS, name
    assert set(ONNX_ACTIVATIONS) == {row.module for row in ACTIVATIONS.values()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_matches_predict(data, activation, dtype):
    X, y = data
    est = _fit(DeepMLPClassifier(activation=activation, **FAST), X, y)
    _check_classifier(est, X, dtype)


@pytest.mark.parametrize("opset", [13, 17, 18, 20])
@pytest.mark.parametrize("activation", ["gelu", "mish"])
def test_native_ops_and_formulas_by_opset(data, activation, opset):
    X, y = data
    est = _fit(DeepMLPClassifier(activation=activation, **FAST), X, y)
    onx = to_onnx(est, X[:1], options={"zipmap": False}, target_opset=opset)
    ops = {n.op_type for n in onx.graph.node}
    native = {"gelu": ("Gelu", 20), "mish": ("Mish", 18)}[activation]
    assert (native[0] in ops) == (opset >= native[1])
    label, proba = _run(onx, X)
    np.testing.assert_array_equal(label, est.predict(X))
    np.testing.assert_allclose(proba, est.predict_proba(X), atol=1e-5)


def test_gelu_tanh_approximation(data):
    X, y = data
    est = _fit(DeepMLPClassifier(activation="gelu", **FAST), X, y)
    for block in est.module_.hidden:
        block.activation.approximate = "tanh"
    for opset in (17, 20):
        label, proba = _run(to_onnx(est, X[:1], options={"zipmap": False},
                                    target_opset=opset), X)
        np.testing.assert_allclose(proba, est.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("kwargs", [
    dict(batch_norm="before"),
    dict(batch_norm="after"),
    dict(batch_norm_input=True),
    dict(batch_norm="after", batch_norm_input=True, dropout=0.2),
    dict(batch_norm="before", activation="selu", dropout=0.1),
    dict(dropout=0.3),
    dict(max_norm=1.0),
    dict(numeric_embedding="periodic", frequency_scale=0.5, batch_norm_input=True),
    dict(numeric_embedding="piecewise_linear", n_bins=8, batch_norm="after"),
    dict(numeric_embedding="piecewise_linear", numeric_features=[0, 3, 4]),
    dict(numeric_embedding="periodic", n_members=3, ensemble_sharing="batch"),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_match_predict(data, kwargs, dtype):
    X, y = data
    est = _fit(DeepMLPClassifier(**{**FAST, **kwargs}), X, y)
    onx = to_onnx(est, X[:1].astype(dtype), options={"zipmap": False})
    assert {"BatchNormalization", "Dropout"}.isdisjoint(n.op_type for n in onx.graph.node)
    _check_classifier(est, X, dtype)


@pytest.mark.parametrize("kwargs", [
    dict(ensemble_sharing="mini"),
    dict(ensemble_sharing="mini", batch_norm="after", batch_norm_input=True, dropout=0.1),
    dict(ensemble_sharing="batch"),
    dict(ensemble_sharing="batch", batch_norm="before", batch_norm_input=True),
], ids=str)
@pytest.mark.parametrize("target", ["multiclass", "binary", "multilabel"])
@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ensembles_match_predict(data, kwargs, target, opset, dtype):
    # Efficient ensembles (TabM): split, member scales, the members' output
    # layers and their combination (softmax or sigmoid), Reduce* axes by opset.
    X, y = data
    y = {"multiclass": y, "binary": y == 1,
         "multilabel": np.column_stack([y == 0, y == 1]).astype(int)}[target]
    est = _fit(DeepMLPClassifier(n_members=3, **{**FAST, **kwargs}), X, y)
    onx = to_onnx(est, X[:1].astype(dtype), options={"zipmap": False}, target_opset=opset)
    assert {"Tile", "MatMul"} <= {n.op_type for n in onx.graph.node}
    label, proba = _run(onx, X.astype(dtype))
    np.testing.assert_array_equal(label, est.predict(X))
    np.testing.assert_allclose(proba, est.predict_proba(X), atol=1e-5, rtol=0)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ensemble_regressor(loss, dtype):
    X, y = make_regression(n_samples=200, n_features=8, n_targets=2, random_state=0)
    y = (y - y.mean()) / y.std()
    y = np.exp(y / 3) if loss == "poisson" else y
    est = _fit(DeepMLPRegressor(loss=loss, n_members=3, ensemble_sharing="batch", **FAST),
               X, y)
    (pred,) = _run(to_onnx(est, X[:1].astype(dtype)), X.astype(dtype))
    np.testing.assert_allclose(pred, est.predict(X), rtol=1e-5, atol=1e-5)


def test_string_labels_binary_and_zipmap(data):
    X, y = data
    names = np.array(["cat", "dog", "eel"])
    est = _fit(DeepMLPClassifier(**FAST), X, names[y])
    _check_classifier(est, X)
    binary = _fit(DeepMLPClassifier(**FAST), X, names[(y > 0).astype(int)])
    _check_classifier(binary, X)
    label, proba = _run(to_onnx(est, X[:1]), X)  # zipmap=True: a list of dicts
    expected = dict(zip(names, est.predict_proba(X[:1])[0], strict=True))
    assert proba[0] == pytest.approx(expected, abs=1e-5)
    np.testing.assert_array_equal(label, est.predict(X))
    onx = to_onnx(est, X[:1], options={"zipmap": "columns"})
    outputs = _run(onx, X)
    np.testing.assert_allclose(np.column_stack(outputs[1:]), est.predict_proba(X), atol=1e-5)


def test_integer_labels_and_options(data):
    X, y = data
    est = _fit(DeepMLPClassifier(**FAST), X, y * 10 + 3)
    _check_classifier(est, X)
    label, proba = _run(to_onnx(est, X[:1], options={"zipmap": False, "nocl": True}), X)
    np.testing.assert_array_equal(label, np.searchsorted(est.classes_, est.predict(X)))
    outputs = _run(to_onnx(est, X[:1], options={"zipmap": False,
                                                "output_class_labels": True}), X)
    np.testing.assert_array_equal(outputs[2], est.classes_)
    binary = _fit(DeepMLPClassifier(**FAST), X, (y > 0).astype(int))
    _check_classifier(binary, X)


def test_multilabel(data):
    X, y = data
    Y = np.column_stack([y == 0, y == 1, X[:, 0] > 0]).astype(int)
    est = _fit(DeepMLPClassifier(**FAST), X, Y)
    _check_classifier(est, X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_targets", [1, 3])
@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
def test_regressor(n_targets, loss, dtype):
    X, y = make_regression(n_samples=200, n_features=8, n_targets=n_targets, random_state=0)
    y = (y - y.mean()) / y.std()
    if loss == "poisson":
        y = np.exp(y / 3)
    est = _fit(DeepMLPRegressor(loss=loss, batch_norm="after", **FAST), X, y)
    (pred,) = _run(to_onnx(est, X[:1].astype(dtype)), X.astype(dtype))
    assert pred.shape == (len(X), n_targets) and pred.dtype == dtype
    np.testing.assert_allclose(pred, est.predict(X).reshape(len(X), -1), rtol=1e-5, atol=1e-6)


def test_pipeline_with_column_transformer():
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300) * 5,
                          "c": rng.choice(["x", "y", "z"], size=300)})
    y = (frame.a + (frame.c == "y") > 0.3).map({True: "yes", False: "no"}).to_numpy()
    columns = ColumnTransformer([
        ("num", StandardScaler(), ["a", "b"]),
        ("cat", OneHotEncoder(sparse_output=True), ["c"]),
    ], sparse_threshold=1.0)
    pipe = make_pipeline(columns, DeepMLPClassifier(batch_norm="before", **FAST))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(frame, y)
    assert sp.issparse(columns.transform(frame[:5]))  # the network gets sparse input
    onx = to_onnx(pipe, frame[:1], options={"zipmap": False})
    inputs = {"a": frame[["a"]].to_numpy(), "b": frame[["b"]].to_numpy(),
              "c": frame[["c"]].to_numpy()}
    label, proba = _run(onx, inputs)
    np.testing.assert_array_equal(label, pipe.predict(frame))
    np.testing.assert_allclose(proba, pipe.predict_proba(frame), atol=1e-5)

    reg = make_pipeline(StandardScaler(), DeepMLPRegressor(**FAST))
    X, yr = make_regression(n_samples=200, n_features=6, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.fit(X, yr / yr.std())
    register()  # then skl2onnx's own entry point
    (pred,) = _run(skl2onnx.to_onnx(reg, X[:1].astype(np.float32)), X.astype(np.float32))
    np.testing.assert_allclose(pred[:, 0], reg.predict(X), rtol=1e-5, atol=1e-5)


def test_mc_dropout_is_refused(data):
    X, y = data
    est = _fit(DeepMLPClassifier(dropout=0.2, mc_dropout=5, **FAST), X, y)
    with pytest.raises(ValueError, match="mc_dropout=5 .*no ONNX form"):
        to_onnx(est, X[:1])
    _check_classifier(est.set_params(mc_dropout=0), X)


def test_a_network_outside_its_plan_is_refused(data):
    X, y = data
    est = _fit(DeepMLPClassifier(**FAST), X, y)

    class Custom(type(est.module_.hidden[0].activation)):
        pass

    est.module_.hidden[0].activation = Custom()
    with pytest.raises(NotImplementedError, match="cannot export"):
        to_onnx(est, X[:1])


def test_a_global_forward_hook_is_refused_as_predict_runs_it(data):
    from torch.nn.modules.module import register_module_forward_hook

    X, y = data
    est = _fit(DeepMLPClassifier(**FAST), X, y)
    handle = register_module_forward_hook(lambda m, i, o: o)
    try:
        with pytest.raises(NotImplementedError, match="global module hooks are registered "
                                                      r"\(global_forward_hooks\)"):
            to_onnx(est, X[:1])
    finally:
        handle.remove()
    _check_classifier(est, X)  # exported once the hook is gone


def test_registration_imports_skl2onnx_only_when_asked():
    code = (
        "import sys, sklearn_deepnet, sklearn_deepnet.onnx as o\n"
        "assert not {'skl2onnx', 'onnx', 'onnxruntime'} & set(sys.modules), 'early'\n"
        "o.register()\n"
        "assert 'skl2onnx' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("zipmap", [True, "columns", False])
def test_float64_input_loads_with_every_zipmap_option(zipmap, data):
    # Found in review: a float64 sample with the default zipmap=True built a
    # graph onnxruntime refused (ZipMap takes float32 only).
    X, y = data
    labels = np.array(["ant", "bee", "cat"])[y]
    clf = _fit(DeepMLPClassifier(**FAST), X.astype(np.float64), labels)
    onx = to_onnx(clf, X[:1].astype(np.float64), options={"zipmap": zipmap})
    out = _run(onx, X.astype(np.float64))
    np.testing.assert_array_equal(out[0], clf.predict(X))
    if zipmap is True:
        proba = np.array([[row[c] for c in clf.classes_] for row in out[1]])
        np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-5, rtol=0)
