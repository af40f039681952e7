"""DeepMLPClassifier: label encoding, log-loss from logits, probabilities."""

from __future__ import annotations

from numbers import Real

import numpy as np
from scipy.special import expit, log_expit, log_softmax
from sklearn.base import ClassifierMixin
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import (
    check_classification_targets,
    type_of_target,
    unique_labels,
)
from sklearn.utils.validation import column_or_1d

from ._base import BaseDeepMLP, consistent
from ._docs import SHARED_ATTRIBUTES, SHARED_PARAMETERS, fit_validation_set
from ._engine.losses import PerSampleLoss, classification_loss
from ._proba import softmax
from ._reuse import unlabeled_mask
from ._validation import (
    Interval,
    StrOptions,
    check_no_missing_targets,
    fit_context,
    is_number,
)

# The smallest normal float64: probabilities are never reported below it.
_TINY = np.finfo(np.float64).tiny


class DeepMLPClassifier(ClassifierMixin, BaseDeepMLP):
    __doc__ = f"""Deep multi-layer perceptron classifier over PyTorch.

    A drop-in for :class:`sklearn.neural_network.MLPClassifier` with the
    deep-network toolbox of *Hands-On Machine Learning*, chapter 11: modern
    activations and matching initialization, BatchNorm, (alpha) dropout,
    max-norm, L1/L2 and decoupled weight decay, gradient clipping, nine
    optimizers and early stopping with best-weight restoring; trains on CPU or
    CUDA. Binary and multiclass targets use one softmax/sigmoid head with the
    log-loss computed from logits; multilabel indicator targets get one
    sigmoid output per label.

    Parameters
    ----------
{SHARED_PARAMETERS}
    class_weight : dict, "balanced" or None, default=None
        Weights per class, multiplied into the sample weights: a dict
        ``{{label: weight}}`` or "balanced" (``n_samples / (n_classes *
        bincount(y))``). Not available for multilabel targets, and
        "balanced" not with :meth:`partial_fit`.
    label_smoothing : float in [0, 1), default=0.0
        Label smoothing: train against targets moved ``label_smoothing``
        towards the uniform distribution (multiclass: ``(1 - e) * one_hot +
        e / n_classes``, torch's ``cross_entropy(label_smoothing=e)``; binary
        and multilabel: 0/1 targets become ``e / 2`` and ``1 - e / 2``, Keras's
        convention). It keeps the network from pushing its logits without
        bound on separable data; ``loss_curve_`` and the validation loss are
        the smoothed loss (changing it between warm-started fits changes
        the loss the no-improvement count compares with, as changing
        ``alpha`` does). With ``class_weight``, each row's smoothed loss is
        weighted by its class's weight. 0.1 is the usual value (RealMLP-TD's
        for classification).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels; for multilabel targets the label indices ``0..L-1``.

    out_activation_ : str
        "softmax" for multiclass, "logistic" for binary and multilabel.

{SHARED_ATTRIBUTES}
    See Also
    --------
    DeepMLPRegressor : The regression counterpart.
    sklearn.neural_network.MLPClassifier : scikit-learn's CPU-only MLP.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_deepnet import DeepMLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = make_pipeline(
    ...     StandardScaler(),
    ...     DeepMLPClassifier((64, 64), activation="elu", batch_norm="before",
    ...                       max_iter=20, random_state=0),
    ... ).fit(X, y)
    >>> clf.predict(X[:3])
    array([0, 1, 2])
    """

    _parameter_constraints = {
        **BaseDeepMLP._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(
        self, hidden_layer_sizes=(100, 100, 100), *, activation="relu",
        activation_alpha=None, kernel_initializer="auto", batch_norm=None,
        batch_norm_input=False, batch_norm_momentum=0.1, batch_norm_epsilon=1e-5,
        dropout=0.0, numeric_embedding=None, numeric_features="auto", embedding_size=16,
        n_frequencies=48, frequency_scale=0.01, n_bins=48, max_norm=None, alpha=1e-4,
        l1_ratio=0.0, weight_decay=None,
        clip_norm=None, clip_value=None, solver="adam", learning_rate="constant",
        learning_rate_init=1e-3, power_t=0.5, decay_steps=10_000, lr_milestones=None,
        lr_values=None, lr_factor=0.5, lr_patience=5, momentum=0.9, nesterovs_momentum=True,
        beta_1=0.9, beta_2=0.999, epsilon=1e-8, rho=0.9, batch_size="auto", max_iter=200,
        shuffle=True, tol=1e-4, n_iter_no_change=10, early_stopping=False,
        validation_fraction=0.1, warm_start=False, random_state=None, verbose=False,
        device="auto", n_threads=None, max_fun=15000, callbacks=None, mc_dropout=0,
        init_from=None, reuse_layers=None, freeze_layers=0, unfreeze_after=None,
        pretrain=None, pretrain_epochs=10, diagnostics=False, n_members=1,
        ensemble_sharing="mini",
        class_weight=None, label_smoothing=0.0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.activation_alpha = activation_alpha
        self.kernel_initializer = kernel_initializer
        self.batch_norm = batch_norm
        self.batch_norm_input = batch_norm_input
        self.batch_norm_momentum = batch_norm_momentum
        self.batch_norm_epsilon = batch_norm_epsilon
        self.dropout = dropout
        self.numeric_embedding = numeric_embedding
        self.numeric_features = numeric_features
        self.embedding_size = embedding_size
        self.n_frequencies = n_frequencies
        self.frequency_scale = frequency_scale
        self.n_bins = n_bins
        self.max_norm = max_norm
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.solver = solver
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.decay_steps = decay_steps
        self.lr_milestones = lr_milestones
        self.lr_values = lr_values
        self.lr_factor = lr_factor
        self.lr_patience = lr_patience
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.rho = rho
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.n_threads = n_threads
        self.max_fun = max_fun
        self.callbacks = callbacks
        self.mc_dropout = mc_dropout
        self.init_from = init_from
        self.reuse_layers = reuse_layers
        self.freeze_layers = freeze_layers
        self.unfreeze_after = unfreeze_after
        self.pretrain = pretrain
        self.pretrain_epochs = pretrain_epochs
        self.diagnostics = diagnostics
        self.n_members = n_members
        self.ensemble_sharing = ensemble_sharing
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None, sample_weight_val=None):
        """Fit the network to ``X`` and ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; any numeric dtype, a DataFrame, nested lists, or a
            scipy.sparse matrix (densified one batch at a time).
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels of any type, or a binary indicator matrix for
            multilabel classification.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; the loss is their weighted mean.
        <validation set>

        Returns
        -------
        self : DeepMLPClassifier
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight,
                         validation_set=(X_val, y_val, sample_weight_val))

    fit.__doc__ = fit.__doc__.replace("        <validation set>\n", fit_validation_set(
        y_val="Targets of ``X_val``, encoded as ``y`` is: a label not in\n"
              "            ``classes_`` (the labels of ``y``) is an error.",
        y_cols="n_labels",
        class_weight=" Multiplied by ``class_weight``, as\n"
                     "            the training weights are.",
    ) + "\n")

    @available_if(BaseDeepMLP._check_solver)
    @fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Run one epoch over ``X`` and ``y``, continuing from the current state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Targets.
        classes : array-like of shape (n_classes,), default=None
            All classes that can appear; required on the first call (not for
            multilabel targets), optional afterwards and then it must equal
            ``classes_``.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights.

        Returns
        -------
        self : DeepMLPClassifier
            The updated estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    # ---------------------------------------------------------------- hooks
    def _prepare_y(self, y, *, continuing, incremental, classes):
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        # Semi-supervised (with pretrain): rows labeled -1 are only pretrained on.
        unlabeled = self._unlabeled_rows(y, classes)
        labels = y if unlabeled is None else y[~unlabeled]
        check_classification_targets(labels)
        multilabel = type_of_target(labels) == "multilabel-indicator"
        if continuing and multilabel != self._multilabel:
            raise ValueError(
                "y is " + ("a multilabel indicator matrix" if multilabel else "1-D labels")
                + " but the network was fitted on "
                + ("multilabel" if self._multilabel else "1-D") + " targets."
            )
        if multilabel:
            return self._prepare_multilabel(y, continuing, classes)
        y_model, weight, n_outputs = self._prepare_labels(labels, continuing, incremental,
                                                          classes)
        if unlabeled is None:
            return y_model, weight, n_outputs
        first = labels.flat[0]
        if unlabeled.any() and isinstance(first, Real | np.number) and not isinstance(
                first, bool | np.bool_):
            # Numeric labels: -1 could have been meant as a class. (Emitted once
            # the fit is complete, like every warning of a fit.)
            self._target_warnings.append((
                f"y has {int(unlabeled.sum())} row(s) labeled -1: with pretrain="
                f"{self.pretrain!r} they are unlabeled rows (scikit-learn's semi-supervised "
                "convention), used for pretraining only, and -1 is not a class (classes_ = "
                f"{self.classes_.tolist()}). If -1 is a class, encode the labels so that "
                "none is -1 (e.g. with LabelEncoder).",
                UserWarning,
            ))
        full = np.zeros((len(y), *y_model.shape[1:]), dtype=y_model.dtype)
        full[~unlabeled] = y_model
        labeled = (~unlabeled).astype(np.float64)  # unlabeled rows: weight 0
        if weight is not None:
            labeled[~unlabeled] = weight
        return full, labeled, n_outputs

    def _unlabeled_rows(self, y, classes):
        """Mask of the rows labeled -1 when ``pretrain`` is set (1-D ``y``), else ``None``."""
        if self.pretrain is None or y.ndim != 1:
            return None
        if y.dtype.kind in "US":
            raise ValueError(
                "y has a string dtype, which cannot hold the integer -1 that marks unlabeled "
                "rows for pretrain; use an object array with -1 for the unlabeled rows (as "
                "scikit-learn's SelfTrainingClassifier asks)."
            )
        unlabeled = unlabeled_mask(y, classes)
        if unlabeled.all():
            raise ValueError(
                "Every row of y is -1 (unlabeled): pretraining uses them, but fine-tuning "
                "needs some labeled rows."
            )
        return unlabeled

    def _prepare_labels(self, y, continuing, incremental, classes):
        if not continuing:
            if incremental and classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            # (classes as given: np.asarray would turn ["ant", 1] into strings,
            # which scikit-learn refuses as a mix of label types)
            self.classes_ = unique_labels(y if classes is None else classes)
        elif not incremental and not np.array_equal(unique_labels(y), self.classes_):
            # scikit-learn's rule and message for a warm start
            raise ValueError(
                "warm_start can only be used where `y` has the same classes as in the "
                f"previous call to fit. Previously got {self.classes_}, `y` has "
                f"{unique_labels(y)}"
            )
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(
                f"classes={np.unique(classes)!r} is not the same as classes_="
                f"{self.classes_!r} from the first call."
            )
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(
                f"y contains labels not in classes_ {self.classes_.tolist()}: "
                f"{unseen.tolist()}."
            )
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes, but the "
                f"data contains only one class: {self.classes_.tolist()[0]!r}."
            )
        self._multilabel = False
        binary = len(self.classes_) == 2
        self.out_activation_ = "logistic" if binary else "softmax"
        self.n_outputs_ = 1 if binary else len(self.classes_)
        return self._encoded(y)[0], self._class_weights(y, incremental), self.n_outputs_

    def _encoded(self, y):
        """``(model targets, class indices)`` of 1-D labels ``y``, all in ``classes_``:
        the index (int64) for softmax, a float32 column of 0/1 for a binary head."""
        codes = np.searchsorted(self.classes_, y)
        if self.out_activation_ == "logistic":
            return codes.astype(np.float32)[:, None], codes
        return codes.astype(np.int64), codes

    def _prepare_multilabel(self, y, continuing, classes):
        if self.class_weight is not None:
            raise ValueError("class_weight is not supported for multilabel targets.")
        if continuing and y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {y.shape[1]} labels but the network was fitted on {self.n_outputs_}."
            )
        self._multilabel = True
        self.classes_ = np.arange(y.shape[1])
        self.out_activation_ = "logistic"
        self.n_outputs_ = y.shape[1]
        return np.asarray(y, dtype=np.float32), None, self.n_outputs_

    def _class_weights(self, y, incremental):
        cw = self.class_weight
        if cw is None:
            return None
        if cw == "balanced":
            if incremental:
                raise ValueError(
                    "class_weight='balanced' is not supported by partial_fit: one "
                    "batch does not show the class frequencies. Pass a dict instead."
                )
            weights = compute_sample_weight("balanced", y)
            # Per class, for the validation set (see _prepare_y_val)
            self._class_weight_lookup = compute_class_weight(
                "balanced", classes=self.classes_, y=y)
            return weights
        unknown = [k for k in cw if k not in set(self.classes_.tolist())]
        if unknown:
            raise ValueError(
                f"class_weight has labels not in classes_ {self.classes_.tolist()}: {unknown}."
            )
        bad = {k: v for k, v in cw.items() if not (is_number(v) and np.isfinite(v) and v >= 0)}
        if bad:
            raise ValueError(
                f"class_weight values must be finite non-negative numbers (a weight of 0 "
                f"drops the class); got {bad}."
            )
        lookup = np.array([cw.get(c, 1.0) for c in self.classes_.tolist()], dtype=np.float64)
        self._class_weight_lookup = lookup
        return lookup[np.searchsorted(self.classes_, y)]

    def _prepare_y_val(self, y, class_weights=None):
        """Model targets and class weights of ``y_val``, encoded as ``y`` was.

        Called after ``_prepare_y`` in the same fit: ``classes_`` and the
        class weights (``class_weights``, one per class, what ``_prepare_y``
        left in ``_class_weight_lookup``) are the training data's, and a label
        of ``y_val`` not in ``classes_`` is an error.
        """
        lookup = class_weights
        if self._multilabel:
            if y.ndim != 2 or y.shape[1] != self.n_outputs_ or (
                    type_of_target(y) not in ("multilabel-indicator", "binary")):
                raise ValueError(
                    f"y_val must be a multilabel indicator matrix of {self.n_outputs_} "
                    f"columns, as y is; got {type_of_target(y)!r} targets of shape "
                    f"{y.shape}."
                )
            return np.asarray(y, dtype=np.float32), None
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.ndim != 1:
            raise ValueError(
                f"y_val has shape {y.shape}, but y holds 1-D labels: y_val must too."
            )
        try:
            found = np.unique(y)
        except TypeError:  # labels of types that do not sort together
            found = np.array(list(set(y.tolist())), dtype=object)
        known = set(self.classes_.tolist())
        unseen = [v for v in found.tolist() if v not in known]
        if unseen:
            raise ValueError(
                f"y_val contains labels not in classes_ {self.classes_.tolist()} (the "
                f"labels of y): {unseen}."
            )
        y_model, codes = self._encoded(y)
        return y_model, None if lookup is None else lookup[codes]

    @consistent
    def score(self, X, y, sample_weight=None):
        """Mean accuracy of :meth:`predict` on ``X`` against ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Test samples.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            True labels; a missing label (``None``, NaN, ``pandas.NA``) is an
            error, a label not in ``classes_`` counts as a wrong prediction.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Accuracy (subset accuracy for multilabel targets).
        """
        check_no_missing_targets(y)
        return super().score(X, y, sample_weight=sample_weight)

    def _per_sample_loss(self):
        multiclass = self.out_activation_ == "softmax"
        return PerSampleLoss(classification_loss("multiclass" if multiclass else "binary",
                                                 self.label_smoothing),
                             class_indices=multiclass)

    def _member_combine(self):
        return "softmax" if self.out_activation_ == "softmax" else "sigmoid"

    def _labels_from_raw(self, raw):
        if self._multilabel:
            return (raw > 0).astype(np.int64)
        if self.out_activation_ == "logistic":
            return (raw[:, 0] > 0).astype(np.int64)
        return raw.argmax(axis=1)

    def _score_raw(self, raw, y_model, sample_weight):
        pred = self._labels_from_raw(raw)
        truth = y_model.astype(np.int64)
        if truth.ndim == 2 and not self._multilabel:
            truth = truth[:, 0]
        correct = (pred == truth).all(axis=1) if truth.ndim == 2 else pred == truth
        return float(np.average(correct, weights=sample_weight))

    def _stratify(self, y_model):
        return None if self._multilabel else y_model.reshape(len(y_model), -1)[:, 0]

    # -------------------------------------------------------------- predict
    @consistent
    def predict(self, X):
        """Predict class labels (an indicator matrix for multilabel targets).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
            Predicted labels.
        """
        if self.mc_dropout:  # the class of highest mean probability
            proba = self.predict_proba(X)
            if self._multilabel:
                return (proba > 0.5).astype(np.int64)
            return self.classes_[proba.argmax(axis=1)]
        labels = self._labels_from_raw(self._predict_raw(X))
        return labels if self._multilabel else self.classes_[labels]

    @consistent
    def predict_proba(self, X, return_std=False):
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.
        return_std : bool, default=False
            Also return the standard deviation of each probability over the
            ``mc_dropout`` passes (Monte Carlo dropout's uncertainty, the
            chapter's ``y_probas.std(axis=0)``); needs ``mc_dropout >= 2`` and
            a network fitted with ``dropout > 0``. Without MC dropout, a network
            fitted with ``n_members > 1`` gives the standard deviation of its
            members' probabilities.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probability of each class in ``classes_`` order; for multilabel
            targets the independent probability of each label. Never exactly
            0: a probability below the smallest normal float64 (a logit gap
            beyond ~708) is reported as that number, so that its logarithm
            stays finite like :meth:`predict_log_proba`. With ``mc_dropout``,
            the mean over that many passes with dropout active; with
            ``n_members > 1``, the mean of the members' probabilities.
        proba_std : ndarray of shape (n_samples, n_classes)
            Only with ``return_std=True``: the passes' (or members') standard
            deviation.
        """
        if not return_std and type(self.mc_dropout) is int and self.mc_dropout == 0:
            # one deterministic pass (serving's case: its checks are the ones below)
            proba = self._proba_from_raw(self._predict_raw(X))
            return np.maximum(proba, _TINY, out=proba)
        self._check_return_std(return_std)
        if self._spread_from_members(return_std):  # an ensemble's members
            members = self._member_raw(X).astype(np.float64)
            proba = self.predict_proba(X)
            return proba, np.stack([self._proba_from_raw(raw) for raw in members]).std(axis=0)
        # (one pass here only for an mc_dropout of 0 that is not a Python int: the
        # mean of one pass is that pass, bit for bit)
        passes = self._predict_raw_passes(X).astype(np.float64)
        probas = np.stack([self._proba_from_raw(raw) for raw in passes])
        proba = probas.mean(axis=0)
        proba = np.maximum(proba, _TINY, out=proba)
        return (proba, probas.std(axis=0)) if return_std else proba

    def _proba_from_raw(self, raw):
        """float64 probabilities from float32 or float64 logits."""
        if self.out_activation_ == "softmax":
            return softmax(raw)  # (converted in its first copy)
        raw = raw.astype(np.float64, copy=False)
        if self._multilabel:
            return expit(raw)
        # Both columns from the logit: 1 - expit(z) would round to exactly 0
        # for z above ~37 while predict_log_proba still says about -z.
        return np.hstack([expit(-raw), expit(raw)])

    @consistent
    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`, computed stably from logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log-probabilities in ``classes_`` order (with ``mc_dropout``, the
            log of the mean probability).
        """
        if self.mc_dropout:
            return np.log(self.predict_proba(X))
        raw = self._predict_raw(X).astype(np.float64)
        if self.out_activation_ == "softmax":
            return log_softmax(raw, axis=1)
        if self._multilabel:
            return log_expit(raw)
        return np.hstack([log_expit(-raw), log_expit(raw)])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
