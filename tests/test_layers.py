"""The package layering, read from the sources: kernel -> bounds -> properties -> cis.

A module may import from its own package anything, from a lower package only public names of
public modules, and never from a higher package or from ``tests``. "Private" is a dotted-path
component or an imported name with one leading underscore (``kernel._jit``, ``_run_dense``);
dunders are public. Attribute access ``mod._name`` on a module imported from another package
counts as a private import too. The scripts under ``docs/`` sit above every package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: package -> layer; a module may import only from packages of a lower or equal layer
LAYERS = {"kernel": 0, "bounds": 1, "properties": 2, "cis": 3, "docs": 4}
FORBIDDEN = {"tests"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def violations(source: str, package: str, where: str = "<source>") -> list[str]:
    """Every cross-package private import, upward import and import of ``tests`` in ``source``,
    a module of ``package``, as ``where:line: what`` strings."""
    out = []
    foreign_modules: set[str] = set()  # local names bound to modules of other packages
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            targets = [(parts, a.name, a.asname) for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [(a.name.split("."), None, a.asname) for a in node.names]
        else:
            continue
        for parts, name, asname in targets:
            top = parts[0]
            if top == package or (top not in LAYERS and top not in FORBIDDEN):
                continue
            what = ".".join(parts) + ("" if name is None else f".{name}")
            if top in FORBIDDEN:
                out.append(f"{where}:{node.lineno}: imports the test suite ({what})")
            elif LAYERS[top] > LAYERS[package]:
                out.append(f"{where}:{node.lineno}: upward import {package} -> {what}")
            if any(_private(p) for p in parts[1:]) or (name is not None and _private(name)):
                out.append(f"{where}:{node.lineno}: private import from {top}: {what}")
            if name is None:
                foreign_modules.add(asname or parts[0])
            else:
                foreign_modules.add(asname or name)  # may be a module (from kernel import engines)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in foreign_modules and _private(node.attr)):
            out.append(f"{where}:{node.lineno}: private attribute {node.value.id}.{node.attr}")
    return out


def _sources() -> list[tuple[str, Path]]:
    files = []
    for package in LAYERS:
        files += [(package, p) for p in sorted((ROOT / package).rglob("*.py"))]
    return files


def test_the_scan_sees_the_sources():
    packages = {pkg for pkg, _ in _sources()}
    assert packages == set(LAYERS)
    assert len(_sources()) > 40


def test_no_cross_package_private_upward_or_test_imports():
    found = []
    for package, path in _sources():
        found += violations(path.read_text(), package, str(path.relative_to(ROOT)))
    assert found == []


@pytest.mark.parametrize(("source", "package", "fragment"), [
    ("from kernel._jit_cavity import cavity\n", "bounds", "private import"),
    ("from kernel.engines import _run_dense\n", "cis", "private import"),
    ("import kernel._numba\n", "properties", "private import"),
    ("from kernel import engines\nengines._run_dense(1)\n", "cis", "private attribute"),
    ("import kernel.engines as ke\nke._readout_ids(1)\n", "bounds", "private attribute"),
    ("from cis import report\n", "bounds", "upward import"),
    ("from properties.checks import CHECKS\n", "kernel", "upward import"),
    ("def f():\n    from tests import reference\n", "cis", "imports the test suite"),
])
def test_the_scan_flags_each_kind_of_violation(source, package, fragment):
    found = violations(source, package)
    assert len(found) == 1 and fragment in found[0]


@pytest.mark.parametrize(("source", "package"), [
    ("from kernel._jit import run_chunks\n", "kernel"),  # own package: allowed
    ("from kernel.engines import ENGINES, forward\n", "cis"),
    ("from kernel import engines\nengines.__name__\n", "bounds"),  # dunder: public
    ("from bounds import predict as _predict\n", "cis"),  # private *local* alias: fine
    ("import numpy as np\nnp._NoValue\n", "bounds"),  # third-party: not ours to police
])
def test_the_scan_allows_public_downward_and_own_package_imports(source, package):
    assert violations(source, package) == []
