"""The documentation stays in step with the code."""

import importlib.util
import re
from pathlib import Path

import pytest

import sklearn_deepnet
import sklearn_deepnet.plot
from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor, VarianceScaling
from sklearn_deepnet._engine.activations import ACTIVATIONS
from sklearn_deepnet._engine.init import INITIALIZERS
from sklearn_deepnet._engine.losses import REGRESSION_LOSSES
from sklearn_deepnet._engine.optim import SOLVERS
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


def _docs_ext():
    """docs/_ext/deepnet_docs.py, the Sphinx extension that renders the tables."""
    spec = importlib.util.spec_from_file_location(
        "deepnet_docs", ROOT / "docs" / "_ext" / "deepnet_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tables_appear_in_docstrings_and_api_reference():
    doc = DeepMLPClassifier.__doc__
    for kind, table in TABLES.items():
        for key in table:
            assert f'"{key}"' in doc or f"``{key}``" in doc, (kind, key)
    for key in REGRESSION_LOSSES:
        assert f"``{key}``" in DeepMLPRegressor.__doc__, key
    for section in ("Parameters\n", "scale : ", "mode : ", "distribution : "):
        assert section in VarianceScaling.__doc__, section
    # The API reference renders every table from the code, with a row per key.
    api = (ROOT / "docs" / "api.md").read_text()
    ext = _docs_ext()
    assert set(ext.TABLES) == {"activations", "initializers", "solvers", "schedules",
                               "regression-losses"}
    for name, (table, _) in ext.TABLES.items():
        assert f"```{{deepnet-table}} {name}\n```" in api, name
        header, rows = ext.table_rows(name)
        assert [row[0] for row in rows] == [f'"{key}"' for key in table], name
        assert all(len(row) == len(header) for row in rows), name
    assert ext.TABLES["activations"][0] is ACTIVATIONS
    assert ext.TABLES["regression-losses"][0] is REGRESSION_LOSSES


def test_table_directive_renders_every_key():
    pytest.importorskip("docutils")
    ext = _docs_ext()
    for name, (table, _) in ext.TABLES.items():
        text = ext._table_node(name).astext()
        for key in table:
            assert f'"{key}"' in text, (name, key)


def _doc_pages():
    skip = {"_build", "auto_examples", "gen_modules"}
    return [page for page in (ROOT / "docs").rglob("*.md")
            if not skip & set(page.relative_to(ROOT / "docs").parts)]


def test_docs_links_and_images_exist():
    pages = _doc_pages()
    assert len(pages) > 20  # the user guide's pages are found too
    for page in pages:
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


def test_every_public_name_is_in_the_api_reference():
    """The reference is generated from the docstrings; each public name has an entry."""
    api = (ROOT / "docs" / "api.md").read_text()
    entries = re.findall(r"^   ([\w.]+)$", api, re.M)  # autosummary entries
    public = [n for n in sklearn_deepnet.__all__ if n not in ("__version__", "TRUSTED_TYPES")]
    public += [f"plot.{n}" for n in sklearn_deepnet.plot.__all__]
    assert sorted(entries) == sorted(public)
    assert ".. autodata:: TRUSTED_TYPES" in api


def test_every_example_has_small_docs_arguments():
    ext = _docs_ext()
    plots = {p.name for p in (ROOT / "examples").glob("plot_*.py")}
    assert set(ext.SMALL_ARGS) == plots
    assert set(ext.ORDER) == {p.name for p in (ROOT / "examples").glob("*.py")}


def test_no_merge_conflict_markers_in_the_repository():
    # A merge once committed its markers into CHANGELOG.md.
    root = Path(__file__).resolve().parents[1]
    markers = ("<<<<<<< ", ">>>>>>> ")
    found = []
    for path in root.rglob("*"):
        if (path.suffix not in {".py", ".md", ".rst", ".toml", ".txt", ".cfg", ".yml"}
                or any(part.startswith(".") or part in {"_build", "auto_examples",
                                                        "gen_modules"}
                       for part in path.relative_to(root).parts)):
            continue
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if line.startswith(markers):
                found.append(f"{path.relative_to(root)}:{i}")
    assert not found, found
