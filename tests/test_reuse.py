"""_reuse: init_from held by reference, the transfer/pretraining parameter checks,
the start of a new network (reused layers, pretraining), their warnings, and the
semi-supervised -1 convention.

tests/test_transfer.py and tests/test_pretrain.py fit estimators end to end;
here each function runs on its own, mostly on unfitted estimators and
plain ``MLP`` networks (a source counts as fitted once it has ``net_``).
"""

import functools

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import EarlyStopping

import sklearn_deepnet._reuse as reuse
from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor
from sklearn_deepnet._engine.module import MLP
from sklearn_deepnet._reuse import (
    KeepsSource,
    _layers_to_reuse,
    adopted_embedding,
    check_reuse_params,
    reuse_warnings,
    source_estimator,
    start_network_,
    unlabeled_mask,
)
from sklearn_deepnet._validation import InvalidParameterError


def _fitted_stand_in(**params):
    """An estimator that counts as fitted (``check_is_fitted`` looks for ``net_``)."""
    est = DeepMLPClassifier(**params)
    est.net_ = object()
    return est


def _mlp(n_features, sizes, **options):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return MLP(n_features, sizes, 2, **options)


def _source(module, n_features=5):
    """A fitted source as start_network_ and reuse_warnings read it."""
    src = _fitted_stand_in()
    src.net_ = type("Net", (), {"module_": module})()
    src.n_features_in_ = n_features
    return src


def _message(exc_info):
    return str(exc_info.value)


# ------------------------------------------------------------ KeepsSource
def test_every_estimator_keeps_its_source():
    assert issubclass(DeepMLPClassifier, KeepsSource)
    assert issubclass(DeepMLPRegressor, KeepsSource)
    assert not issubclass(StandardScaler, KeepsSource)


class _NoCopy:
    """A source that must never be copied (scikit-learn's clone deep-copies such values)."""

    def __deepcopy__(self, memo):
        raise AssertionError("the source was copied")


def test_clone_keeps_init_from_by_reference_and_clones_the_rest():
    source = _NoCopy()
    stop = EarlyStopping(patience=3)
    est = DeepMLPClassifier((4,), init_from=source, callbacks=[stop], alpha=0.5)
    est.net_ = "fitted state"
    twin = clone(est)
    assert twin is not est and twin.init_from is source
    assert twin.alpha == 0.5 and twin.hidden_layer_sizes == (4,)
    assert twin.callbacks[0] is not stop and twin.callbacks[0].patience == 3
    assert "net_" not in vars(twin)  # a clone is unfitted
    assert est.init_from is source and est.net_ == "fitted state"  # the original unchanged
    # A fitted estimator as the source: kept as it is, not an unfitted copy.
    fitted = _fitted_stand_in()
    assert clone(DeepMLPRegressor(init_from=fitted)).init_from is fitted
    assert "net_" in vars(fitted)


def test_get_params_does_not_list_the_sources_parameters():
    class Tuned:
        def get_params(self, deep=True):
            return {"scale": 2.0}

    source = DeepMLPClassifier(alpha=0.25)
    est = DeepMLPClassifier(init_from=source, kernel_initializer=Tuned(),
                            activation=StandardScaler)  # a class: not a sub-estimator
    params = est.get_params(deep=True)
    assert params["init_from"] is source
    assert not [k for k in params if k.startswith(("init_from__", "activation__"))]
    assert params["kernel_initializer__scale"] == 2.0  # other sub-estimators still are
    shallow = est.get_params(deep=False)
    assert "kernel_initializer__scale" not in shallow
    assert set(params) - set(shallow) == {"kernel_initializer__scale"}
    est.set_params(init_from=None)
    assert source.alpha == 0.25


def test_repr_of_a_cycle_is_finite():
    # scikit-learn's printer stops a cycle of estimators itself; a value whose own
    # repr prints the estimator (here a partial) goes through __repr__ again.
    a = DeepMLPClassifier((3,))
    a.init_from = functools.partial(print, a)
    assert repr(a) == (
        "DeepMLPClassifier(hidden_layer_sizes=(3,), init_from=functools.partial(<built-in "
        "function print>, DeepMLPClassifier(...)))")
    assert reuse._IN_REPR == set()  # nothing left behind
    b = DeepMLPRegressor((5,), init_from=a)
    a.init_from = functools.partial(print, b)
    assert repr(b).count("DeepMLPRegressor(...)") == 1 and reuse._IN_REPR == set()
    a.init_from = a
    assert repr(a).startswith("DeepMLPClassifier(hidden_layer_sizes=(3,), init_from=")
    a.init_from = None
    assert repr(a) == "DeepMLPClassifier(hidden_layer_sizes=(3,))"


# -------------------------------------------------------- source_estimator
def test_source_estimator_unwraps_a_frozen_estimator():
    est = DeepMLPClassifier()
    assert source_estimator(est) is est
    assert source_estimator(FrozenEstimator(est)) is est
    assert source_estimator(None) is None


# -------------------------------------------------------- check_reuse_params
def test_a_source_that_is_not_one_of_the_packages_estimators():
    for bad in ("model", StandardScaler(), FrozenEstimator(StandardScaler())):
        est = DeepMLPClassifier(init_from=bad)
        with pytest.raises(InvalidParameterError) as info:
            check_reuse_params(est, 2)
        assert _message(info) == (
            "The 'init_from' parameter of DeepMLPClassifier must be a fitted "
            "DeepMLPClassifier or DeepMLPRegressor, or one wrapped in "
            "sklearn.frozen.FrozenEstimator (for a pipeline, its last step, e.g. pipe[-1]), "
            f"or None. Got {bad!r} instead."
        )
        with pytest.raises(InvalidParameterError):  # also for a continuing call
            check_reuse_params(est, 2, continuing=True)


@pytest.mark.parametrize("wrap", [False, True], ids=["plain", "frozen"])
def test_an_unfitted_source_is_refused_before_building(wrap):
    source = DeepMLPRegressor()
    est = DeepMLPClassifier(init_from=FrozenEstimator(source) if wrap else source)
    with pytest.raises(NotFittedError) as info:
        check_reuse_params(est, 2)
    assert _message(info) == (
        "init_from is an unfitted DeepMLPRegressor: fit it first (its hidden layers are what "
        "this estimator starts from). In a search over init_from values, GridSearchCV clones "
        "each value, which unfits it: wrap the fitted model in "
        "sklearn.frozen.FrozenEstimator."
    )
    assert info.value.__suppress_context__  # raised "from None": no chained traceback
    check_reuse_params(est, 2, continuing=True)  # the network exists: not checked again


@pytest.mark.parametrize("params, n_hidden, message", [
    (dict(reuse_layers=1), 2,
     "Invalid value 1 for the 'reuse_layers' parameter of DeepMLPClassifier: reuse_layers "
     "counts layers copied from init_from, which is None; pass the fitted model as "
     "init_from (or leave reuse_layers=None)."),
    (dict(init_from="fitted", reuse_layers=3), 2,
     "Invalid value 3 for the 'reuse_layers' parameter of DeepMLPClassifier: this network "
     "has only 2 hidden layer(s) to copy into."),
    (dict(pretrain="autoencoder", solver="lbfgs"), 2,
     "Invalid value 'autoencoder' for the 'pretrain' parameter of DeepMLPClassifier: "
     "pretraining trains an autoencoder for pretrain_epochs epochs with a mini-batch "
     "solver; solver='lbfgs' is full-batch."),
    (dict(pretrain="autoencoder"), 0,
     "Invalid value 'autoencoder' for the 'pretrain' parameter of DeepMLPClassifier: a "
     "network without hidden layers has nothing to pretrain."),
    (dict(freeze_layers=1), 2,
     "Invalid value 1 for the 'freeze_layers' parameter of DeepMLPClassifier: only reused "
     "(init_from) or pretrained (pretrain) layers can be frozen when a network is built; "
     "freezing freshly initialized layers would keep them random."),
    (dict(init_from="fitted", reuse_layers=1, freeze_layers=2), 3,
     "Invalid value 2 for the 'freeze_layers' parameter of DeepMLPClassifier: this network "
     "has only 1 layer(s) reused (reuse_layers) to freeze."),
    (dict(init_from="fitted", reuse_layers=0, freeze_layers=1), 3,
     "Invalid value 1 for the 'freeze_layers' parameter of DeepMLPClassifier: this network "
     "has only 0 layer(s) reused (reuse_layers) to freeze."),
    (dict(init_from="fitted", freeze_layers=3), 2,
     "Invalid value 3 for the 'freeze_layers' parameter of DeepMLPClassifier: this network "
     "has only 2 hidden layer(s) to freeze."),
    (dict(pretrain="autoencoder", freeze_layers=3), 2,
     "Invalid value 3 for the 'freeze_layers' parameter of DeepMLPClassifier: this network "
     "has only 2 hidden layer(s) to freeze."),
    (dict(init_from="fitted", freeze_layers=1, unfreeze_after=2, solver="lbfgs"), 2,
     "Invalid value 2 for the 'unfreeze_after' parameter of DeepMLPClassifier: "
     "solver='lbfgs' runs one full-batch optimization per fit, not epochs; use "
     "unfreeze_after=None (frozen for the whole fit) or a mini-batch solver."),
], ids=["reuse-without-source", "reuse-too-many", "pretrain-lbfgs", "pretrain-no-hidden",
        "freeze-fresh-layers", "freeze-more-than-reused", "freeze-none-reused",
        "freeze-more-than-hidden", "freeze-more-than-pretrained", "unfreeze-lbfgs"])
def test_bad_combinations_name_the_parameter_and_the_remedy(params, n_hidden, message):
    if params.get("init_from") == "fitted":
        params = {**params, "init_from": _fitted_stand_in()}
    with pytest.raises(InvalidParameterError) as info:
        check_reuse_params(DeepMLPClassifier(**params), n_hidden)
    assert _message(info) == message


@pytest.mark.parametrize("params, n_hidden", [
    (dict(), 0),
    (dict(init_from="fitted"), 2),
    (dict(init_from="fitted", reuse_layers=2, freeze_layers=2, unfreeze_after=1), 2),
    (dict(init_from="fitted", reuse_layers=1, freeze_layers=1, solver="lbfgs"), 2),
    (dict(pretrain="autoencoder", freeze_layers=2, unfreeze_after=3), 2),
    # pretraining trains every layer: more frozen than reused is fine
    (dict(init_from="fitted", reuse_layers=1, pretrain="autoencoder", freeze_layers=2), 2),
], ids=["plain", "source", "freeze-reused", "lbfgs-frozen", "freeze-pretrained",
        "freeze-pretrained-beyond-reused"])
def test_good_combinations_pass(params, n_hidden):
    if params.get("init_from") == "fitted":
        params = {**params, "init_from": FrozenEstimator(_fitted_stand_in())}
    assert check_reuse_params(DeepMLPClassifier(**params), n_hidden) is None


def test_a_continuing_call_may_freeze_any_layer_of_the_network():
    est = DeepMLPClassifier(freeze_layers=2, reuse_layers=5)  # no source any more
    check_reuse_params(est, 2, continuing=True)
    est.set_params(freeze_layers=3)
    with pytest.raises(InvalidParameterError, match=r"has only 2 hidden layer\(s\) to freeze"):
        check_reuse_params(est, 2, continuing=True)
    est.set_params(freeze_layers=1, unfreeze_after=1, solver="lbfgs")
    with pytest.raises(InvalidParameterError, match="'unfreeze_after' parameter"):
        check_reuse_params(est, 2, continuing=True)


@pytest.mark.parametrize("continuing", [False, True])
def test_a_cycle_of_sources_is_refused(continuing):
    est = _fitted_stand_in()
    est.init_from = est
    with pytest.raises(InvalidParameterError) as info:
        check_reuse_params(est, 1, continuing)
    assert _message(info) == (
        "Invalid value 'DeepMLPClassifier(...)' for the 'init_from' parameter of "
        "DeepMLPClassifier: it leads back to this estimator (directly or through its own "
        "init_from); reuse a separate model, e.g. copy.deepcopy(model), or use "
        "warm_start=True to keep training this one."
    )
    a, b = _fitted_stand_in(), _fitted_stand_in()
    a.init_from, b.init_from = FrozenEstimator(b), a  # through a FrozenEstimator
    with pytest.raises(InvalidParameterError, match="'FrozenEstimator.*' for the 'init_from'"):
        check_reuse_params(a, 1, continuing)
    c = _fitted_stand_in()
    c.init_from = b  # leads into a cycle that does not contain c: refused too
    with pytest.raises(InvalidParameterError, match="leads back"):
        check_reuse_params(c, 1, continuing)
    chain = _fitted_stand_in(init_from=_fitted_stand_in(init_from=_fitted_stand_in()))
    check_reuse_params(chain, 1, continuing)  # a chain without a cycle is fine


# --------------------------------------------------------- _layers_to_reuse

def test_layers_to_reuse_counts_the_fitting_prefix():
    source, target = _mlp(5, (4, 3)), _mlp(5, (4, 6))
    assert _layers_to_reuse(DeepMLPClassifier(), source, target) == 1  # all that fit
    assert _layers_to_reuse(DeepMLPClassifier(reuse_layers=1), source, target) == 1
    assert _layers_to_reuse(DeepMLPClassifier(reuse_layers=0), source, target) == 0
    same = _mlp(5, (4, 3))
    assert _layers_to_reuse(DeepMLPClassifier(), source, same) == 2
    # With pretraining, more frozen layers than reused ones are pretrained: fine.
    est = DeepMLPClassifier(freeze_layers=2, pretrain="autoencoder")
    assert _layers_to_reuse(est, source, target) == 1


def test_layers_to_reuse_errors():
    source = _mlp(5, (4, 3))
    with pytest.raises(ValueError) as info:
        _layers_to_reuse(DeepMLPClassifier(), source, _mlp(5, (8, 3)))
    assert _message(info) == (
        "None of init_from's hidden layers fits this network: hidden layer 1 maps 5 -> 4 "
        "units in init_from but 5 -> 8 here. Match the first hidden layers' widths and "
        "layer options (or set init_from=None)."
    )
    with pytest.raises(InvalidParameterError) as info:
        _layers_to_reuse(DeepMLPClassifier(freeze_layers=2), source, _mlp(5, (4, 6)))
    assert _message(info) == (
        "Invalid value 2 for the 'freeze_layers' parameter of DeepMLPClassifier: only 1 "
        "layer(s) of init_from fit this network (hidden layer 2 maps 4 -> 3 units in "
        "init_from but 4 -> 6 here), so only they are reused and can be frozen."
    )
    with pytest.raises(InvalidParameterError) as info:
        _layers_to_reuse(DeepMLPClassifier(reuse_layers=3), source, _mlp(5, (4, 3, 2)))
    assert _message(info) == (
        "Invalid value 3 for the 'reuse_layers' parameter of DeepMLPClassifier: init_from "
        "has only 2 hidden layer(s)."
    )
    with pytest.raises(ValueError) as info:
        _layers_to_reuse(DeepMLPClassifier(reuse_layers=2), source, _mlp(5, (4, 6)))
    assert _message(info) == (
        "reuse_layers=2 asks for layers that do not fit this network: hidden layer 2 maps "
        "4 -> 3 units in init_from but 4 -> 6 here."
    )


# ------------------------------------------------------------ start_network_
def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _never_pretrains(*args, **kwargs):  # pragma: no cover - must not be called
    raise AssertionError("trainer called")


def test_start_without_source_or_pretraining_leaves_the_network_alone():
    module = _mlp(5, (4,))
    before = _state(module)
    assert start_network_(DeepMLPClassifier(), module, n_features=5, pretraining=None,
                          trainer=_never_pretrains, seed=0) == (0, None)
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k])


def test_start_copies_the_fitting_layers_of_the_source():
    src_module = _mlp(5, (4, 3), batch_norm="after")
    with torch.no_grad():  # distinct values everywhere, running statistics included
        for i, t in enumerate(src_module.state_dict().values()):
            if t.is_floating_point():
                t.copy_(torch.arange(t.numel(), dtype=t.dtype).reshape(t.shape) + i)
    module = _mlp(5, (4, 6), batch_norm="after")
    before = _state(module)
    est = DeepMLPClassifier(init_from=FrozenEstimator(_source(src_module)))
    reused, curve = start_network_(est, module, n_features=5, pretraining=None,
                                   trainer=_never_pretrains, seed=0)
    assert (reused, curve) == (1, None)
    target, source = module.state_dict(), src_module.state_dict()
    for k, v in target.items():
        if k.startswith(("hidden.0.", "input_norm.")):
            assert torch.equal(v, source[k]) and v.data_ptr() != source[k].data_ptr(), k
        else:
            assert torch.equal(v, before[k]), k  # layer 2 and the output are new


def test_start_refuses_a_source_of_another_width_unless_nothing_is_reused():
    src = _source(_mlp(5, (4,)), n_features=5)
    with pytest.raises(ValueError) as info:
        start_network_(DeepMLPClassifier(init_from=src), _mlp(7, (4,)), n_features=7,
                       pretraining=None, trainer=_never_pretrains, seed=0)
    assert _message(info) == (
        "init_from was fitted on 5 features but X has 7: its first hidden layer cannot be "
        "reused (transform X to the same features, or set reuse_layers=0 to copy nothing)."
    )
    module = _mlp(7, (4,))
    before = _state(module)
    assert start_network_(DeepMLPClassifier(init_from=src, reuse_layers=0), module,
                          n_features=7, pretraining=None, trainer=_never_pretrains,
                          seed=0) == (0, None)
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())


@pytest.fixture
def fake_pretraining(monkeypatch):
    calls = []

    def install(history, stop):
        def pretrain(module, architecture, kernel_initializer, data, *, trainer, epochs,
                     seed):
            calls.append(dict(module=module, architecture=architecture,
                              kernel_initializer=kernel_initializer, data=data,
                              trainer=trainer, epochs=epochs, seed=seed))
            return history, stop
        monkeypatch.setattr(reuse, "pretrain_autoencoder_", pretrain)
        return calls

    return install


def test_start_pretrains_with_the_estimators_settings(fake_pretraining):
    calls = fake_pretraining([{"train_loss": 0.5}, {"train_loss": np.float32(0.25)}], None)
    data = object()
    asked = []
    module = _mlp(5, (4, 3))

    def pretraining():
        asked.append(True)
        return data

    est = DeepMLPClassifier((4, 3), pretrain="autoencoder", pretrain_epochs=2,
                            kernel_initializer="glorot_uniform")
    reused, curve = start_network_(est, module, n_features=5, pretraining=pretraining,
                                   trainer=_never_pretrains, seed=1234)
    assert reused == 0 and curve == [0.5, 0.25]
    assert all(type(v) is float for v in curve)
    assert asked == [True]
    (call,) = calls
    assert call["module"] is module and call["data"] is data
    assert call["trainer"] is _never_pretrains
    assert call["architecture"] == est._architecture()
    assert (call["kernel_initializer"], call["epochs"], call["seed"]) == (
        "glorot_uniform", 2, 1234)


def test_a_diverged_pretraining_returns_its_finite_epochs(fake_pretraining):
    fake_pretraining([{"train_loss": 0.75}], "diverged")
    assert start_network_(DeepMLPClassifier(pretrain="autoencoder"), _mlp(5, (4,)),
                          n_features=5, pretraining=lambda: None, trainer=_never_pretrains,
                          seed=0) == (0, [0.75])


def test_an_interrupted_pretraining_stops_the_fit(fake_pretraining):
    fake_pretraining([{"train_loss": 0.75}], "interrupted")
    with pytest.raises(KeyboardInterrupt):
        start_network_(DeepMLPClassifier(pretrain="autoencoder"), _mlp(5, (4,)),
                       n_features=5, pretraining=lambda: None, trainer=_never_pretrains,
                       seed=0)


# ----------------------------------------------------------- reuse_warnings
def _with_network(est, module):
    est.net_ = type("Net", (), {"module_": module})()
    return est


def test_reused_layers_with_another_activation_are_reported():
    src = _source(_mlp(5, (4, 3)))
    est = _with_network(DeepMLPClassifier(init_from=src, activation="tanh"),
                        _mlp(5, (4, 3), activation="tanh"))
    est.reused_layers_ = 2
    assert reuse_warnings(est) == [
        "Reused hidden layer(s) [1, 2] were trained with another activation in init_from "
        "(ReLU() there, Tanh() here); their weights are copied as they are."
    ]
    est.reused_layers_ = 1  # only the reused layers count
    assert reuse_warnings(est)[0].startswith("Reused hidden layer(s) [1] were trained")
    # The activations' settings count too (their repr).
    leaky = _source(_mlp(5, (4,), activation="leaky_relu", activation_alpha=0.1))
    est = _with_network(DeepMLPClassifier(init_from=FrozenEstimator(leaky)),
                        _mlp(5, (4,), activation="leaky_relu", activation_alpha=0.2))
    est.reused_layers_ = 1
    assert reuse_warnings(est) == [
        "Reused hidden layer(s) [1] were trained with another activation in init_from "
        "(LeakyReLU(negative_slope=0.1) there, LeakyReLU(negative_slope=0.2) here); their "
        "weights are copied as they are."
    ]


def test_no_reuse_warning_without_a_difference_or_a_reused_layer():
    src = _source(_mlp(5, (4, 3)))
    est = _with_network(DeepMLPClassifier(init_from=src), _mlp(5, (4, 3)))
    est.reused_layers_ = 2
    assert reuse_warnings(est) == []  # the same activation
    tanh = _with_network(DeepMLPClassifier(init_from=src), _mlp(5, (4, 3), activation="tanh"))
    tanh.reused_layers_ = 0
    assert reuse_warnings(tanh) == []  # nothing reused
    tanh.reused_layers_ = 2
    tanh.init_from = None  # the source was dropped since (a continuing call)
    assert reuse_warnings(tanh) == []
    tanh.init_from = DeepMLPClassifier()  # without a network to compare with
    assert reuse_warnings(tanh) == []


# -------------------------------------------------------- adopted_embedding
def _embedding_source(spec="the spec", n_features=6, **params):
    src = _fitted_stand_in(numeric_embedding="periodic", **params)
    src.n_features_in_ = n_features
    src._embedding = spec
    src._fitted_embedding_params = src._embedding_params()
    return src


def test_the_sources_embedding_is_adopted_when_asked_for_identically():
    spec = object()
    src = _embedding_source(spec, numeric_features=np.array([0, 2]), n_bins=8)
    est = DeepMLPClassifier(init_from=src, numeric_embedding="periodic",
                            numeric_features=[0, 2], n_bins=8)
    assert adopted_embedding(est, 6) is spec  # (an array and a list of the same columns)
    assert adopted_embedding(DeepMLPClassifier(init_from=FrozenEstimator(src), **{
        k: v for k, v in est.get_params().items() if k != "init_from"}), 6) is spec


@pytest.mark.parametrize("change", [
    dict(init_from=None), dict(reuse_layers=0), dict(numeric_embedding=None),
    dict(numeric_features="auto"), dict(n_bins=9), dict(embedding_size=4),
    dict(n_features=5), dict(spec=None), dict(no_fitted=True),
], ids=lambda c: next(iter(c)))
def test_the_sources_embedding_is_not_adopted(change):
    change = dict(change)
    src = _embedding_source(None if "spec" in change else object(),
                            numeric_features=[0, 2], n_bins=8)
    if change.pop("no_fitted", False):
        del src._fitted_embedding_params
    n_features = change.pop("n_features", 6)
    change.pop("spec", None)
    params = dict(init_from=src, numeric_embedding="periodic", numeric_features=[0, 2],
                  n_bins=8)
    assert adopted_embedding(DeepMLPClassifier(**{**params, **change}), n_features) is None


# ------------------------------------------------------------ unlabeled_mask
@pytest.mark.parametrize("y, expected", [
    (np.array([-1, 0, 2, -1]), [True, False, False, True]),
    (np.array([-1.0, 0.5, -1.5]), [True, False, False]),
    (np.array([0, 1, 255], dtype=np.uint8), [False, False, False]),
    (np.array([-1, "a", True, -1.0, np.int8(-1), np.float32(-1), "-1", None, False],
              dtype=object),
     [True, False, False, True, True, True, False, False, False]),
    (np.array(["-1", "a"]), [False, False]),  # a string dtype cannot hold -1
    (np.array([True, False]), [False, False]),
], ids=["int", "float", "uint", "object", "str", "bool"])
def test_unlabeled_rows_are_the_ones_labeled_minus_one(y, expected):
    mask = unlabeled_mask(y)
    assert mask.dtype == bool and mask.tolist() == expected


@pytest.mark.parametrize("classes", [[-1, 0, 1], np.array([0.0, -1.0]),
                                     np.array(["a", -1], dtype=object), [[0, 1], [2, -1]]],
                         ids=["int", "float", "object", "2d"])
def test_classes_must_not_contain_minus_one(classes):
    with pytest.raises(ValueError) as info:
        unlabeled_mask(np.array([0, 1, -1]), classes)
    assert _message(info) == (
        "classes contains -1, which marks unlabeled rows when pretrain is set; list only "
        "the real classes."
    )


def test_classes_without_minus_one_pass():
    y = np.array([0, 1, -1])
    for classes in ([0, 1], np.array(["-1", "a"]), [True, False], None):
        assert unlabeled_mask(y, classes).tolist() == [False, False, True]


def test_a_mixed_list_of_classes_with_minus_one_is_refused():
    with pytest.raises(ValueError, match="classes contains -1"):
        unlabeled_mask(np.array(["ant", -1], dtype=object), ["ant", -1])
