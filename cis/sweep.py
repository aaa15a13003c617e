"""``cis sweep``: run every point of a grid file on Dask, store tidy results, resume after a kill.

Storage under ``--out DIR``:

* ``parts/<key>.parquet``: the rows of one finished point, written when the point finishes (to a
  temporary name, then ``os.replace``: a kill never leaves half a part). A failed point writes
  ``parts/<key>.failed.parquet`` (its configuration and error message) instead.
* ``results.parquet`` / ``results.csv``: all rows of the grid's finished points, consolidated at
  the end, sorted by point (grid order), layer and class. Columns: the point's key and index, the
  mode, every parameter, the measurements, ``version`` (of the package) and the timings
  ``seconds`` (the point's wall clock on its worker) and ``finished`` (UTC time).
* ``failures.parquet`` / ``failures.csv``: one row per failed point with ``error``.

* ``sweep.json``: the keys of the grid's points and their hash (``grid_sha256``), written before
  any point runs.

``--resume`` skips points that have a part (failed points are retried). It accepts only a
directory written by ``cis sweep`` whose recorded points are all in this grid (the same grid, or
the same grid grown by new points: then ``sweep.json`` records the grown grid), so a resume never
drops another sweep's results from ``results.*``. Without ``--resume``, DIR must not exist or be
empty: a sweep never writes into a directory of other files, nor two sweeps into one.

Execution: a Dask ``LocalCluster`` sized to the machine (worker processes with one thread each and
NUMBA_NUM_THREADS=1, so points do not fight over cores), or an existing cluster with
``--scheduler tcp://host:port``. Rows go back to this process, which writes the parts, so the
workers need no shared file system.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from cis import report
from cis.experiment import Point, compute_point, cost_hint, load_grid
from kernel.validate import ConfigError, integer

#: columns that differ between two runs of the same sweep (left out when comparing sweeps)
TIMING_COLUMNS = ("seconds", "finished", "seconds_cavity")


def package_version() -> str:
    """The installed version of cis-toolkit ("unknown" when run from a bare checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cis-toolkit")
    except PackageNotFoundError:
        return "unknown"


def _parts(out: Path) -> Path:
    return out / "parts"


def write_part(out: Path, point: Point, result: dict[str, Any]) -> Path:
    """Store one finished point atomically (temporary file, then ``os.replace``)."""
    import pandas as pd

    stamp = {"version": package_version(), "seconds": result["seconds"],
             "finished": result["finished"]}
    if result["error"] is None:
        frame = pd.DataFrame([{**r, **stamp} for r in result["rows"]])
        path = _parts(out) / f"{point.key}.parquet"
    else:
        frame = pd.DataFrame([{"key": point.key, "point": point.index, "mode": point.mode,
                               **point.params, "error": result["error"], **stamp}])
        path = _parts(out) / f"{point.key}.failed.parquet"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def finished_keys(out: Path) -> set[str]:
    """Keys of the points that have a (successful) part under ``out``."""
    return {p.name.split(".")[0] for p in _parts(out).glob("*.parquet")
            if not p.name.endswith(".failed.parquet")}


def consolidate(out: Path, points: list[Point]) -> tuple[Any, Any]:
    """Gather the parts of ``points`` into results.{parquet,csv} and failures.{parquet,csv}.

    Rows are sorted by (point, layer, class): the table does not depend on the order in which
    points finished, so a killed-and-resumed sweep gives the same table as an uninterrupted one
    (timing columns aside). Returns (results, failures) as DataFrames.
    """
    import pandas as pd

    keys = {p.key for p in points}
    done = finished_keys(out)
    ok_frames = [pd.read_parquet(_parts(out) / f"{k}.parquet") for k in sorted(keys & done)]
    bad_frames = [pd.read_parquet(f) for f in sorted(_parts(out).glob("*.failed.parquet"))
                  if f.name.split(".")[0] in keys - done]
    # a part keeps the index its point had in the grid that computed it; a resumed sweep may use
    # a larger grid (the key is the point's identity), so the index is taken from this grid
    index = {p.key: p.index for p in points}
    results = pd.concat(ok_frames, ignore_index=True) if ok_frames else pd.DataFrame()
    if not results.empty:
        results["point"] = results["key"].map(index)
        results = results.sort_values(["point", "layer", "class"], kind="stable")
        results = results.reset_index(drop=True)
    failures = pd.concat(bad_frames, ignore_index=True) if bad_frames else pd.DataFrame(
        columns=["key", "point", "mode", "error"])
    if not failures.empty:
        failures["point"] = failures["key"].map(index)
    failures = failures.sort_values("point", kind="stable").reset_index(drop=True)
    for name, frame in (("results", results), ("failures", failures)):
        frame.to_parquet(out / f"{name}.parquet", index=False)
        frame.to_csv(out / f"{name}.csv", index=False)
    return results, failures


@contextmanager
def dask_client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """A distributed Client: to ``scheduler`` if given, else to a LocalCluster of ``workers``
    single-threaded processes (default: one per core) with NUMBA_NUM_THREADS=1."""
    try:
        from distributed import Client, LocalCluster
    except ModuleNotFoundError:
        raise ConfigError("sweep needs Dask: pip install -e '.[sweep]'") from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(f"--scheduler={scheduler!r}: cannot connect ({exc})") from None
        with client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    # silence_logs=ERROR: the workers' warnings (e.g. the tasks cancelled by Ctrl-C) stay off
    # stderr, which carries at most one line per outcome; a point's own error is stored with it
    with _quiet_resource_tracker():
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=":0", env={"NUMBA_NUM_THREADS": "1"},
                               silence_logs=logging.ERROR)
    with cluster, Client(cluster) as client:
        yield client


#: the resource tracker's message when the process that started it ended without releasing
#: its semaphores (``warnings`` filter syntax: action:message-prefix:category)
_TRACKER_WARNING = "ignore:resource_tracker:UserWarning"


@contextmanager
def _quiet_resource_tracker() -> Iterator[None]:
    """Start the local cluster with the resource tracker's leak warning filtered.

    Ctrl-C ends ``cis`` with ``os._exit`` when the cluster does not shut down within the grace
    period (``cis.exits``); multiprocessing's resource tracker, a separate process started with
    the cluster, then frees the cluster's semaphores and would warn about them on stderr. It
    reads its warning filters from ``PYTHONWARNINGS`` when it starts, so the variable is set
    only while the cluster starts, and restored."""
    old = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (old, _TRACKER_WARNING)))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = old


def _progress() -> Any:
    """The sweep's bar on stderr, only when stderr is a terminal (``cis.report.progress``)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = report.progress_console()
    return Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=console,
                    disable=not console.is_terminal)


#: the file that marks a directory as written by ``cis sweep`` (and by which grid)
MARKER = "sweep.json"


def grid_record(points: list[Point]) -> dict[str, Any]:
    """What ``sweep.json`` holds: the points' keys (grid order) and their hash."""
    import hashlib

    keys = [p.key for p in points]
    return {"grid_sha256": hashlib.sha256("\n".join(keys).encode()).hexdigest(), "keys": keys}


def _claim_directory(out: Path, points: list[Point], resume: bool) -> None:
    """Refuse a results directory a sweep of ``points`` could damage; record the grid in it."""
    import json

    if out.resolve() == Path.cwd().resolve():
        raise ConfigError(f"--out={str(out)!r}: give a directory of its own for the results "
                          "(e.g. --out results/my-sweep)")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out={str(out)!r} exists and is not a directory")
    marker = out / MARKER
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if entries:
        if not marker.is_file():
            raise ConfigError(f"--out={str(out)!r} is not empty and was not written by cis sweep "
                              f"(no {MARKER}): choose a new or empty directory")
        if not resume:
            raise ConfigError(f"--out={str(out)!r} already holds a sweep: pass --resume to "
                              "continue it, or choose another directory")
        try:
            recorded = json.loads(marker.read_text())["keys"]
        except (OSError, ValueError, KeyError, TypeError):
            raise ConfigError(f"--out={str(out)!r}: {MARKER} is unreadable; choose another "
                              "directory") from None
        foreign = set(recorded) - {p.key for p in points}
        if foreign:
            raise ConfigError(
                f"--out={str(out)!r} was written by another grid ({len(foreign)} of its "
                f"{len(recorded)} points are not in this one): --resume continues only the same "
                "grid (or that grid grown by new points); choose another directory")
    _parts(out).mkdir(parents=True, exist_ok=True)
    tmp = out / f".{MARKER}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(grid_record(points)))
    os.replace(tmp, marker)


def _check_scheduler(scheduler: str | None) -> None:
    """An address Dask can dial: ``protocol://host[:port]`` or ``host:port``."""
    import re

    if scheduler is None:
        return
    if not re.fullmatch(r"(tcp|tls|ucx|inproc|ws|wss)://[^\s/]+|[^\s/:]+:\d{1,5}", scheduler):
        raise ConfigError(f"--scheduler={scheduler!r} is not a scheduler address; give e.g. "
                          "tcp://host:8786")


def run_sweep(grid: str | Path, out: str | Path, *, scheduler: str | None = None,
              workers: int | None = None, resume: bool = False) -> tuple[Any, Any]:
    """Run the grid's unfinished points on Dask, store each as it finishes, consolidate.

    Returns (results, failures) DataFrames (also written under ``out``).
    """
    _, points = load_grid(grid)
    _check_scheduler(scheduler)
    if os.fspath(out).strip() == "":
        raise ConfigError("--out='' is empty; give a directory for the results")
    out = Path(out)
    _claim_directory(out, points, resume)
    done = finished_keys(out)
    todo = [p for p in points if p.key not in done]
    if todo:
        from distributed import as_completed

        by_key = {p.key: p for p in todo}
        with dask_client(scheduler, workers) as client, _progress() as bar:
            task = bar.add_task("sweep", total=len(points), completed=len(points) - len(todo),
                                failed=0)
            # largest first (in submission order too: the first tasks start before the
            # scheduler has seen the others' priorities)
            futures = [client.submit(compute_point, p, key=f"cis-point-{p.key}", pure=False,
                                     priority=cost_hint(p))
                       for p in sorted(todo, key=cost_hint, reverse=True)]
            failed = 0
            for future in as_completed(futures):
                result = future.result()
                write_part(out, by_key[result["key"]], result)
                failed += result["error"] is not None
                bar.update(task, advance=1, failed=failed)
    return consolidate(out, points)


def _terminate_cleanly(signum: int, frame: Any) -> None:
    # SIGTERM unwinds like Ctrl-C, so the LocalCluster's worker processes are shut down
    raise SystemExit(128 + signum)


@click.command()
@click.argument("grid_file", type=click.Path(dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="results directory (parts/, results.parquet, results.csv, failures.csv)")
@click.option("--scheduler", default=None,
              help="address of a running Dask scheduler, e.g. tcp://host:8786 "
                   "[default: a local cluster]")
@click.option("--workers", type=int, default=None,
              help="worker processes of the local cluster  [default: one per core]")
@click.option("--resume", is_flag=True, help="skip points already finished in --out")
def sweep(grid_file: str, out: str, scheduler: str | None, workers: int | None,
          resume: bool) -> None:
    """Run every point of a grid file (TOML) on Dask; tidy results in OUT (Parquet and CSV).

    The grid names a mode (check: measured vs predicted per layer and class; capacity: the
    largest T within an error budget, by bisection on real networks), fixed parameters and lists
    to cross. Grid format, storage and cluster set-up: docs/experiments.md.
    """
    from cis.cli import _guard  # at call time: cis.cli imports this module to register it

    _guard(_run_and_report)(grid_file, out, scheduler, workers, resume)


def _run_and_report(grid_file: str, out: str, scheduler: str | None, workers: int | None,
                    resume: bool) -> None:
    if workers is not None:
        workers = integer("workers", workers, low=1)
    signal.signal(signal.SIGTERM, _terminate_cleanly)
    results, failures = run_sweep(grid_file, out, scheduler=scheduler, workers=workers,
                                  resume=resume)
    n_points = results["key"].nunique() if not results.empty else 0
    click.echo(f"{n_points} points finished, {len(failures)} failed; "
               f"{os.path.join(out, 'results.parquet')} ({len(results)} rows)", err=True)
    if len(failures):
        for _, row in failures.iterrows():
            click.echo(f"  failed point {row['point']} ({row['key']}): {row['error']}", err=True)
    sys.stdout.flush()
    if len(failures) and n_points == 0:  # nothing computed: the grid's values are bad
        raise click.exceptions.Exit(2)
