"""benchmarks/bench_accuracy.py's tables, printed from a saved run (``--tables-from``)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _runs(fits, accuracy=0.9):
    return [{"accuracy": accuracy, "roc_auc": 0.99, "fit_s": f, "predict_s": 0.01}
            for f in fits]


def test_tables_from_a_saved_run_give_both_fit_time_ratios(tmp_path):
    # Mean ratio 30 / 100 = 0.30; fastest ratio 20 / 50 = 0.40 (a noisy
    # machine can slow either side: both are printed).
    saved = {"letter": {"classification": True, "n_train": 16000, "n_test": 4000,
                        "models": {"ours: tabular": _runs([20.0, 30.0, 40.0], 0.98),
                                   "HistGradientBoosting": _runs([5.0, 5.0, 5.0]),
                                   "RealMLP-TD": _runs([50.0, 100.0, 150.0])}},
             "cps1988": {"classification": False, "n_train": 100, "n_test": 20,
                         "models": {"ours: tabular": [{"r2": 0.5, "rmse": 0.1, "fit_s": 1.0,
                                                       "predict_s": 0.0}],
                                    "RealMLP-TD": "not run"}}}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(saved))
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_accuracy.py"),
         "--tables-from", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "letter (train 16,000, test 4,000)"
    assert "x RealMLP" in lines[1] and "fastest x" in lines[1]
    ours = next(line for line in lines if line.startswith("ours: tabular"))
    assert ours.split()[2:] == ["0.9800", "±", "0.000", "0.9900", "±", "0.000", "30.0",
                                "0.01", "0.30", "0.40"]
    realmlp = next(line for line in lines if line.startswith("RealMLP-TD"))
    assert realmlp.split()[-2:] == ["100.0", "0.01"]  # no ratio to itself
    # A regression table without RealMLP-TD: no ratio columns.
    start = lines.index("cps1988 (train 100, test 20)")
    assert "RealMLP" not in lines[start + 1]
    assert "not run" in lines[start + 3]
