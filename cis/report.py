"""Rendering: rich tables for people, JSON for machines."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import shutil
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None  # JSON has no NaN/inf
    return x


def dumps(obj: Any) -> str:
    """Strict JSON (NaN/inf become null)."""
    return json.dumps(_jsonable(obj), indent=2, allow_nan=False)


def fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(x)
    if isinstance(x, (float, np.floating)):
        if not math.isfinite(x):
            return "-"
        return f"{x:.{digits}g}"
    return str(x)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
          caption: str | None = None) -> Table:
    """A rich table of ``rows`` (cells through ``fmt``); ``caption``: a footnote below it."""
    t = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for c in columns:
        t.add_column(c, justify="right" if c not in ("class", "property", "result") else "left",
                     overflow="fold")  # a narrow terminal folds a cell, never cuts it short
    for r in rows:
        t.add_row(*[fmt(v) for v in r])
    return t


def progress_console() -> Console:
    """The console of progress bars: stderr (stdout stays clean for tables and JSON)."""
    return Console(stderr=True)


#: the bars drawing now (``stop_progress_bars``)
_LIVE_BARS: set[Progress] = set()


def progress(items: Sequence[Any], description: str) -> Iterable[Any]:
    """Iterate with a transient progress bar on stderr when stderr is a terminal.

    When stderr is not a terminal (a pipe, a file) there is no bar and nothing is written: rich
    would print the bar's last state and end it with an empty line, and stderr is kept to at
    most one line per outcome (``cis.exits``)."""
    console = progress_console()
    if not console.is_terminal:
        return iter(items)
    return _with_bar(items, description, console)


def _with_bar(items: Sequence[Any], description: str, console: Console) -> Iterator[Any]:
    bar = Progress(*Progress.get_default_columns(), console=console, transient=True)
    _LIVE_BARS.add(bar)
    try:
        with bar:
            yield from bar.track(items, description=description)
    finally:
        _LIVE_BARS.discard(bar)


def stop_progress_bars() -> None:
    """Erase the bars still drawing and show the cursor again, now.

    When an exception (Ctrl-C) leaves the loop over ``progress``, the generator that draws the
    bar is closed only when the traceback is freed, after the error line; and after Ctrl-C the
    program ends with ``os._exit``, which never closes it (the terminal would keep a hidden
    cursor). ``cis.exits`` calls this before it writes its line."""
    for bar in list(_LIVE_BARS):
        _LIVE_BARS.discard(bar)
        with contextlib.suppress(Exception):
            bar.stop()


class _Console(Console):
    def on_broken_pipe(self) -> None:  # rich would exit 1; a closed pipe is an environment error
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def print_tables(*tables: Table) -> None:
    # the terminal's width (COLUMNS, else the terminal), 160 when stdout is not a terminal
    console = _Console(width=shutil.get_terminal_size((160, 24)).columns)
    for t in tables:
        console.print(t)


def mean_square_ci_low(low: float | None) -> float | None:
    """Lower end of a confidence interval of a mean square, clipped at 0 (a mean square is
    never negative; the normal interval can reach below 0 when the spread is large)."""
    return low if low is None or not math.isfinite(low) else max(0.0, low)


def run_tables(result: dict[str, Any]) -> list[Table]:
    """Tables of ``cis run``'s JSON object."""
    cfg = result["config"]
    head = ", ".join(f"{k}={v}" for k, v in cfg.items())
    rows = []
    for lay in result["layers"]:
        for cls in ("active", "inactive"):
            s = lay[cls]
            if s is None:
                continue
            rows.append(
                [lay["layer"], cls, s["mse"], mean_square_ci_low(s["mse_ci"][0]), s["mse_ci"][1],
                 s["max_abs"],
                 lay["false_activation_rate"] if cls == "inactive" else None, lay["frac_on"]]
            )
    sec = result["seconds"]
    title = f"{head}\nbuild {sec['build']:.2f} s, forward {sec['forward']:.2f} s"
    cols = ["layer", "class", "mse", "ci lo", "ci hi", "max |err|", "false act.", "frac on"]
    return [table(title, cols, rows), *task_tables(result)]


def assumption_tables(out: dict[str, Any]) -> list[Table]:
    """The table of ``out["assumptions"]`` (``cis check --assumptions``), or none."""
    rows = [[a["name"], a["status"], a["quantity"], a["value"], a["limit"], a["statement"]]
            for a in out.get("assumptions") or ()]
    if not rows:
        return []
    return [table("assumptions", ["name", "status", "quantity", "value", "limit", "statement"],
                  rows)]


def task_tables(result: dict[str, Any]) -> list[Table]:
    """The family's task metrics per layer (e.g. rotation: MSE_x, MSE_on), if it defines any."""
    rows = []
    for lay in result["layers"]:
        task = lay.get("task")
        if not task:
            continue
        for cls in ("active", "inactive"):
            for q, s in task[cls].items():
                what = f"E|{q} - {q}_hat|^2" if cls == "active" else f"E|{q}_hat|^2"
                worst = f"max |{q} - {q}_hat|" if cls == "active" else f"max |{q}_hat|"
                rows.append([lay["layer"], cls, what, s["mse"], s["mse_ci"][0], s["mse_ci"][1],
                             worst, s["max_abs"]])
    if not rows:
        return []
    cols = ["layer", "class", "metric", "value", "ci lo", "ci hi", "worst", "value "]
    return [table("task metrics (read from the read-outs; inactive: a fixed subset of circuits)",
                  cols, rows)]
