"""Figures for people who would rather look than read (matplotlib, optional extra ``plot``).

``check_figure`` draws one ``cis check``; ``cis plot DIR --kind ...`` draws the results of a
``cis sweep`` (pandas; optional extra ``sweep``). Files only (the Agg backend).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cis import report
from kernel.validate import ConfigError


def _pyplot() -> Any:
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ConfigError(
            "plot needs matplotlib: pip install -e '.[plot]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")  # files only, no screen
    import matplotlib.pyplot as plt

    return plt


def check_figure(out: dict[str, Any], path: str | Path) -> Path:
    """Predicted vs measured mean-square error per layer (``cis check --plot``).

    One panel per circuit class: the measured MSE with its 95% CI, and every model's prediction
    (dashed where the model is used outside its regime). Log scale: errors span decades.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    layers = [lay for lay in out["layers"] if lay["layer"] >= 1]
    for ax, cls in zip(axes, ("active", "inactive"), strict=True):
        xs = [lay["layer"] for lay in layers if lay[cls] is not None]
        stats = [lay[cls] for lay in layers if lay[cls] is not None]
        mse = [s["mse"] for s in stats]
        err = [[max(s["mse"] - s["mse_ci"][0], 0.0) for s in stats],
               [max(s["mse_ci"][1] - s["mse"], 0.0) for s in stats]]
        ax.errorbar(xs, mse, yerr=err, fmt="ko", capsize=3, label="measured (95% CI)", zorder=3)
        models = sorted({e["model"] for s in stats for e in s.get("estimates", [])})
        for model in models:
            pts = [(x, e) for x, s in zip(xs, stats, strict=True) for e in s.get("estimates", [])
                   if e["model"] == model and e.get("mse") is not None]
            if not pts:
                continue
            style = "--" if all(e["verdict"] == "OUT-OF-REGIME" for _, e in pts) else "-"
            ax.plot([x for x, _ in pts], [e["mse"] for _, e in pts], style, marker=".",
                    label=model)
        ax.set_yscale("log")
        ax.set_xlabel("layer")
        ax.set_xticks(xs)
        ax.set_title(f"{cls} circuits")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("mean-square error |eps|^2")
    cfg = out["config"]
    fig.suptitle(", ".join(f"{k}={cfg[k]}" for k in ("D", "d", "S", "T", "L", "z", "family",
                                                      "bias", "variant")), fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --- figures of a sweep (``cis plot DIR --kind ...``) -------------------------------------

KINDS = ("layers", "scatter", "capacity", "depth", "false-activation", "terms")

#: columns that describe a point but never separate curves: the seed (averaged over), the
#: point's identity and the sweep's bookkeeping
_NOT_GROUPS = {"seed", "key", "point", "mode", "version", "seconds", "finished"}

_MODEL_STYLE = {"cavity": "--", "leading": ":", "sketch": "-.", "layer1_exact": (0, (1, 3))}


def load_results(directory: str | Path) -> Any:
    """The consolidated table of a sweep (``DIR/results.parquet``) as a DataFrame."""
    import pandas as pd

    path = Path(directory) / "results.parquet"
    if not path.is_file():
        raise ConfigError(f"{str(path)!r} not found: run `cis sweep GRID --out DIR` first")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow's errors of a corrupt or foreign file: bad input
        raise ConfigError(f"{str(path)!r} is not a readable results table "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                          ) from None
    if frame.empty:
        raise ConfigError(f"{str(path)!r} holds no finished points")
    return frame


def _varying(frame: Any, exclude: tuple[str, ...] = ()) -> list[str]:
    """Parameters that take more than one value in the sweep (the curves of a figure)."""
    from cis.experiment import PARAMS

    mode = str(frame["mode"].iloc[0])
    return [c for c in PARAMS[mode] if c in frame and c not in _NOT_GROUPS
            and c not in exclude and frame[c].nunique(dropna=False) > 1]


def _label(keys: list[str], values: Any) -> str:
    values = values if isinstance(values, tuple) else (values,)
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values)) or "all"


def _groups(frame: Any, keys: list[str]) -> Any:
    return frame.groupby(keys, sort=True) if keys else [((), frame)]


def _need(frame: Any, mode: str, kind: str) -> None:
    if str(frame["mode"].iloc[0]) != mode:
        raise ConfigError(f"kind={kind!r} needs a sweep in {mode} mode, "
                          f"not {frame['mode'].iloc[0]}")


def _save(fig: Any, plt: Any, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _per_layer_mean(frame: Any, keys: list[str], cols: list[str]) -> Any:
    """Mean over seeds of ``cols`` per (group, class, layer)."""
    return frame.groupby([*keys, "class", "layer"], sort=True)[cols].mean().reset_index()


def layers_figure(frame: Any, path: str | Path) -> Path:
    """Measured MSE per layer with its 95% CI band and the main prediction dashed (one panel per
    circuit class), and the worst case: the largest absolute read-out error per layer (active
    solid, inactive dotted). One colour per combination of the swept parameters; MSE averaged
    over seeds, worst case the maximum over seeds."""
    _need(frame, "check", "layers")
    plt = _pyplot()
    keys = _varying(frame)
    mean = _per_layer_mean(frame, keys, ["mse", "mse_lo", "mse_hi", "pred_mse"])
    worst = frame.groupby([*keys, "class", "layer"], sort=True)["max_abs"].max().reset_index()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for ax, cls in zip(axes[:2], ("active", "inactive"), strict=True):
        sub = mean[mean["class"] == cls]
        for i, (value, g) in enumerate(_groups(sub, keys)):
            colour = f"C{i % 10}"
            g = g.where(g["mse"] > 0)  # a dead signal (error exactly 0) has no place on log axes
            ax.plot(g["layer"], g["mse"], "o-", color=colour, label=_label(keys, value))
            ax.fill_between(g["layer"], g["mse_lo"].where(g["mse_lo"] > 0, g["mse"]),
                            g["mse_hi"], color=colour, alpha=0.2)
            ax.plot(g["layer"], g["pred_mse"].where(g["pred_mse"] > 0), "--", color=colour)
        ax.set_yscale("log")
        ax.set_xlabel("layer")
        ax.set_ylabel("mean-square error |eps|^2")
        ax.set_title(f"{cls}: measured (band: 95% CI), predicted dashed", fontsize=9)
        ax.grid(alpha=0.3)
    for i, (value, g) in enumerate(_groups(worst, keys)):
        for cls, style in (("active", "o-"), ("inactive", "s:")):
            s = g[g["class"] == cls]
            axes[2].plot(s["layer"], s["max_abs"], style, color=f"C{i % 10}",
                         label=f"{_label(keys, value)} ({cls})")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("layer")
    axes[2].set_ylabel("max |read-out error|")
    axes[2].set_title("worst case over samples and circuits", fontsize=9)
    axes[2].grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=6)
    return _save(fig, plt, path)


def scatter_figure(frame: Any, path: str | Path) -> Path:
    """Every model's predicted MSE against the measured one (all points, layers and classes), on
    log-log axes with the line y = x."""
    _need(frame, "check", "scatter")
    plt = _pyplot()
    models = sorted(c[len("model_"):] for c in frame if c.startswith("model_"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 5), sharex=True, sharey=True)
    lo, hi = float(frame["mse"][frame["mse"] > 0].min()), float(frame["mse"].max())
    for ax, cls in zip(axes, ("active", "inactive"), strict=True):
        sub = frame[frame["class"] == cls]
        for i, model in enumerate(models):
            pts = sub[sub[f"model_{model}"].notna() & (sub[f"model_{model}"] > 0)
                      & (sub["mse"] > 0)]
            if pts.empty:
                continue
            x, y = pts["mse"].astype(float), pts[f"model_{model}"].astype(float)
            ax.errorbar(x, y, xerr=[(x - pts["mse_lo"].astype(float)).clip(lower=0),
                                    (pts["mse_hi"].astype(float) - x).clip(lower=0)],
                        fmt="o", ms=4, color=f"C{i}", alpha=0.7, label=model)
            lo, hi = min(lo, float(y.min())), max(hi, float(y.max()))
        ax.plot([lo, hi], [lo, hi], "k-", lw=1, label="y = x")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("measured MSE (bars: 95% CI)")
        ax.set_title(f"{cls} circuits")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("predicted MSE")
    return _save(fig, plt, path)


def fit_exponent(frame: Any, x: str, y: str, *, resamples: int = 2000,
                 seed: int = 0) -> dict[str, float]:
    """Least-squares slope of log y against log x, with a 95% bootstrap interval over seeds.

    The bootstrap redraws, at every x, as many seeds as were measured (with replacement) and
    refits: the interval reflects the spread between networks drawn with different seeds.
    Rows with y <= 0 are left out. Returns ``alpha``, ``lo``, ``hi`` and the number of rows
    ``n``; NaN when fewer than two distinct x remain.

    >>> import pandas as pd
    >>> f = pd.DataFrame({"D": [1, 2, 4, 1, 2, 4], "T": [3, 12, 48, 3, 12, 48], "seed": [0] * 3
    ...                   + [1] * 3})
    >>> {k: round(v, 6) for k, v in fit_exponent(f, "D", "T").items()}
    {'alpha': 2.0, 'lo': 2.0, 'hi': 2.0, 'n': 6}
    """
    import numpy as np

    data = frame[(frame[y] > 0) & (frame[x] > 0)]
    if data[x].nunique() < 2:
        return {"alpha": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": len(data)}
    lx, ly = np.log(data[x].to_numpy(float)), np.log(data[y].to_numpy(float))
    alpha = float(np.polyfit(lx, ly, 1)[0])
    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero(data[x].to_numpy() == v) for v in np.unique(data[x].to_numpy())]
    boot = np.empty(resamples)
    for i in range(resamples):
        idx = np.concatenate([rng.choice(s, size=s.size) for s in strata])
        boot[i] = np.polyfit(lx[idx], ly[idx], 1)[0]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"alpha": alpha, "lo": float(lo), "hi": float(hi), "n": int(len(data))}


#: the capacities a capacity sweep records: column -> legend name and line style
CAPACITY_SERIES = {"T_star": ("measured", "-"), "T_cavity": ("cavity", "--"),
                   "T_post": ("post", ":")}


def capacity_fits(frame: Any, x: str = "D") -> Any:
    """Fitted exponents of T* (measured, cavity, post) against ``x`` per combination of the other
    swept parameters. Points where the design's T_max binds (``capped``) are left out of every
    fit (T_max, not the error, sets them). One row per (group, series)."""
    import pandas as pd

    keys = _varying(frame, exclude=(x,))
    rows = []
    for value, g in _groups(frame, keys):
        free = g[~g["capped"].astype(bool)]
        for col, (name, _) in CAPACITY_SERIES.items():
            if col not in free or free[col].isna().all():
                continue
            sub = free[free[col] < free["T_max"]] if col != "T_star" else free
            fit = fit_exponent(sub, x, col)
            rows.append({**dict(zip(keys, value if isinstance(value, tuple) else (value,))),
                         "series": name, **fit,
                         "capped_points": int(g["capped"].astype(bool).sum())})
    return pd.DataFrame(rows)


def _fixed_title(frame: Any) -> str:
    """The budget's setting of a capacity sweep that varies none of it (depth, budget,
    metric)."""
    return ", ".join(f"{k}={frame[k].iloc[0]}" for k in ("L", "budget", "fa_limit", "metric")
                     if k in frame and not (k == "fa_limit" and frame[k].iloc[0] >= 1.0))


def capacity_figure(frame: Any, path: str | Path, x: str = "D") -> Path:
    """T* against ``x`` (default D) on log-log axes: measured points (mean over seeds, bars: the
    range over seeds) with the fitted power law, the cavity's (dashed) and the post's (dotted)
    answers where the sweep recorded them. One panel per (L, budget, fa_limit, metric), one
    colour per other swept parameter (e.g. the construction)."""
    _need(frame, "capacity", "capacity")
    if x not in frame:
        raise ConfigError(f"x={x!r} is not a column of the results")
    import numpy as np

    plt = _pyplot()
    panel_keys: list[str] = [k for k in ("L", "budget", "fa_limit", "metric")
                             if k in _varying(frame, (x,))]
    series = [c for c in CAPACITY_SERIES if c in frame]  # T_cavity only if the cavity ran
    keys = [k for k in _varying(frame, (x,)) if k not in panel_keys]
    panels = list(_groups(frame, panel_keys))
    fits = capacity_fits(frame, x)
    ncol = min(len(panels), 2)
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.5 * ncol, 4.8 * nrow), squeeze=False)
    logx = bool((frame[x] > 0).all())
    for ax, (pvalue, pframe) in zip(axes.flat, panels):
        for i, (value, g) in enumerate(_groups(pframe, keys)):
            colour = f"C{i % 10}"
            stats = g.groupby(x)[series].agg(["mean", "min", "max"])
            xs = stats.index.to_numpy(float)
            m = stats[("T_star", "mean")]
            ax.errorbar(xs, m, yerr=[m - stats[("T_star", "min")], stats[("T_star", "max")] - m],
                        fmt="o", color=colour, capsize=3)
            sel = np.ones(len(fits), bool)
            for k, v in zip(panel_keys + keys,
                            (pvalue if isinstance(pvalue, tuple) else (pvalue,))
                            + (value if isinstance(value, tuple) else (value,))):
                if k in fits:
                    sel &= (fits[k] == v).to_numpy()
            label = _label(keys, value)
            mfit = fits[sel & (fits["series"] == "measured").to_numpy()] if len(fits) else fits
            if logx and len(mfit) and np.isfinite(mfit["alpha"].iloc[0]):
                f = mfit.iloc[0]
                free = g[~g["capped"].astype(bool)]
                c = np.exp(np.mean(np.log(free["T_star"]) - f["alpha"] * np.log(free[x])))
                ax.plot(xs, c * xs ** f["alpha"], "-", color=colour)
                label += f": alpha={f['alpha']:.2f} [{f['lo']:.2f}, {f['hi']:.2f}]"
            elif g["capped"].astype(bool).all():
                label += ": T* = T_max (capped) everywhere"
            ax.plot([], [], "o-", color=colour, label=label)
            for col in series[1:]:
                if stats[(col, "mean")].notna().any():
                    ax.plot(xs, stats[(col, "mean")], CAPACITY_SERIES[col][1], color=colour,
                            alpha=0.8)
        tmax = pframe.groupby(x)["T_max"].first()
        ax.plot(tmax.index, tmax.to_numpy(), "k-", lw=0.8, alpha=0.5, label="T_max (design)")
        for col in series[1:]:
            name = CAPACITY_SERIES[col][0]
            if col == "T_post" and "metric" in pframe and (pframe["metric"] == "mse_x").all():
                name = "post (the follow-up's MSE_x formula)"
            ax.plot([], [], "k" + CAPACITY_SERIES[col][1], label=name)
        if logx:
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(x)
        ax.set_ylabel("largest T within budget")
        ax.set_title(_label(panel_keys, pvalue) if panel_keys else _fixed_title(frame),
                     fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    return _save(fig, plt, path)


def depth_figure(frame: Any, path: str | Path) -> Path:
    """MSE against layer for both classes (log scale: a straight line is geometric growth),
    measured (solid) against the cavity (dashed) and the post's leading order (dotted), and the
    per-layer growth factor MSE(l) / MSE(l-1) of the inactive class, measured against the
    cavity's."""
    _need(frame, "check", "depth")
    import numpy as np

    plt = _pyplot()
    keys = _varying(frame, exclude=("L",))
    cols = ["mse"] + [c for c in ("model_cavity", "model_leading") if c in frame]
    mean = _per_layer_mean(frame, keys, cols)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for i, (value, g) in enumerate(_groups(mean, keys)):
        colour = f"C{i % 10}"
        for ax, cls in zip(axes[:2], ("active", "inactive"), strict=True):
            s = g[g["class"] == cls]
            ax.plot(s["layer"], s["mse"], "o-", color=colour, label=_label(keys, value))
            if "model_cavity" in s:
                ax.plot(s["layer"], s["model_cavity"], "--", color=colour)
            if "model_leading" in s:
                ax.plot(s["layer"], s["model_leading"], ":", color=colour)
        s = g[g["class"] == "inactive"].sort_values("layer")
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 once the signal has died
            growth = s["mse"].to_numpy() / s["mse"].shift(1).to_numpy()
            axes[2].plot(s["layer"], growth, "o-", color=colour, label=_label(keys, value))
            if "model_cavity" in s:
                cav = s["model_cavity"].to_numpy() / s["model_cavity"].shift(1).to_numpy()
                axes[2].plot(s["layer"], cav, "--", color=colour)
    for ax, title in zip(axes, ("active MSE", "inactive MSE", "inactive growth per layer")):
        ax.set_xlabel("layer")
        ax.set_title(f"{title} (measured solid, cavity dashed, post dotted)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    axes[2].axhline(1.0, color="k", lw=0.8)
    axes[2].set_ylabel("MSE(l) / MSE(l-1)")
    axes[0].set_ylabel("mean-square error |eps|^2")
    axes[0].legend(fontsize=7)
    return _save(fig, plt, path)


def false_activation_figure(frame: Any, path: str | Path, x: str = "bias") -> Path:
    """Inactive MSE and false-activation rate against ``x`` (default the bias), one line per
    layer (and per other swept parameter), seeds averaged."""
    _need(frame, "check", "false-activation")
    if x not in frame:
        raise ConfigError(f"x={x!r} is not a column of the results")
    plt = _pyplot()
    keys = _varying(frame, exclude=(x,))
    sub = frame[frame["class"] == "inactive"]
    mean = sub.groupby([*keys, "layer", x], sort=True)[["mse", "false_activation_rate"]].mean()
    mean = mean.reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for i, (value, g) in enumerate(_groups(mean, [*keys, "layer"])):
        values = value if isinstance(value, tuple) else (value,)
        label = _label([*keys, "layer"], values)
        axes[0].plot(g[x], g["mse"], "o-", color=f"C{i % 10}", label=label)
        axes[1].plot(g[x], g["false_activation_rate"], "o-", color=f"C{i % 10}", label=label)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("inactive MSE")
    axes[1].set_ylabel("false-activation rate")
    for ax in axes:
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    return _save(fig, plt, path)


def terms_figure(frame: Any, path: str | Path) -> Path:
    """The three error terms (overlap, propagation, ReLU) per layer, measured (solid) against
    the main prediction (dashed), for both classes; seeds averaged."""
    _need(frame, "check", "terms")
    plt = _pyplot()
    terms = ("overlap", "propagation", "relu")
    keys = _varying(frame)
    cols = [f"{w}_{t}" for t in terms for w in ("meas", "pred")]
    mean = _per_layer_mean(frame, keys, cols)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), sharex=True)
    for row, cls in enumerate(("active", "inactive")):
        sub = mean[mean["class"] == cls]
        for col, term in enumerate(terms):
            ax = axes[row, col]
            for i, (value, g) in enumerate(_groups(sub, keys)):
                colour = f"C{i % 10}"
                ax.plot(g["layer"], g[f"meas_{term}"], "o-", color=colour,
                        label=_label(keys, value))
                ax.plot(g["layer"], g[f"pred_{term}"], "--", color=colour)
            if (sub[f"meas_{term}"] > 0).any():
                ax.set_yscale("log")
            ax.set_title(f"{cls}: {term} (measured solid, predicted dashed)", fontsize=9)
            ax.grid(alpha=0.3)
            ax.set_xlabel("layer")
    axes[0, 0].legend(fontsize=7)
    return _save(fig, plt, path)


def sweep_figure(directory: str | Path, kind: str, path: str | Path,
                 x: str | None = None) -> Path:
    """Draw one kind of figure from the results of ``cis sweep`` in ``directory``."""
    from kernel.validate import choice

    kind = choice("kind", kind, KINDS)
    frame = load_results(directory)
    if kind == "capacity":
        return capacity_figure(frame, path, x or "D")
    if kind == "false-activation":
        return false_activation_figure(frame, path, x or "bias")
    draw = {"layers": layers_figure, "scatter": scatter_figure, "depth": depth_figure,
            "terms": terms_figure}[kind]
    return draw(frame, path)


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--kind", required=True, type=click.Choice(KINDS),
              help="layers: MSE per layer with CI bands; scatter: predicted vs measured; "
                   "capacity: T* vs D with fitted exponents; depth: MSE and growth per layer; "
                   "false-activation: inactive error vs bias; terms: the three error terms")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="the PNG to write")
@click.option("--x", "x", default=None,
              help="x axis of capacity (default D) and false-activation (default bias)")
def plot(directory: str, kind: str, out: str, x: str | None) -> None:
    """Draw a figure from the results of ``cis sweep`` in DIRECTORY (capacity: also prints the
    fitted exponents of T* with 95% bootstrap intervals over seeds)."""
    from cis.cli import _guard  # at call time: cis.cli imports this module to register it

    _guard(_draw_and_report)(directory, kind, out, x)


#: the kinds of figure whose x axis --x chooses
X_KINDS = ("capacity", "false-activation")


def _draw_and_report(directory: str, kind: str, out: str, x: str | None) -> None:
    from cis.paths import writable_figure_path

    if x is not None and kind not in X_KINDS:
        raise ConfigError(f"--x is not used by --kind {kind} (only by {', '.join(X_KINDS)}); "
                          "leave it out")
    out = str(writable_figure_path(out, option="--out"))  # before drawing
    sweep_figure(directory, kind, out, x)
    if kind == "capacity":
        frame = load_results(directory)
        fits = capacity_fits(frame, x or "D")
        if len(fits) and bool((frame[x or "D"] > 0).all()):  # a power law needs x > 0
            report.print_tables(report.table(f"T* ~ {x or 'D'}^alpha (95% bootstrap over seeds)",
                                             list(fits.columns), fits.values.tolist()))
    click.echo(out, err=True)
