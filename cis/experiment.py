"""Experiments as data: grid files, their points, and the computation of one point.

A grid file (TOML) names a ``mode``, fixed parameters and lists to cross::

    mode = "capacity"            # or "check"
    description = "optional text"
    [fixed]
    d = 4
    budget = 0.05
    [cross]
    D = [1000, 2000, 4000]
    seed = [0, 1, 2]

Every combination of the ``[cross]`` lists (in file order) with the ``[fixed]`` values is one
*point*; its configuration is completed with the mode's defaults and keyed by a hash of the whole
configuration (seed included), so the same point gets the same key in any grid.

This module does the pure computation of a point (``run_point``: a list of tidy rows) and knows
nothing about scheduling or storage; ``cis.sweep`` runs the points on Dask and stores the rows.

* ``check`` mode: one ``cis.compare.compare`` per point (the JSON of ``cis check``), flattened
  into one row per (layer, class): measured and predicted MSE, the three error terms measured and
  predicted, each model's prediction and verdict, frac_on, false activations and the 95% CI.
* ``capacity`` mode: the largest T whose measured active MSE at layer L is <= budget x mean
  |a^L|^2 (and, optionally, whose false-activation rate at layer L is <= ``fa_limit``), found by
  bisection over T on networks run by the engine (``kernel.measure.run``); the cavity's and the
  post's answers (``bounds.capacity``) are recorded beside it. With ``metric = "mse_x"`` the
  budget is on the rotation task's active MSE_x at layer L instead (absolute; |x|^2 = 1), for
  any ``construction``. One row per point.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bounds.search import largest_passing
from cis.compare import CAVITY_MIN_SAMPLES, MIN_SAMPLES
from kernel.validate import ConfigError

MODES = ("check", "capacity")

#: parameters of a network run shared by both modes: name -> (type, default). ``float`` accepts
#: TOML integers too; ``int`` does not accept floats or booleans.
_RUN_PARAMS: dict[str, tuple[type, Any]] = {
    "D": (int, 1000), "d": (int, 4), "S": (int, 6), "L": (int, 4), "z": (int, 2),
    "family": (str, "signed"), "bias": (float, 0.0), "variant": (str, "plain"),
    "seed": (int, 0), "engine": (str, "auto"), "threshold_fraction": (float, 0.1),
}

#: parameters of each mode (name -> (type, default)); ``None`` as default means "not set"
PARAMS: dict[str, dict[str, tuple[type, Any]]] = {
    "check": {**_RUN_PARAMS, "T": (int, None), "batch": (int, 1000), "samples": (int, 4000)},
    "capacity": {
        **_RUN_PARAMS,
        "batch": (int, 1000),        # samples per evaluated T (95% CI of the MSE about +-4%)
        "budget": (float, 0.05),     # active MSE at layer L <= budget * mean |a^L|^2
        "fa_limit": (float, 1.0),    # false-activation rate at layer L <= fa_limit (1: no limit)
        "rtol": (float, 0.05),       # stop when the bracket [T*, T_fail] is within 1 + rtol
        "grow": (float, 1.5),        # bracketing step (factor on T) from the cavity's T*
        "cavity": (bool, True),      # also compute the cavity's T* (and start from it)
        "cavity_samples": (int, 4000),
        "construction": (str, "cis2"),  # how W^l is formed (kernel.constructions)
        "kappa_scale": (float, 1.0),    # factor on kappa of ris-capped
        "rot_bias": (float, 1.0),       # bias size b of the rotation family
        "metric": (str, "mse"),         # what the budget holds: raw |eps|^2 or the task's MSE_x
    },
}

#: what ``metric`` may be: "mse" the raw active |eps|^2 relative to mean |a^L|^2, "mse_x" the
#: rotation task's active MSE_x = E|x - x_hat|^2 (absolute; |x|^2 = 1 so also relative)
METRICS = ("mse", "mse_x")

#: parameters added after grids were first keyed, with the default under which every older grid
#: ran: a point hashes them only when it sets another value, so the points of older grids keep
#: their keys (and their stored results still resume and match)
_KEYED_ONLY_IF_SET: dict[str, Any] = {"construction": "cis2", "kappa_scale": 1.0,
                                      "rot_bias": 1.0, "metric": "mse"}

_TOP_KEYS = ("mode", "description", "fixed", "cross")

#: what ``budget`` means in capacity sweeps and ``cis capacity`` alike (reported in their output)
BUDGET_NORMALISATION = ("relative: active MSE at layer L <= budget x a2_population, the mean "
                        "|a^L|^2 of the circuits on their own inputs")

#: what ``budget`` means with ``metric = "mse_x"``
BUDGET_NORMALISATION_X = ("absolute: active MSE_x = E|x - x_hat|^2 of the rotation task at "
                          "layer L <= budget (|x|^2 = 1, so also relative)")

#: the least value of a parameter that the CLI accepts too (checked when the grid is read, not
#: left to fail in every point): Monte Carlo trajectories as ``cis check --samples`` and
#: ``cis capacity --samples``, at least one sample
_MINIMUMS = {"samples": MIN_SAMPLES, "cavity_samples": CAVITY_MIN_SAMPLES, "batch": 1}


@dataclass(frozen=True)
class Point:
    """One configuration of a grid: its position in the grid, its key and its parameters."""

    index: int
    key: str
    mode: str
    params: dict[str, Any]


def point_key(mode: str, params: dict[str, Any]) -> str:
    """Hash (16 hex digits) of the full configuration: mode and every parameter, seed included.

    Parameters of ``_KEYED_ONLY_IF_SET`` at their default are left out, so a configuration
    keeps the key it had before they existed:

    >>> point_key("check", {"D": 400, "seed": 0}) == point_key("check", {"seed": 0, "D": 400})
    True
    >>> point_key("capacity", {"D": 400, "metric": "mse"}) == point_key("capacity", {"D": 400})
    True
    """
    params = {k: v for k, v in params.items()
              if not (k in _KEYED_ONLY_IF_SET and v == _KEYED_ONLY_IF_SET[k])}
    blob = json.dumps({"mode": mode, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _typed(where: str, value: Any, kind: type) -> Any:
    ok = (isinstance(value, kind) and not (kind is int and isinstance(value, bool))) or (
        kind is float and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{where}={value!r} must be of type {kind.__name__}")
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{where}={value!r} must be finite")
    return float(value) if kind is float else value


def parse_grid(grid: dict[str, Any]) -> tuple[str, list[Point]]:
    """Validate a parsed grid file and expand it into points (file order of the lists).

    Raises ConfigError with one line naming the offending key: an unknown key, a value of the
    wrong type, an empty list, a parameter both fixed and crossed, or a mode other than
    ``check`` / ``capacity``; non-finite numbers, Monte Carlo samples and batches below what the
    CLI accepts, ``grow <= 1``, a ``construction`` or ``metric`` that does not exist, a negative
    ``kappa_scale`` or ``rot_bias``, ``metric = "mse_x"`` for a family without that task, the
    raw-error cavity asked for with another construction than ``cis2`` (it predicts the ``cis2``
    weights; ``mse_x`` has the construction recursion) and grids too large to hold. Other
    values are checked against what a network allows only when the point runs (a bad point is
    then recorded as a failure, not fatal to the sweep).
    """
    if not isinstance(grid, dict):
        raise ConfigError(f"grid={type(grid).__name__} must be a table (a parsed TOML file)")
    for key in grid:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{key}: unknown key (allowed: {', '.join(_TOP_KEYS)})")
    mode = grid.get("mode")
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r} must be one of {', '.join(MODES)}")
    schema = PARAMS[mode]
    fixed, cross = grid.get("fixed", {}), grid.get("cross", {})
    for name, table in (("fixed", fixed), ("cross", cross)):
        if not isinstance(table, dict):
            raise ConfigError(f"{name} must be a table ([{name}])")
    if not isinstance(grid.get("description", ""), str):
        raise ConfigError("description must be a string")
    params: dict[str, Any] = {k: v for k, (_, v) in schema.items() if v is not None}
    for key, value in fixed.items():
        if key not in schema:
            raise ConfigError(f"fixed.{key}: unknown parameter for mode {mode} "
                              f"(allowed: {', '.join(schema)})")
        params[key] = _typed(f"fixed.{key}", value, schema[key][0])
    lists: dict[str, list[Any]] = {}
    for key, values in cross.items():
        if key not in schema:
            raise ConfigError(f"cross.{key}: unknown parameter for mode {mode} "
                              f"(allowed: {', '.join(schema)})")
        if key in fixed:
            raise ConfigError(f"cross.{key}: also given in [fixed]")
        if not isinstance(values, list):
            raise ConfigError(f"cross.{key}={values!r} must be a list")
        if not values:
            raise ConfigError(f"cross.{key}: empty list")
        lists[key] = [_typed(f"cross.{key}", v, schema[key][0]) for v in values]
    for key, low in _MINIMUMS.items():
        where = "fixed" if key in params and key not in lists else "cross"
        for value in lists.get(key, [params.get(key)]):
            if value is not None and key in schema and value < low:
                raise ConfigError(f"{where}.{key}={value} must be >= {low}")
    for value in lists.get("grow", [params.get("grow")]):
        if value is not None and "grow" in schema and value <= 1.0:
            where = "cross" if "grow" in lists else "fixed"
            raise ConfigError(f"{where}.grow={value} must be > 1 (the bracketing step on T)")
    _check_choices(params, lists, schema)
    from kernel import limits

    count = math.prod(len(v) for v in lists.values())
    # a point's configuration and key take ~2 KiB; refuse a grid that cannot be held
    limits.check(limits.Estimate(f"a grid of {count} points", 2048.0 * count, 1e-5 * count))
    points = []
    for index, combo in enumerate(itertools.product(*lists.values())):
        p = {**params, **dict(zip(lists, combo))}
        _check_combination(p, lists, set(fixed))
        points.append(Point(index, point_key(mode, p), mode, p))
    return mode, points


def _where(key: str, lists: dict[str, list[Any]]) -> str:
    return f"cross.{key}" if key in lists else f"fixed.{key}"


def _check_choices(params: dict[str, Any], lists: dict[str, list[Any]],
                   schema: dict[str, tuple[type, Any]]) -> None:
    """Every value of the parameters with a fixed set of choices or a sign (capacity mode's
    construction, metric, kappa_scale and rot_bias) is one a network accepts."""
    from kernel.constructions import CONSTRUCTIONS

    choices = {"construction": tuple(CONSTRUCTIONS), "metric": METRICS}
    for key in schema:
        for value in lists.get(key, [params.get(key)]):
            if key in choices and value not in choices[key]:
                raise ConfigError(f"{_where(key, lists)}={value!r} must be one of "
                                  f"{', '.join(choices[key])}")
            if key in ("kappa_scale", "rot_bias") and value < 0:
                raise ConfigError(f"{_where(key, lists)}={value!r} must be >= 0")


def _check_combination(p: dict[str, Any], lists: dict[str, list[Any]], fixed: set[str]
                       ) -> None:
    """A point's parameters fit together: the task metric needs a family that defines the task,
    and a cavity is asked only for what it predicts (the raw error of ``cis2`` weights; the task
    metric under any construction, ``bounds.cavity_constructions``)."""
    from kernel.circuits import FAMILIES

    metric, construction = p.get("metric", "mse"), p.get("construction", "cis2")
    if metric == "mse_x":
        fam = FAMILIES.get(p["family"])
        if fam is None or fam.task is None:
            with_task = ", ".join(k for k, f in FAMILIES.items() if f.task is not None)
            raise ConfigError(f"{_where('metric', lists)}='mse_x' needs a family with that "
                              f"task ({with_task}), not {_where('family', lists)}={p['family']!r}")
    if p.get("cavity") and metric == "mse" and construction != "cis2":
        given = "cavity" in lists or "cavity" in fixed
        where = _where("cavity", lists) + "=true" if given else "cavity=true (the default)"
        raise ConfigError(f"{where}: the capacity search's cavity predicts the raw error of cis2 "
                          f"weights, not construction={construction!r} (metric 'mse_x' has "
                          "the construction recursion); set cavity = false")


def load_grid(path: str | Path) -> tuple[str, list[Point]]:
    """Read a TOML grid file (``tomllib``; ``tomli`` before Python 3.11) and expand it
    (``parse_grid``)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
        import tomli as tomllib

    try:
        with open(path, "rb") as fh:
            grid = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"grid file {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"grid file {str(path)!r} is not text (TOML is UTF-8)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"grid file {str(path)!r} is not valid TOML: {exc}") from None
    return parse_grid(grid)


# --- check mode ---------------------------------------------------------------------------

def _network_params(p: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: p[k] for k in names if k in p and p[k] is not None}


def check_rows(p: dict[str, Any]) -> list[dict[str, Any]]:
    """``cis check`` of one configuration as tidy rows, one per (layer >= 1, class).

    Columns: ``layer``, ``class``, measured ``mse`` with its 95% CI (``mse_lo``, ``mse_hi``),
    ``max_abs``, the main prediction ``pred_mse`` and its terms ``pred_<term>``, the measured terms
    ``meas_<term>``, every model's prediction ``model_<name>``, verdict ``verdict_<name>`` and
    the assumptions it is derived under that the network violates ``violated_<name>``
    (comma-separated, "" when none; ``cis check``'s ``*An`` marks), ``pass`` (True / False /
    None: nothing judged), ``frac_on`` and ``false_activation_rate``.
    """
    from cis.compare import compare

    names = tuple(_RUN_PARAMS) + ("T", "batch")
    out, _ = compare(_network_params(p, names), samples=p["samples"])
    rows = []
    for lay in out["layers"]:
        if lay["layer"] == 0:  # no error at the input by construction
            continue
        for cls in ("active", "inactive"):
            e = lay[cls]
            if e is None:
                continue
            row: dict[str, Any] = {
                "layer": lay["layer"], "class": cls, "T_used": out["config"]["T"],
                "mse": e["mse"], "mse_lo": e["mse_ci"][0], "mse_hi": e["mse_ci"][1],
                "max_abs": e["max_abs"], "pred_mse": e["predicted"]["mse"],
                "pass": e["pass"], "frac_on": lay["frac_on"],
                "false_activation_rate": lay["false_activation_rate"],
                "worst_case_bound": e["worst_case_bound"],
            }
            for term, value in e["measured_terms"].items():
                row[f"meas_{term}"] = value
                row[f"pred_{term}"] = e["predicted"].get(term)
            for est in e["estimates"]:
                name = est["model"].replace("-", "_").replace(" ", "_")
                row[f"model_{name}"] = est["mse"]
                row[f"verdict_{name}"] = est["verdict"]
                row[f"violated_{name}"] = ",".join(est["assumptions_violated"])
            rows.append(row)
    return rows


# --- capacity mode ------------------------------------------------------------------------

@dataclass(frozen=True)
class Evaluation:
    """One measured network at T: the budgeted error at layer L relative to its reference ``a2``
    (active |eps|^2 over mean |a^L|^2; with metric "mse_x" the task's MSE_x over |x|^2 = 1), its
    95% CI, and the false-activation rate at layer L."""

    T: int
    ratio: float
    ratio_lo: float
    ratio_hi: float
    a2: float
    fa_rate: float
    ok: bool


def measure_at(p: dict[str, Any], T: int) -> Evaluation:
    """Run the network of configuration ``p`` with T circuits and judge it against the budget."""
    from kernel.measure import run

    names = tuple(_RUN_PARAMS) + ("batch", "construction", "kappa_scale", "rot_bias")
    res = run(T=T, **_network_params(p, names))
    L = p["L"]
    stats = res.layers[L]
    fa = stats.false_activation_rate
    if p.get("metric", "mse") == "mse_x":
        if stats.task is None:
            raise ConfigError(f"metric='mse_x': family={p['family']!r} defines no task")
        x = stats.task["active"]["x"]  # |x|^2 = 1 (a unit vector, rotated): the budget's scale
        return Evaluation(T, x.mse, x.mse_ci[0], x.mse_ci[1], 1.0, fa,
                          bool(x.mse <= p["budget"] and fa <= p["fa_limit"]))
    a2 = float((res.forward.a[:, L] ** 2).sum(-1).mean())
    if a2 <= 0:  # the circuits' own output is 0 at layer L: no relative budget can be met
        return Evaluation(T, math.inf, math.inf, math.inf, a2, fa, False)
    ratio = stats.active.mse / a2
    ok = bool(ratio <= p["budget"] and fa <= p["fa_limit"])
    return Evaluation(T, ratio, stats.active.mse_ci[0] / a2, stats.active.mse_ci[1] / a2, a2, fa,
                      ok)


def signal_power(p: dict[str, Any], circuits: int = 4096) -> float:
    """Mean |a^L|^2 of the family's small circuits on their own inputs (no large network):
    the scale of the budget handed to the cavity, which predicts absolute MSE."""
    from kernel.circuits import make_circuits, run_small

    c = make_circuits(p["family"], circuits, p["L"], p["d"], bias=p["bias"], seed=p["seed"],
                      rot_bias=p.get("rot_bias", 1.0))
    active = np.arange(circuits)[:, None]
    _, a = run_small(c, active, c.inputs[active])
    return float((a[:, p["L"]] ** 2).sum(-1).mean())


def _cavity_columns(p: dict[str, Any], predict: Callable[[int], float], budget: float,
                    start: int, cap: int) -> tuple[dict[str, Any], int]:
    """A cavity's largest T whose prediction ``predict(T)`` is within ``budget``, bracketed
    from ``start`` to a relative tolerance rtol / 2 (``largest_passing``), as the row's columns
    (``T_cavity``, ``cavity_mse``, ``cavity_in_regime``, ``seconds_cavity``), and the T to bracket
    the measurement from.

    ``bounds.capacity.cavity_largest_T`` finds the same threshold to the integer, but it first
    evaluates T_max and then bisects the whole range (21 recursions at D = 32000, the first on
    a network of T_max circuits); a sweep needs T* only to a tolerance, which takes fewer
    recursions and builds the largest network only when the answer is near it.
    """
    from bounds.cavity import A1_LIMIT

    t0 = time.perf_counter()
    preds: dict[int, float] = {}

    def ok(T: int) -> bool:
        if T not in preds:
            preds[T] = predict(T)
        return preds[T] <= budget

    z = p["z"]
    T_cav, _ = largest_passing(ok, start, z, cap, rtol=p["rtol"] / 2, grow=p["grow"])
    return ({"T_cavity": T_cav, "cavity_mse": preds.get(T_cav),
             "cavity_in_regime": z * p["S"] * p["S"] * p["d"] / p["D"] <= A1_LIMIT,
             "seconds_cavity": time.perf_counter() - t0}, max(T_cav, z))


def capacity_rows(p: dict[str, Any]) -> list[dict[str, Any]]:
    """The measured capacity T* of one configuration, with the cavity's and the post's beside it.

    One row: ``T_star`` (largest evaluated T within budget), ``T_fail`` (smallest evaluated T
    over it; 0 if T_max passes), ``capped`` (T* = T_max of the design), the measurement at T*
    (``ratio``: the budgeted error over its reference, its CI, ``fa_rate``), the number of
    networks run and every evaluation as JSON text, beside the models' answers: with metric
    "mse" (``_raw_models``) ``T_cavity`` (the cavity recursion's largest T for the same budget on
    the active MSE; no false-activation limit), ``T_post`` (the post's closed form capped by
    T_max) and ``T_post_uncapped``; with metric "mse_x" (``_task_models``) ``T_post``, the
    follow-up's formula for MSE_x. The measured T* is bracketed from the cavity's T* (the
    closest guess available), else from the post's (metric "mse") or from T_max / 8 ("mse_x").
    """
    from bounds.capacity import t_max

    D, d, S, z = p["D"], p["d"], p["S"], p["z"]
    if D % d:
        raise ConfigError(f"D={D} must be divisible by d={d} (D = d*n)")
    cap = t_max(D // d, S)
    models = _task_models if p.get("metric", "mse") == "mse_x" else _raw_models
    row, start = models(p, cap)
    evals: dict[int, Evaluation] = {}

    def ok(T: int) -> bool:
        if T not in evals:
            evals[T] = measure_at(p, T)
        return evals[T].ok

    lo, hi = largest_passing(ok, max(start, z), z, cap, rtol=p["rtol"], grow=p["grow"])
    at = evals.get(lo)
    row.update({
        "T_star": lo, "T_fail": hi, "capped": lo == cap, "evaluations": len(evals),
        "ratio": None if at is None else at.ratio,
        "ratio_lo": None if at is None else at.ratio_lo,
        "ratio_hi": None if at is None else at.ratio_hi,
        "fa_rate": None if at is None else at.fa_rate,
        "evaluated": json.dumps([[e.T, e.ratio if math.isfinite(e.ratio) else None, e.fa_rate]
                                 for e in sorted(evals.values(), key=lambda e: e.T)]),
    })
    return [row]


def _raw_models(p: dict[str, Any], cap: int) -> tuple[dict[str, Any], int]:
    """The row's model columns for a budget on the raw active MSE (relative to mean |a^L|^2),
    and the T to bracket the measurement from."""
    from bounds.capacity import largest_T

    D, d, S, L, z = p["D"], p["d"], p["S"], p["L"], p["z"]
    a2_pop = signal_power(p)
    # the post's leading order with |a|^2 = |w a|^2 = a2_pop: scale-free, so its T does not see
    # the bias (which the formula leaves out) except through the budget's reference |a^L|^2
    post = largest_T(p["budget"] * a2_pop, D, d, z, L, a2=a2_pop, wa2=a2_pop)
    row: dict[str, Any] = {"layer": L, "class": "active", "T_max": cap, "a2_population": a2_pop,
                           "budget_normalisation": BUDGET_NORMALISATION,
                           "budget_absolute": p["budget"] * a2_pop,
                           "T_post_uncapped": post, "T_post": min(post, cap)}
    start = row["T_post"]
    if p["cavity"] and p["variant"] != "random":  # the cavity needs overlaps <= 1
        from bounds.capacity import cavity_active_mse

        def predict(T: int) -> float:
            return cavity_active_mse(T, D, d, z, L, S, bias=p["bias"], family=p["family"],
                                     variant=p["variant"], seed=p["seed"],
                                     samples=p["cavity_samples"])[0]

        # bracketed from below (T_max / 8 unless the post asks for less): networks of many
        # circuits cost the most, and the post's T overshoots the cavity's up to 15x at beta = 0
        cols, start = _cavity_columns(p, predict, p["budget"] * a2_pop, min(start, cap // 8),
                                      cap)
        row.update(cols)
    return row, start


def _task_models(p: dict[str, Any], cap: int) -> tuple[dict[str, Any], int]:
    """The row's model columns for a budget on the rotation task's active MSE_x at layer L,
    and the T to bracket the measurement from: the cavity's T*, else T_max / 8 (the follow-up's
    formula holds to layer 2 of ris-capped only, and networks of many circuits cost the most).

    ``T_post`` is the largest T <= T_max at which the follow-up's formula for MSE_x
    (``bounds.rotation.post_active_x`` with eps = d/D - 1/(S T)) is within budget; it does not
    see the construction. With ``cavity`` the recursion of ``bounds.cavity_constructions``
    gives ``T_cavity`` (searched to rtol / 2 like the raw error's) and the measurement is
    bracketed from it.
    """
    from bounds.rotation import finite_eps, post_active_x

    D, d, S, L, z = p["D"], p["d"], p["S"], p["L"], p["z"]

    def post_ok(T: int) -> bool:
        return post_active_x(L, z, T, finite_eps(d, D, S, T)) <= p["budget"]

    post, _ = largest_passing(post_ok, cap // 8, 1, cap, rtol=0.0, grow=p["grow"])
    row: dict[str, Any] = {"layer": L, "class": "active", "T_max": cap,
                           "budget_normalisation": BUDGET_NORMALISATION_X,
                           "budget_absolute": p["budget"], "T_post": post}
    start = max(cap // 8, z)
    if p["cavity"]:
        from bounds.capacity import cavity_task_mse

        def predict(T: int) -> float:
            return cavity_task_mse(T, D, d, z, L, S, construction=p["construction"],
                                   kappa_scale=p["kappa_scale"], rot_bias=p["rot_bias"],
                                   seed=p["seed"], samples=p["cavity_samples"])[0]

        cols, start = _cavity_columns(p, predict, p["budget"], start, cap)
        row.update(cols)
    return row, start


POINT_FUNCTIONS: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]]]] = {
    "check": check_rows, "capacity": capacity_rows,
}


def run_point(point: Point) -> list[dict[str, Any]]:
    """Compute one point: its rows, each prefixed with the point's key, index and parameters."""
    rows = POINT_FUNCTIONS[point.mode](dict(point.params))
    return [{"key": point.key, "point": point.index, "mode": point.mode, **point.params, **r}
            for r in rows]


def cost_hint(point: Point) -> float:
    """A rough relative cost of a point (D^2 L: T grows up to ~D^2 and every layer costs), used
    to start the largest points first so that they do not form the tail of a sweep."""
    p = point.params
    return float(p.get("D", 1)) ** 2 * float(p.get("L", 1))


def compute_point(point: Point) -> dict[str, Any]:
    """``run_point`` as a task for a worker: the rows or the error message, with the wall clock
    and the finishing time (UTC). Never raises: a failing point is recorded, not fatal."""
    t0 = time.perf_counter()
    try:
        rows, error = run_point(point), None
    except Exception as exc:
        rows = []
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return {"key": point.key, "rows": rows, "error": error,
            "seconds": time.perf_counter() - t0,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
