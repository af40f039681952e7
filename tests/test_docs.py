"""The documentation stays in step with the code."""

import re
from pathlib import Path

import pytest

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor, VarianceScaling
from sklearn_deepnet._activations import ACTIVATIONS
from sklearn_deepnet._init import INITIALIZERS
from sklearn_deepnet._losses import REGRESSION_LOSSES
from sklearn_deepnet._optim import SOLVERS
from sklearn_deepnet._schedules import SCHEDULES

ROOT = Path(__file__).resolve().parents[1]
TABLES = {"activation": ACTIVATIONS, "initializer": INITIALIZERS, "solver": SOLVERS,
          "schedule": SCHEDULES}


@pytest.mark.parametrize("cls", [DeepMLPClassifier, DeepMLPRegressor])
def test_every_parameter_is_documented(cls):
    doc = cls.__doc__
    for name in cls().get_params():
        assert re.search(rf"^    {name} : ", doc, re.M), name
    for section in ("Parameters", "Attributes", "See Also", "Examples"):
        assert f"    {section}\n    ---" in doc


@pytest.mark.parametrize("cls", [DeepMLPClassifier, DeepMLPRegressor])
def test_every_public_method_has_a_numpydoc_docstring(cls):
    for name in ("fit", "partial_fit", "predict", "predict_proba", "predict_log_proba"):
        method = getattr(cls, name, None)
        if method is None:
            continue
        doc = method.__doc__
        assert doc and "Parameters\n" in doc and "Returns\n" in doc, name


def test_tables_appear_in_docstrings_and_api_reference():
    api = (ROOT / "docs" / "api.md").read_text()
    doc = DeepMLPClassifier.__doc__
    for kind, table in TABLES.items():
        for key in table:
            assert f'"{key}"' in doc or f"``{key}``" in doc, (kind, key)
            assert f'`"{key}"`' in api, (kind, key)
    for key in REGRESSION_LOSSES:
        assert f"``{key}``" in DeepMLPRegressor.__doc__ and f'`"{key}"`' in api
    for section in ("Parameters\n", "scale : ", "mode : ", "distribution : "):
        assert section in VarianceScaling.__doc__, section


def test_docs_links_and_images_exist():
    for page in (ROOT / "docs").glob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+)\)", page.read_text()):
            assert (page.parent / target).exists(), (page.name, target)


def test_readme_has_exactly_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quickstart", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(lines) == 2
    assert lines[0].endswith("python examples/quickstart.py")
    assert lines[1].endswith("&& python -m pytest")
    assert "README.md" in (ROOT / ".ci" / "run").read_text()


def test_every_test_named_in_the_guarantees_page_exists():
    page = (ROOT / "docs" / "guarantees.md").read_text()
    cited = []
    for line in page.splitlines():
        path = None  # "`tests/a.py::t1`, `::t2`": t2 is in a.py too
        for file, name in re.findall(r"(tests/test_\w+\.py)?::(test_\w+)", line):
            path = file or path
            assert path, (line, name)
            cited.append((path, name))
    assert cited
    for path, name in cited:  # each test exists in the file it is cited with
        assert re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M), (path, name)


@pytest.mark.parametrize("cls", [DeepMLPClassifier, DeepMLPRegressor])
def test_every_parameter_is_in_the_api_reference(cls):
    api = (ROOT / "docs" / "api.md").read_text()
    signature = api.split(f"{cls.__name__}(hidden_layer_sizes=", 1)[1].split("```", 1)[0]
    for name in cls().get_params():
        assert f"| `{name}` |" in api, name
        if name != "hidden_layer_sizes":
            assert re.search(rf"\b{name}=", signature), name
