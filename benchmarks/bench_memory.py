"""Peak host memory that ``DeepMLPClassifier.fit`` adds beyond the user's data.

Each case (input dtype float64 / float32, with and without ``early_stopping``) runs
in a fresh subprocess that imports torch and sklearn_deepnet, builds X (n x d, the
given dtype) and y, does a tiny warm-up fit on 1,000 rows (so torch's lazy
allocations belong to the baseline), then reads the current resident set size
(RSS, /proc/self/statm) just before ``fit`` and samples it from a background thread
every 5 ms during ``fit``. ``ru_maxrss`` is a lifetime high-water mark, so it only
serves as a cross-check: when it rose during fit, its new value is the exact peak
and is used if the sampler missed a short spike. Reported: peak - before in MB and
as a multiple of one float32 copy of X (n * d * 4 bytes). Fit is on the CPU with
hidden_layer_sizes=(100, 100), max_iter=2, batch_size=200 (``--network
batchnorm-dropout`` adds BatchNorm on the inputs and before each activation and
dropout 0.2). Linux only.

Run::

    python benchmarks/bench_memory.py                     # 400,000 x 64, all cases
    python benchmarks/bench_memory.py --n-samples 50000 --dtypes float32 --json mem.json
    python benchmarks/bench_memory.py --network batchnorm-dropout   # BatchNorm + dropout
"""

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import threading
import time
import warnings

import numpy as np

PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1e6


def current_rss():
    """Current resident set size of this process in bytes (from /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class PeakSampler(threading.Thread):
    """Background thread recording the highest RSS seen every ``interval`` seconds."""

    def __init__(self, interval=0.005):
        super().__init__(daemon=True)
        self.interval, self.peak, self.samples = interval, current_rss(), 0
        self._stop_event = threading.Event()

    def run(self):
        """Sample until :meth:`stop` is called."""
        while not self._stop_event.is_set():
            self.peak = max(self.peak, current_rss())
            self.samples += 1
            time.sleep(self.interval)

    def stop(self):
        """Stop sampling, take a last sample and return the peak in bytes."""
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, current_rss())
        return self.peak


# --network: the plain stack, or BatchNorm on the inputs and before each
# activation plus dropout (the hand-written CPU step's other layers)
NETWORKS = {"plain": {},
            "batchnorm-dropout": dict(batch_norm="before", batch_norm_input=True, dropout=0.2)}


def make_estimator(args, max_iter):
    """The estimator measured (and, with ``max_iter=1``, its warm-up twin)."""
    from sklearn_deepnet import DeepMLPClassifier

    extra = NETWORKS[args.network]
    return DeepMLPClassifier(
        hidden_layer_sizes=(100, 100), max_iter=max_iter, batch_size=200,
        early_stopping=args.early_stopping, random_state=0, device="cpu", **extra,
    )


def worker(args):
    """Measure one case in this process and print its result as one JSON line."""
    import torch  # noqa: F401  (imported before the baseline on purpose)
    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n_samples, args.n_features), dtype=np.dtype(args.dtype))
    y = rng.integers(0, 10, args.n_samples)
    make_estimator(args, 1).fit(X[:1000], y[:1000])
    est = make_estimator(args, args.max_iter)
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    sampler = PeakSampler(args.interval_ms / 1000)
    before = current_rss()
    sampler.start()
    start = time.perf_counter()
    est.fit(X, y)
    seconds = time.perf_counter() - start
    sampled = sampler.stop()
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = max(sampled, maxrss_after) if maxrss_after > maxrss_before else sampled
    x32 = args.n_samples * args.n_features * 4
    print(json.dumps({
        "dtype": args.dtype, "early_stopping": args.early_stopping,
        "n_samples": args.n_samples, "n_features": args.n_features,
        "X_mb": X.nbytes / MB, "before_mb": before / MB, "peak_mb": peak / MB,
        "added_mb": (peak - before) / MB, "added_x_float32": (peak - before) / x32,
        "sampled_added_mb": (sampled - before) / MB, "samples": sampler.samples,
        "fit_seconds": seconds, "engine": getattr(est, "engine_", None),
        "network": args.network,
    }))


def run_case(args, dtype, early_stopping):
    """Run one case in a fresh subprocess and return its result dict."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--dtype", dtype,
           "--n-samples", str(args.n_samples), "--n-features", str(args.n_features),
           "--max-iter", str(args.max_iter), "--interval-ms", str(args.interval_ms),
           "--network", args.network]
    if early_stopping:
        cmd.append("--early-stopping")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"case {dtype} early_stopping={early_stopping} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parse_args(argv=None):
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-samples", type=int, default=400_000)
    p.add_argument("--n-features", type=int, default=64)
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--max-iter", type=int, default=2)
    p.add_argument("--network", default="plain", choices=list(NETWORKS),
                   help="plain (100, 100) or with BatchNorm (input and hidden) and dropout 0.2")
    p.add_argument("--interval-ms", type=float, default=5.0, help="RSS sampling period")
    p.add_argument("--json", default=None, help="write all results to this path")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    p.add_argument("--early-stopping", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    """Run every case in its own subprocess, print a table, optionally save JSON."""
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    x32 = args.n_samples * args.n_features * 4 / MB
    print(f"command: {command}")
    print(f"X: {args.n_samples} x {args.n_features}; one float32 copy = {x32:.1f} MB; "
          f"hidden (100, 100) {args.network}, max_iter={args.max_iter}, batch_size=200, "
          "CPU\n")
    print(f"{'dtype':<9}{'early_stop':>11}{'X MB':>9}{'before MB':>11}{'added MB':>10}"
          f"{'x f32 X':>9}{'sampled MB':>12}{'fit s':>8}  engine")
    results = []
    for dtype in args.dtypes.split(","):
        for early_stopping in (False, True):
            r = run_case(args, dtype, early_stopping)
            results.append(r)
            print(f"{dtype:<9}{early_stopping!s:>11}{r['X_mb']:>9.1f}{r['before_mb']:>11.1f}"
                  f"{r['added_mb']:>10.1f}{r['added_x_float32']:>9.2f}"
                  f"{r['sampled_added_mb']:>12.1f}{r['fit_seconds']:>8.2f}  {r['engine']}",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": command, "results": results}, f, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
