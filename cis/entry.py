"""The ``cis`` program's entry point: checks the environment and catches Ctrl-C during start-up.

Importing the command line takes a second or more (numba, numpy, the sub-commands), so this
module is imported first and stays light: it refuses an environment the kernels cannot start in
(exit 2, one line) and turns Ctrl-C during the imports into one line and exit 130. The exit-code
contract itself is ``cis.cli.main``'s; after Ctrl-C the program leaves without the interpreter's
teardown (``_end_interrupted``).
"""

from __future__ import annotations

import os
import signal
import sys

#: exit codes of ``cis`` (docs/cli.md, "Exit codes")
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def environment_error() -> str | None:
    """One line naming an environment variable the kernels cannot start with, or None."""
    raw = os.environ.get("NUMBA_NUM_THREADS")
    if raw is not None and raw.strip() != "":
        try:
            ok = int(raw) >= 1
        except ValueError:
            ok = False
        if not ok:
            return f"NUMBA_NUM_THREADS={raw!r} must be a positive integer (threads of the kernels)"
    return None


def _interrupted_at_start(signum: int, frame: object) -> None:
    """Ctrl-C while importing: nothing to clean up, so end at once (an exception raised here
    could be swallowed by an import-time ``except``)."""
    os.write(2, b"cis: interrupted\n")
    os._exit(EXIT_INTERRUPTED)


def main(argv: list[str] | None = None) -> None:
    """Run ``cis``: environment check, then ``cis.cli.main`` (imported here, interruptibly)."""
    if argv is None:  # the program itself, not a call from Python: own SIGINT during start-up
        signal.signal(signal.SIGINT, _interrupted_at_start)
    problem = environment_error()
    if problem is not None:
        sys.stderr.write(f"cis: error: {problem}\n")
        sys.exit(EXIT_BAD_INPUT)
    try:
        from cis.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("cis: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    try:
        cli_main(argv)
    except SystemExit as exc:
        if argv is None and exc.code == EXIT_INTERRUPTED:
            _end_interrupted()
        raise


def _end_interrupted() -> None:
    """End the program after Ctrl-C without the interpreter's teardown.

    By the time the exit code is known, the command has unwound: its ``with`` blocks and
    ``finally`` clauses ran (files closed, a sweep's cluster shut down) and the one line is
    written. What is left is the interpreter's teardown (atexit hooks, freeing every module:
    numba, llvmlite, hypothesis), which took 0.5-0.8 s of the time from Ctrl-C to the exit
    (measured on a loaded machine). Flush, then leave at once."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(EXIT_INTERRUPTED)
