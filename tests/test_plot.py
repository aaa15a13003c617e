"""``cis check --plot``: a PNG of predicted vs measured MSE per layer."""

from __future__ import annotations

import pytest

from cis.cli import main


def test_check_writes_a_png(tmp_path, capsys):
    path = tmp_path / "check.png"
    with pytest.raises(SystemExit) as exc:
        main(["check", "--D", "400", "--S", "5", "--T", "60", "--L", "2", "--batch", "50",
              "--samples", "1000", "--json", "--plot", str(path)])
    assert exc.value.code in (0, 1)  # the verdict is not what this test is about
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


# --- figures of a sweep (cis plot DIR --kind ...) ----------------------------------------

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

PNG = b"\x89PNG\r\n\x1a\n"


def _results(tmp_path_factory, name: str, grid: dict) -> str:
    """A small results table written as ``cis sweep`` writes it (points run in-process)."""
    from cis.experiment import parse_grid, run_point

    _, points = parse_grid(grid)
    rows = [r for p in points for r in run_point(p)]
    out = tmp_path_factory.mktemp(name)
    pd.DataFrame(rows).to_parquet(out / "results.parquet", index=False)
    return str(out)


@pytest.fixture(scope="module")
def check_dir(tmp_path_factory):
    return _results(tmp_path_factory, "check", {
        "mode": "check",
        "fixed": {"D": 400, "S": 5, "T": 60, "L": 3, "batch": 60, "samples": 1000},
        "cross": {"bias": [0.0, -0.1], "seed": [0, 1]}})


@pytest.fixture(scope="module")
def capacity_dir(tmp_path_factory):
    return _results(tmp_path_factory, "capacity", {
        "mode": "capacity",
        "fixed": {"L": 3, "batch": 200, "budget": 0.03, "rtol": 0.2, "cavity_samples": 500},
        "cross": {"D": [400, 800, 1200], "seed": [0, 1]}})


@pytest.mark.parametrize("kind", ["layers", "scatter", "depth", "false-activation", "terms"])
def test_each_check_kind_writes_a_png(check_dir, tmp_path, capsys, kind):
    path = tmp_path / f"{kind}.png"
    with pytest.raises(SystemExit) as exc:
        main(["plot", check_dir, "--kind", kind, "--out", str(path)])
    assert exc.value.code == 0, capsys.readouterr().err
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000


def test_capacity_kind_writes_a_png_and_prints_the_fits(capacity_dir, tmp_path, capsys):
    path = tmp_path / "capacity.png"
    with pytest.raises(SystemExit) as exc:
        main(["plot", capacity_dir, "--kind", "capacity", "--out", str(path)])
    assert exc.value.code == 0
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000
    printed = capsys.readouterr().out
    for series in ("measured", "cavity", "post"):
        assert series in printed


@pytest.fixture(scope="module")
def construction_dir(tmp_path_factory):
    return _results(tmp_path_factory, "construction", {
        "mode": "capacity",
        "fixed": {"L": 2, "batch": 100, "budget": 0.1, "rtol": 0.2, "family": "rotation",
                  "metric": "mse_x", "cavity": False},
        "cross": {"D": [400, 800], "construction": ["ris-capped", "cis2"], "seed": [0]}})


def test_capacity_kind_groups_by_construction_without_a_cavity(construction_dir, tmp_path,
                                                               capsys):
    path = tmp_path / "construction.png"
    with pytest.raises(SystemExit) as exc:
        main(["plot", construction_dir, "--kind", "capacity", "--out", str(path)])
    assert exc.value.code == 0, capsys.readouterr().err
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000
    from cis.plot import capacity_fits, load_results

    fits = capacity_fits(load_results(construction_dir))
    assert sorted(set(fits["construction"])) == ["cis2", "ris-capped"]
    assert set(fits["series"]) == {"measured", "post"}  # no cavity column: no cavity fit


def test_capacity_fits_match_a_direct_least_squares_fit(capacity_dir):
    import numpy as np

    from cis.plot import capacity_fits, load_results

    frame = load_results(capacity_dir)
    fits = capacity_fits(frame).set_index("series")
    free = frame[~frame["capped"]]
    slope = np.polyfit(np.log(free["D"]), np.log(free["T_star"]), 1)[0]
    assert fits.loc["measured", "alpha"] == pytest.approx(slope, rel=1e-12)
    assert fits.loc["measured", "lo"] <= slope <= fits.loc["measured", "hi"]


def test_plot_kind_needs_the_right_mode(check_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["plot", check_dir, "--kind", "capacity", "--out", str(tmp_path / "x.png")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "capacity mode" in err


def test_plot_without_results_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["plot", str(tmp_path), "--kind", "layers", "--out", str(tmp_path / "x.png")])
    assert exc.value.code == 2
    assert "cis sweep" in capsys.readouterr().err
