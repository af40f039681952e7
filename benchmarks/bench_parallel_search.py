"""GridSearchCV with n_jobs=1 and n_jobs=2 in one run: the speed-up of parallel search.

Two searches over ``make_pipeline(StandardScaler(), DeepMLPClassifier(...))``:

* ``small``: the issue's: ``load_digits``, ``max_iter=15``, 8 candidates
  (hidden_layer_sizes x alpha x learning_rate_init), cv=3: 24 fits of ~0.04 s;
* ``large``: synthetic 20,000 x 40, 10 classes, ``(128, 128)``, ``max_iter=10``,
  8 candidates, cv=3: 24 fits of ~0.4 s.

Each search runs with ``n_jobs=1``; with ``n_jobs=2`` on joblib's default
process backend (loky) *cold* (fresh worker processes, which pay the import
of torch and scikit-learn: ~2 s each) and *warm* (the same workers again, as
a second search in a session does); and with ``n_jobs=2`` on the threading
backend. The main process is warmed up first (one untimed search), so the
serial time holds no first-call costs. It prints the seconds, the speed-up
over ``n_jobs=1``, whether the best parameters are the same and the largest
difference of a candidate's mean score. Every row is the median of three
runs (each run's seconds are printed too): the serial 2-thread fits vary by
up to 30 % from run to run on the 2-core VM. (Scores can differ in the last digits:
a worker process trains on 1 torch thread where the serial search may use
2 for the large networks, and matrix products round differently with another
thread count; ``n_threads=1`` makes them equal.)

Run::

    python benchmarks/bench_parallel_search.py
"""

import os
import platform
import shlex
import sys
import time
import warnings

import numpy as np
import sklearn
import torch
from joblib import parallel_backend
from joblib.externals.loky import get_reusable_executor
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_deepnet import DeepMLPClassifier

SEARCHES = {
    "small": dict(data=lambda: load_digits(return_X_y=True), sizes=[(64,), (128,)],
                  max_iter=15),
    "large": dict(data=lambda: make_classification(n_samples=20_000, n_features=40,
                                                   n_informative=20, n_classes=10,
                                                   random_state=0),
                  sizes=[(128, 128), (256, 128)], max_iter=10),
}


def search(spec, X, y, n_jobs):
    pipe = make_pipeline(StandardScaler(),
                         DeepMLPClassifier(max_iter=spec["max_iter"], random_state=0))
    grid = {"deepmlpclassifier__hidden_layer_sizes": spec["sizes"],
            "deepmlpclassifier__alpha": [1e-4, 1e-3],
            "deepmlpclassifier__learning_rate_init": [1e-3, 3e-3]}
    start = time.perf_counter()
    found = GridSearchCV(pipe, grid, cv=3, n_jobs=n_jobs).fit(X, y)
    return time.perf_counter() - start, found


REPEATS = 3  # the median of 3: the 2-thread serial fits vary by up to 30 % on this VM
RUNS = [("n_jobs=2 loky, cold", "loky", True), ("n_jobs=2 loky, warm", "loky", False),
        ("n_jobs=2 threading", "threading", False)]


def _spread(runs):
    return " ".join(f"{t:.2f}" for t, _ in runs)


def main():
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # the workers' ConvergenceWarnings
    print(f"# {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"sklearn {sklearn.__version__}; device: CPU")
    print(f"{'search':<7} {'run':<22} {'median s':>8} {'speed-up':>9}  same best  "
          "max score diff  each run (s)")
    for name, spec in SEARCHES.items():
        X, y = spec["data"]()
        search(SEARCHES["small"], *SEARCHES["small"]["data"](), 1)  # warm-up, untimed
        serial = [search(spec, X, y, 1) for _ in range(REPEATS)]
        base_time, base = np.median([t for t, _ in serial]), serial[0][1]
        print(f"{name:<7} {'n_jobs=1':<22} {base_time:8.2f} {1:9.2f}  {'':<9}  {'':<14}"
              f"  {_spread(serial)}", flush=True)
        for label, backend, cold in RUNS:
            runs = []
            for _ in range(REPEATS):
                if cold:  # fresh worker processes
                    get_reusable_executor().shutdown(wait=True)
                with parallel_backend(backend):
                    runs.append(search(spec, X, y, 2))
            seconds = np.median([t for t, _ in runs])
            same = all(f.best_params_ == base.best_params_ for _, f in runs)
            diff = max(np.abs(f.cv_results_["mean_test_score"]
                              - base.cv_results_["mean_test_score"]).max() for _, f in runs)
            print(f"{name:<7} {label:<22} {seconds:8.2f} {base_time / seconds:9.2f}  "
                  f"{str(same):<9}  {diff:<14.4f}  {_spread(runs)}", flush=True)

if __name__ == "__main__":
    main()
