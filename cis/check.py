"""``cis check``: predicted vs measured error, per layer, circuit class and term (docs/regimes.md).

Runs a configuration like ``cis run``, measures the three error terms with the instrumented
forward pass (``kernel.decompose``), sets every prediction of ``bounds`` beside them and judges
each line PASS / FAIL, or flags it (OUT-OF-REGIME, LOW-STATS, ZERO: neither pass nor fail).
Exit code 0 when every rigorous bound holds and every in-regime estimate is within its tolerance,
1 otherwise, 2 for bad input.
"""

from __future__ import annotations

from typing import Any

import click

from cis import report
from cis.cli import _guard, network_file_options, network_options
from cis.compare import MIN_SAMPLES, REPLICAS, compare
from cis.paths import writable_figure_path
from kernel import limits

#: footnote of a table with a line marked by ``_verdict``
ASSUMPTION_NOTE = ("*An: derived under assumption An, which this network violates "
                   "(cis check --assumptions shows the measured values)")


def _verdict(line: dict[str, Any]) -> str:
    """A line's verdict, with ``*A1,A4`` appended when assumptions it is derived under fail."""
    bad = line.get("assumptions_violated") or []
    return line["verdict"] if not bad else f"{line['verdict']} *{','.join(bad)}"


def _note(rows: list[list[Any]], column: int = -1) -> str | None:
    return ASSUMPTION_NOTE if any(" *A" in str(r[column]) for r in rows) else None


#: columns of the error terms, shown when the terminal is wide enough (--terms: a table of them)
TERM_COLUMNS = ("pred ovl", "meas ovl", "pred prop", "meas prop", "pred relu", "meas relu")


def check_tables(out: dict[str, Any], terms: bool = False) -> list[Any]:
    """Rich tables of the ``cis check`` JSON; lines derived under a violated assumption are
    marked ``*An`` after their verdict, with a footnote.

    The main table shows layer, class, model, predicted and measured MSE, their ratio and the
    verdict; the error-term columns follow when the terminal is wide enough. ``terms`` adds a
    table of the terms in long form (one line per term), readable at any width."""
    cfg = out["config"]
    head = ", ".join(f"{k}={v}" for k, v in cfg.items())
    rows: list[list[Any]] = []
    brows: list[list[Any]] = []
    trows: list[list[Any]] = []
    for lay in out["layers"]:
        if lay["layer"] == 0:
            continue
        for cls in ("active", "inactive"):
            e = lay[cls]
            if e is None:
                continue
            mt = e["measured_terms"]
            for est in e["estimates"]:
                t = est["terms"]
                rows.append([lay["layer"], cls, est["model"], est["mse"], e["mse"], est["ratio"],
                             _verdict(est), t.get("overlap"), mt["overlap"],
                             t.get("propagation"), mt["propagation"], t.get("relu"), mt["relu"]])
                trows.extend([lay["layer"], cls, est["model"], term, t.get(term), mt[term]]
                             for term in ("overlap", "propagation", "relu"))
            b = e["bound"]
            if b is not None:
                brows.append([lay["layer"], cls, b["kind"], b["value"], b["max_abs"],
                              _verdict(b)])
            brows.append([lay["layer"], cls, "tail (log T)", e["tail_estimate"]["value"],
                          e["max_abs"], _verdict(e["tail_estimate"])])
    cols = ["layer", "class", "model", "pred", "meas", "ratio", "verdict", *TERM_COLUMNS]
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(out["check"]["verdicts"].items()))
    title = f"{head}\npredicted (pred) vs measured (meas) mean-square |eps|^2 ({verdicts})"
    tables = [report.table(title, cols, rows, _note(rows, 6), optional=TERM_COLUMNS),
              report.table("worst case: bound / estimate vs max abs error",
                           ["layer", "class", "kind", "value", "max |err|", "verdict"], brows,
                           _note(brows))]
    if terms:
        tables.append(report.table("error terms: predicted vs measured mean square",
                                   ["layer", "class", "model", "term", "pred", "meas"], trows))
    xrows = [[lay["layer"], cls, q, est["model"], est["mse"], est["measured"], est["ratio"],
              _verdict(est)]
             for lay in out["layers"] if lay.get("task")
             for cls in ("active", "inactive")
             for q in ("x", "on")
             for est in lay["task"][cls].get(f"{q}_estimates", [])]
    if xrows:
        tables.append(report.table(
            "task: predicted vs measured task metrics q (active E|q - q_hat|^2, inactive "
            "E|q_hat|^2)", ["layer", "class", "q", "model", "pred", "meas", "ratio", "verdict"],
            xrows, _note(xrows)))
    return tables


@click.command()
@network_options
@network_file_options
@click.option("--samples", type=int, default=40000, show_default=True,
              help=f"Monte Carlo trajectories of the cavity prediction, per replica "
                   f"(>= {MIN_SAMPLES}; 3 replicas: their spread is the prediction's error)")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="also write a PNG of predicted vs measured MSE per layer (needs matplotlib)")
@click.option("--assumptions", "show_assumptions", is_flag=True,
              help="also report the assumptions A1-A5 (holds / violated / not applicable)")
@click.option("--terms", "show_terms", is_flag=True,
              help="also print the error terms (overlap, propagation, relu) one per line; a "
                   "terminal wide enough shows them as columns of the main table anyway")
@_guard
def check(as_json: bool, samples: int, plot_path: str | None, show_assumptions: bool,
          show_terms: bool, **params: Any) -> None:
    """Predicted vs measured error per layer, class and term; PASS/FAIL/flags."""
    from kernel.validate import integer

    samples = integer("samples", samples, low=MIN_SAMPLES)
    if show_terms and as_json:
        raise click.UsageError("--terms is for the tables; --json always has the terms")
    if plot_path is not None:  # refuse a figure that cannot be written before computing it
        writable_figure_path(plot_path)
    net = params.get("network")  # --load / --save: the sizes are the network's
    d, L, S = ((net.d, net.L, net.S) if net is not None
               else (params.get("d"), params.get("L"), params.get("S")))
    limits.check_cavity(samples, d, L, S, runs=REPLICAS)
    # the assumptions are always checked (lines derived under a violated one are marked);
    # --assumptions adds the full report: JSON key "assumptions", a table after the others
    out, ok = compare(params, samples=samples, assumptions=show_assumptions)
    if plot_path:
        from cis.plot import check_figure

        check_figure(out, plot_path)
    if as_json:
        click.echo(report.dumps(out))
    else:
        report.print_tables(*check_tables(out, show_terms), *report.assumption_tables(out))
        click.echo("PASS" if ok else "FAIL")
    raise click.exceptions.Exit(0 if ok else 1)
