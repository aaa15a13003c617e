"""numba's on-disk cache of the kernels cannot serve stale machine code: an edit of a helper in
another file than the kernel's (issue 17: fadd -> fsub in kernel/_simd.py) recompiles."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_FORWARD = (
    "from kernel.engines import forward, make_batch\n"
    "from kernel.network import build_network\n"
    "net = build_network(D=60, d=4, S=3, T=10, L=2, seed=0)\n"
    "r = forward(net, make_batch(net, [[1, 2]]), engine='factorised')\n"
    "print(repr(float(r.active_readout[0, 1:].sum())))\n"
)


def _forward(copy: Path, cache: bool) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CIS_NUMBA_CACHE", "NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT")}
    env["PYTHONPATH"] = str(copy)
    if not cache:
        env["CIS_NUMBA_CACHE"] = "0"
    out = subprocess.run([sys.executable, "-c", _FORWARD], cwd=copy, env=env,
                         capture_output=True, text=True, timeout=900, check=True)
    return out.stdout.strip()


@pytest.mark.slow
def test_an_edit_of_a_helper_in_another_file_is_not_served_from_the_cache(tmp_path):
    shutil.copytree(ROOT / "kernel", tmp_path / "kernel",
                    ignore=shutil.ignore_patterns("__pycache__"))
    first = _forward(tmp_path, cache=True)
    assert list((tmp_path / "kernel" / "__pycache__").glob("_jit.*.nbi")), "nothing cached"
    assert _forward(tmp_path, cache=True) == first  # served from the cache, same source
    simd = tmp_path / "kernel" / "_simd.py"
    text = simd.read_text()
    old = '_binary_ir("vadd", "fadd")'
    assert text.count(old) == 1
    simd.write_text(text.replace(old, '_binary_ir("vadd", "fsub")'))
    edited = _forward(tmp_path, cache=True)
    assert edited != first
    assert edited == _forward(tmp_path, cache=False)  # what the edited source computes
