"""Recommended hyperparameters: the chapter's default configurations as parameter values.

A preset is a plain dictionary of constructor parameters, so it composes with
everything scikit-learn does with parameters (``set_params``, ``clone``, grid
search over the parameters it leaves open). Nothing here is a hidden mode: a
model built from a preset prints, pickles and clones like any other.
"""

# One entry per preset: its parameters and the sentence the docs show for it.
PRESETS = {
    "default": {
        "params": {
            "hidden_layer_sizes": (256, 256, 256),
            "activation": "elu",
            "kernel_initializer": "auto",  # He normal for ELU (Table 11-1)
            "batch_norm": None,  # Table 11-3: none if shallow, BatchNorm if deep
            "solver": "adamw",
            "learning_rate": "1cycle",
            "learning_rate_init": 1e-3,
            "batch_size": 128,
            "max_iter": 100,
            "early_stopping": True,
            "n_iter_no_change": 20,
        },
        "summary": "Table 11-3's default network, shallow: ELU with He initialization, "
                   "no BatchNorm (the table's choice for a shallow net: add "
                   "batch_norm='before' when you make it deep), AdamW, a 1cycle schedule "
                   "peaking at 1e-3 over up to 100 epochs of batch 128, early stopping "
                   "that keeps the best weights (10 % of the rows held out, 20 epochs' "
                   "patience)",
    },
    "self_normalizing": {
        "params": {
            "hidden_layer_sizes": (256, 256, 256),
            "activation": "selu",
            "kernel_initializer": "auto",  # LeCun normal for SELU (Table 11-1)
            "batch_norm": None,
            "solver": "nadam",
            "learning_rate": "1cycle",
            "learning_rate_init": 1e-3,
            "batch_size": 128,
            "max_iter": 100,
            "early_stopping": True,
            "n_iter_no_change": 20,
        },
        "summary": "Table 11-4's self-normalizing network: SELU with LeCun "
                   "initialization, no BatchNorm, Nadam, a 1cycle schedule peaking at "
                   "1e-3 over up to 100 epochs of batch 128, early stopping; inputs must be "
                   "standardized (use a StandardScaler)",
    },
    "tabular": {
        # the "default" network's parameters (added below) and the embedding
        "params": {
            "numeric_embedding": "periodic",
            "frequency_scale": "auto",
        },
        # added for one type of target (``target_type``), measured
        # (docs/user_guide/tabular.md): multiclass on Letter, Satimage and
        # Pen-based digits; binary on Adult, MAGIC, Spambase and Fertility
        "by_target": {"multiclass": {"label_smoothing": 0.2, "n_iter_no_change": 30},
                      "binary": {"dropout": 0.1}},
        "summary": "the default network with periodic embeddings (PLR) of the numeric "
                   "columns, frequencies starting at a scale of 0.1, or 10 for a column "
                   "whose most frequent value holds more than half of the rows "
                   "(frequency_scale='auto'): chosen from measurements on Adult, Letter, "
                   "Diamonds and Spambase (see the user guide's 'Tabular data' page); "
                   "feed it standardized numeric columns and one-hot categories (a "
                   "ColumnTransformer), which it tells apart by their number of distinct "
                   "values; with target_type='multiclass', label smoothing of 0.2 too "
                   "(a classifier parameter) and 30 epochs' patience, with "
                   "target_type='binary' dropout of 0.1",
    },
}


PRESETS["tabular"]["params"] = {**PRESETS["default"]["params"],
                                 **PRESETS["tabular"]["params"]}

#: The target types ``recommended_params`` accepts (scikit-learn's ``type_of_target``
#: names of the targets the estimators fit).
TARGET_TYPES = ("binary", "multiclass", "multilabel-indicator", "continuous",
                "continuous-multioutput")


def recommended_params(preset="default", *, target_type=None):
    """Constructor parameters that follow the chapter's practical guidelines.

    The returned dictionary is meant to be unpacked into
    :class:`DeepMLPClassifier` or :class:`DeepMLPRegressor`; any parameter can be
    overridden after it (``DeepMLPClassifier(**recommended_params(),
    dropout=0.2)``). Parameters the preset does not name keep their defaults.

    Parameters
    ----------
    preset : {"default", "self_normalizing", "tabular"}, default="default"
        ``"default"``: the chapter's default network (Table 11-3) at three
        hidden layers of 256 units: ELU with He initialization, no BatchNorm
        (the table's choice for a shallow net; add ``batch_norm="before"`` when
        you make it deep), AdamW, a 1cycle schedule peaking at
        ``learning_rate_init=1e-3`` over up to ``max_iter=100`` epochs of
        ``batch_size=128``, early stopping (10 % of the rows held out, 20
        epochs' patience, the best weights kept).
        ``"self_normalizing"``: the chapter's configuration for a plain stack of
        dense layers (Table 11-4): SELU with LeCun initialization, no BatchNorm,
        Nadam, 1cycle peaking at 1e-3, the same depth, epochs and early stopping.
        SELU only self-normalizes on standardized inputs.
        ``"tabular"``: the ``"default"`` network with periodic embeddings of the
        numeric columns (``numeric_embedding="periodic"``,
        ``frequency_scale="auto"``: 0.1, or 10 for a column whose most frequent
        value holds more than half of the rows), the configuration that
        measured best across Adult, Letter, Diamonds and Spambase within a fit
        time of about a third of RealMLP-TD's (0.15-0.18 on Adult,
        0.23-0.25 on Diamonds, 0.31-0.41 on Letter by mean fit time in three
        runs on a machine whose speed varied, 0.25-0.30 by the fastest fits:
        see the user guide's "Tabular data" page). Standardize the numeric
        columns and one-hot encode the categorical ones; the embedding takes the
        columns with more than two distinct values.
    target_type : {"binary", "multiclass", "multilabel-indicator", "continuous", \
            "continuous-multioutput"} or None, default=None
        The type of the target the model will be fitted on, as
        :func:`sklearn.utils.multiclass.type_of_target` names a classifier's
        target (for a regressor pass ``"continuous"`` or nothing:
        ``type_of_target`` calls an integer-valued target ``"multiclass"``).
        With ``preset="tabular"``, ``"multiclass"`` adds ``label_smoothing=0.2``
        (a :class:`DeepMLPClassifier` parameter), which raised test accuracy on
        every multiclass table measured (Letter, Satimage, Pen-based digits) at
        a small cost in ROC-AUC (on binary tables smoothing was mixed), plus
        ``n_iter_no_change=30`` (Letter's best epochs come in the 1cycle
        schedule's last, low-learning-rate epochs, which a patience of 20
        could cut off; Satimage and Pen-based digits keep their best epochs
        and accuracies, at up to 10 more epochs of fit). ``"binary"`` adds
        ``dropout=0.1``, which raised accuracy on Adult and MAGIC, left
        Fertility level and cost Spambase a little (on Letter
        dropout made the fit too slow for the preset's time budget, so the
        other types have none). ``None`` (or any other combination) gives the
        parameters both estimators accept.

    Returns
    -------
    params : dict
        A new dictionary of parameter names to values on each call.

    Raises
    ------
    ValueError
        If ``preset`` is not a known preset name, or ``target_type`` not one of
        the types above.

    See Also
    --------
    DeepMLPClassifier, DeepMLPRegressor

    Notes
    -----
    On Fashion-MNIST and three tabular sets, the ``"default"`` preset's gains over
    the plain defaults are measured by ``benchmarks/bench_accuracy.py`` (see the
    benchmarks page). The chapter's guidelines are starting points: the
    learning rate (``find_learning_rate``), the width and depth, and dropout or
    ``alpha`` for regularization are the first things to tune.

    Examples
    --------
    >>> from sklearn_deepnet import DeepMLPClassifier, recommended_params
    >>> clf = DeepMLPClassifier(**recommended_params(), random_state=0)
    >>> clf.activation, clf.solver, clf.learning_rate
    ('elu', 'adamw', '1cycle')
    >>> recommended_params("tabular", target_type="multiclass")["label_smoothing"]
    0.2
    """
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(
            f"preset must be one of {sorted(PRESETS)}; got {preset!r}."
        )
    if target_type is not None and (not isinstance(target_type, str)
                                    or target_type not in TARGET_TYPES):
        raise ValueError(
            f"target_type must be None or one of {list(TARGET_TYPES)} (the names "
            f"sklearn.utils.multiclass.type_of_target gives); got {target_type!r}."
        )
    extra = PRESETS[preset].get("by_target", {}).get(target_type, {})
    return {**PRESETS[preset]["params"], **extra}
