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


def _sig2(x: float) -> str:
    """A ratio as the README quotes it: two significant figures."""
    return f"{float(f'{x:.2g}'):g}"


def _range(values: list[float]) -> str:
    lo, hi = _sig2(min(values)), _sig2(max(values))
    return f"{lo}×" if lo == hi else f"{lo}–{hi}×"


def test_the_readme_quotes_the_latest_measurements_of_performance_md():
    # issue 18: the README's speed-ups (16-45x, 4.4-19x, 6 s) had drifted from the measurements
    perf = (ROOT / "docs" / "performance.md").read_text()
    readme = " ".join((ROOT / "README.md").read_text().split())
    head = "| regime, batch | target | auto (run 1 / run 2) |"
    table = perf[perf.index(head):].split("\n\n")[0].splitlines()[2:]  # the latest targets table
    ratios = {}
    for row in table:
        cells = [c.strip() for c in row.strip("|").split("|")]
        ratios[cells[0].split(" (")[0]] = [float(v) for v in re.findall(r"([\d.]+)×", cells[4])]
    assert set(ratios) == {"working", "working, 256", "saturated", "saturated, 256"}, ratios
    assert f"{_range(ratios['working'])} faster than a dense float64" in readme
    assert f"({_range(ratios['saturated'])} saturated)" in readme
    assert f"256 runs {_range(ratios['working, 256'])} faster than dense float32" in readme
    assert f"and {_range(ratios['saturated, 256'])} faster than dense float64" in readme
    # the million circuits: the README's command is the measured one, with its time and memory
    command = re.search(r"`(cis run [^`]*--T 1000000[^`]*)`", readme).group(1)
    row = next(r for r in perf.splitlines() if f"`{command}`" in r)
    seconds, rss = re.search(r"\| ([\d.]+) s \| ([\d.]+) GiB \|", row).groups()
    assert f"in about {_sig2(float(seconds))} s and {_sig2(float(rss))} GiB" in readme


def test_the_readme_million_circuit_command_is_accepted():
    # it was refused with the README's own parameters (the default S = 6 has T_max < 10^6)
    from kernel.network import NetworkConfig

    readme = " ".join((ROOT / "README.md").read_text().split())
    args = re.search(r"`cis run ([^`]*--T 1000000[^`]*)`", readme).group(1).split()
    opts = dict(zip(args[::2], args[1::2], strict=True))
    cfg = NetworkConfig(D=int(opts["--D"]), S=int(opts["--S"]), T=int(opts["--T"]),
                        L=int(opts["--L"])).validated()  # raises if the design cannot hold T
    assert cfg.T == 10**6
