"""Output paths checked before a computation starts, so a long run never ends in a write error."""

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
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise ConfigError(f"{option}={raw!r} is a directory; give a file name")
    if not parent.is_dir():
        raise ConfigError(f"{option}={raw!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ConfigError(f"{option}={raw!r} cannot be written (permission denied)")
    return p
