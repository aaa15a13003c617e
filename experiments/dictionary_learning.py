"""Do standard dictionary methods find circuits in superposition? A load sweep.

For each load T / T_max and each sparsity (exactly z = 2 active circuits per sample, or each
circuit active with probability p = 2 / T, i.e. a Binomial count of mean 2), a network (cis2,
signed circuits) is built, a dataset of its activations A^l is written with random input
magnitudes and directions (``kernel.io.dataset``, ``inputs="random"``), scikit-learn's
``MiniBatchDictionaryLearning`` learns T*d atoms (as many as there are true small-neuron
directions) on A^l of each recorded layer, and ``kernel.score.score_dictionary`` scores the atoms
against the true directions (mean max |cosine|, recall at |cosine| >= 0.9) beside the chance
level of random atoms.

    nice -n 10 python experiments/dictionary_learning.py --out experiments/results
    python experiments/dictionary_learning.py --plot experiments/results/dictionary_learning.csv

Needs scikit-learn (pip install -e ".[baselines]") and matplotlib for the figure.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source tree

from kernel import build_network, capacity  # noqa: E402
from kernel import score as scoring  # noqa: E402
from kernel.io.dataset import read_dataset, write_dataset  # noqa: E402

LOADS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
FIELDS = ["sparsity", "load", "T", "T_max", "D", "S", "L", "layer", "samples", "atoms", "seed",
          "mmcs", "recall_cos", "matched", "chance_mmcs", "mean_active", "frac_on",
          "net_rel_error"]


def learn(X: np.ndarray, atoms: int, alpha: float, seed: int) -> np.ndarray:
    """Atoms (atoms, D) of MiniBatchDictionaryLearning on rows X (non-negative codes)."""
    import warnings

    from sklearn.decomposition import MiniBatchDictionaryLearning
    from sklearn.exceptions import ConvergenceWarning

    dl = MiniBatchDictionaryLearning(
        n_components=atoms, alpha=alpha, batch_size=256, max_iter=30, positive_code=True,
        fit_algorithm="cd", transform_algorithm="lasso_cd", random_state=seed)
    with warnings.catch_warnings():  # the inner lasso's budget is part of the method's setting
        warnings.simplefilter("ignore", ConvergenceWarning)
        dl.fit(X)
    return dl.components_


def run_point(D: int, S: int, L: int, load: float, sparsity: str, samples: int, seed: int,
              alpha: float, layers: tuple[int, ...]) -> list[dict]:
    d = 4
    T_max = capacity(D // d, S)
    T = max(2, round(load * T_max))
    net = build_network(D=D, d=d, S=S, T=T, L=L, seed=seed)
    kw = {"z": 2} if sparsity == "z=2" else {"p": 2.0 / T}
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(net, Path(tmp) / "ds", samples=samples, inputs="random", activations=True,
                      layers=",".join(map(str, layers)), fmt="npz", seed=seed, **kw)
        cols = ["n_active"] + [f"{c}_l{layer}" for layer in layers for c in ("A", "a", "readout")]
        arrays, _ = read_dataset(Path(tmp) / "ds", cols)
    rows = []
    for layer in layers:
        a, readout = arrays[f"a_l{layer}"], arrays[f"readout_l{layer}"]
        X = arrays[f"A_l{layer}"]
        X = X[np.abs(X).sum(1) > 0]  # samples with no active circuit carry nothing to learn
        atoms = learn(X, T * d, alpha, seed)
        s = scoring.score_dictionary(net, layer, atoms)
        rows.append({
            "sparsity": sparsity, "load": load, "T": T, "T_max": T_max, "D": D, "S": S, "L": L,
            "layer": layer, "samples": samples, "atoms": T * d, "seed": seed,
            "mmcs": s.values["mmcs"], "recall_cos": s.values["recall_cos@0.9"],
            "matched": s.values["matched@0.9"], "chance_mmcs": s.chance["mmcs"],
            "mean_active": float(arrays["n_active"].mean()),
            "frac_on": float((arrays[f"A_l{layer}"] > 0).mean()),
            # the network's own accuracy: mean |read-out - a|^2 / mean |a|^2 (active circuits;
            # padding is 0 in both)
            "net_rel_error": float(((readout - a) ** 2).sum() / max((a**2).sum(), 1e-300)),
        })
        print(f"{sparsity:>6} load {load:4.2f} T {T:4d} layer {layer}: mmcs {rows[-1]['mmcs']:.3f}"
              f" recall {rows[-1]['recall_cos']:.3f} (chance mmcs {rows[-1]['chance_mmcs']:.3f});"
              f" network error {rows[-1]['net_rel_error']:.3f}",
              flush=True)
    return rows


def plot(csv_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    layers = sorted({int(r["layer"]) for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for sparsity, style in (("z=2", "-"), ("p=2/T", "--")):
        for layer, color in zip(layers, ("C0", "C1", "C2", "C3")):
            pts = sorted((float(r["load"]), r) for r in rows
                         if r["sparsity"] == sparsity and int(r["layer"]) == layer)
            if not pts:
                continue
            x = [p[0] for p in pts]
            axes[0].plot(x, [float(p[1]["mmcs"]) for p in pts], style, color=color, marker="o",
                         label=f"{sparsity}, layer {layer}")
            axes[1].plot(x, [float(p[1]["recall_cos"]) for p in pts], style, color=color,
                         marker="o", label=f"{sparsity}, layer {layer}")
            axes[0].plot(x, [float(p[1]["chance_mmcs"]) for p in pts], ":", color="gray")
    D = rows[0]["D"]
    axes[0].set(xlabel="load T / T_max", ylabel="mean max |cos| (dotted: random atoms)",
                title=f"dictionary vs true directions (D = {D})", ylim=(0, 1.02))
    axes[1].set(xlabel="load T / T_max", ylabel="recall at |cos| >= 0.9",
                title="true small-neuron directions found", ylim=(-0.02, 1.02))
    n_free = int(rows[0]["D"]) / 4 / int(rows[0]["T_max"])  # T d = D: one atom per dimension
    for ax in axes:
        ax.axvline(n_free, color="k", lw=0.8, alpha=0.5)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("experiments/results"))
    ap.add_argument("--D", type=int, default=240)
    ap.add_argument("--S", type=int, default=4)
    ap.add_argument("--L", type=int, default=3)
    ap.add_argument("--samples", type=int, default=4000)
    ap.add_argument("--alpha", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--loads", default=",".join(map(str, LOADS)))
    ap.add_argument("--layers", default="1,2,3")
    ap.add_argument("--plot", type=Path, default=None, help="only draw the figure of this CSV")
    args = ap.parse_args()
    if args.plot is not None:
        plot(args.plot, args.plot.with_suffix(".png"))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / "dictionary_learning.csv"
    layers = tuple(int(x) for x in args.layers.split(","))
    rows = []
    for sparsity in ("z=2", "p=2/T"):
        for load in (float(x) for x in args.loads.split(",")):
            rows += run_point(args.D, args.S, args.L, load, sparsity, args.samples, args.seed,
                              args.alpha, layers)
            with open(csv_path, "w", newline="") as fh:  # rewritten after every point
                writer = csv.DictWriter(fh, fieldnames=FIELDS)
                writer.writeheader()
                writer.writerows(rows)
    plot(csv_path, csv_path.with_suffix(".png"))


if __name__ == "__main__":
    main()
