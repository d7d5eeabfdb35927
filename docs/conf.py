"""Sphinx configuration for the difflab documentation."""

import re
from importlib.metadata import version as _version

project = "difflab"
author = "The difflab developers"
copyright = "2026, The difflab developers"
release = _version("diffcore")

extensions = [
    "myst_nb",  # MyST markdown pages and executed notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # Google-style docstrings
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
autosummary_generate = True
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
myst_enable_extensions = ["dollarmath", "colon_fence"]
nb_execution_mode = "cache"  # notebooks run at build time, cached between builds
nb_execution_timeout = 300
nb_execution_raise_on_error = True
exclude_patterns = ["_build", "**.ipynb_checkpoints", "jupyter_execute"]
html_theme = "furo"
html_title = "difflab"
suppress_warnings = ["myst.header"]

_SHAPE_STAR = re.compile(r"(?<![\\*`])\*(?=[A-Z]\b)")


def _escape_shape_stars(app, what, name, obj, options, lines):
    """Docstrings write shapes as ``(B, *S)``; escape the star so reST does not read emphasis."""
    lines[:] = [_SHAPE_STAR.sub(r"\\*", line) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _escape_shape_stars)
