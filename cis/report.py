"""Rendering: rich tables for people, JSON for machines."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import re
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


def fmt(x: Any, digits: int = 3) -> str:
    """A table cell: ``digits`` significant figures (JSON keeps full precision), "-" for
    missing or non-finite values, short exponents (``1.2e-5``)."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(x)
    if isinstance(x, (float, np.floating)):
        if not math.isfinite(x):
            return "-"
        text = f"{x:.{digits}g}"
        return text.replace("e-0", "e-").replace("e+0", "e+").replace("e+", "e")
    return str(x)


#: a cell that holds a number (or "-"): such columns are right-aligned, text left-aligned
_NUMBER = re.compile(r"-|[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?%?x?")


def _longest_word(text: str) -> int:
    return max((len(w) for w in text.split()), default=0)


def _longest_line(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


class Sheet:
    """A table laid out for the width it is printed at: no number or word is ever split.

    Every column is as wide as its longest word at least (a cell of several words may wrap at
    its spaces, never inside a word). When the table does not fit, the ``optional`` columns are
    left out, last first, and the caption says which; only when even the remaining columns
    cannot fit does a single word longer than the terminal fold (rich's fallback).
    """

    def __init__(self, title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
                 caption: str | None = None, optional: Sequence[str] = ()) -> None:
        self.title = title
        self.columns = list(columns)
        self.rows = [[fmt(v) for v in r] for r in rows]
        self.caption = caption
        self.optional = [c for c in optional if c in self.columns]

    def cells(self, column: str) -> list[str]:
        j = self.columns.index(column)
        return [r[j] for r in self.rows]

    def _widths(self, j: int) -> tuple[int, int]:
        texts = [self.columns[j], *(r[j] for r in self.rows)]
        return max(map(_longest_word, texts)), max(map(_longest_line, texts))

    def layout(self, width: int) -> tuple[list[int], list[int]]:
        """(indices of the columns shown, their widths) for a terminal ``width`` wide."""
        shown = list(range(len(self.columns)))
        spans = {j: self._widths(j) for j in shown}

        def needed(cols: list[int]) -> int:  # edges 2, separators n-1, padding 2 per column
            return sum(spans[j][0] for j in cols) + 3 * len(cols) + 1

        for name in reversed(self.optional):
            if needed(shown) <= width:
                break
            shown.remove(self.columns.index(name))
        widths = [spans[j][0] for j in shown]
        spare = width - needed(shown)
        # widen the columns that would wrap, narrowest need first, while there is room
        for k in sorted(range(len(shown)), key=lambda k: spans[shown[k]][1] - widths[k]):
            add = min(max(spare, 0), spans[shown[k]][1] - widths[k])
            widths[k] += add
            spare -= add
        return shown, widths

    def to_table(self, width: int) -> Table:
        shown, widths = self.layout(width)
        hidden = [c for j, c in enumerate(self.columns) if j not in shown]
        notes = [self.caption] if self.caption else []
        if hidden:
            notes.append(f"not shown at this width: {', '.join(hidden)} (a wider terminal "
                         "or --json shows them)")
        fits = sum(widths) + 3 * len(widths) + 1 <= width
        t = Table(title=self.title, title_justify="left", caption="\n".join(notes) or None,
                  caption_justify="left")
        for j, w in zip(shown, widths):
            c = self.columns[j]
            numeric = all(_NUMBER.fullmatch(r[j]) for r in self.rows)
            t.add_column(c, justify="right" if numeric else "left",
                         width=w if fits else None, overflow="fold")
        for r in self.rows:
            t.add_row(*[r[j] for j in shown])
        return t

    def __rich_console__(self, console: Console, options: Any) -> Iterator[Table]:
        yield self.to_table(options.max_width)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
          caption: str | None = None, optional: Sequence[str] = ()) -> Sheet:
    """A table of ``rows`` (cells through ``fmt``); ``caption``: a footnote below it;
    ``optional``: columns left out (last first) when the terminal is too narrow."""
    return Sheet(title, columns, rows, caption, optional)


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


def print_tables(*tables: Sheet) -> None:
    # the terminal's width (COLUMNS, else the terminal), 160 when stdout is not a terminal
    console = _Console(width=shutil.get_terminal_size((160, 24)).columns)
    for t in tables:
        console.print(t)


def run_tables(result: dict[str, Any]) -> list[Sheet]:
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
                [lay["layer"], cls, s["mse"], s["mse_ci"][0], s["mse_ci"][1],
                 s["max_abs"],
                 lay["false_activation_rate"] if cls == "inactive" else None, lay["frac_on"]]
            )
    sec = result["seconds"]
    title = f"{head}\nbuild {sec['build']:.2f} s, forward {sec['forward']:.2f} s"
    cols = ["layer", "class", "mse", "ci lo", "ci hi", "max |err|", "false act.", "frac on"]
    return [table(title, cols, rows), *task_tables(result)]


def assumption_tables(out: dict[str, Any]) -> list[Sheet]:
    """The table of ``out["assumptions"]`` (``cis check --assumptions``), or none."""
    rows = [[a["name"], a["status"], a["quantity"], a["value"], a["limit"], a["statement"]]
            for a in out.get("assumptions") or ()]
    if not rows:
        return []
    return [table("assumptions", ["name", "status", "quantity", "value", "limit", "statement"],
                  rows)]


def task_tables(result: dict[str, Any]) -> list[Sheet]:
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
