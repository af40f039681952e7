"""scikit-learn's own estimator checks on both estimators.

Run on the default configuration (exactly ``DeepMLPClassifier()`` and
``DeepMLPRegressor()``) and on realistic ones: small quick nets; the chapter's
toolbox (ELU, BatchNorm, dropout, max-norm, Nadam); SELU with alpha dropout;
BatchNorm after the activation with dropout 0.3 and momentum; max-norm with
RMSProp; L-BFGS; an elastic-net penalty for wide sparse inputs; and an
efficient ensemble of 4 members (TabM).
"""

import pytest
from sklearn.base import clone
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor

# Small, quick networks: the checks fit dozens of times on ~100-300 samples.
_QUICK = dict(hidden_layer_sizes=(32, 32), max_iter=100, learning_rate_init=1e-2)
_TOOLBOX = dict(
    hidden_layer_sizes=(32, 32),
    max_iter=100,
    activation="elu",
    batch_norm="before",
    dropout=0.1,
    max_norm=3.0,
    solver="nadam",
    learning_rate_init=1e-2,
)

_REALISTIC = [
    _QUICK,
    _TOOLBOX,
    dict(hidden_layer_sizes=(32, 32), activation="selu", dropout=0.1, max_iter=100,
         learning_rate_init=1e-2),
    dict(hidden_layer_sizes=(32, 32), batch_norm="after", dropout=0.3, solver="momentum",
         learning_rate_init=1e-2, max_iter=100),
    dict(hidden_layer_sizes=(32, 32), max_norm=2.0, solver="rmsprop", learning_rate_init=1e-3,
         max_iter=100),
    # alpha: with the default 1e-4, the float64 L-BFGS run on the checks' separable
    # data drives a logit to ~8700 (float32 X), where predict_log_proba (exact) and
    # log(predict_proba) (floored at ~-708) differ by more than check_classifiers_train
    # allows. 1e-3 passes every check, sample-weight equivalence included (1e-2 fails
    # it by up to 4e-4 on the regressor: L-BFGS paths are chaotic).
    dict(hidden_layer_sizes=(32,), solver="lbfgs", max_iter=100, alpha=1e-3),
    dict(hidden_layer_sizes=(32,), alpha=1e-3, l1_ratio=0.5, solver="adamw",
         learning_rate_init=1e-2, max_iter=100),
    # numeric embeddings (issue 26): the checks' data has columns of every kind
    dict(hidden_layer_sizes=(32,), numeric_embedding="piecewise_linear", n_bins=8,
         embedding_size=4, learning_rate_init=1e-2, max_iter=100),
    dict(hidden_layer_sizes=(32,), numeric_embedding="periodic", frequency_scale=0.3,
         embedding_size=4, n_frequencies=8, learning_rate_init=1e-2, max_iter=100),
    # an efficient ensemble (TabM, BatchEnsemble sharing) with BatchNorm and dropout
    dict(hidden_layer_sizes=(32, 32), n_members=4, ensemble_sharing="batch",
         batch_norm="after", dropout=0.1, learning_rate_init=1e-2, max_iter=100),
]

ESTIMATORS = [
    DeepMLPClassifier(),
    DeepMLPRegressor(),
    *(cls(**params) for params in _REALISTIC for cls in (DeepMLPClassifier, DeepMLPRegressor)),
]

_SAMPLE_WEIGHT_REASON = (
    "Mini-batch training is stochastic: a sample with weight 2 and a duplicated "
    "sample fall into different batches, so the fits differ (scikit-learn marks "
    "MLPClassifier/MLPRegressor the same way)."
)


def _expected_failures(estimator):
    if estimator.solver == "lbfgs":  # full batch in float64: a weight is a duplicate
        return {}
    return {"check_sample_weight_equivalence_on_dense_data": _SAMPLE_WEIGHT_REASON,
            "check_sample_weight_equivalence_on_sparse_data": _SAMPLE_WEIGHT_REASON}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_expected_failures_still_fail(estimator):
    # A waiver whose check passes again would hide a regression: each must fail.
    for name in _expected_failures(estimator):
        check = getattr(estimator_checks, name)
        with pytest.raises(AssertionError):
            check(type(estimator).__name__, clone(estimator))
