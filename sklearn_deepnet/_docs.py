"""Parameter documentation shared by both estimators, written once.

The lists of valid names are filled in from the lookup tables, so a new
activation, initializer or optimizer shows up in the docstrings by itself.
"""

from __future__ import annotations

from ._engine.activations import ACTIVATIONS
from ._engine.init import INITIALIZERS
from ._engine.optim import SOLVERS
from ._schedules import SCHEDULES


def _names(table):
    return ", ".join(f'"{k}"' for k in table)


def _alpha_lines():
    return "\n".join(
        f"        - ``{name}``: {entry.alpha_doc} (default {entry.default_alpha!r})."
        for name, entry in ACTIVATIONS.items()
        if entry.alpha_doc
    )


def _schedule_lines():
    return "\n".join(f"        - ``{name}``: {s.summary}." for name, s in SCHEDULES.items())


def _solver_lines():
    return "\n".join(
        f"        - ``{name}``: {s.summary}; reads "
        f"{', '.join((('learning_rate_init',) if s.stochastic else ()) + s.uses)}."
        for name, s in SOLVERS.items()
    )


SHARED_PARAMETERS = f"""\
    hidden_layer_sizes : array-like of int, default=(100, 100, 100)
        Width of each hidden layer, input side first; any depth. ``()`` gives
        a linear model.

    activation : str or callable, default="relu"
        Hidden-layer activation, one of {_names(ACTIVATIONS)}
        ("swish"/"silu" and "logistic"/"sigmoid" are aliases). A zero-argument
        callable returning a ``torch.nn.Module`` (e.g. ``torch.nn.Hardswish``
        or ``functools.partial(torch.nn.LeakyReLU, 0.1)``) is also accepted;
        one instance is made per layer.

    activation_alpha : float, tuple or None, default=None
        Parameter of a named activation (an error for activations without one
        and for user-supplied modules); ``None`` uses the default listed here:

{_alpha_lines()}

    kernel_initializer : str or VarianceScaling, default="auto"
        Weight initialization, one of "auto", {_names(INITIALIZERS)}, or a
        :class:`VarianceScaling` for any ``(scale, mode, distribution)``.
        ``"*_normal"`` is a normal truncated at two standard deviations and
        rescaled to the target variance, as in Keras. "auto" follows Table 11-1
        of the chapter: He for the ReLU family, ELU, GELU, Swish and Mish,
        LeCun for SELU, Glorot for tanh, logistic and identity; the output
        layer (softmax, sigmoid or identity) always gets Glorot uniform, and
        so do hidden layers with a user-supplied activation module. An
        explicit initializer applies to the hidden layers; the output layer
        keeps Glorot uniform, as in Keras code that sets
        ``kernel_initializer`` on its hidden ``Dense`` layers only (the
        chapter's). Biases start at zero. "sklearn" draws, from NumPy's
        generator of ``random_state``, exactly what scikit-learn's
        ``MLPClassifier``/``MLPRegressor`` draw: every layer's weights and
        biases, the output layer's too (as float32).

    batch_norm : {{"before", "after"}} or None, default=None
        Add a BatchNorm layer to every hidden layer, before or after its
        activation. With "before" the hidden linear layers have no bias
        (BatchNorm's shift makes it redundant).

    batch_norm_input : bool, default=False
        Also normalize the inputs with a BatchNorm layer.

    batch_norm_momentum : float, default=0.1
        PyTorch convention: the weight of the current batch when updating the
        running mean and variance. Keras' ``momentum`` is one minus this:
        Keras 0.99 is 0.01 here, and this default is Keras 0.9.

    batch_norm_epsilon : float, default=1e-5
        Added to the batch variance for numerical stability.

    dropout : float, default=0.0
        Dropout rate after each hidden layer, active in training only. With
        ``activation="selu"`` it is alpha dropout, which keeps SELU's
        self-normalization.

    numeric_embedding : {{"periodic", "piecewise_linear"}} or None, default=None
        Map each numeric column to a vector of ``embedding_size`` values
        before the first hidden layer (Gorishniy et al., "On Embeddings for
        Numerical Features in Tabular Deep Learning", 2022), which lets a plain
        MLP fit the sharp, irregular dependencies of tabular targets.
        "periodic" (PLR): ``ReLU(Linear([cos(2 pi c x), sin(2 pi c x)]))`` with
        ``n_frequencies`` trainable frequencies ``c`` per column.
        "piecewise_linear": the column encoded over ``n_bins`` quantile bins of
        the training data (each component the position of ``x`` inside one
        bin, clipped to [0, 1]), then a linear layer and ReLU. Each column has
        its own layer; the columns not embedded pass through after the
        embeddings. Bins and the embedded columns are fixed by the first fit
        (``warm_start`` and ``partial_fit`` keep them). See the user guide's
        "Tabular data" page.

    numeric_features : "auto" or array-like, default="auto"
        The columns ``numeric_embedding`` embeds. "auto": those with more than
        two distinct values in the training data, so that one-hot and binary
        columns (from a ``OneHotEncoder`` in a ``ColumnTransformer``) pass
        through. Or column indices, a boolean mask of length
        ``n_features_in_``, or column names (for a DataFrame ``X``). The
        columns used are in ``numeric_features_`` after fitting.

    embedding_size : int, default=16
        Width of each numeric column's embedding.

    n_frequencies : int, default=48
        Trainable frequencies per column (``numeric_embedding="periodic"``).

    frequency_scale : float or "auto", default=0.01
        Standard deviation of the normal distribution, truncated at three of
        them, that the frequencies start from (``numeric_embedding="periodic"``):
        the most important setting of periodic embeddings; the paper tunes it
        between 0.01 and 100 for standardized inputs. "auto": one per column,
        from the first fit's training rows: 10 for a column whose most
        frequent value holds more than half of the rows (a spike and a tail,
        like capital gains or word counts: its rare values need high
        frequencies to be told apart), else 0.1 (measured on the benchmark's
        tables, see the user guide's "Tabular data" page). Like the columns and
        the bins, the scales are fixed by the first fit: with ``partial_fit``,
        by its first batch (a small one makes spikes by chance).

    n_bins : int, default=48
        The most quantile bins per column (``numeric_embedding="piecewise_linear"``;
        fewer where quantiles coincide).

    max_norm : float or None, default=None
        Max-norm regularization: after every optimizer step each hidden
        unit's incoming weight vector is rescaled to L2 norm <= ``max_norm``.

    alpha : float, default=1e-4
        Strength of the weight penalty, as in ``MLPClassifier``: the loss gets
        ``alpha * (l1_ratio * ||W||_1 + 0.5 * (1 - l1_ratio) * ||W||_2^2)``
        divided by the batch's total sample weight. Biases and BatchNorm
        parameters are not penalized.

    l1_ratio : float, default=0.0
        Share of L1 in the penalty: 0 is pure L2 (``MLPClassifier``'s ``alpha``),
        1 pure L1, in between an elastic net.

    weight_decay : float or None, default=None
        Decoupled weight decay (applied by the optimizer, not through the
        loss), available for "adam", "nadam" and "adamw". ``None`` means 0.01
        for "adamw" and 0 otherwise. Other solvers reject a positive value.

    clip_norm : float or None, default=None
        Clip the global L2 norm of all gradients to at most this value before
        each step.

    clip_value : float or None, default=None
        Clip every gradient component to ``[-clip_value, clip_value]`` before
        each step (applied before ``clip_norm`` when both are set).

    solver : str, default="adam"
        Optimizer, one of:

{_solver_lines()}

    learning_rate : str, default="constant"
        Learning-rate schedule (for every mini-batch solver; scikit-learn
        applies its two only to "sgd"), one of:

{_schedule_lines()}

        The rate at the start of each epoch is recorded in ``history_`` as
        ``"lr"``.

    learning_rate_init : float, default=1e-3
        Initial learning rate.

    power_t : float, default=0.5
        Exponent of the "invscaling" (as in ``MLPClassifier``) and "power"
        schedules.

    decay_steps : int, default=10000
        Optimizer steps over which "power" halves the rate (with
        ``power_t=1``) and "exponential" divides it by 10.

    lr_milestones : array-like of int or None, default=None
        Epochs at which "piecewise" moves to the next of ``lr_values``.

    lr_values : array-like of float or None, default=None
        The rates of "piecewise": one more than ``lr_milestones``.

    lr_factor : float, default=0.5
        What "plateau" multiplies the rate by.

    lr_patience : int, default=5
        Epochs without a lower validation loss (training loss without
        ``early_stopping``) before "plateau" lowers the rate.

    momentum : float, default=0.9
        Momentum for "sgd" (as in ``MLPClassifier``), "momentum" and
        "nesterov". With ``solver="sgd"``, ``momentum=0`` is plain SGD.

    nesterovs_momentum : bool, default=True
        Whether ``solver="sgd"`` uses Nesterov's momentum, as in
        ``MLPClassifier`` ("momentum" and "nesterov" name the choice
        explicitly and ignore this).

    beta_1 : float, default=0.9
        Decay of the first-moment estimate (Adam family).

    beta_2 : float, default=0.999
        Decay of the second-moment estimate (Adam family).

    epsilon : float, default=1e-8
        Numerical-stability term (AdaGrad, RMSProp, Adam family).

    rho : float, default=0.9
        Decay of RMSProp's moving average of squared gradients (Keras'
        default; PyTorch's ``alpha``).

    batch_size : int or "auto", default="auto"
        Mini-batch size; "auto" is ``min(200, n_samples)``. A trailing batch
        of one sample is merged into the previous one when BatchNorm is used.

    max_iter : int, default=200
        Maximum number of epochs for :meth:`fit` (``partial_fit`` runs one).

    shuffle : bool, default=True
        Shuffle the training data before each epoch.

    tol : float, default=1e-4
        Minimum improvement of the training loss (or of the validation score
        with ``early_stopping``) that resets the patience counter.

    n_iter_no_change : int or np.inf, default=10
        Stop once the loss (or validation score) has not improved by ``tol``
        for more than this many consecutive epochs; ``np.inf`` never stops
        early (``max_iter`` epochs).

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified for
        classifiers when every class has two or more samples and both parts
        can hold every class, otherwise a plain random split), stop when the
        validation score (accuracy or R^2) stops improving and restore the
        weights of the best epoch. With ``X_val`` and ``y_val`` passed to
        :meth:`fit`, they are the validation set and nothing is held out.

    validation_fraction : float, default=0.1
        Share of the training data held out when ``early_stopping=True``;
        not used when :meth:`fit` is given ``X_val`` and ``y_val``.

    warm_start : bool, default=False
        Reuse the fitted network's weights as the starting point of the next
        :meth:`fit` (with a fresh optimizer, as ``MLPClassifier`` does). The
        architecture parameters must not change in between.

    random_state : int, RandomState instance or None, default=None
        Seeds weight initialization, the validation split, shuffling and
        dropout. Fits with the same int give identical results on CPU. The
        caller's global torch random state is left untouched (training runs
        in a forked, seeded torch generator); with ``None`` one number is
        drawn from numpy's global generator, as in scikit-learn.

    verbose : int or bool, default=False
        ``0``/``False``: silent. ``1``/``True``: a progress bar per
        :meth:`fit` (epochs, with the loss and validation score) when stderr
        is a terminal or a Jupyter kernel, else one line per epoch as
        ``MLPClassifier(verbose=True)`` prints (always lines for
        ``partial_fit`` and in joblib / ``GridSearchCV(n_jobs=...)`` workers,
        whose bars would garble each other). ``2``: also one line of
        ``diagnostics`` per epoch (with ``diagnostics=True``).

    diagnostics : bool, default=False
        Record, once per epoch on a fixed probe batch (the first 256 training
        rows of the call), per linear layer the gradient norm, weight norm and
        update/weight ratio, and per hidden layer the activations' mean and
        standard deviation, the fraction of dead units (ReLU) and of
        saturated outputs (logistic, tanh): what shows vanishing or exploding
        gradients, saturation and dying ReLUs. In ``history_`` under
        ``"diagnostics"``, as columns of :meth:`history_frame`, and plotted
        by :mod:`sklearn_deepnet.plot`. Measured outside the training step:
        every fast path keeps running and the fit is the same as without it
        (bit for bit); off costs nothing.

    device : str or torch.device, default="auto"
        Where to train: "auto" (CUDA when available, else CPU), "cpu",
        "cuda" or "cuda:N".

    n_threads : int or None, default=None
        CPU threads torch may use while fitting on the CPU. ``None`` picks by
        problem size: one thread when each step's largest matrix product is
        small (per-operation overhead dominates and threads only add
        synchronization), all of torch's threads otherwise. At most the
        machine's CPU count (``os.cpu_count()``) is used, whatever is asked:
        more threads only contend for the CPUs, and far more exhaust the
        thread library's memory. The caller's ``torch.get_num_threads()`` is
        restored when fit returns.

    mc_dropout : int, default=0
        Monte Carlo dropout: with ``mc_dropout=N`` (``N >= 1``) predictions
        average ``N`` passes with dropout active (BatchNorm in evaluation
        mode), which usually improves calibration and, for the regressor,
        gives an uncertainty (``predict(X, return_std=True)``). Needs a
        network fitted with ``dropout > 0``; reproducible under
        ``random_state`` (the same ``X`` gives the same result), but a row's
        prediction depends on the rows predicted with it. ``0``: one
        deterministic pass.

    n_members : int, default=1
        Efficient ensemble (TabM, Gorishniy et al. 2024): ``n_members``
        networks that share most of their weights, trained together as one
        network, each member on its own loss (the fit minimizes the mean of
        the members' losses). Predictions average the members' predictions
        (probabilities for the classifier; the mean for the regressor,
        through the inverse link with ``loss="poisson"``), and
        ``return_std=True`` gives their standard deviation over the members
        (unless ``mc_dropout`` asks for MC-dropout passes). Each training row
        runs once per member, so a step costs about ``n_members`` times the
        hidden layers' work. ``1``: a single network, exactly as without
        this parameter. Not with ``init_from``, ``pretrain`` or
        ``kernel_initializer="sklearn"``.

    ensemble_sharing : {"mini", "batch"}, default="mini"
        What the members of ``n_members > 1`` share. ``"mini"`` (TabM-mini):
        every hidden layer; each member has its own multiplicative adapter on
        the (normalized) inputs, initialized with random signs, and its own
        output layer. ``"batch"`` (TabM, BatchEnsemble): each hidden layer's
        weight matrix ``W``; every member ``m`` computes ``s_m * (W (r_m *
        x)) + b_m`` with its own ``r_m``, ``s_m`` and ``b_m`` (``r`` of the
        first layer with random signs, the others and ``s`` ones, ``b``
        zeros; no ``b_m`` with ``batch_norm="before"``), and its own output
        layer. ``max_norm`` constrains the shared ``W``; ``alpha`` penalizes
        the shared and the output weights, not the adapters. No effect with
        ``n_members=1``.

    init_from : DeepMLPClassifier, DeepMLPRegressor, FrozenEstimator or None, \
default=None
        Transfer learning: a fitted estimator (of either kind) whose lower
        hidden layers this one starts from, when :meth:`fit` builds a new
        network (not on warm starts or later ``partial_fit`` calls). Weights,
        biases and BatchNorm statistics are copied; the output layer is always
        new, and ``init_from`` itself is never changed. ``clone`` (and so
        ``GridSearchCV`` over this estimator) keeps this same fitted object,
        where scikit-learn's default would make an unfitted copy, and
        ``get_params(deep=True)`` does not list its parameters. A search over
        ``init_from`` *values* clones each value: wrap the fitted model in
        ``sklearn.frozen.FrozenEstimator`` there. For a fitted pipeline pass
        its last step (``pipe[-1]``) and put the same preprocessing before
        this estimator.

    reuse_layers : int or None, default=None
        How many of ``init_from``'s lowest hidden layers to copy; ``None``:
        as many as fit (the leading layers whose parameters have the same
        shapes: widths, BatchNorm placement, input BatchNorm), at least one.
        A layer that does not fit is an error naming both shapes; ``0``
        copies nothing (a baseline for a grid search). Only with
        ``init_from``. Activations are not compared: reusing layers under
        another activation is allowed, with a warning.

    freeze_layers : int, default=0
        How many of the lowest hidden layers (reused or pretrained, and the
        input BatchNorm with them) do not train: their parameters get no
        gradient and their BatchNorm layers keep their statistics (dropout
        stays on), as a frozen layer in Keras. When a network is built: at
        most the reused layers (or every hidden layer with ``pretrain``); on
        a warm start or ``partial_fit``, any of the fitted network's layers.

    unfreeze_after : int or None, default=None
        Number of epochs after which the frozen layers train too (the chapter
        trains a few epochs frozen, then fine-tunes everything); counted over
        the network's whole history, so ``partial_fit`` calls unfreeze at the
        same epoch as one ``fit``. ``None``: frozen for good. No effect
        without ``freeze_layers``.

    pretrain : {"autoencoder"} or None, default=None
        Unsupervised pretraining when :meth:`fit` builds a new network: the
        hidden layers are first trained for ``pretrain_epochs`` as the encoder
        of an autoencoder (a mirrored decoder with a linear output
        reconstructs the inputs under the squared error, then is discarded),
        on every row of ``X`` with a non-zero weight. For the classifier,
        rows labeled ``-1`` (scikit-learn's semi-supervised convention) are
        unlabeled: pretrained on, then left out of supervised training;
        ``classes_`` are the other labels (without ``pretrain``, -1 is an
        ordinary class, as in ``MLPClassifier``). Pretraining uses the solver,
        penalties and batch size of the fit at the constant rate
        ``learning_rate_init`` (no schedule); standardize ``X`` first.

    pretrain_epochs : int, default=10
        Epochs of autoencoder pretraining.

    max_fun : int, default=15000
        Maximum number of loss evaluations of ``solver="lbfgs"`` (as in
        ``MLPClassifier``); other solvers ignore it.

    callbacks : list or None, default=None
        skorch callbacks run by every fit, on every training path: instances
        or classes of ``skorch.callbacks.Callback``, or ``(name, callback)``
        pairs; e.g. ``LRScheduler``, ``Checkpoint``, ``EarlyStopping``,
        ``TensorBoard`` and the MLflow, W&B and Neptune loggers. They see
        ``net_`` and its history, which holds ``train_loss``,
        ``train_loss_best`` and, with ``early_stopping``, ``valid_loss``,
        ``valid_loss_best`` and ``valid_score``. They may change the
        optimizer's learning rate and momentum (read at every step) and stop
        training by raising ``KeyboardInterrupt``, as skorch's
        ``EarlyStopping`` does (no warning; a Ctrl-C is told apart). The
        objects are used as given and hold the state of the last fit, as in
        skorch; ``clone`` copies them. Per-batch events run only when a
        callback implements them; on CUDA, ``on_grad_computed`` trains
        without a CUDA graph. See docs/callbacks.md.
"""

SHARED_ATTRIBUTES = """\
    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Column names, when ``X`` had string column names.

    n_outputs_ : int
        Number of network outputs.

    n_iter_ : int
        Number of epochs run by the last call to ``fit`` or ``partial_fit``
        (as in ``MLPClassifier``; ``loss_curve_`` covers all calls); with
        ``solver="lbfgs"``, the L-BFGS iterations of the last call (SciPy's
        ``nit``).

    t_ : int
        Number of training samples seen, over all calls.

    loss_ : float
        Training loss (with penalty) of the last epoch.

    n_layers_ : int
        Number of layers: input, hidden layers and output.

    coefs_ : list of ndarray
        ``coefs_[i]`` is the weight matrix of linear layer ``i``, shape
        ``(n_in, n_out)`` as in ``MLPClassifier`` (float32 copies); with
        ``n_members > 1`` the last one is ``(n_members, n_in, n_out)`` (each
        member's output layer; the shared hidden weights are the others, the
        members' adapters are in ``module_``).

    intercepts_ : list of ndarray
        Bias vector of each linear layer (zeros where BatchNorm before the
        activation replaces the bias, or where ``ensemble_sharing="batch"``
        moves it into the members' ``b_m``); with ``n_members > 1`` the last
        one is ``(n_members, n_out)``.

    loss_curve_ : list of float
        Training loss (with penalty) of every epoch. With ``solver="lbfgs"``
        (where ``MLPClassifier`` sets no ``loss_curve_`` at all) the objective
        after each L-BFGS iteration, so that, as for the other solvers, a
        ``fit`` leaves ``n_iter_`` values; a warm start appends those of its
        run. ``history_`` keeps one record per call.

    best_loss_ : float or None
        Lowest training loss; ``None`` with early stopping.

    validation_scores_ : list of float or None
        Validation score of every epoch with early stopping (on ``X_val``,
        ``y_val`` when :meth:`fit` was given them), else ``None``.

    best_validation_score_ : float or None
        Best validation score with early stopping, else ``None``.

    history_ : skorch.History
        Per-epoch records: ``train_loss``, ``dur`` (seconds),
        ``train_batch_count``, ``train_samples`` and, with early stopping,
        ``valid_score``. With ``solver="lbfgs"`` one record per call, with
        SciPy's ``lbfgs_iterations`` (``nit``), ``lbfgs_evaluations``
        (``nfev``), ``lbfgs_converged`` (``success``), ``lbfgs_status``,
        ``lbfgs_message`` and ``lbfgs_losses`` (the objective after each
        iteration).

    net_ : skorch.NeuralNet
        The trainer: a skorch net built by the first fit and reused by warm
        starts and ``partial_fit``. Works in the network's terms: its
        ``fit``/``partial_fit`` take float inputs and encoded targets (class
        indices, or float arrays of shape ``(n, n_outputs)``), its
        ``predict``/``predict_proba`` return raw outputs (logits);
        ``history``, ``callbacks_``, ``save_params`` and ``load_params`` are
        skorch's. Training it directly does not update the estimator's
        summary attributes (``n_iter_``, ``loss_curve_``, ...).

    module_ : torch.nn.Module
        The fitted network (``net_.module_``).

    engine_ : str
        Training step used by the last fit: ``"cpu-manual"`` (hand-written
        backward pass, CPU), ``"cuda-graph"`` (whole step replayed from a CUDA
        graph), ``"eager"`` (autograd; every configuration) or ``"lbfgs"``.

    engine_reason_ : str or None
        Why the device's fast step was not used (a hook, a parametrization,
        a module it was not written for, a private torch kernel missing or
        failing its check, ...), or, when it was, which private kernels it
        replaced by public code; ``None`` when the fast step ran as written.

    reused_layers_ : int
        Hidden layers copied from ``init_from`` when the network was built
        (0 without it).

    pretrain_loss_curve_ : list of float or None
        Reconstruction loss of each pretraining epoch (``None`` without
        ``pretrain``).

    numeric_features_ : ndarray of int or None
        The columns ``numeric_embedding`` embeds, fixed by the first fit
        (``None`` without an embedding; empty when "auto" found no column
        with more than two distinct values). With an embedding, ``coefs_[0]``
        maps the embeddings and the other columns, not ``X``'s columns.
"""

#: The validation-set parameters of ``fit``, shared by both estimators (the
#: ``{y_val}`` line says what the targets are).
_FIT_VALIDATION_SET = """\
        X_val : {{array-like, sparse matrix}} of shape (n_val, n_features), \
default=None
            Your own validation set for early stopping (scikit-learn's
            ``HistGradientBoosting`` convention): with ``early_stopping=True``
            it replaces the ``validation_fraction`` split, so every row of
            ``X`` trains, and the validation score and loss of every epoch
            (``validation_scores_``, ``best_validation_score_``, the
            history's ``valid_score`` and ``valid_loss``) are computed on it.
            Validated as ``X`` is (same features and feature names, finite
            values, sparse or a DataFrame). Requires ``y_val`` and
            ``early_stopping=True`` with a mini-batch solver, else
            ``ValueError``. In a :class:`~sklearn.pipeline.Pipeline` it is
            *not* transformed by the steps before the estimator: pass it
            already transformed, or build the pipeline with
            ``transform_input=["X_val"]`` (metadata routing, as for
            ``HistGradientBoosting``). A warm start validating on other
            rows than the previous call did keeps this call's own best epoch
            (the old scores do not compare). Not taken by
            :meth:`partial_fit`, which never stops early.
        y_val : array-like of shape (n_val,) or (n_val, {y_cols}), default=None
            {y_val}
        sample_weight_val : array-like of shape (n_val,), default=None
            Non-negative weights of the validation rows in the validation
            score and loss (a zero weight removes a row's effect); only with
            ``X_val``.{class_weight}"""


def fit_validation_set(y_val, y_cols, class_weight=""):
    """The ``X_val``, ``y_val`` and ``sample_weight_val`` entries of a ``fit`` docstring."""
    return _FIT_VALIDATION_SET.format(y_val=y_val, y_cols=y_cols, class_weight=class_weight)
