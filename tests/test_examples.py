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


def _run_plot(script, *args, cwd):
    """Run a plotting example writing ``figure.png`` in ``cwd``; check the figure."""
    pytest.importorskip("matplotlib")
    out = _run(script, *args, "--output", "figure.png", cwd=cwd)
    assert (cwd / "figure.png").stat().st_size > 10_000
    return out


@pytest.mark.slow
def test_quickstart(tmp_path):
    out = _run("quickstart.py", cwd=tmp_path)
    assert out.count("accuracy") == 3 and out.count("R^2") == 3


def test_plot_vanishing_gradients(tmp_path):
    out = _run_plot("plot_vanishing_gradients.py", "--epochs", "2", cwd=tmp_path)
    assert out.count("grad norm") == 5


def test_plot_callbacks(tmp_path):
    out = _run_plot("plot_callbacks.py", "--epochs", "4", cwd=tmp_path)
    assert out.count("best checkpoint") == 4
    assert "stopped by: max_iter" in out


def test_plot_lr_schedules(tmp_path):
    out = _run_plot("plot_lr_schedules.py", "--epochs", "6", cwd=tmp_path)
    assert out.count("validation log-loss") == 8


def test_plot_lr_finder(tmp_path):
    out = _run_plot("plot_lr_finder.py", "--epochs", "2", "--steps", "60", cwd=tmp_path)
    assert "suggested learning rate" in out and out.count("test accuracy") == 4


def test_plot_mc_dropout(tmp_path):
    out = _run_plot("plot_mc_dropout.py", "--epochs", "5", cwd=tmp_path)
    assert "with 100" in out and "beyond it" in out


def test_plot_transfer_learning(tmp_path):
    out = _run_plot("plot_transfer_learning.py", "--sizes", "10,40", "--seeds", "1",
                    "--epochs", "3", cwd=tmp_path)
    assert out.count("labeled B images") == 2 and "frozen 20 epochs" in out


def test_plot_pretraining(tmp_path):
    out = _run_plot("plot_pretraining.py", "--shares", "0.05", "--seeds", "1",
                    "--pretrain-epochs", "2", cwd=tmp_path)
    assert "autoencoder pretraining" in out and "better in" in out


def test_plot_self_normalization(tmp_path):
    out = _run_plot("plot_self_normalization.py", "--depth", "10", "--epochs", "1", cwd=tmp_path)
    assert out.count("over 10 layers") == 3


def test_plot_dying_relus(tmp_path):
    out = _run_plot("plot_dying_relus.py", "--epochs", "2", cwd=tmp_path)
    assert "dead units per layer" in out and "cannot die" in out


def test_plot_optimizers(tmp_path):
    out = _run_plot("plot_optimizers.py", "--epochs", "2", cwd=tmp_path)
    assert out.count("test accuracy") == 9


def test_plot_regularization(tmp_path):
    out = _run_plot("plot_regularization.py", "--epochs", "3", cwd=tmp_path)
    assert out.count("held-out") == 6
    # max-norm caps every unit's incoming weight norm at 1
    line = next(row for row in out.splitlines() if row.startswith("max-norm"))
    assert float(line.rsplit(" ", 1)[1]) <= 1.0 + 1e-5


def test_plot_gradient_clipping(tmp_path):
    out = _run_plot("plot_gradient_clipping.py", "--epochs", "3", cwd=tmp_path)
    assert out.count("test accuracy") == 3
    # unclipped, this rate diverges; clipped by norm, it does not
    assert "diverged" in out.splitlines()[0] and "diverged" not in out.splitlines()[1]


def test_every_example_has_a_smoke_test():
    tested = {"quickstart.py", "plot_vanishing_gradients.py", "plot_callbacks.py",
              "plot_self_normalization.py", "plot_dying_relus.py",
              "plot_lr_schedules.py", "plot_lr_finder.py", "plot_mc_dropout.py",
              "plot_transfer_learning.py", "plot_pretraining.py", "plot_optimizers.py",
              "plot_regularization.py", "plot_gradient_clipping.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested
