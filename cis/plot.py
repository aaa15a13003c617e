"""Figures for people who would rather look than read (matplotlib, optional extra ``plot``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
