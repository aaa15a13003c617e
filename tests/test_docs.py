"""The documentation site: built offline (math rendered by a bundled MathJax, no external
script or stylesheet), the figures on their pages; sources cite no file users do not have."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mathjax")  # django-static-mathjax, of the docs extra
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d",
                           str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={"NO_MKDOCS_2_WARNING": "1", **__import__("os").environ})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def test_the_site_loads_no_external_script_or_stylesheet(site):
    pages = list(site.rglob("*.html"))
    assert len(pages) > 10
    external = re.compile(r"<(script|link)\b[^>]*(src|href)=\"(https?:)?//", re.I)
    offenders = [str(p.relative_to(site)) for p in pages if external.search(p.read_text())]
    assert not offenders, offenders


def test_math_is_rendered_by_the_bundled_mathjax(site):
    assert (site / "javascripts" / "mathjax" / "tex-mml-chtml.js").stat().st_size > 100_000
    fonts = list((site / "javascripts" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff"))
    assert fonts, "MathJax's fonts are bundled too"
    page = (site / "construction" / "index.html").read_text()
    assert 'class="arithmatex"' in page  # formulas are marked for MathJax ...
    assert 'src="../javascripts/mathjax/tex-mml-chtml.js"' in page  # ... which is loaded locally


def test_every_figure_is_shown_on_a_docs_page(site):
    figures = sorted(p.name for p in (ROOT / "docs" / "figures").glob("*.png"))
    assert figures
    shown = set()
    for page in site.rglob("*.html"):
        shown.update(re.findall(r"<img[^>]*src=\"[^\"]*figures/([^\"/]+\.png)\"", page.read_text()))
    assert set(figures) <= shown, sorted(set(figures) - shown)
    assert all((site / "figures" / f).is_file() for f in figures)


def test_no_source_cites_the_private_style_guide():
    cites = re.compile(r"STYLE (item )?\d+")
    hits = [str(p.relative_to(ROOT)) for d in ("cis", "kernel", "bounds", "properties", "tests",
                                               "docs")
            for p in (ROOT / d).rglob("*.py") if cites.search(p.read_text())]
    hits += [str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")
             if cites.search(p.read_text())]
    assert not hits, hits
