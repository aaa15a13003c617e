"""Every bad input, in one table: the command line exits 2 with one line naming the parameter, the
Python API raises ConfigError naming it. Requests too large for the machine are refused by
estimate before anything is allocated.

Timing: the size refusals are asserted to take under 5 s in-process (they take well under a
second on an idle machine; the bound is loose because the test machine is shared and loaded).
"""

from __future__ import annotations

import dataclasses
import math
import os
import stat
import time
from functools import cache

import numba
import numpy as np
import pytest

from bounds.assumptions import check_assumptions
from bounds.predict import predict
from cis.cli import main
from cis.compare import compare
from cis.experiment import parse_grid
from kernel import (
    Batch,
    ConfigError,
    build_network,
    circuits_from_arrays,
    forward,
    make_batch,
    run,
    sample_batch,
    user_network,
)
from kernel.decompose import decompose
from kernel.measure import layer_stats
from kernel.patterns import capacity

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT

NET = dict(D=200, d=4, S=5, T=20, L=2)
HUGE = "1000000000000"


@cache
def net():
    return build_network(**NET)


def _batch(active, inputs=None):
    """A hand-built Batch (skips make_batch): forward must check it itself."""
    active = np.asarray(active)
    if inputs is None:
        inputs = np.ones((*active.shape, 4)) if active.ndim == 2 else np.ones((1, 1, 4))
    return Batch(active, inputs)


def _fwd(active, inputs=None, **kw):
    return lambda: forward(net(), _batch(active, inputs), **kw)


def _user(**kw):
    args = dict(weights=np.zeros((3, 2, 2, 2)), bias=0.0, inputs=np.ones((3, 2)), D=8, S=2)
    args.update(kw)

    def call():
        rest = dict(args)  # a copy: the case can be run more than once in one process
        return user_network(rest.pop("weights"), rest.pop("bias"), rest.pop("inputs"), **rest)

    return call


SIZE = "(needs about .* GiB of memory, more than the limit|would take about)"

# (id, argv, text the one line must contain)
CLI = [
    ("run-D-not-divisible", ["run", "--D", "1001"], "D=1001 must be divisible by d=4"),
    ("run-D-zero", ["run", "--D", "0"], "D=0 must be >= 1"),
    ("run-D-negative", ["run", "--D", "-8"], "D=-8 must be >= 1"),
    ("run-D-text", ["run", "--D", "abc"], "'--D': 'abc' is not a valid integer"),
    ("run-D-float", ["run", "--D", "1.5"], "'--D': '1.5' is not a valid integer"),
    ("run-D-missing-value", ["run", "--D"], "--D"),
    ("run-d-zero", ["run", "--d", "0"], "d=0 must be >= 1"),
    ("run-d-odd-signed", ["run", "--D", "999", "--d", "3", "--S", "5"], "d=3 must be even"),
    ("run-S-one", ["run", "--S", "1"], "S=1 must be >= 2"),
    ("run-S-above-n", ["run", "--D", "20", "--S", "6"], "S=6 must be <= n=D/d=5"),
    ("run-T-zero", ["run", "--T", "0"], "T=0 must be >= 1"),
    ("run-T-negative", ["run", "--T", "-3"], "T=-3 must be >= 1"),
    ("run-T-above-capacity", ["run", "--D", "1000", "--T", "900"], "T=900 exceeds"),
    ("run-L-zero", ["run", "--L", "0"], "L=0 must be >= 1"),
    ("run-z-zero", ["run", "--D", "200", "--T", "20", "--z", "0"], "z=0 must be >= 1"),
    ("run-z-above-T", ["run", "--D", "200", "--T", "20", "--z", "21"], "z=21 must be <= 20"),
    ("run-batch-zero", ["run", "--batch", "0"], "batch=0 must be >= 1"),
    ("run-batch-negative", ["run", "--batch", "-4"], "batch=-4 must be >= 1"),
    ("run-seed-negative", ["run", "--seed", "-1"], "seed=-1 must be >= 0"),
    ("run-family", ["run", "--family", "relu"], "family='relu' is not one of"),
    ("run-variant", ["run", "--variant", "x"], "variant='x' is not one of"),
    ("run-random-needs-T", ["run", "--variant", "random"], "T must be given"),
    ("run-engine", ["run", "--engine", "gpu"], "engine='gpu' is not one of"),
    ("run-bias-positive", ["run", "--bias", "0.5"], "bias=0.5 must be <= 0"),
    ("run-bias-nan", ["run", "--bias", "nan"], "bias=nan must be finite"),
    ("run-bias-inf", ["run", "--bias", "-inf"], "bias=-inf must be finite"),
    ("run-threshold-negative", ["run", "--threshold", "-0.1"], "threshold_fraction=-0.1"),
    ("run-threshold-nan", ["run", "--threshold", "nan"], "threshold_fraction=nan"),
    ("run-unknown-option", ["run", "--depth", "3"], "No such option '--depth'"),
    ("run-huge-batch", ["run", "--D", "200", "--T", "20", "--batch", HUGE], "batch=" + HUGE),
    ("run-huge-L", ["run", "--D", "200", "--T", "20", "--L", "1000000000"], "L=1000000000"),
    ("run-huge-D", ["run", "--D", "4000000000"], "D=4000000000"),
    ("run-huge-T-random", ["run", "--variant", "random", "--T", "100000000000"],
     "T=100000000000"),
    ("cis-unknown-command", ["simulate"], "No such command 'simulate'"),
    ("cis-unknown-global-option", ["--verbose", "run"], "No such option '--verbose'"),
    ("capacity-no-mode", ["capacity"], "give --n and --S, or --budget"),
    ("capacity-n-without-S", ["capacity", "--n", "250"], "Missing option '--S'"),
    ("capacity-n-below-S", ["capacity", "--n", "3", "--S", "6"], "n=3 must be >= 6"),
    ("capacity-S-one", ["capacity", "--n", "250", "--S", "1"], "S=1 must be >= 2"),
    ("capacity-n-text", ["capacity", "--n", "many", "--S", "6"], "'--n': 'many'"),
    ("capacity-n-and-budget", ["capacity", "--n", "250", "--S", "6", "--budget", "0.1"],
     "--n (T_max of a block of n neurons) and --budget"),
    ("capacity-n-ignores-D", ["capacity", "--n", "250", "--S", "6", "--D", "400"],
     "--D is not used by --n"),
    ("capacity-n-ignores-samples", ["capacity", "--n", "250", "--S", "6", "--samples", "9"],
     "--samples is not used by --n"),
    ("capacity-n-ignores-method", ["capacity", "--n", "250", "--S", "6", "--method", "post"],
     "--method is not used by --n"),
    ("capacity-budget-without-D", ["capacity", "--budget", "0.1"], "Missing option '--D'"),
    ("capacity-samples-zero", ["capacity", "--budget", "0.05", "--D", "4000", "--samples", "0"],
     "samples=0 must be >= 100"),
    ("capacity-samples-one", ["capacity", "--budget", "0.05", "--D", "4000", "--samples", "1"],
     "samples=1 must be >= 100"),
    ("capacity-post-ignores-samples",
     ["capacity", "--budget", "0.05", "--D", "4000", "--method", "post", "--samples", "400"],
     "--samples is not used by --budget with --method post"),
    ("capacity-post-ignores-family",
     ["capacity", "--budget", "0.05", "--D", "4000", "--method", "post", "--family", "gaussian"],
     "--family is not used by --budget with --method post"),
    ("capacity-method", ["capacity", "--budget", "0.05", "--D", "4000", "--method", "exact"],
     "'--method': 'exact' is not one of"),
    ("capacity-huge-n", ["capacity", "--n", HUGE, "--S", "6"], f"capacity n={HUGE}"),
    ("capacity-huge-samples",
     ["capacity", "--budget", "0.05", "--D", "4000", "--samples", "1000000000"],
     "samples=1000000000"),
    ("check-samples-few", ["check", "--samples", "5"], "samples=5 must be >= 1000"),
    # issue 18: a correct model FAILed at 100 and 200 trajectories; below 1000 the replicas scatter
    # too widely to judge (cis.compare.MIN_SAMPLES)
    ("check-samples-100", ["check", "--samples", "100"], "samples=100 must be >= 1000"),
    ("check-samples-200", ["check", "--samples", "200"], "samples=200 must be >= 1000"),
    ("check-huge-samples", ["check", "--samples", "10000000000"], "samples=10000000000"),
    ("check-plot-empty", ["check", "--plot", ""], "--plot='' is empty"),
    ("check-plot-format", ["check", "--plot", "errors.docx"], "extension 'docx'"),
    ("check-plot-no-extension", ["check", "--plot", "errors"], "--plot='errors' has no extension"),
    ("check-plot-missing-directory", ["check", "--plot", "/nonexistent-dir/e.png"],
     "does not exist"),
    ("check-D-not-divisible", ["check", "--D", "1001"], "D=1001 must be divisible by d=4"),
    # issue 18: silently wrong numbers, advice a user can follow, options that were ignored
    ("run-kappa-scale-1e308", ["run", "--construction", "ris-capped", "--kappa-scale", "1e308"],
     "or a smaller kappa_scale"),
    ("run-kappa-scale-1e100", ["run", "--D", "200", "--batch", "20", "--construction",
                               "ris-capped", "--kappa-scale", "1e100"], "overflow float64"),
    ("run-deep-builtin-advice", ["run", "--D", "200", "--batch", "4", "--L", "400"],
     "use fewer layers (L=400)"),
    ("run-z-above-T-not-memory", ["run", "--z", "100000"], "z=100000 must be <= 557"),
    ("check-terms-with-json", ["check", "--terms", "--json"], "--terms is for the tables"),
    ("run-kappa-scale-without-ris-capped", ["run", "--kappa-scale", "2"],
     "--kappa-scale is used only by --construction ris-capped"),
    ("check-rot-bias-without-rotation", ["check", "--rot-bias", "2"],
     "--rot-bias is used only by --family rotation"),
    ("run-sparse-engine-corrected-read-out", ["run", "--engine", "sparse", "--variant",
                                              "corrected"], "--engine sparse skips circuits"),
    ("check-sparse-engine-ris-split", ["check", "--engine", "sparse", "--construction",
                                       "ris-split"], "--engine sparse skips circuits"),
    ("run-sample-seed-negative", ["run", "--sample-seed", "-1"], "sample_seed=-1 must be >= 0"),
    ("bench-sample-seed-ignored", ["bench", "--sample-seed", "3"],
     "--sample-seed is not used by cis bench"),
    ("bench-threshold-ignored", ["bench", "--threshold", "0.2"],
     "--threshold is not used by cis bench"),
    # issue 18: slow refusals (each refused by estimate, in well under a second)
    ("bench-dense-too-wide", ["bench", "--D", "20004", "--T", "20000", "--batch", "256",
                              "--dense", "yes"], "D=20004 is too large for the dense"),
    # the fresh round of issue 18 (a selection of its cases that exit 2)
    ("capacity-budget-1e308-post", ["capacity", "--budget", "1e308", "--D", "1000", "--method",
                                    "post"], "budget=1e+308 is too large"),
    ("capacity-budget-nan", ["capacity", "--budget", "nan", "--D", "1000"], "budget=nan"),
    ("capacity-budget-negative", ["capacity", "--budget", "-1", "--D", "1000"], "budget=-1.0"),
    ("capacity-samples-99", ["capacity", "--budget", "0.05", "--D", "1000", "--samples", "99"],
     "samples=99 must be >= 100"),
    ("capacity-cavity-random", ["capacity", "--budget", "0.05", "--D", "1000", "--variant",
                                "random"], "needs overlaps <= 1"),
    ("capacity-bias-positive", ["capacity", "--budget", "0.05", "--D", "1000", "--bias", "0.1"],
     "bias=0.1 must be <= 0.0"),
    ("run-kappa-scale-nan", ["run", "--construction", "ris-capped", "--kappa-scale", "nan"],
     "kappa_scale=nan must be finite"),
    ("run-rot-bias-negative", ["run", "--family", "rotation", "--rot-bias", "-1"],
     "rot_bias=-1.0 must be >= 0.0"),
    ("run-threshold-inf", ["run", "--threshold", "inf"], "threshold_fraction=inf must be finite"),
    ("run-save-device", ["run", "--save", "/dev/null", "--D", "200", "--batch", "5"],
     "not a regular file"),
    ("run-load-device", ["run", "--load", "/dev/null"], "not a cis network file"),
    ("run-sample-seed-text", ["run", "--sample-seed", "1e3"], "'--sample-seed': '1e3'"),
    ("run-corrected-with-ris-uncapped", ["run", "--construction", "ris-uncapped", "--variant",
                                         "corrected"], "cannot be combined"),
    ("check-samples-999", ["check", "--samples", "999"], "samples=999 must be >= 1000"),
    ("export-out-device", ["export", "missing.safetensors", "--out", "/dev/null"],
     "not a regular file"),
    ("sweep-out-in-proc", ["sweep", "/nonexistent/grid.toml", "--out", "o"], "grid file"),
    ("bench-reps-zero", ["bench", "--reps", "0"], "reps=0 must be >= 1"),
    ("bench-dense-word", ["bench", "--dense", "maybe"], "dense='maybe' is not one of"),
    ("capacity-huge-D-cavity", ["capacity", "--D", "1000000000", "--budget", "0.05"],
     "a network with D=1000000000"),
    ("capacity-quarter-billion-D-cavity", ["capacity", "--D", "250000000", "--budget", "0.05"],
     "a network with D=250000000"),
]

SIZE_IDS = {"run-huge-batch", "run-huge-L", "run-huge-D", "run-huge-T-random", "capacity-huge-n",
            "capacity-huge-samples", "check-huge-samples", "capacity-huge-D-cavity",
            "capacity-quarter-billion-D-cavity"}


#: cases that need the compiled kernels: run as Python (NUMBA_DISABLE_JIT=1, the coverage run)
#: the design's count is too slow for the time bound, and float64 overflow in the engine warns
#: (the compiled kernels do not), which the test settings turn into an error
JIT_ONLY = {"capacity-huge-D-cavity", "capacity-quarter-billion-D-cavity", "run-kappa-scale-1e100"}
_JIT_MARK = pytest.mark.skipif(numba.config.DISABLE_JIT, reason="needs the compiled kernels")


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(a, m, id=i, marks=_JIT_MARK if i in JIT_ONLY else ()) for i, a, m in CLI])
def test_cli_bad_input_exits_2_with_one_line_naming_it(argv, message, capsys, request):
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        main(argv)
    seconds = time.perf_counter() - t0
    out, err = capsys.readouterr()
    assert exc.value.code == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cis: error: "), err
    assert message in lines[0], err
    if request.node.callspec.id in SIZE_IDS:
        assert "GiB" in lines[0] or "would take about" in lines[0], err
        assert seconds < 5.0, seconds  # loose: under a second on an idle machine


# (id, call, regex the ConfigError message must match)
API = [
    ("build-D-not-divisible", lambda: build_network(D=1001, d=4), r"D=1001 must be divisible"),
    ("build-D-text", lambda: build_network(D="many"), r"D='many' must be an integer"),
    ("build-D-none", lambda: build_network(D=None), r"D=None must be an integer"),
    ("build-S-one", lambda: build_network(D=100, S=1), r"S=1 must be >= 2"),
    ("build-T-zero", lambda: build_network(D=1000, T=0), r"T=0 must be >= 1"),
    ("build-T-float", lambda: build_network(D=1000, T=2.5), r"T=2.5 must be an integer"),
    ("build-L-zero", lambda: build_network(D=1000, L=0), r"L=0 must be >= 1"),
    ("build-bias-positive", lambda: build_network(D=1000, bias=0.1), r"bias=0.1 must be <= 0"),
    ("build-family", lambda: build_network(D=1000, family="relu"), r"family='relu'"),
    ("build-unknown-keyword", lambda: build_network(depth=3), r"unknown parameter\(s\) 'depth'"),
    ("build-huge-D", lambda: build_network(D=4 * 10**9), r"D=4000000000, .*" + SIZE),
    ("build-huge-L", lambda: build_network(**{**NET, "L": 10**9}), r"L=1000000000 .*" + SIZE),
    ("run-unknown-keyword", lambda: run(foo=1), r"unknown parameter\(s\) \['foo'\]"),
    ("run-z-zero", lambda: run(**NET, z=0), r"z=0 must be >= 1"),
    ("run-batch-zero", lambda: run(**NET, batch=0), r"batch=0 must be >= 1"),
    ("run-engine", lambda: run(**NET, engine="gpu"), r"engine='gpu' is not one of"),
    ("run-huge-batch", lambda: run(**NET, batch=10**12), r"batch=1000000000000.*" + SIZE),
    ("predict-z-zero", lambda: predict(net(), 0), r"z=0 must be >= 1"),
    ("predict-z-above-T", lambda: predict(net(), 21), r"z=21 must be <= 20"),
    ("predict-samples-zero", lambda: predict(net(), 2, samples=0), r"samples=0 must be >= 1"),
    ("sample-batch-zero", lambda: sample_batch(net(), 0, 2), r"batch=0 must be >= 1"),
    ("sample-z-above-T", lambda: sample_batch(net(), 3, 21), r"z=21 must be <= 20"),
    ("sample-huge-batch", lambda: sample_batch(net(), 10**12, 2), r"batch=1000000000000"),
    ("make-active-negative", lambda: make_batch(net(), [[-1, 2]]), r"active has indices in \[-1"),
    ("make-active-out-of-range", lambda: make_batch(net(), [[0, 20]]), r"active has indices"),
    ("make-active-repeated", lambda: make_batch(net(), [[3, 3]]), r"active has a repeated"),
    ("make-active-ragged", lambda: make_batch(net(), [[0, 1], [2]]), r"active could not be"),
    ("make-active-float", lambda: make_batch(net(), [[0.5, 1.0]]), r"active has dtype float64"),
    ("make-active-complex", lambda: make_batch(net(), [[1j, 2]]), r"active has dtype complex"),
    ("make-active-object", lambda: make_batch(net(), np.array([[0, None]], dtype=object)),
     r"active has dtype object"),
    ("make-active-1d", lambda: make_batch(net(), [0, 1]), r"active has shape \(2,\)"),
    ("make-active-empty", lambda: make_batch(net(), np.zeros((0, 2), dtype=int)),
     r"batch.active has B=0 samples"),
    ("make-active-no-circuits", lambda: make_batch(net(), np.zeros((3, 0), dtype=int)),
     r"batch.active has z=0 circuits"),
    ("make-inputs-shape", lambda: make_batch(net(), [[0, 1]], np.ones((1, 2, 3))),
     r"inputs has shape \(1, 2, 3\), expected \(1, 2, 4\)"),
    ("make-inputs-nan", lambda: make_batch(net(), [[0, 1]], np.full((1, 2, 4), np.nan)),
     r"inputs contains non-finite"),
    ("make-inputs-negative", lambda: make_batch(net(), [[0, 1]], -np.ones((1, 2, 4))),
     r"inputs has negative entries"),
    ("make-inputs-complex", lambda: make_batch(net(), [[0, 1]], np.ones((1, 2, 4)) * 1j),
     r"inputs has dtype complex"),
    ("forward-hand-built-repeated", _fwd([[4, 4]]), r"batch.active has a repeated circuit"),
    ("forward-hand-built-negative", _fwd([[-1, 3]]), r"batch.active has indices in \[-1, 3\]"),
    ("forward-hand-built-out-of-range", _fwd([[0, 99]]), r"batch.active has indices in \[0, 99"),
    ("forward-hand-built-float-active", _fwd(np.array([[0.0, 1.0]])),
     r"batch.active has shape \(1, 2\) and dtype float64"),
    ("forward-hand-built-1d-active", _fwd(np.array([0, 1])), r"batch.active has shape \(2,\)"),
    ("forward-hand-built-empty", _fwd(np.zeros((0, 2), dtype=int), np.ones((0, 2, 4))),
     r"batch.active has B=0"),
    ("forward-hand-built-object-inputs", _fwd([[0, 1]], np.ones((1, 2, 4)).astype(object)),
     r"batch.inputs has dtype object"),
    ("forward-hand-built-complex-inputs", _fwd([[0, 1]], np.ones((1, 2, 4)) + 0j),
     r"batch.inputs has dtype complex"),
    ("forward-hand-built-nan-inputs", _fwd([[0, 1]], np.full((1, 2, 4), np.nan)),
     r"batch.inputs contains non-finite"),
    ("forward-hand-built-inputs-shape", _fwd([[0, 1]], np.ones((1, 2, 3))),
     r"batch.inputs has shape \(1, 2, 3\), expected \(1, 2, 4\)"),
    ("forward-hand-built-float32-inputs", _fwd([[0, 1]], np.ones((1, 2, 4), np.float32)),
     r"batch.inputs has dtype float32"),
    ("forward-not-a-batch", lambda: forward(net(), ([[0, 1]], None)), r"batch=tuple must be"),
    ("forward-engine", _fwd([[0, 1]], engine="gpu"), r"engine='gpu' is not one of"),
    ("forward-dtype-name", _fwd([[0, 1]], dtype="float16"), r"dtype='float16' is not one of"),
    ("forward-dtype-type", _fwd([[0, 1]], dtype=np.float16), r"dtype='float16' is not one of"),
    ("forward-dtype-dense", _fwd([[0, 1]], engine="dense", dtype=np.float32),
     r"dtype='float32' is not available for engine 'dense'"),
    ("forward-readout-range", _fwd([[0, 1]], readout=[25]), r"readout has ids in \[25, 25\]"),
    ("forward-readout-word", _fwd([[0, 1]], readout="some"), r"readout='some' is not one of"),
    ("forward-threshold-nan", _fwd([[0, 1]], threshold_fraction=float("nan")),
     r"threshold_fraction=nan must be finite"),
    ("forward-huge-weights",
     lambda: forward((un := user_network(np.full((3, 2, 2, 2), 1e200), 0.0, np.ones((3, 2)),
                                         D=8, S=2)), sample_batch(un, 1, 1)),
     r"weights up to 1e\+200 at layer 2 could overflow float64"),
    ("user-weights-ragged", _user(weights=[[[[1.0]]], [[[1.0, 2.0]]]]), r"weights"),
    ("user-weights-rank", _user(weights=np.zeros((3, 2, 2))), r"weights has shape \(3, 2, 2\)"),
    ("user-weights-complex", _user(weights=np.zeros((3, 2, 2, 2)) * 1j),
     r"weights has dtype complex"),
    ("user-weights-object", _user(weights=np.zeros((3, 2, 2, 2)).astype(object)),
     r"weights has dtype object"),
    ("user-weights-inf", _user(weights=np.full((3, 2, 2, 2), np.inf)),
     r"weights contains non-finite"),
    ("user-inputs-negative", _user(inputs=-np.ones((3, 2))), r"inputs has negative entries"),
    ("user-inputs-shape", _user(inputs=np.ones((4, 2))), r"inputs has shape \(4, 2\)"),
    ("user-bias-positive", _user(bias=0.5), r"bias"),
    ("user-D-not-divisible", _user(D=7), r"D=7 must be divisible by d=2"),
    ("user-S-above-n", _user(S=5), r"S=5 must be <= n=D/d=4"),
    ("circuits-inputs-text", lambda: circuits_from_arrays(np.zeros((2, 1, 2, 2)), 0.0, "ab"),
     r"inputs"),
    ("capacity-n-below-S", lambda: capacity(3, 6), r"n=3 must be >= 6"),
    ("capacity-huge-n", lambda: capacity(10**13, 6), r"capacity n=10000000000000.*" + SIZE),
    ("forward-offsets-out-of-range",
     lambda: forward(dataclasses.replace(net(), offsets=np.full_like(net().offsets, 10**6)),
                     sample_batch(net(), 2, 2)), r"network offsets has entries in \[1000000"),
    ("forward-offsets-negative",
     lambda: forward(dataclasses.replace(net(), offsets=np.full_like(net().offsets, -1)),
                     sample_batch(net(), 2, 2)), r"network offsets has entries in \[-1"),
    ("forward-inverse-index-out-of-range",
     lambda: forward(dataclasses.replace(net(), inv_circuits=net().inv_circuits + 10**6),
                     sample_batch(net(), 2, 2)), r"network inv_circuits has entries"),
    ("decompose-offsets-out-of-range",
     lambda: decompose(dataclasses.replace(net(), offsets=np.full_like(net().offsets, 10**6)),
                       sample_batch(net(), 2, 2)), r"network offsets has entries"),
    ("layer-stats-other-network",
     lambda: layer_stats(build_network(**NET), forward(net(), sample_batch(net(), 2, 2))),
     r"res was computed by forward on another network"),
    ("layer-stats-not-a-result", lambda: layer_stats(net(), None),
     r"res=NoneType must be the ForwardResult"),
    ("compare-samples-few", lambda: compare({"D": 200, "T": 20}, samples=10),
     r"samples=10 must be >= 1000"),
    ("parse-grid-not-a-table", lambda: parse_grid(None), r"grid=NoneType must be a table"),
    ("parse-grid-list", lambda: parse_grid([]), r"grid=list must be a table"),
    ("parse-grid-nan", lambda: parse_grid({"mode": "capacity", "fixed": {"fa_limit": math.nan}}),
     r"fixed.fa_limit=nan must be finite"),
    ("parse-grid-grow-one", lambda: parse_grid({"mode": "capacity", "fixed": {"grow": 1.0}}),
     r"fixed.grow=1.0 must be > 1"),
    ("parse-grid-samples-low", lambda: parse_grid({"mode": "check", "fixed": {"samples": 10}}),
     r"fixed.samples=10 must be >= 1000"),
    ("forward-design-out-of-range",
     lambda: forward(dataclasses.replace(net(), design=net().design + 10**6),
                     sample_batch(net(), 2, 2)), r"network design has entries"),
    ("forward-inverse-pointers-reversed",
     lambda: forward(dataclasses.replace(net(), inv_indptr=net().inv_indptr[:, ::-1].copy()),
                     sample_batch(net(), 2, 2)), r"network inv_indptr is not an index"),
    ("forward-offsets-float",
     lambda: forward(dataclasses.replace(net(), offsets=net().offsets.astype(float)),
                     sample_batch(net(), 2, 2)), r"network offsets has shape .* dtype float64"),
    ("run-sample-seed-float", lambda: run(**NET, sample_seed=1.5),
     r"sample_seed=1.5 must be an integer"),
    ("assumptions-z-zero", lambda: check_assumptions(net(), z=0), r"z=0 must be >= 1"),
    ("assumptions-z-above-T", lambda: check_assumptions(net(), z=21), r"z=21 must be <= 20"),
]


@pytest.mark.parametrize(("call", "match"), [pytest.param(c, m, id=i) for i, c, m in API])
def test_api_bad_input_raises_config_error_naming_it(call, match):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=match) as exc:
        call()
    assert "\n" not in str(exc.value)
    assert time.perf_counter() - t0 < 5.0  # loose: size refusals are estimates, not attempts


def test_the_table_has_at_least_80_cases():
    assert len(CLI) + len(API) >= 80
    for table in (CLI, API):
        ids = [c[0] for c in table]
        assert len(set(ids)) == len(ids)


def test_user_network_owns_read_only_copies_of_its_arrays():
    w, x = np.full((3, 2, 2, 2), 0.5), np.ones((3, 2))
    un = user_network(w, 0.0, x, D=8, S=2)
    before = forward(un, make_batch(un, [[0, 1]])).active_readout.copy()
    w[:] = 7.0  # the caller changes their arrays afterwards: the network does not see it
    x[:] = 3.0
    assert np.all(un.circuits.weights == 0.5) and np.all(un.circuits.inputs == 1.0)
    np.testing.assert_array_equal(forward(un, make_batch(un, [[0, 1]])).active_readout, before)
    for arr in (un.circuits.weights, un.circuits.bias, un.circuits.inputs, un.offsets,
                un.design, un.inv_indptr, un.inv_circuits):
        with pytest.raises(ValueError, match="read-only"):
            arr[(0,) * arr.ndim] = 1


def test_dtype_may_be_given_as_a_numpy_type():
    b = sample_batch(net(), 4, 2, seed=1)
    by_type = forward(net(), b, dtype=np.float32, engine="factorised")
    by_name = forward(net(), b, dtype="float32", engine="factorised")
    np.testing.assert_array_equal(by_type.active_readout, by_name.active_readout)


def test_overflow_bound_refuses_only_what_could_overflow():
    ok = user_network(np.full((3, 2, 2, 2), 1e30), 0.0, np.ones((3, 2)), D=8, S=2)
    res = forward(ok, sample_batch(ok, 2, 1))  # (1e30 * load * d)^2 is far below float64's max
    assert np.all(np.isfinite(res.active_readout))
    with pytest.raises(ConfigError, match="could overflow float32"):
        forward(ok, sample_batch(ok, 2, 1), dtype="float32", engine="factorised")


def test_memory_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("CIS_MEMORY_LIMIT_GB", "0.000001")
    with pytest.raises(ConfigError, match=r"limit of 1e-06 GiB \(CIS_MEMORY_LIMIT_GB\)"):
        run(**NET, batch=10)
    monkeypatch.setenv("CIS_MEMORY_LIMIT_GB", "lots")
    with pytest.raises(ConfigError, match=r"CIS_MEMORY_LIMIT_GB='lots' must be a positive"):
        run(**NET, batch=10)



# ----------------------------------------------------------------------------- files (issue 18)
# Cases that need files: ``setup(tmp)`` writes them and returns argv; the command must exit 2
# with one line containing the text, and ``after(tmp)`` checks that nothing was destroyed or
# written (a fingerprint of every file under tmp, taken before the command, must not change).

GRID = 'mode = "check"\n[fixed]\nD = 400\nS = 5\nT = 40\nL = 2\nbatch = 40\n'


def _netfile(tmp):
    from kernel.io import save_network

    save_network(build_network(**NET), tmp / "net.safetensors")
    return tmp / "net.safetensors"


def _grid(tmp, text=GRID, name="grid.toml"):
    (tmp / name).write_text(text)
    return str(tmp / name)


def _foreign_sweep(tmp):
    # a directory written by another grid's sweep: its marker names other points
    import json

    out = tmp / "other"
    (out / "parts").mkdir(parents=True)
    (out / "sweep.json").write_text(json.dumps({"grid_sha256": "0" * 64,
                                                "keys": ["0123456789abcdef"]}))
    (out / "results.csv").write_text("precious\n")
    return ["sweep", _grid(tmp), "--out", str(out), "--resume"]


def _junk_dir(tmp, resume):
    (tmp / "data").mkdir()
    (tmp / "data" / "dataset.parquet").write_text("not ours")
    return ["sweep", _grid(tmp), "--out", str(tmp / "data"), *(["--resume"] if resume else [])]


def _results_dir(tmp, content: bytes):
    (tmp / "res").mkdir()
    (tmp / "res" / "results.parquet").write_bytes(content)
    return ["plot", str(tmp / "res"), "--kind", "layers", "--out", str(tmp / "p.png")]


FILES = [
    ("export-out-is-input",
     lambda t: ["export", str(_netfile(t)), "--out", str(t / "net.safetensors")],
     "is the input file"),
    ("export-out-is-input-through-symlink",
     lambda t: (_netfile(t), (t / "link").symlink_to(t / "net.safetensors"),
                ["export", str(t / "link"), "--out", str(t / "net.safetensors")])[-1],
     "is the input file"),
    ("export-out-empty", lambda t: ["export", str(_netfile(t)), "--out", ""], "--out='' is empty"),
    ("export-out-fifo",
     lambda t: (os.mkfifo(t / "fifo"), ["export", str(_netfile(t)), "--out", str(t / "fifo")])[-1],
     "not a regular file"),
    ("run-save-refused-batch-writes-nothing",
     lambda t: ["run", "--save", str(t / "p.safetensors"), "--batch", "1000000000"], "GiB"),
    ("run-save-refused-z-writes-nothing",
     lambda t: ["run", "--save", str(t / "p.safetensors"), "--z", "100000"],
     "z=100000 must be <= 557"),  # issue 18: was reported as a memory problem
    ("run-save-fifo",
     lambda t: (os.mkfifo(t / "fifo"), ["run", "--save", str(t / "fifo")])[-1],
     "not a regular file"),
    ("check-load-huge-samples",
     lambda t: ["check", "--load", str(_netfile(t)), "--samples", "10000000000"], "GiB"),
    ("check-save-huge-samples-writes-nothing",
     lambda t: ["check", "--save", str(t / "p.safetensors"), "--samples", "10000000000"], "GiB"),
    ("sweep-out-empty", lambda t: ["sweep", _grid(t), "--out", ""], "--out='' is empty"),
    ("dataset-out-empty", lambda t: ["dataset", str(_netfile(t)), "--samples", "5", "--out", ""],
     "--out='' is empty"),
    ("sweep-resume-foreign-sweep", _foreign_sweep, "was written by another grid"),
    ("sweep-resume-junk-dir", lambda t: _junk_dir(t, True), "was not written by cis sweep"),
    ("sweep-into-junk-dir", lambda t: _junk_dir(t, False), "was not written by cis sweep"),
    ("sweep-binary-grid",
     lambda t: ((t / "g.toml").write_bytes(bytes(range(256))),
                ["sweep", str(t / "g.toml"), "--out", str(t / "o")])[-1], "is not text"),
    ("sweep-scheduler-not-an-address",
     lambda t: ["sweep", _grid(t), "--out", str(t / "o"), "--scheduler", "notaurl"],
     "--scheduler='notaurl' is not a scheduler address"),
    ("sweep-samples-5", lambda t: ["sweep", _grid(t, GRID + "samples = 5\n"), "--out",
                                   str(t / "o")], "fixed.samples=5 must be >= 1000"),
    ("sweep-cavity-samples-1",
     lambda t: ["sweep", _grid(t, 'mode = "capacity"\n[fixed]\ncavity_samples = 1\n'),
                "--out", str(t / "o")], "fixed.cavity_samples=1 must be >= 100"),
    ("sweep-batch-0",
     lambda t: ["sweep", _grid(t, 'mode = "check"\n[cross]\nbatch = [10, 0]\n'), "--out",
                str(t / "o")], "cross.batch=0 must be >= 1"),
    ("sweep-grid-of-1e8-points",
     lambda t: ["sweep", _grid(t, 'mode = "check"\n[cross]\nD = ' + str(list(range(1, 10001)))
                + "\nseed = " + str(list(range(10000))) + "\n"), "--out", str(t / "o")],
     "a grid of 100000000 points needs"),
    ("plot-corrupt-results", lambda t: _results_dir(t, b"PAR1 not really"),
     "is not a readable results table"),
    ("plot-out-unknown-format",
     lambda t: _results_dir(t, b"x")[:-1] + [str(t / "p.xyz")], "extension 'xyz'"),
    ("plot-out-no-extension",
     lambda t: _results_dir(t, b"x")[:-1] + [str(t / "p12")], "--out='" ),
    ("plot-x-ignored",
     lambda t: _results_dir(t, b"x") + ["--x", "bias"], "--x is not used by --kind layers"),
    ("plot-out-fifo",
     lambda t: (os.mkfifo(t / "f.png"), _results_dir(t, b"x")[:-1] + [str(t / "f.png")])[-1],
     "not a regular file"),
]


def _fingerprint(root):
    return {str(p.relative_to(root)): (p.is_symlink(), p.read_bytes() if p.is_file()
                                        and not p.is_symlink() else None)
            for p in sorted(root.rglob("*")) if not stat.S_ISFIFO(os.lstat(p).st_mode)}


@pytest.mark.parametrize(("setup", "message"), [pytest.param(s, m, id=i) for i, s, m in FILES])
def test_file_bad_input_exits_2_and_destroys_nothing(setup, message, tmp_path, capsys):
    argv = setup(tmp_path)
    before = _fingerprint(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    assert exc.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cis: error: "), err
    assert message in lines[0], err
    assert _fingerprint(tmp_path) == before  # nothing destroyed, nothing written
