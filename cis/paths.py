"""Output paths checked before a computation starts, so a long run never ends in a write error,
and a write never destroys: an output that is one of the command's inputs is refused, and so is
an existing target that is not a regular file (a device, a FIFO, a socket), which a write could
not replace safely. A symlink to a regular file is written through (in place), never replaced."""

from __future__ import annotations

import os
from pathlib import Path

from kernel.validate import ConfigError


def figure_formats() -> list[str]:
    """File extensions matplotlib can write (ConfigError when matplotlib is missing)."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ModuleNotFoundError:
        raise ConfigError(
            "plot needs matplotlib: pip install -e '.[plot]' (or pip install matplotlib)"
        ) from None
    return sorted(FigureCanvasBase.get_supported_filetypes())


def writable_figure_path(path: str | os.PathLike[str], *, option: str = "--plot") -> Path:
    """``path`` if a figure can be written there: a known image extension, an existing directory
    that can be written to, and not a directory itself; else ConfigError naming ``option``."""
    raw = os.fspath(path)
    if raw.strip() == "":
        raise ConfigError(f"{option}='' is empty; give a file name such as errors.png")
    p = Path(raw)
    ext = p.suffix.lower().lstrip(".")
    formats = figure_formats()
    if ext not in formats:
        raise ConfigError(
            f"{option}={raw!r} has {'no extension' if not ext else f'extension {ext!r}'}; "
            f"allowed image formats: {', '.join(formats)}"
        )
    output_file(p, option)
    return p


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether paths ``a`` and ``b`` name the same file (through symlinks and hard links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return os.path.realpath(a) == os.path.realpath(b)


def output_file(path: str | os.PathLike[str], option: str, *,
                inputs: tuple[str | os.PathLike[str], ...] = ()) -> Path:
    """``path`` if a file can be written there without destroying anything: not empty, not a
    directory, not one of ``inputs``, not an existing non-regular file, in an existing
    directory; else ConfigError naming ``option``."""
    raw = os.fspath(path)
    if raw.strip() == "":
        raise ConfigError(f"{option}='' is empty; give a file name")
    p = Path(raw)
    for source in inputs:
        if same_file(p, source):
            raise ConfigError(f"{option}={raw!r} is the input file {os.fspath(source)!r}; "
                              "writing it would destroy the input: give another file name")
    if p.is_dir():
        raise ConfigError(f"{option}={raw!r} is a directory; give a file name")
    if p.exists() and not p.is_file():
        raise ConfigError(f"{option}={raw!r} exists and is not a regular file (a device, FIFO "
                          "or socket); give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"{option}={raw!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ConfigError(f"{option}={raw!r} cannot be written (permission denied)")
    return p
