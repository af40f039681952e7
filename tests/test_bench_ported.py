"""Smoke test of benchmarks/bench_ported.py (the table of the "Coming from MLPClassifier" page)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_ported_quick_prints_the_three_tables():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_ported.py"), "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("Command: `python benchmarks/bench_ported.py --quick`")
    assert "cores" in out.splitlines()[1]
    assert out.count("\n### ") == 3
    # kernel_initializer="sklearn" reproduces the user guide's L-BFGS example.
    assert "| ours, sklearn | 2 of 3 | [1 0], 15 |" in out
    assert "| sklearn | 2 of 3 | [1 0], 15 |" in out
