"""Shape of the compiled code (issue 17): every compiled function takes at most 8 parameters
(arrays travel in records, so a swapped pair of same-typed arrays cannot compile silently), and
the layer pass exists once: one gather, one scatter, one block sum, one bias + ReLU."""

from __future__ import annotations

import ast
from pathlib import Path

KERNEL = Path(__file__).resolve().parents[1] / "kernel"
COMPILED = sorted(KERNEL.glob("_jit*.py"))


def _compiled_functions():
    for path in COMPILED:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(
                    "njit" in ast.unparse(d) for d in node.decorator_list):
                yield path.name, node


def test_every_compiled_function_takes_at_most_8_parameters():
    wide = [(f, n.name, len(n.args.args)) for f, n in _compiled_functions()
            if len(n.args.args) > 8]
    assert not wide, wide
    assert sum(1 for _ in _compiled_functions()) > 30  # the scan sees the kernels


def test_the_layer_pass_helpers_are_defined_once():
    names = [n.name for _, n in _compiled_functions()]
    for helper in ("_gather", "_scatter_rows", "_block_sums", "_bias_relu", "_mix"):
        assert names.count(helper) == 1, (helper, names.count(helper))
    for twin in ("_relu_bias", "_apply_layer_cols", "_propagate_d4"):
        assert twin not in names
