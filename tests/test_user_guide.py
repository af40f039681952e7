"""Every code snippet of the user guide runs, page by page, after the setup block."""

import re
import warnings
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "user_guide"
SETUP = GUIDE / "setup.md"


# Packages of skorch's loggers the snippets show; not in the test extras.
OPTIONAL = {"tensorboard", "mlflow", "wandb", "neptune"}


def _blocks(page):
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


# The guide's pages, and the pages beside it whose snippets run on the same setup.
PAGES = sorted(p for p in GUIDE.glob("*.md") if p != SETUP and _blocks(p)) + [
    GUIDE.parent / "callbacks.md", GUIDE.parent / "diagnostics.md"]


def test_the_guide_has_snippets_and_a_setup_block():
    assert len(_blocks(SETUP)) == 1
    assert len(PAGES) >= 12


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES,
                         ids=lambda p: p.relative_to(GUIDE.parent).with_suffix("").as_posix())
def test_page_snippets_run(page, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)  # snippets that save files write here
    namespace = {"__name__": "__user_guide__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few epochs: ConvergenceWarning is expected
        exec(compile(_blocks(SETUP)[0], str(SETUP), "exec"), namespace)
        for i, block in enumerate(_blocks(page)):
            try:
                exec(compile(block, f"{page.name} block {i + 1}", "exec"), namespace)
            except ModuleNotFoundError as exc:
                if exc.name not in OPTIONAL:
                    raise
                continue  # a logger's package the test extras do not install
            except Exception as exc:  # name the block that failed
                raise AssertionError(f"{page.name}, python block {i + 1} failed: {exc!r}\n"
                                     f"{block}") from exc
    import matplotlib.pyplot as plt

    plt.close("all")
