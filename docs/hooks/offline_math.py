"""mkdocs hook: bundle MathJax into the site, so formulas render offline (no CDN).

MathJax 3 comes from the ``django-static-mathjax`` package (the MathJax distribution's files as
package data; it needs no Django to be installed), an extra of ``.[docs]``. After the build its
``es5`` directory is copied to ``site/javascripts/mathjax/``, which ``mkdocs.yml`` loads.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

#: where mkdocs.yml's extra_javascript expects the renderer, under the site directory
TARGET = Path("javascripts") / "mathjax"


def mathjax_dir() -> Path:
    """The ``es5`` directory of the installed MathJax distribution."""
    try:
        root = resources.files("mathjax") / "static" / "mathjax" / "es5"
    except ModuleNotFoundError:
        raise PluginError("the docs render math with a bundled MathJax: "
                          "pip install -e '.[docs]' (django-static-mathjax)") from None
    path = Path(str(root))
    if not (path / "tex-mml-chtml.js").is_file():
        raise PluginError(f"MathJax's tex-mml-chtml.js not found under {path}")
    return path


def on_post_build(config: Any, **kwargs: Any) -> None:
    target = Path(config["site_dir"]) / TARGET
    shutil.copytree(mathjax_dir(), target, dirs_exist_ok=True)
