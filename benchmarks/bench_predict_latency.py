"""Prediction latency: ours vs MLPClassifier, natively and in onnxruntime, in one run.

Serving predicts a few rows at a time, where fixed per-call costs dominate.
For each network (64 features, 10 classes, both estimators fitted for 2
epochs on the same synthetic data), ``predict_proba`` is timed on 1, 100,
1,000 and 10,000 rows: median of ``--repeat`` calls (fewer for 10,000 rows)
after warm-up calls, ours and the peer's taking turns in blocks (so that
the machine's changing speed touches both alike), for

- ours natively, MLPClassifier natively;
- ours in onnxruntime (``sklearn_deepnet.onnx.to_onnx``) and MLPClassifier in
  onnxruntime (``skl2onnx.to_onnx``), both with ``zipmap=False``, one
  ``InferenceSession.run`` per call (when skl2onnx and onnxruntime are
  installed; intra-op threads left at onnxruntime's default).

"sk/ours" is MLPClassifier's time over ours (>= 1: ours is at least as
fast), natively and in onnxruntime. ``--activations`` adds every activation
of the table at 1 and 1,000 rows (native only). MLPClassifier has no SELU:
its rows use ReLU, the same matrix sizes. Optionally with the other core
busy (``--contended``: a process spinning on one core while timing).

Run from the repository root (the package of this checkout is imported)::

    python benchmarks/bench_predict_latency.py --json out.json
"""

import argparse
import json
import multiprocessing
import os
import platform
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

import sklearn_deepnet  # noqa: E402
from sklearn_deepnet import DeepMLPClassifier  # noqa: E402
from sklearn_deepnet._engine.activations import ACTIVATIONS  # noqa: E402

NETWORKS = {
    "2x100 relu": dict(hidden_layer_sizes=(100,) * 2),
    "2x100 selu": dict(hidden_layer_sizes=(100,) * 2, activation="selu"),
    "5x100 relu": dict(hidden_layer_sizes=(100,) * 5),
}
ROWS = (1, 100, 1000, 10000)


def _spin(stop):
    while not stop.is_set():
        pass


def median_seconds(fns, X, repeat, rounds=10):
    """Median wall time of each ``fn(X)`` over ``repeat`` calls, after 5 warm-up calls.

    The functions take turns in blocks (``repeat / rounds`` calls of ours, as
    many of theirs, ``rounds`` times), so that a change of machine speed during
    the measurement (another process, the CPU's clock) touches both alike:
    their ratio is what this script reports. Blocks, not single calls: torch's
    and NumPy's BLAS thread pools each spin for a while after a call, and
    alternating call by call makes them fight (measured: 1,000-row calls 6x
    slower for both).
    """
    times = [[] for _ in fns]
    block = max(1, repeat // rounds)
    for _ in range(rounds):
        for fn, t in zip(fns, times, strict=True):
            for _ in range(5):
                fn(X)
            for _ in range(block):
                start = time.perf_counter()
                fn(X)
                t.append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times]


def _sessions(ours, theirs, X):
    try:
        import onnxruntime as ort
        import skl2onnx
    except ImportError:
        return None, None
    from sklearn_deepnet.onnx import to_onnx

    def session(onx):
        s = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        return lambda Xn: s.run(["probabilities"], {name: Xn})

    ours_onx = to_onnx(ours, X[:1], options={"zipmap": False})
    # (the main domain's opset: the graph may also import ai.onnx.ml, in either order)
    opset = next(o.version for o in ours_onx.opset_import if o.domain in ("", "ai.onnx"))
    theirs_onx = skl2onnx.to_onnx(theirs, X[:1], options={"zipmap": False},
                                  target_opset=opset)
    return session(ours_onx), session(theirs_onx)


def _fit(params, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = DeepMLPClassifier(**params, max_iter=2, random_state=0).fit(X, y)
        sk_params = {k: v for k, v in params.items() if k != "activation"}
        theirs = MLPClassifier(**sk_params, max_iter=2, random_state=0).fit(X, y)
    return ours, theirs


def run(repeat, activations):
    X, y = make_classification(n_samples=10000, n_features=64, n_informative=32,
                               n_classes=10, random_state=0)
    X = X.astype(np.float32)
    results = []
    for name, params in NETWORKS.items():
        ours, theirs = _fit(params, X, y)
        ours_ort, theirs_ort = _sessions(ours, theirs, X)
        for n in ROWS:
            Xn, r = X[:n], max(5, repeat // 10) if n >= 10000 else repeat
            row = dict(network=name, rows=n)
            row["ours_ms"], row["sklearn_ms"] = (
                1e3 * t for t in median_seconds([ours.predict_proba, theirs.predict_proba], Xn, r))
            if ours_ort is not None:
                row["ours_ort_ms"], row["sklearn_ort_ms"] = (
                    1e3 * t for t in median_seconds([ours_ort, theirs_ort], Xn, r))
            results.append(row)
    if activations:
        for act in sorted(ACTIVATIONS):
            ours, theirs = _fit(dict(hidden_layer_sizes=(100,) * 2, activation=act), X, y)
            for n in (1, 1000):
                ours_s, theirs_s = median_seconds([ours.predict_proba, theirs.predict_proba],
                                                  X[:n], repeat)
                results.append(dict(network=f"2x100 {act}", rows=n, ours_ms=1e3 * ours_s,
                                    sklearn_ms=1e3 * theirs_s))
    return results


def _fmt(v):
    return f"{v:>10.3f}" if v is not None else f"{'-':>10}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=300)
    p.add_argument("--activations", action="store_true",
                   help="also every activation at 1 and 1,000 rows (native)")
    p.add_argument("--contended", action="store_true",
                   help="keep one core busy with a spinning process while timing")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    print(f"python {platform.python_version()}, torch {torch.__version__}, sklearn "
          f"{sklearn.__version__}, sklearn_deepnet {sklearn_deepnet.__version__} "
          f"({os.path.dirname(sklearn_deepnet.__file__)}), {multiprocessing.cpu_count()} "
          f"cores, torch threads {torch.get_num_threads()}")
    print("command:", " ".join([sys.executable, *sys.argv]))
    stop, spinner = None, None
    if args.contended:
        stop = multiprocessing.Event()
        spinner = multiprocessing.Process(target=_spin, args=(stop,), daemon=True)
        spinner.start()
    try:
        results = run(args.repeat, args.activations)
    finally:
        if spinner is not None:
            stop.set()
            spinner.join()
    print(f"\npredict_proba latency in ms{' (one core busy)' if args.contended else ''}, "
          f"median of {args.repeat} (10,000 rows: of {max(5, args.repeat // 10)})")
    print(f"{'network':<18}{'rows':>6}{'ours':>10}{'sklearn':>10}{'sk/ours':>9}"
          f"{'ours ort':>10}{'sk ort':>10}{'sk/ours':>9}")
    for r in results:
        ort_ratio = (f"{r['sklearn_ort_ms'] / r['ours_ort_ms']:>9.2f}" if "ours_ort_ms" in r
                     else f"{'-':>9}")
        print(f"{r['network']:<18}{r['rows']:>6}{_fmt(r['ours_ms'])}{_fmt(r['sklearn_ms'])}"
              f"{r['sklearn_ms'] / r['ours_ms']:>9.2f}{_fmt(r.get('ours_ort_ms'))}"
              f"{_fmt(r.get('sklearn_ort_ms'))}{ort_ratio}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(contended=args.contended, results=results), f, indent=1)


if __name__ == "__main__":
    main()
