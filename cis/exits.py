"""The exit-code contract of ``cis``: every outcome is an exit code and at most one line on stderr.

====  =====================================================================================
code  meaning
====  =====================================================================================
0     success
1     a check or verification ran and failed (``cis check``, ``cis verify``)
2     bad input or environment: a parameter outside what is allowed, a request too large for
      the machine, output that cannot be written (closed pipe, full disk), a bad environment
      variable
3     internal error: a bug; one line, and the traceback under ``cis --debug``
130   interrupted (Ctrl-C)
====  =====================================================================================

Ctrl-C: the compiled kernels release the GIL and do not return to Python until they finish, so a
KeyboardInterrupt raised in the main thread could wait for minutes. Python's C-level signal
handler also writes the signal number to a wake-up socket (``signal.set_wakeup_fd``); a watcher
thread reading it ends the process with exit 130 when the main thread has not done so itself
within ``GRACE_S``. Either way, progress bars still drawing are erased before the line
(``cis.report.stop_progress_bars``), and the program then ends without the interpreter's teardown
(``cis.entry``), so the exit follows the signal within a second (tests/test_cli.py).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import click

from cis import report
from cis.entry import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK
from kernel.validate import ConfigError

#: optional dependencies (top-level module -> the pyproject extra that installs it): a command
#: that needs a missing one is an environment problem (exit 2), not a bug
OPTIONAL_MODULES = {"distributed": "sweep", "dask": "sweep", "pandas": "io", "pyarrow": "io",
                    "safetensors": "io", "matplotlib": "plot", "torch": "torch"}

#: seconds the main thread gets to handle Ctrl-C itself before the watcher ends the process
GRACE_S = 0.25

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_OK",
           "run_guarded"]


class Interrupted(BaseException):
    """Ctrl-C, raised by our SIGINT handler (a BaseException click does not turn into Abort)."""


_said = threading.Lock()  # the interrupt line is printed once, by whichever thread gets here first


def _say(line: str) -> None:
    """Write one line to stderr, ignoring a stderr that is itself closed."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _say_interrupted() -> None:
    if _said.acquire(blocking=False):
        report.stop_progress_bars()  # erased first, so the line stays and the cursor shows
        _say("cis: interrupted")


def _on_sigint(signum: int, frame: Any) -> None:
    raise Interrupted


def _quiet_interrupt_hook(previous: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A ``sys.unraisablehook`` that drops an Interrupted raised where Python cannot propagate it
    (Ctrl-C landing in a garbage-collector callback or a ``__del__``: Python would print
    "Exception ignored in ..." with a traceback); the watcher thread then ends the process with
    the one line. Anything else goes to ``previous``."""

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, Interrupted):
            previous(unraisable)

    return hook


@contextlib.contextmanager
def interrupt_watch() -> Iterator[None]:
    """SIGINT raises Interrupted in the main thread; a watcher thread ends the process with exit
    130 if the main thread is stuck in compiled code (no-op outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    rsock, wsock = socket.socketpair()
    wsock.setblocking(False)
    old_handler = signal.signal(signal.SIGINT, _on_sigint)
    old_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_interrupt_hook(old_hook)
    old_fd = signal.set_wakeup_fd(wsock.fileno(), warn_on_full_buffer=False)
    done = threading.Event()  # the main thread left the command (it handles Ctrl-C itself)

    def watch() -> None:
        while True:
            try:
                data = rsock.recv(64)
            except OSError:
                return
            if not data:
                return  # closed: the command finished
            if signal.SIGINT in data:
                break
        if done.wait(GRACE_S):  # the main thread handled it (and is waiting in join for us)
            return
        _say_interrupted()
        os._exit(EXIT_INTERRUPTED)

    watcher = threading.Thread(target=watch, name="cis-interrupt-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGINT, old_handler)
        sys.unraisablehook = old_hook
        wsock.close()
        watcher.join(timeout=1.0)
        rsock.close()


def _silence_stdout() -> None:
    """After stdout failed (closed pipe, full disk), point it at /dev/null so that the
    interpreter's own flush at exit does not print a second error."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _click_saw_closed_pipe() -> bool:
    """click turns a closed stdout pipe into ``sys.exit(1)`` after wrapping the streams in its
    (private, by name only) ``PacifyFlushWrapper``; detect that, unwrap the streams, so that it
    exits 2 with a line instead."""
    seen = False
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if type(stream).__name__.endswith("PacifyFlushWrapper") and hasattr(stream, "wrapped"):
            setattr(sys, name, stream.wrapped)
            seen = True
    return seen


def _write_error(exc: OSError) -> str:
    if exc.errno == errno.EPIPE:
        return "cannot write output: the reading end of the pipe is closed"
    if exc.errno == errno.ENOSPC:
        return "cannot write output: no space left on device"
    what = exc.strerror or str(exc)
    if exc.filename is None:
        return f"cannot write output or file: {what}"
    return f"cannot read or write {exc.filename!r}: {what}"  # name the path


def _missing_extra(exc: BaseException) -> tuple[str, str] | None:
    """(module, extra) when ``exc`` is a missing optional dependency, else None."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    extra = OPTIONAL_MODULES.get(exc.name.split(".")[0])
    return None if extra is None else (exc.name, extra)


def run_guarded(command: Callable[[], Any], *, debug: Callable[[], bool]) -> int:
    """Run ``command`` (click's main, ``standalone_mode=False``) and map every outcome to an
    exit code, printing at most one line on stderr."""
    try:
        with interrupt_watch():
            rc = command()
            sys.stdout.flush()  # a closed pipe or full disk shows here, inside the guard
    except click.exceptions.NoArgsIsHelpError as exc:  # bare ``cis``: help, not an error
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        return EXIT_OK
    except click.exceptions.Exit as exc:
        rc = exc.exit_code
    except click.ClickException as exc:
        _say(f"cis: error: {exc.format_message()}")
        return EXIT_BAD_INPUT
    except ConfigError as exc:
        _say(f"cis: error: {exc}")
        return EXIT_BAD_INPUT
    except (Interrupted, KeyboardInterrupt, click.Abort):
        _say_interrupted()
        return EXIT_INTERRUPTED
    except MemoryError:
        _say("cis: error: out of memory (lower the sizes, or CIS_MEMORY_LIMIT_GB so that such "
             "requests are refused up front)")
        return EXIT_BAD_INPUT
    except OSError as exc:
        _silence_stdout()
        _say(f"cis: error: {_write_error(exc)}")
        return EXIT_BAD_INPUT
    except SystemExit as exc:
        if _click_saw_closed_pipe():
            _silence_stdout()
            _say(f"cis: error: {_write_error(OSError(errno.EPIPE, 'Broken pipe'))}")
            return EXIT_BAD_INPUT
        rc = exc.code
    except Exception as exc:  # a bug: one line, the traceback only on request
        extra = _missing_extra(exc)
        if extra is not None:  # an optional dependency is not installed: environment, not a bug
            _say(f"cis: error: this command needs {extra[0]}: pip install -e '.[{extra[1]}]'")
            return EXIT_BAD_INPUT
        if debug():
            traceback.print_exc()
        hint = "" if debug() else " (run 'cis --debug ...' for the traceback)"
        _say(f"cis: internal error: {type(exc).__name__}: {exc}{hint}")
        return EXIT_INTERNAL
    if rc is None:
        return EXIT_OK
    return rc if isinstance(rc, int) else EXIT_BAD_INPUT
