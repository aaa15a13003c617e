"""Tables a person can read at any width: run ``cis check`` / ``cis run`` on a pseudo-terminal
80, 100 and 120 columns wide and check that no number and no word is split across lines."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest

import cis.cli  # noqa: F401  (registers the sub-commands before cis.check is imported)
from cis import report

#: a small configuration (fast) whose tables have every kind of cell of the default one
SMALL = ["--D", "400", "--batch", "300", "--L", "3"]

#: characters that separate cells on a rendered line (rich's heavy box and spaces)
_SEPARATORS = re.compile(r"[\s│┃┏┓┗┛┡┩┠┨┯┷┳┻╇╋━─┼└┘┌┐├┤┬┴]+")


def _on_terminal(args: list[str], columns: int) -> str:
    """stdout of ``cis ARGS`` run on a pseudo-terminal ``columns`` wide (no COLUMNS variable:
    the width comes from the terminal, as in an ordinary shell)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, "-m", "cis", *args], stdout=follower,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=600) in (0, 1)
    text = b"".join(chunks).decode()
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")


def _json(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-m", "cis", *args, "--json"], capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def _words_of(sheets: list[report.Sheet]) -> set[str]:
    """Every word of every cell and header of the tables (what must appear unbroken)."""
    words = set()
    for sheet in sheets:
        for row in [sheet.columns, *sheet.rows]:
            for cell in row:
                words.update(cell.split())
    return words


def _assert_whole(text: str, sheets: list[report.Sheet], columns: int) -> None:
    lines = text.splitlines()
    assert lines, "no output"
    assert max(len(line) for line in lines) <= columns
    tokens = {t for line in lines for t in _SEPARATORS.split(line) if t}
    # words hidden with an optional column are not printed; all others must be whole tokens
    shown = set()
    for sheet in sheets:
        cols, _ = sheet.layout(columns)
        for row in [sheet.columns, *sheet.rows]:
            for j in cols:
                shown.update(row[j].split())
    missing = sorted(w for w in shown if w not in tokens)
    assert not missing, f"split across lines at {columns} columns: {missing[:10]}"
    numbers = [w for w in shown if re.fullmatch(r"-?[0-9.]+(e-?[0-9]+)?", w)]
    assert numbers, "the tables hold numbers"


@pytest.mark.parametrize("columns", [80, 100, 120])
def test_cis_check_splits_no_cell_on_a_terminal(columns):
    from cis.check import check_tables

    args = ["check", *SMALL, "--samples", "2000"]
    sheets = check_tables(_json(args))
    _assert_whole(_on_terminal(args, columns), sheets, columns)
    if columns == 80:  # the compact view: layer, class, model, pred, meas, ratio, verdict
        assert sheets[0].layout(80)[0] == list(range(7))


@pytest.mark.parametrize("columns", [80, 100, 120])
def test_cis_run_splits_no_cell_on_a_terminal(columns):
    args = ["run", *SMALL]
    sheets = report.run_tables(_json(args))
    _assert_whole(_on_terminal(args, columns), sheets, columns)


def test_numbers_have_three_significant_figures_and_json_keeps_them_all():
    assert [report.fmt(x) for x in (0.0031595184, 1234.5678, 2.5e-7, 1e21, 0.5, 7)] == [
        "0.00316", "1.23e3", "2.5e-7", "1e21", "0.5", "7"]
    assert json.loads(report.dumps({"x": 0.0031595184275471254}))["x"] == 0.0031595184275471254


def test_a_sheet_leaves_out_optional_columns_and_says_so():
    sheet = report.table("t", ["a", "b", "c"], [["x" * 30, "y" * 30, "z" * 30]],
                         optional=["c"])
    assert sheet.layout(80)[0] == [0, 1]
    assert sheet.layout(120)[0] == [0, 1, 2]
    caption = sheet.to_table(80).caption
    assert caption is not None and "c" in caption
