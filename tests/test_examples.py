"""Smoke tests: every example runs to completion."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script, *args, cwd):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_quickstart(tmp_path):
    out = _run("quickstart.py", cwd=tmp_path)
    assert out.count("accuracy") == 3 and out.count("R^2") == 3


def test_plot_vanishing_gradients(tmp_path):
    pytest.importorskip("matplotlib")
    out = _run("plot_vanishing_gradients.py", "--epochs", "2", "--output", "vg.png",
               cwd=tmp_path)
    assert (tmp_path / "vg.png").stat().st_size > 10_000
    assert out.count("grad norm") == 5


def test_plot_callbacks(tmp_path):
    pytest.importorskip("matplotlib")
    out = _run("plot_callbacks.py", "--epochs", "4", "--output", "cb.png", cwd=tmp_path)
    assert (tmp_path / "cb.png").stat().st_size > 10_000
    assert out.count("best checkpoint") == 4
    assert "stopped by: max_iter" in out


def test_every_example_has_a_smoke_test():
    tested = {"quickstart.py", "plot_vanishing_gradients.py", "plot_callbacks.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested
