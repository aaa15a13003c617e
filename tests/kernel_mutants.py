"""Hand-written mutants of the compiled kernels (kernel/_jit*.py, kernel/_simd.py) and a runner
that checks the kernel tests kill each one (docs/testing.md, "Mutation testing of the compiled
kernels"). mutmut cannot drive numba (it rewrites functions into trampolines numba cannot
compile), so each mutant here is one textual edit of one file, applied to a scratch copy of the
project; the copy's numba cache is keyed on the kernels' content (kernel._numba), so every
mutant is compiled afresh.

    python -m tests.kernel_mutants            # all mutants; prints killed / survived per mutant
    python -m tests.kernel_mutants vadd_sub   # some of them, by name
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]


class Mutant(NamedTuple):
    name: str
    path: str  # file inside the project
    old: str  # text that occurs exactly once in the file
    new: str


MUTANTS = [
    Mutant("vadd_sub", "kernel/_simd.py", '_binary_ir("vadd", "fadd")',
           '_binary_ir("vadd", "fsub")'),
    Mutant("matvec4_columns_swapped", "kernel/_simd.py", "mask(2, 6, 3, 7))  # columns 2 and 3",
           "mask(3, 7, 2, 6))  # columns 2 and 3"),
    Mutant("vmax_abs_min", "kernel/_simd.py", 'builder.fcmp_ordered(">", a, args[0])',
           'builder.fcmp_ordered("<", a, args[0])'),
    Mutant("count_above_ge", "kernel/_simd.py",
           'above = builder.fcmp_ordered(">", args[2]',
           'above = builder.fcmp_ordered(">=", args[2]'),
    Mutant("bounds_off_by_one", "kernel/_simd.py", 'builder.icmp_signed(">", end, size)',
           'builder.icmp_signed(">=", end, size)'),
    Mutant("store_into_read_only", "kernel/_simd.py", "    if write and not a.mutable:\n",
           "    if False:\n"),
    Mutant("gather_drops_last_neuron", "kernel/_jit.py",
           "    for q in range(1, off.shape[1]):\n        x = vadd(",
           "    for q in range(1, off.shape[1] - 1):\n        x = vadd("),
    Mutant("correction_added", "kernel/_jit.py",
           "        return vsub(vscale(x, coef), vscale(load(bs, i * C + b), read_c))",
           "        return vadd(vscale(x, coef), vscale(load(bs, i * C + b), read_c))"),
    Mutant("mix_transposed", "kernel/_jit.py",
           "y = vadd(y, vscale(load(r, j * C + b), w[t, i, j]))",
           "y = vadd(y, vscale(load(r, j * C + b), w[t, j, i]))"),
    Mutant("relu_counts_zero", "kernel/_jit.py",
           "                v = A[row, s] + b\n                if v > 0.0:",
           "                v = A[row, s] + b\n                if v >= 0.0:"),
    Mutant("block_sums_skip_first", "kernel/_jit.py",
           "    for k in range(D // d):\n        for i in range(d):\n            row = k * d + i\n"
           "            for s in range(C):\n                bs[i, s] += A[row, s]",
           "    for k in range(1, D // d):\n        for i in range(d):\n"
           "            row = k * d + i\n"
           "            for s in range(C):\n                bs[i, s] += A[row, s]"),
    Mutant("single_false_count_ge", "kernel/_jit.py", "nf += np.int64(sq > thr2)",
           "nf += np.int64(sq >= thr2)"),
    Mutant("relu_term_sign", "kernel/_jit_decompose.py",
           "out.act_relu[s, layer, j, i] = eps - ovl - wk.RQ[t, i]",
           "out.act_relu[s, layer, j, i] = eps - ovl + wk.RQ[t, i]"),
    Mutant("push_neuron_twice", "kernel/_jit_decompose.py",
           "            if mark_k[k]:\n                continue\n", ""),
    Mutant("rank_one_sign", "kernel/_jit_constructions.py",
           "rho[i, s] += g * A[row, s]", "rho[i, s] -= g * A[row, s]"),
    Mutant("cavity_no_bias", "kernel/_jit_cavity.py", "sA[i] += max(p + b[i], 0.0)",
           "sA[i] += max(p, 0.0)"),
]

#: the kernel tests each mutant runs against (stop at the first failure)
TESTS = [
    "tests/test_simd.py", "tests/test_simd_safety.py",
    "tests/test_jit_differential.py::test_vector_operations_compiled_equal_python_bit_for_bit",
    "tests/test_engines.py::test_engines_agree_with_the_explicit_oracle",
    "tests/test_engines.py::test_auto_and_chunked_drivers_agree_with_the_explicit_oracle",
    "tests/test_engines.py::test_single_sample_path_matches_the_oracle_and_the_chunked_path",
    "tests/test_engines.py::test_a_read_out_exactly_at_the_threshold_is_not_a_false_activation",
    "tests/test_decompose.py::test_compiled_terms_equal_the_numpy_oracle",
    "tests/test_constructions.py::test_numba_layer_of_a_construction_equals_the_numpy_layer",
    "tests/test_bounds_cavity.py",
]


def _copy_project(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in files:
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def run(mutant: Mutant) -> tuple[str, float, str]:
    """(verdict, seconds, first failing test) of one mutant: 'killed', 'survived' or 'error'."""
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.name}-") as tmp:
        dest = Path(tmp)
        _copy_project(dest)
        target = dest / mutant.path
        text = target.read_text()
        assert text.count(mutant.old) == 1, f"{mutant.name}: the text to mutate is not unique"
        target.write_text(text.replace(mutant.old, mutant.new))
        env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR",)}
        env.update(PYTHONPATH=str(dest), HYPOTHESIS_PROFILE="ci", NUMBA_NUM_THREADS="1")
        start = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly",
                              "-p", "no:cacheprovider", *TESTS], cwd=dest, env=env,
                             capture_output=True, text=True, check=False)
        failed = [line for line in res.stdout.splitlines() if line.startswith("FAILED")]
        # pytest: 0 all passed, 1 some test failed; anything else (a collection error, a
        # crash) is reported as such, not counted as a kill
        verdict = {0: "survived", 1: "killed"}.get(res.returncode, f"error {res.returncode}")
        return verdict, time.monotonic() - start, (failed[0] if failed else "")


def main(names: list[str]) -> int:
    chosen = [m for m in MUTANTS if not names or m.name in names]
    survivors = 0
    for m in chosen:
        verdict, seconds, first = run(m)
        survivors += verdict == "survived"
        print(f"{m.name:26s} {verdict:9s} {seconds:6.0f} s  {first}", flush=True)
    print(f"{len(chosen) - survivors} of {len(chosen)} killed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
