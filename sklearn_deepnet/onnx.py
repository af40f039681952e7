"""Export to ONNX through skl2onnx: one more interpreter of the layer plan.

Opt in once per process, then convert as any scikit-learn model::

    from sklearn_deepnet.onnx import register
    register()                      # imports skl2onnx, registers both estimators
    onx = skl2onnx.to_onnx(pipeline, X[:1])

or in one call, which registers and picks :data:`DEFAULT_OPSET`::

    from sklearn_deepnet.onnx import to_onnx
    onx = to_onnx(pipeline, X[:1])

Importing this module is cheap: skl2onnx and onnx are imported by
:func:`register` (skl2onnx has no plugin entry points, so registration cannot
happen by itself; and ``import sklearn_deepnet`` never imports this module).
Install them with the ``onnx`` extra: ``pip install sklearn-deepnet[onnx]``.

The graph has the outputs and options of skl2onnx's own ``MLPClassifier`` /
``MLPRegressor`` converters: a classifier gives ``label`` and
``probabilities`` (options ``zipmap`` True/False/``"columns"``,
``output_class_labels``, ``nocl``), multilabel classifiers an indicator
matrix as ``label``; a regressor gives ``variable`` of shape
``(n_samples, n_outputs)``. It is computed in float32, or float64 for a
``DoubleTensorType`` input.

The converter walks the plan (:meth:`~._engine.module.MLP.planned_modules`)
of a network :func:`~._engine.module.plan_blocker` finds unchanged:

- ``linear``: ``Gemm``; BatchNorm (input, ``"before"`` or ``"after"``) is
  folded into the adjacent ``Gemm`` with its running statistics (an affine
  map next to an affine map: exact up to rounding);
- ``activation``: one row of :data:`ONNX_ACTIVATIONS` per module type of the
  activation table (a test checks every row has one);
- ``dropout`` / ``alpha_dropout``: nothing (the identity in evaluation);
- an ensemble's ops (``n_members > 1``): ``Tile``/``Reshape`` (split),
  ``Mul``/``Add`` on the ``(n, k, d)`` view (member scales), ``MatMul`` of the
  ``(k, n, in)`` view (the members' output layers) and the combination
  (``LogSoftmax``, ``ReduceLogSumExp``, ``ReduceMean``).

``mc_dropout > 0`` (stochastic passes) has no ONNX form and is refused.
"""

from __future__ import annotations

import math

import numpy as np
from torch import nn

from ._engine.activations import SELU_ALPHA, SELU_SCALE
from ._engine.embeddings import PeriodicEmbedding
from ._engine.kernels import global_forward_hooks, has_hooks
from ._engine.module import plan_blocker

__all__ = ["DEFAULT_OPSET", "ONNX_ACTIVATIONS", "register", "to_onnx"]

#: The opset :func:`to_onnx` targets: 17 runs on every onnxruntime since 1.13
#: (2022) and on most other runtimes (TensorRT 8.6, OpenVINO, onnxruntime-web);
#: nothing here needs a newer one (GELU and Mish are written as formulas below
#: opsets 20 and 18, as the native ops above them).
DEFAULT_OPSET = 17

_ALIASES = {"classifier": "SklearnDeepMLPClassifier", "regressor": "SklearnDeepMLPRegressor"}
_CLASSIFIER_OPTIONS = {
    "zipmap": [True, False, "columns"],
    "output_class_labels": [False, True],
    "nocl": [True, False],
}
_registered = False


# ------------------------------------------------------------ graph building
class _Graph:
    """Adds nodes and constants of one dtype to a skl2onnx container."""

    def __init__(self, scope, container, proto_dtype):
        self.scope, self.container, self.dtype = scope, container, proto_dtype
        self.opset = container.target_opset or DEFAULT_OPSET
        self.np_dtype = np.float64 if proto_dtype == _proto().DOUBLE else np.float32

    def const(self, value, name="const"):
        value = np.asarray(value, dtype=self.np_dtype)
        out = self.scope.get_unique_variable_name(name)
        from onnx.numpy_helper import from_array

        self.container.add_initializer(out, self.dtype, list(value.shape), from_array(value))
        return out

    def node(self, op_type, inputs, output=None, *, domain="", **attrs):
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        output = output or self.scope.get_unique_variable_name(op_type.lower())
        self.container.add_node(op_type, inputs, output, op_domain=domain,
                                name=self.scope.get_unique_operator_name(op_type), **attrs)
        return output

    def scaled(self, x, factor):
        return self.node("Mul", [x, self.const(factor)])

    # onnxruntime's CPU kernels of Elu, Selu, Erf, Softplus, Mish and Gelu are
    # float32 only: a float64 graph gets formulas of ops it has in float64.
    @property
    def double(self):
        return self.dtype == _proto().DOUBLE

    def elu(self, x, alpha, scale=1.0):
        if not self.double:
            if scale == 1.0:
                return self.node("Elu", x, alpha=float(alpha))
            return self.node("Selu", x, alpha=float(alpha), gamma=float(scale))
        # scale (relu(x) + alpha (exp(min(x, 0)) - 1)): no overflow for large x
        negative = self.node("Exp", self.node("Min", [x, self.const(0.0)]))
        negative = self.scaled(self.node("Sub", [negative, self.const(1.0)]), alpha)
        out = self.node("Add", [self.node("Relu", x), negative])
        return out if scale == 1.0 else self.scaled(out, scale)

    def softplus(self, x):
        if not self.double:
            return self.node("Softplus", x)
        # relu(x) + log(1 + exp(-|x|)): no overflow for large x
        tail = self.node("Exp", self.node("Neg", self.node("Abs", x)))
        return self.node("Add", [self.node("Relu", x),
                                 self.node("Log", self.node("Add", [tail, self.const(1.0)]))])

    def erf(self, x):
        if not self.double:
            return self.node("Erf", x)
        proto = _proto()  # no float64 Erf anywhere in onnxruntime: float32 inside
        low = self.node("Erf", self.node("Cast", x, to=proto.FLOAT))
        return self.node("Cast", low, to=proto.DOUBLE)


def _proto():
    from onnx import TensorProto

    return TensorProto


# ------------------------------------------------ one emission per activation
def _gelu(g, x, module):
    if g.opset >= 20 and not g.double:
        return g.node("Gelu", x, approximate=module.approximate)
    if module.approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = g.node("Mul", [x, g.node("Mul", [x, x])])
        inner = g.node("Add", [x, g.scaled(cube, 0.044715)])
        t = g.node("Tanh", g.scaled(inner, math.sqrt(2 / math.pi)))
    else:  # 0.5 x (1 + erf(x / sqrt(2)))
        t = g.erf(g.scaled(x, 1 / math.sqrt(2)))
    return g.node("Mul", [g.scaled(x, 0.5), g.node("Add", [t, g.const(1.0)])])


def _mish(g, x, module):
    if g.opset >= 18 and not g.double:
        return g.node("Mish", x)
    return g.node("Mul", [x, g.node("Tanh", g.softplus(x))])


def _prelu(g, x, module):
    slope = module.weight.detach().cpu().double().numpy()
    return g.node("PRelu", [x, g.const(slope.reshape(-1))])


#: Module type of a row of the activation table -> ``emit(graph, x, module)``
#: returning the output's name: the evaluation-mode function in ONNX ops.
ONNX_ACTIVATIONS = {
    nn.ReLU: lambda g, x, m: g.node("Relu", x),
    nn.LeakyReLU: lambda g, x, m: g.node("LeakyRelu", x, alpha=float(m.negative_slope)),
    # evaluation: the mean slope, as F.rrelu(training=False)
    nn.RReLU: lambda g, x, m: g.node("LeakyRelu", x, alpha=(m.lower + m.upper) / 2),
    nn.PReLU: _prelu,
    nn.ELU: lambda g, x, m: g.elu(x, m.alpha),
    nn.SELU: lambda g, x, m: g.elu(x, SELU_ALPHA, SELU_SCALE),
    nn.GELU: _gelu,
    nn.SiLU: lambda g, x, m: g.node("Mul", [x, g.node("Sigmoid", x)]),
    nn.Mish: _mish,
    nn.Tanh: lambda g, x, m: g.node("Tanh", x),
    nn.Sigmoid: lambda g, x, m: g.node("Sigmoid", x),
    nn.Identity: lambda g, x, m: x,
}


# ---------------------------------------------------- the plan's interpreter
def _affine(bn):
    """Evaluation-mode BatchNorm as ``x * scale + shift`` (float64)."""
    var = bn.running_var.detach().cpu().double().numpy()
    mean = bn.running_mean.detach().cpu().double().numpy()
    scale = bn.weight.detach().cpu().double().numpy() / np.sqrt(var + bn.eps)
    return scale, bn.bias.detach().cpu().double().numpy() - mean * scale


def _exportable_module(estimator):
    """The fitted network, refused when ONNX cannot say what ``predict`` computes."""
    mc = getattr(estimator, "mc_dropout", 0)
    if mc:
        raise ValueError(
            f"{type(estimator).__name__} with mc_dropout={mc} predicts the mean of {mc} "
            "stochastic passes with dropout active, which has no ONNX form: set "
            "mc_dropout=0 (set_params) before exporting the deterministic network."
        )
    module = estimator._served_module()
    reason = plan_blocker(module)
    if reason is None and (any(has_hooks(m) or "forward" in vars(m)
                               for m in module.modules())):
        reason = "the network has hooks or a forward of its own"
    forward_hooks = global_forward_hooks()
    if reason is None and forward_hooks:  # (predict runs them; an ONNX graph cannot)
        reason = f"global module hooks are registered ({', '.join(forward_hooks)})"
    if reason is not None:
        raise NotImplementedError(
            f"cannot export this {type(estimator).__name__} to ONNX: {reason} "
            "(only the layers its layer plan builds have an ONNX form)."
        )
    return module


def _network(g, x, module):
    """Emit the network on input ``x``; returns the name of its raw outputs."""
    pending_in = None   # (scale, shift) to apply to the input of the next linear
    linear = None       # (W, b) not emitted yet, so that a BatchNorm after it folds in

    def flush(x):
        nonlocal linear
        if linear is not None:
            w, b = linear
            x = g.node("Gemm", [x, g.const(w, "coefficient"), g.const(b, "intercepts")],
                       transB=1)
            linear = None
        return x

    def settle(x):  # everything pending emitted: for the ops nothing folds into
        nonlocal pending_in
        x = flush(x)
        if pending_in is not None:
            x = g.node("Add", [g.node("Mul", [x, g.const(pending_in[0])]),
                               g.const(pending_in[1])])
            pending_in = None
        return x

    for op, layer in module.planned_modules():
        if op.kind.startswith("member_"):  # an ensemble's (see _members below)
            x = _member_op(g, settle(x), op, layer)
        elif op.kind == "linear":
            x = flush(x)
            w = layer.weight.detach().cpu().double().numpy()
            b = (np.zeros(len(w)) if layer.bias is None
                 else layer.bias.detach().cpu().double().numpy())
            if pending_in is not None:  # W (s x + t) + b = (W s) x + (W t + b)
                scale, shift = pending_in
                w, b = w * scale[None, :], b + w @ shift
                pending_in = None
            linear = (w, b)
        elif op.kind == "batch_norm":
            scale, shift = _affine(layer)
            if linear is not None:  # right after the linear: s (W x + b) + t
                w, b = linear
                linear = (w * scale[:, None], b * scale + shift)
            elif pending_in is not None:
                s0, t0 = pending_in
                pending_in = (s0 * scale, t0 * scale + shift)
            else:
                pending_in = (scale, shift)
        elif op.kind == "activation":
            # (a BatchNorm pending here: after an ensemble's member scale)
            x = ONNX_ACTIVATIONS[type(layer)](g, settle(x), layer)
        elif op.kind.endswith("_embedding"):  # the first op: nothing pending
            x = _embedding(g, x, layer)
        # dropout, alpha_dropout: the identity in evaluation mode
    return flush(x)


def _embedding(g, x, layer):
    """A numeric embedding: the encodings of the embedded columns, one MatMul over
    the columns (``(F, n, n_in) @ (F, n_in, size)``), ReLU, then the other columns."""
    def tensor(t, dtype=None):
        return t.detach().cpu().numpy().astype(dtype or g.np_dtype)

    xn = g.node("Gather", [x, _int64_const(g, tensor(layer.numeric, np.int64))], axis=1)
    xn = g.node("Unsqueeze", [xn, _int64_const(g, [2])])  # (n, F, 1)
    if isinstance(layer, PeriodicEmbedding):
        angles = g.node("Mul", [xn, g.const(2 * np.pi * tensor(layer.frequencies))])
        encoded = g.node("Concat", [g.node("Cos", angles), g.node("Sin", angles)], axis=2)
    else:
        raw = g.node("Div", [g.node("Sub", [xn, g.const(tensor(layer.left))]),
                             g.const(tensor(layer.width))])
        encoded = g.node("Min", [g.node("Max", [raw, g.const(tensor(layer.lower))]),
                                 g.const(tensor(layer.upper))])
    per_column = g.node("MatMul", [g.node("Transpose", encoded, perm=[1, 0, 2]),
                                   g.const(tensor(layer.weight), "embedding_weight")])
    z = g.node("Add", [per_column, g.const(tensor(layer.bias)[:, None, :], "embedding_bias")])
    a = g.node("Transpose", g.node("Relu", z), perm=[1, 0, 2])  # (n, F, size)
    n_flat = len(layer.numeric) * layer.spec.size
    flat = g.node("Reshape", [a, _int64_const(g, [-1, n_flat])])
    if len(layer.other) == 0:
        return flat
    other = g.node("Gather", [x, _int64_const(g, tensor(layer.other, np.int64))], axis=1)
    return g.node("Concat", [flat, other], axis=1)


def _int64_const(g, values):
    from onnx import TensorProto
    from onnx.numpy_helper import from_array

    value = np.asarray(values, dtype=np.int64)
    out = g.scope.get_unique_variable_name("index")
    g.container.add_initializer(out, TensorProto.INT64, list(value.shape), from_array(value))
    return out
# ------------------------------------------------ an ensemble's ops (TabM)
def _member_op(g, x, op, layer):
    """Emit one member op (:mod:`._engine.ensemble`): rows ``i*k+m`` are row
    ``i``'s members; ``member_linear`` leaves ``(n, k, out)`` for ``member_mean``."""
    k = layer.n_members
    if op.kind == "member_split":  # [x_i, x_i, ...] per row, then one row per member
        tiled = g.node("Tile", [x, _shape(g, [1, k])])
        return g.node("Reshape", [tiled, _shape(g, [-1, op.n_in])])
    if op.kind == "member_scale":
        out = g.node("Mul", [g.node("Reshape", [x, _shape(g, [-1, k, op.n_in])]),
                             g.const(layer.weight.detach().cpu().double().numpy())])
        if layer.bias is not None:
            out = g.node("Add", [out, g.const(layer.bias.detach().cpu().double().numpy())])
        return g.node("Reshape", [out, _shape(g, [-1, op.n_in])])
    if op.kind == "member_linear":  # (k, n, in) @ (k, in, out) + (k, 1, out)
        xk = g.node("Transpose", g.node("Reshape", [x, _shape(g, [-1, k, op.n_in])]),
                    perm=[1, 0, 2])
        w = layer.weight.detach().cpu().double().numpy().transpose(0, 2, 1)
        b = layer.bias.detach().cpu().double().numpy()[:, None, :]
        out = g.node("Add", [g.node("MatMul", [xk, g.const(w, "coefficient")]),
                             g.const(b, "intercepts")])
        return g.node("Transpose", out, perm=[1, 0, 2])
    return _member_mean(g, x, k, layer.combine)


def _reduce(g, op_type, x):
    """``op_type`` (a Reduce*) over the members' axis 1, dropped (axes: an input from
    opset 18 on)."""
    if g.opset >= 18:
        return g.node(op_type, [x, _shape(g, [1])], keepdims=0)
    return g.node(op_type, x, axes=[1], keepdims=0)


def _member_mean(g, z, k, rule):
    """The members' combination (:data:`~._engine.ensemble.COMBINE_RULES`) of ``z``,
    ``(n, k, out)``: one raw output ``(n, out)``."""
    if rule == "identity":
        return _reduce(g, "ReduceMean", z)

    def log_mean_exp(t):
        return g.node("Sub", [_reduce(g, "ReduceLogSumExp", t), g.const(math.log(k))])

    if rule == "softmax":
        return log_mean_exp(g.node("LogSoftmax", z, axis=2))
    if rule == "exp":
        return log_mean_exp(z)
    # sigmoid: log p - log(1 - p), log_sigmoid(z) = -softplus(-z)
    return g.node("Sub", [log_mean_exp(g.node("Neg", g.softplus(g.node("Neg", z)))),
                          log_mean_exp(g.node("Neg", g.softplus(z)))])


def _start(scope, operator, container):
    """The graph (float64 for a double input, else float32) and the cast input."""
    from skl2onnx.common.data_types import guess_proto_type

    proto = _proto()
    dtype = guess_proto_type(operator.inputs[0].type)
    if dtype != proto.DOUBLE:
        dtype = proto.FLOAT
    g = _Graph(scope, container, dtype)
    x = g.node("Cast", operator.inputs[0].full_name, to=dtype)
    return g, x


# ------------------------------------------------------- skl2onnx callbacks
def _convert_classifier(scope, operator, container):
    est = operator.raw_operator
    module = _exportable_module(est)
    proto = _proto()
    g, x = _start(scope, operator, container)
    raw = _network(g, x, module)
    label_out, proba_out = operator.outputs[0].full_name, operator.outputs[1].full_name
    if _zipmap_after_double(scope, operator):
        # ZipMap takes float32 only: the float64 probabilities are cast at the end
        final, proba_out = proba_out, scope.get_unique_variable_name("probabilities64")
    else:
        final = None
    _classifier_outputs(g, scope, container, est, raw, label_out, proba_out)
    if final is not None:
        g.node("Cast", proba_out, final, to=proto.FLOAT)


def _zipmap_after_double(scope, operator):
    """Whether skl2onnx puts a ZipMap (float32 only) after float64 probabilities."""
    from skl2onnx.common.data_types import DoubleTensorType

    zipmap = scope.get_options(operator.raw_operator, dict(zipmap=True))["zipmap"]
    return isinstance(operator.inputs[0].type, DoubleTensorType) and zipmap is True


def _classifier_outputs(g, scope, container, est, raw, label_out, proba_out):
    """The label and probability outputs from the raw outputs ``raw``."""
    proto = _proto()
    if est._multilabel:
        g.node("Sigmoid", raw, proba_out)
        positive = g.node("Greater", [raw, g.const(0.0)])  # predict's raw > 0
        g.node("Cast", positive, label_out, to=proto.INT64)
        return
    if est.out_activation_ == "softmax":
        g.node("Softmax", raw, proba_out, axis=1)
        index = g.node("ArgMax", raw, axis=1, keepdims=0)
    else:  # binary: both columns from the logit, as predict_proba
        g.node("Concat", [g.node("Sigmoid", g.node("Neg", raw)), g.node("Sigmoid", raw)],
               proba_out, axis=1)
        positive = g.node("Greater", [raw, g.const(0.0)])
        index = g.node("Cast", g.node("Reshape", [positive, _shape(g, [-1])]),
                       to=proto.INT64)
    classes = est.classes_
    if scope.get_options(est, dict(nocl=False))["nocl"]:
        classes = np.arange(len(classes))
    if classes.dtype.kind in "iufb":
        values, ctype = classes.astype(np.int64), proto.INT64
    else:
        values, ctype = np.array([str(c).encode("utf-8") for c in classes]), proto.STRING
    classes_name = scope.get_unique_variable_name("classes")
    container.add_initializer(classes_name, ctype, [len(values)], values.tolist())
    picked = g.node("ArrayFeatureExtractor", [classes_name, index], domain="ai.onnx.ml")
    g.node("Reshape", [picked, _shape(g, [-1])], label_out)


def _shape(g, dims):
    name = g.scope.get_unique_variable_name("shape")
    g.container.add_initializer(name, _proto().INT64, [len(dims)], list(dims))
    return name


def _convert_regressor(scope, operator, container):
    est = operator.raw_operator
    module = _exportable_module(est)
    g, x = _start(scope, operator, container)
    raw = _network(g, x, module)
    activation = est.out_activation_
    out = operator.outputs[0].full_name
    if activation == "identity":
        g.node("Identity", raw, out)
    elif activation == "exp":
        g.node("Exp", raw, out)
    else:
        raise NotImplementedError(f"no ONNX form for out_activation_={activation!r}")


def _classifier_shape(operator):
    from skl2onnx.common.data_types import Int64TensorType, StringTensorType
    from skl2onnx.common.utils_classifier import get_label_classes

    est = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    classes = get_label_classes(operator.scope_inst, est)
    if est._multilabel:
        operator.outputs[0].set_type(Int64TensorType(shape=[n, len(classes)]))
    elif np.asarray(classes).dtype.kind in "iufb":
        operator.outputs[0].set_type(Int64TensorType(shape=[n]))
    else:
        operator.outputs[0].set_type(StringTensorType(shape=[n]))
    proba_type = _float_type(operator)
    if _zipmap_after_double(operator.scope_inst, operator):
        from skl2onnx.common.data_types import FloatTensorType

        proba_type = FloatTensorType  # (see _convert_classifier)
    operator.outputs[1].type = proba_type([n, len(classes)])


def _regressor_shape(operator):
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = _float_type(operator)([n, operator.raw_operator.n_outputs_])


def _float_type(operator):
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    is_double = isinstance(operator.inputs[0].type, DoubleTensorType)
    return DoubleTensorType if is_double else FloatTensorType


# ---------------------------------------------------------------- public API
def register():
    """Register both estimators' converters with skl2onnx (once per process).

    Imports skl2onnx (the ``onnx`` extra). Afterwards ``skl2onnx.to_onnx``
    and ``convert_sklearn`` convert a :class:`~sklearn_deepnet.DeepMLPClassifier`
    or :class:`~sklearn_deepnet.DeepMLPRegressor`, alone or inside a
    ``Pipeline``, ``ColumnTransformer`` or any other container skl2onnx knows.
    """
    global _registered
    if _registered:
        return
    from skl2onnx import update_registered_converter

    from ._classifier import DeepMLPClassifier
    from ._regressor import DeepMLPRegressor

    update_registered_converter(
        DeepMLPClassifier, _ALIASES["classifier"], _classifier_shape, _convert_classifier,
        options=_CLASSIFIER_OPTIONS)
    update_registered_converter(
        DeepMLPRegressor, _ALIASES["regressor"], _regressor_shape, _convert_regressor)
    _registered = True


def to_onnx(model, X=None, *, target_opset=DEFAULT_OPSET, **kwargs):
    """:func:`register`, then ``skl2onnx.to_onnx(model, X, target_opset=...)``.

    Parameters
    ----------
    model : estimator
        A fitted estimator of this package, or a pipeline containing one.
    X : array-like, optional
        A few rows of input: their dtype (float32 or float64) and width set the
        graph's input.
    target_opset : int or dict, default=DEFAULT_OPSET
    **kwargs
        Passed to ``skl2onnx.to_onnx`` (``options``, ``initial_types``, ...).

    Returns
    -------
    onnx.ModelProto
    """
    register()
    import skl2onnx

    return skl2onnx.to_onnx(model, X, target_opset=target_opset, **kwargs)
