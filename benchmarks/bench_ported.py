"""Code ported from ``MLPClassifier`` by a rename: ours next to scikit-learn's.

scikit-learn's own example settings, each run by ``MLPClassifier`` and by
``DeepMLPClassifier`` with the matched network (scikit-learn's
``hidden_layer_sizes``, activation relu, the same ``alpha``, ``batch_size``,
``learning_rate_init``, ``max_iter``, ``random_state`` and solver settings),
ours once with ``kernel_initializer="glorot_uniform"`` (scikit-learn's weight
distribution, torch's generator, zero biases) and once with ``"sklearn"``
(scikit-learn's numbers, biases included):

1. "Compare Stochastic learning strategies for MLPClassifier"
   (``plot_mlp_training_curves.py``): iris, digits, circles, moons scaled by
   ``MinMaxScaler``; seven strategies (sgd constant / invscaling rate 0.2 with
   momentum 0, 0.9, 0.9 + Nesterov; adam rate 0.01); ``max_iter=400`` (15 for
   digits); ``hidden_layer_sizes=(100,)``. Reported: ``loss_`` and the training
   accuracy averaged over ``random_state`` 0, 1, 2, and ``n_iter_`` (mean).
   Each of our mean losses is marked when within 10 % of scikit-learn's.
2. The user guide's L-BFGS example (``hidden_layer_sizes=(5, 2)``,
   ``alpha=1e-5``, X = [[0, 0], [1, 1]], y = [0, 1], predict [[2, 2], [-1, -2]]):
   how many of ``random_state`` 0..19 answer [1 0], and ``random_state=1``'s
   answer.
3. "Varying regularization in Multi-layer Perceptron" (``plot_mlp_alpha.py``)
   on moons (``make_moons(noise=0.3, random_state=0)``,
   ``train_test_split(test_size=0.4, random_state=42)``, a ``StandardScaler``
   pipeline), ``solver="lbfgs"``, ``alpha`` in ``np.logspace(-1, 1, 5)``,
   ``random_state=1``, ``max_iter=2000``, ``hidden_layer_sizes=[10, 10]``
   (the example's ``early_stopping=True`` has no effect with ``"lbfgs"`` in
   either library and is left out): ``loss_``, ``n_iter_``, test accuracy.

Run::

    python benchmarks/bench_ported.py            # the full table (~2 min on 2 cores)
    python benchmarks/bench_ported.py --quick    # a few seconds: a smoke test
"""

import argparse
import os
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn import datasets
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package
from sklearn_deepnet import DeepMLPClassifier  # noqa: E402

STRATEGIES = {  # plot_mlp_training_curves.py's params and labels
    "constant": dict(solver="sgd", learning_rate="constant", momentum=0,
                     learning_rate_init=0.2),
    "constant + momentum": dict(solver="sgd", learning_rate="constant", momentum=0.9,
                                nesterovs_momentum=False, learning_rate_init=0.2),
    "constant + Nesterov": dict(solver="sgd", learning_rate="constant", momentum=0.9,
                                nesterovs_momentum=True, learning_rate_init=0.2),
    "invscaling": dict(solver="sgd", learning_rate="invscaling", momentum=0,
                       learning_rate_init=0.2),
    "invscaling + Nesterov": dict(solver="sgd", learning_rate="invscaling", momentum=0.9,
                                  nesterovs_momentum=True, learning_rate_init=0.2),
    "invscaling + momentum": dict(solver="sgd", learning_rate="invscaling", momentum=0.9,
                                  nesterovs_momentum=False, learning_rate_init=0.2),
    "adam": dict(solver="adam", learning_rate_init=0.01),
}
INITS = ("glorot_uniform", "sklearn")


def _models(params, seed):
    """``{"sklearn": MLPClassifier, "ours/<init>": DeepMLPClassifier}`` with ``params``."""
    models = {"sklearn": MLPClassifier(random_state=seed, **params)}
    for init in INITS:
        models[f"ours/{init}"] = DeepMLPClassifier(
            kernel_initializer=init, random_state=seed, **params)
    return models


def _datasets(quick):
    iris = datasets.load_iris(return_X_y=True)
    if quick:
        return {"iris": iris}
    return {"iris": iris, "digits": datasets.load_digits(return_X_y=True),
            "circles": datasets.make_circles(noise=0.2, factor=0.5, random_state=1),
            "moons": datasets.make_moons(noise=0.3, random_state=0)}


def stochastic_table(quick):
    """Part 1: one row per dataset and strategy."""
    seeds = (0,) if quick else (0, 1, 2)
    strategies = {"adam": STRATEGIES["adam"]} if quick else STRATEGIES
    lines = ["| dataset | strategy | sklearn loss_ | ours glorot_uniform | ours sklearn "
             "| n_iter_ (sk / glorot / sklearn) | train acc (sk / glorot / sklearn) "
             "| within 10 % (glorot / sklearn) |",
             "|---|---|---|---|---|---|---|---|"]
    marked = dict.fromkeys(INITS, 0)
    total = 0
    for name, (X, y) in _datasets(quick).items():
        X = MinMaxScaler().fit_transform(X)
        max_iter = 5 if quick else (15 if name == "digits" else 400)
        for label, strategy in strategies.items():
            params = dict(hidden_layer_sizes=(100,), max_iter=max_iter, **strategy)
            runs = {}
            for seed in seeds:
                for key, model in _models(params, seed).items():
                    model.fit(X, y)
                    runs.setdefault(key, []).append(
                        (model.loss_, model.n_iter_, model.score(X, y)))
            mean = {k: np.mean(v, axis=0) for k, v in runs.items()}
            sk = mean["sklearn"][0]
            close = {i: abs(mean[f"ours/{i}"][0] - sk) <= 0.1 * sk for i in INITS}
            for i in INITS:
                marked[i] += close[i]
            total += 1

            def cells(col, fmt, mean=mean):
                return " / ".join(format(mean[k][col], fmt) for k in
                                  ("sklearn", *(f"ours/{i}" for i in INITS)))

            lines.append(
                f"| {name} | {label} | {sk:.4f} | {mean['ours/glorot_uniform'][0]:.4f} "
                f"| {mean['ours/sklearn'][0]:.4f} | {cells(1, '.0f')} | {cells(2, '.3f')} "
                f"| {' / '.join('yes' if close[i] else 'no' for i in INITS)} |")
    lines.append("")
    lines.append("Mean loss_ within 10 % of scikit-learn's: " + ", ".join(
        f"{marked[i]} of {total} rows with {i}" for i in INITS)
        + f" (random_state {', '.join(map(str, seeds))}).")
    return lines


def lbfgs_example(quick):
    """Part 2: the user guide's L-BFGS example over seeds."""
    X, y = [[0.0, 0.0], [1.0, 1.0]], [0, 1]
    X_new = [[2.0, 2.0], [-1.0, -2.0]]
    seeds = range(3) if quick else range(20)
    params = dict(solver="lbfgs", alpha=1e-5, hidden_layer_sizes=(5, 2))
    rows = {"sklearn": lambda s: MLPClassifier(random_state=s, **params)}
    for init in ("auto", *INITS):
        rows[f"ours, {init}"] = (lambda s, init=init: DeepMLPClassifier(
            kernel_initializer=init, random_state=s, **params))
    lines = ["| model | seeds answering [1 0] | random_state=1: answer, n_iter_ |",
             "|---|---|---|"]
    for key, make in rows.items():
        answers = [make(s).fit(X, y).predict(X_new).tolist() for s in seeds]
        one = make(1).fit(X, y)
        lines.append(f"| {key} | {sum(a == [1, 0] for a in answers)} of {len(answers)} "
                     f"| {one.predict(X_new)}, {one.n_iter_} |")
    return lines


def alpha_sweep(quick):
    """Part 3: plot_mlp_alpha.py's sweep on moons."""
    X, y = datasets.make_moons(noise=0.3, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, random_state=42)
    alphas = np.logspace(-1, 1, 5)[1:2] if quick else np.logspace(-1, 1, 5)
    lines = ["| alpha | loss_ (sk / glorot / sklearn) | n_iter_ (sk / glorot / sklearn) "
             "| test acc (sk / glorot / sklearn) |", "|---|---|---|---|"]
    for alpha in alphas:
        params = dict(solver="lbfgs", alpha=alpha, max_iter=2000, hidden_layer_sizes=[10, 10])
        res = []
        for model in _models(params, 1).values():
            pipe = make_pipeline(StandardScaler(), model).fit(X_train, y_train)
            res.append((model.loss_, model.n_iter_, pipe.score(X_test, y_test)))
        lines.append(f"| {alpha:.3g} | " + " | ".join(
            " / ".join(format(r[col], fmt) for r in res)
            for col, fmt in ((0, ".4f"), (1, "d"), (2, ".3f"))) + " |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="iris and adam only, 5 epochs, one seed (a smoke test)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with warnings.catch_warnings():  # the example ignores them too
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        parts = [("Stochastic learning strategies (plot_mlp_training_curves.py)",
                  stochastic_table(args.quick)),
                 ("The user guide's L-BFGS example", lbfgs_example(args.quick)),
                 ("alpha on moons (plot_mlp_alpha.py), lbfgs, random_state=1",
                  alpha_sweep(args.quick))]
    import sklearn
    import torch

    print(f"Command: `python {' '.join(map(shlex.quote, ['benchmarks/bench_ported.py', *sys.argv[1:]]))}`  ")  # noqa: E501
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores; scikit-learn "
          f"{sklearn.__version__}, torch {torch.__version__}; "
          f"{time.perf_counter() - start:.0f} s")
    for title, lines in parts:
        print(f"\n### {title}\n")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
