"""The pure-torch engine: the layer plan and everything that interprets it.

Nothing in this subpackage imports scikit-learn or skorch
(``tests/test_engine_layout.py`` checks it); the estimator layer above builds
on it. See ``docs/architecture.md`` for what each module holds.
"""
