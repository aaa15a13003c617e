"""The command line under generated argument lists: only documented exits, never a traceback.

Hypothesis draws 1,000 argument lists for ``cis run``, ``cis capacity`` and ``cis check``, mixing
valid tiny values (D <= 64, batch <= 8, so each call is fast) with invalid ones (zero, negative,
text, floats, NaN, empty, huge). Each list runs through ``cis.cli.main`` inside click's test runner
(``CliRunner.isolation``); the exit must be 0, 1 or 2, stderr at most one line, and no traceback
anywhere.
"""

from __future__ import annotations

import hypothesis.strategies as st
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings

from cis.cli import main

BAD_INT = st.sampled_from(["0", "-1", "-64", "abc", "1.5", "", "nan", "1e3", "99999999999999"])
BAD_REAL = st.sampled_from(["abc", "", "nan", "inf", "-inf", "1e999", "0.5", "2"])


def _value(valid: st.SearchStrategy[str], bad: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(valid, valid, valid, bad)  # mostly valid, so whole commands run too


def _ints(*values: int) -> st.SearchStrategy[str]:
    return st.sampled_from([str(v) for v in values])


NETWORK = {
    "--D": _value(_ints(8, 16, 24, 32, 48, 64), BAD_INT),
    "--d": _value(_ints(2, 4), BAD_INT),
    "--S": _value(_ints(2, 3, 4), BAD_INT),
    "--T": _value(_ints(1, 2, 5, 10, 20), BAD_INT),
    "--L": _value(_ints(1, 2, 3), BAD_INT),
    "--z": _value(_ints(1, 2, 3), BAD_INT),
    "--batch": _value(_ints(1, 2, 5, 8), BAD_INT),
    "--seed": _value(_ints(0, 1, 7), BAD_INT),
    "--family": _value(st.sampled_from(["signed", "gaussian", "permutation"]),
                       st.sampled_from(["relu", "", "SIGNED"])),
    "--bias": _value(st.sampled_from(["0", "-0.1", "-1"]), BAD_REAL),
    "--variant": _value(st.sampled_from(["plain", "corrected", "random"]),
                        st.sampled_from(["x", ""])),
    "--engine": _value(st.sampled_from(["auto", "dense", "factorised", "sparse"]),
                       st.sampled_from(["gpu", ""])),
    "--threshold": _value(st.sampled_from(["0.1", "0", "0.5"]), BAD_REAL),
}
CHECK = {**NETWORK, "--samples": _value(_ints(100, 200), BAD_INT),
         "--plot": st.sampled_from(["", "x.docx", "/nonexistent-dir/x.png", "noext"])}
CAPACITY = {
    "--n": _value(_ints(6, 10, 50, 250), BAD_INT),
    "--S": _value(_ints(2, 3, 6), BAD_INT),
    "--D": _value(_ints(32, 64), BAD_INT),
    "--d": _value(_ints(2, 4), BAD_INT),
    "--z": _value(_ints(1, 2), BAD_INT),
    "--L": _value(_ints(1, 2), BAD_INT),
    "--T": _value(_ints(5, 20), BAD_INT),
    "--budget": _value(st.sampled_from(["0.1", "0.5", "1"]), BAD_REAL),
    "--method": _value(st.sampled_from(["cavity", "post"]), st.sampled_from(["exact", ""])),
    "--samples": _value(_ints(1000, 1100), BAD_INT),
    "--seed": _value(_ints(0, 1), BAD_INT),
    "--bias": _value(st.sampled_from(["0", "-0.1"]), BAD_REAL),
}
COMMANDS = {"run": NETWORK, "check": CHECK, "capacity": CAPACITY}
FLAGS = ["--json", "--help", "--no-such-option"]


@st.composite
def argv(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(sorted(COMMANDS)))
    options = COMMANDS[command]
    names = draw(st.lists(st.sampled_from(sorted(options)), max_size=6, unique=True))
    args = [command]
    for name in names:
        args += [name, draw(options[name])]
    if command == "check" and "--samples" not in names:
        args += ["--samples", "1000"]  # the default (40,000) would make every check slow
    if command == "check" and "--D" not in names:
        args += ["--D", "64", "--d", "2", "--S", "3"]
    if draw(st.booleans()):
        args.append(draw(st.sampled_from(FLAGS)))
    if draw(st.integers(0, 9)) == 0:  # now and then a value without its option, or vice versa
        args.insert(draw(st.integers(1, len(args))), draw(st.sampled_from(["7", "--D", "-x"])))
    return args


def _run(args: list[str]) -> tuple[int, str, str]:
    with CliRunner().isolation() as streams:
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code
        else:  # pragma: no cover - main always exits
            code = None
        out, err = streams[0].getvalue().decode(), streams[1].getvalue().decode()
    return code, out, err  # type: ignore[return-value]


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv())
@example(["capacity", "--n", "250", "--S", "6", "--samples", "0"])  # was: silently ignored
@example(["capacity", "--budget", "0.1", "--D", "64", "--samples", "1"])  # was: NaN, exit 0
@example(["capacity", "--n", "250", "--S", "6", "--budget", "0.1"])  # was: T_max of another n
@example(["check", "--plot", "", "--D", "64", "--d", "2", "--S", "3", "--samples", "1000"])
@example(["run", "--D", "64", "--batch", "99999999999999"])  # was: MemoryError traceback
def test_cli_exits_only_with_documented_codes_and_one_line(args):
    code, out, err = _run(args)
    assert code in (0, 1, 2), (args, code, err)
    assert "Traceback" not in out + err, (args, err)
    assert len(err.strip().splitlines()) <= 1, (args, err)
    if code == 2:
        assert err.startswith("cis: error: "), (args, err)
