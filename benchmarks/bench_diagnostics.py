"""Cost of diagnostics=True: fit time with the per-layer recording off and on, in one run.

Settings a-c of ``bench_fit.py`` (synthetic 50,000 x 64, 10 classes, 3 epochs):
(a) 5 x 100 ReLU, batch 32; (b) 3 x 256 ReLU, batch 128; (c) 20 x 100 ELU +
BatchNorm, batch 32; and the small case (s): the digits (1,797 rows), 3 x 100
ReLU, batch 32, where one probe pass per epoch weighs most. Each fit is timed
``--repeat`` times alternating off and on (best time kept); the ratio is
``on / off`` (1.25 = 25 % slower). Also checks that both fits end with the
same loss (diagnostics must not change training) and the same engine.

Run::

    python benchmarks/bench_diagnostics.py               # CPU, ~1 min on 2 cores
    python benchmarks/bench_diagnostics.py --device cuda
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
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from sklearn_deepnet import DeepMLPClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fit import SETTINGS, load_data  # noqa: E402


def fit_seconds(X, y, sizes, activation, batch_norm, batch_size, epochs, device, diagnostics):
    clf = DeepMLPClassifier(sizes, activation=activation, batch_norm=batch_norm,
                            batch_size=batch_size, max_iter=epochs, n_iter_no_change=epochs,
                            alpha=0.0, random_state=0, device=device, diagnostics=diagnostics)
    start = time.perf_counter()
    clf.fit(X, y)
    return time.perf_counter() - start, clf


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    print(f"# {' '.join(shlex.quote(a) for a in sys.argv)}")
    device_name = (torch.cuda.get_device_name() if args.device.startswith("cuda")
                   else f"CPU, {torch.get_num_threads()} threads")
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}; "
          f"device: {device_name}")
    X, y = load_data("synthetic", None)
    digits_X, digits_y = load_digits(return_X_y=True)
    cases = {name: (X, y, *SETTINGS[name]) for name in ("a", "b", "c")}
    cases["s"] = (StandardScaler().fit_transform(digits_X).astype(np.float32), digits_y,
                  (100,) * 3, "relu", None, 32)
    print(f"{'setting':<8} {'off (s)':>8} {'on (s)':>8} {'on/off':>7}  engine        same loss")
    for name, (Xs, ys, sizes, activation, batch_norm, batch_size) in cases.items():
        best = {False: np.inf, True: np.inf}
        fits = {}
        fit_seconds(Xs[:2000], ys[:2000], sizes, activation, batch_norm, batch_size, 1,
                    args.device, True)  # warm-up
        for _ in range(args.repeat):
            for diagnostics in (False, True):
                seconds, clf = fit_seconds(Xs, ys, sizes, activation, batch_norm, batch_size,
                                           args.epochs, args.device, diagnostics)
                best[diagnostics] = min(best[diagnostics], seconds)
                fits[diagnostics] = clf
        same = fits[True].loss_curve_ == fits[False].loss_curve_
        print(f"{name:<8} {best[False]:8.2f} {best[True]:8.2f} {best[True] / best[False]:7.3f}"
              f"  {fits[True].engine_:<13} {same}", flush=True)


if __name__ == "__main__":
    main()
