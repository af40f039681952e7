"""The README's example runs as written and prints what it says."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _example_block():
    text = README.read_text()
    section = text.split("## Example", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the README's Example section should hold one python block"
    return blocks[0]


def test_readme_example_is_a_short_pipeline_with_grid_search():
    code = _example_block()
    ast.parse(code)
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 12
    assert "make_pipeline(" in code and "GridSearchCV(" in code
    assert all(len(line) <= 99 for line in lines)


@pytest.mark.slow
def test_readme_example_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", _example_block()], cwd=tmp_path, capture_output=True,
        text=True, timeout=600, env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, result.stderr
    # prints the best parameters and the held-out accuracy
    best, score = result.stdout.strip().rsplit(" ", 1)
    assert "deepmlpclassifier__dropout" in best
    assert float(score) >= 0.93
    assert "ConvergenceWarning" not in result.stderr  # 1cycle runs max_iter on purpose


def test_readme_links_exist():
    root = README.parent
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README.read_text())
    assert len(targets) >= 10
    for target in targets:
        assert (root / target).exists(), target
