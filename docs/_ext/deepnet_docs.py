"""Local Sphinx extension for the sklearn-deepnet documentation.

- ``deepnet-table`` directive: renders one of the package's lookup tables
  (activations, initializers, solvers, schedules, regression losses) straight
  from the code, so the reference cannot drift from it. ``table_rows(name)``
  gives the header and rows without Sphinx (the tests use it).
- Links from a Markdown page to ``examples/<name>.py`` (which GitHub shows as
  the source file) become links to that example's executed gallery page.
- ``reset_argv`` and ``ChapterOrder`` for sphinx-gallery (named as strings in
  ``conf.py``, so that the configuration stays picklable).

docutils and Sphinx are imported only by ``setup``: the rest of this module
imports without them.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from sklearn_deepnet._engine.activations import ACTIVATIONS
from sklearn_deepnet._engine.init import _AUTO, INITIALIZERS, SklearnUniform
from sklearn_deepnet._engine.losses import REGRESSION_LOSSES
from sklearn_deepnet._engine.optim import _DEFAULT_WEIGHT_DECAY, SOLVERS
from sklearn_deepnet._schedules import SCHEDULES

# ---------------------------------------------------------------------------
# Tables. A cell is a str (plain text) or a ``Code`` (rendered as literal).


class Code(str):
    """A table cell rendered as inline code."""


def _quoted(name):
    return Code(f'"{name}"')


def _value(value):
    if isinstance(value, float) and not value.is_integer() and len(repr(value)) > 8:
        return Code(f"{value:.4g}")
    if isinstance(value, tuple):
        return Code("(" + ", ".join(str(_value(v)) for v in value) + ")")
    return Code(repr(value))


def _codes(names):
    return [Code(n) for n in names] if names else "—"


def _aliases(table, name):
    return [other for other, row in table.items() if row is table[name] and other != name]


def _activation_rows():
    rows = []
    for name, row in ACTIVATIONS.items():
        summary = row.summary
        aliases = _aliases(ACTIVATIONS, name)
        if aliases:
            summary += " (alias of " + ", ".join(f'"{a}"' for a in aliases) + ")"
        rows.append([
            _quoted(name), summary, row.alpha_doc or "—",
            _value(row.default_alpha) if row.alpha_doc else "—",
            _quoted(_AUTO[row.init]),
        ])
    return (["activation", "Summary", "activation_alpha sets", "Default activation_alpha",
             '"auto" initializer'], rows)


def _initializer_rows():
    rows = []
    for name, init in INITIALIZERS.items():
        if isinstance(init, SklearnUniform):  # scikit-learn's MLP draws
            rows.append([
                _quoted(name), "—", _quoted(init.mode), _quoted(init.distribution),
                f"``sqrt({init.factor:g} / (fan_in + fan_out))`` bound "
                f"(``{init.logistic_factor:g}`` for logistic) on every layer, the output "
                "layer too; biases drawn from the same range; NumPy's generator from "
                "``random_state``, as ``MLPClassifier``",
            ])
            continue
        rows.append([_quoted(name), _value(init.scale), _quoted(init.mode),
                     _quoted(init.distribution),
                     f"{init.scale:g} / {init.mode}; output layer glorot_uniform; zero biases"])
    return ["kernel_initializer", "scale", "mode", "distribution", "Weights and biases"], rows


def _solver_rows():
    rows = []
    for name, solver in SOLVERS.items():
        reads = (("learning_rate_init",) if solver.stochastic else ()) + solver.uses
        decay = (f"yes ({_DEFAULT_WEIGHT_DECAY.get(name, 0.0)!r})"
                 if solver.decoupled_weight_decay else "no")
        rows.append([_quoted(name), solver.summary, _codes(reads), decay])
    return ["solver", "Summary", "Hyperparameters read", "Decoupled weight_decay (default)"], rows


def _schedule_rows():
    rows = [[_quoted(name), schedule.summary, _codes(schedule.params)]
            for name, schedule in SCHEDULES.items()]
    return ["learning_rate", "Summary", "Reads (besides learning_rate_init)"], rows


def _loss_rows():
    rows = [[_quoted(name), loss.summary,
             "raw output" if loss.out_activation == "identity"
             else Code(f"{loss.out_activation}(raw output)"),
             "yes" if loss.requires_non_negative_y else "no"]
            for name, loss in REGRESSION_LOSSES.items()]
    return ["loss", "Summary", "Prediction", "Requires y >= 0"], rows


#: directive argument -> (the code's table, row builder)
TABLES = {
    "activations": (ACTIVATIONS, _activation_rows),
    "initializers": (INITIALIZERS, _initializer_rows),
    "solvers": (SOLVERS, _solver_rows),
    "schedules": (SCHEDULES, _schedule_rows),
    "regression-losses": (REGRESSION_LOSSES, _loss_rows),
}


def table_rows(name):
    """``(header, rows)`` of the table ``name`` (a key of ``TABLES``)."""
    return TABLES[name][1]()


def _table_node(name):
    from docutils import nodes

    header, rows = table_rows(name)

    def cell(value):
        entry = nodes.entry()
        para = nodes.paragraph()
        values = value if isinstance(value, list) else [value]
        for i, v in enumerate(values):
            if i:
                para += nodes.Text(", ")
            if isinstance(v, Code):
                para += nodes.literal(v, v)
                continue
            for j, part in enumerate(re.split(r"``(.+?)``", v)):  # ``code`` in summaries
                if part:
                    para += nodes.literal(part, part) if j % 2 else nodes.Text(part)
        entry += para
        return entry

    table = nodes.table(classes=["deepnet-table"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    row = nodes.row()
    for title in header:
        row += cell(title)
    head += row
    group += head
    body = nodes.tbody()
    for values in rows:
        row = nodes.row()
        for value in values:
            row += cell(value)
        body += row
    group += body
    return table


# ---------------------------------------------------------------------------
# Gallery: small arguments, output outside the repository, chapter order.

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: The small arguments of each example, as in tests/test_examples.py.
SMALL_ARGS = {
    "plot_vanishing_gradients.py": ["--epochs", "2"],
    "plot_self_normalization.py": ["--depth", "10", "--epochs", "1"],
    "plot_dying_relus.py": ["--epochs", "2"],
    "plot_gradient_clipping.py": ["--epochs", "3"],
    "plot_transfer_learning.py": ["--sizes", "10,40", "--seeds", "1", "--epochs", "3"],
    "plot_pretraining.py": ["--shares", "0.05", "--seeds", "1", "--pretrain-epochs", "2"],
    "plot_optimizers.py": ["--epochs", "2"],
    "plot_lr_schedules.py": ["--epochs", "6"],
    "plot_lr_finder.py": ["--epochs", "2", "--steps", "60"],
    "plot_regularization.py": ["--epochs", "3"],
    "plot_mc_dropout.py": ["--epochs", "5"],
    "plot_callbacks.py": ["--epochs", "4"],
}

#: Gallery order: the chapter's, then the quickstart.
ORDER = [*SMALL_ARGS, "quickstart.py"]

_OUTPUT_DIR = []


def small():
    """Whether the examples run at the small size (``DEEPNET_DOCS_SMALL`` set, not 0)."""
    return os.environ.get("DEEPNET_DOCS_SMALL", "0") not in ("", "0")


def output_dir():
    """A temporary directory for the PNGs the examples write; removed at exit."""
    if not _OUTPUT_DIR:
        path = tempfile.mkdtemp(prefix="deepnet-docs-")
        atexit.register(shutil.rmtree, path, True)
        _OUTPUT_DIR.append(Path(path))
    return _OUTPUT_DIR[0]


def reset_argv(gallery_conf, script_vars):
    """The command-line arguments sphinx-gallery runs an example with."""
    name = Path(script_vars["src_file"]).name
    if name not in SMALL_ARGS:  # no options (quickstart.py)
        return []
    args = list(SMALL_ARGS[name]) if small() else []
    return [*args, "--output", str(output_dir() / name.replace(".py", ".png"))]


class ChapterOrder:
    """Sort key for the gallery: the order of ``ORDER``, unknown files last."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        return (ORDER.index(filename) if filename in ORDER else len(ORDER), filename)

    def __repr__(self):
        return "ChapterOrder"


# ---------------------------------------------------------------------------
# Sphinx glue.

_EXAMPLE_LINK = re.compile(r"(?:^|/)examples/([\w-]+)\.py$")


def _data_comment(app, what, name, obj, options, lines):
    """Document a re-exported constant by its ``#:`` comment where it is defined.

    autodoc looks for the comment in the module the name is documented under
    (``sklearn_deepnet``, which only imports it) and otherwise shows the
    docstring of the value's type (``list``).
    """
    if what != "data" or not name.startswith("sklearn_deepnet."):
        return
    from sphinx.pycode import ModuleAnalyzer

    attr = name.rsplit(".", 1)[1]
    for modname, module in sorted(sys.modules.items()):
        if modname.startswith("sklearn_deepnet.") and getattr(module, attr, None) is obj:
            comment = ModuleAnalyzer.for_module(modname).find_attr_docs().get(("", attr))
            if comment:
                lines[:] = list(comment)
                return


def setup(app):
    from docutils import nodes
    from docutils.parsers.rst import Directive
    from sphinx import addnodes
    from sphinx.transforms.post_transforms import SphinxPostTransform
    from sphinx.util import logging

    logger = logging.getLogger(__name__)

    class DeepnetTable(Directive):
        """``deepnet-table NAME``: the lookup table NAME, rendered from the code."""

        required_arguments = 1
        has_content = False

        def run(self):
            name = self.arguments[0]
            if name not in TABLES:
                raise self.error(f"unknown table {name!r}; known: {', '.join(TABLES)}")
            return [_table_node(name)]

    class ExampleLinks(SphinxPostTransform):
        """``[text](../examples/plot_x.py)`` -> the gallery page of plot_x.py.

        On GitHub such a link shows the example's source; in the built site it
        goes to the executed example (myst makes it a download link first).
        """

        default_priority = 5

        def run(self, **kwargs):
            for node in list(self.document.findall(addnodes.download_reference)):
                match = _EXAMPLE_LINK.search(node.get("reftarget", ""))
                if not match:
                    continue
                page = f"auto_examples/{match.group(1)}"
                if page not in self.env.all_docs:
                    logger.warning("no gallery page for %s", node["reftarget"],
                                   location=node)
                    continue
                uri = self.app.builder.get_relative_uri(self.env.docname, page)
                node.replace_self(nodes.reference("", "", *node.children, refuri=uri,
                                                  internal=True, classes=["reference"]))

    app.connect("autodoc-process-docstring", _data_comment)
    app.add_directive("deepnet-table", DeepnetTable)
    app.add_post_transform(ExampleLinks)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
