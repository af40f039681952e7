"""Sphinx configuration: Markdown pages (myst), numpydoc API reference, executed gallery.

Build (offline, warnings as errors), from the repository root::

    DEEPNET_DOCS_SMALL=1 python -m sphinx -W --keep-going -b html docs docs/_build/html

``DEEPNET_DOCS_SMALL=1`` runs the gallery's examples with the small arguments of
their smoke tests (seconds each); without it they run at full size (minutes).
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import sklearn_deepnet  # noqa: E402

project = "sklearn-deepnet"
author = "the sklearn-deepnet developers"
copyright = "the sklearn-deepnet developers"  # noqa: A001
release = version = sklearn_deepnet.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "deepnet_docs",  # docs/_ext: the tables directive, links to gallery pages
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "README.md", "auto_examples/*.ipynb", "auto_examples/*.py"]

# Nothing is fetched at build time.
intersphinx_mapping = {}

# Markdown: GitHub-style anchors for "page.md#a-heading" links.
myst_heading_anchors = 3

# API reference: one page per public object (docs/gen_modules/, generated).
autosummary_generate = True
autodoc_typehints = "none"  # the numpydoc docstrings carry the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False  # the class template lists the methods
numpydoc_class_members_toctree = False

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # plot_*.py are executed; quickstart.py (1-2 minutes, no figure) is shown only.
    "filename_pattern": r"/plot_",
    # Small arguments under DEEPNET_DOCS_SMALL=1, and --output into a temporary
    # directory, so that the build writes nothing into examples/.
    "reset_argv": "deepnet_docs.reset_argv",
    "within_subsection_order": "deepnet_docs.ChapterOrder",
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
}

html_theme = "furo"
html_title = f"sklearn-deepnet {release}"
html_static_path = []
html_show_sourcelink = False
