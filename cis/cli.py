"""``cis``: the command line. Sub-commands parse options, call the library and render.

Every outcome is an exit code and at most one line on stderr (``cis.exits``): bad input exits 2
with a message naming the parameter, never a traceback. T_max of a huge block is refused by the
library's size check (``kernel.limits``), so ``cis capacity --n`` needs none of its own.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from cis import report
from kernel import circuits, constructions, limits, patterns, validate
from kernel.engines import ENGINES
from kernel.validate import ConfigError


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ConfigError from the library into click's exit code 2 with the message."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


class RegistryChoice(click.Choice):
    """A choice among the keys of a kernel registry (families, variants, constructions, engines).

    The allowed names come from the registry itself, so the CLI never lists them separately; a bad
    value is refused with ``kernel.validate.choice``'s message (exit 2).
    """

    def __init__(self, name: str, registry: Any) -> None:
        super().__init__(list(registry))
        self.registry_name = name

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            return validate.choice(self.registry_name, value, self.choices)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


def network_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by every sub-command that runs a network (defaults: ``cis run``)."""
    opts = [
        click.option(
            "--D", "D", type=int, default=1000, show_default=True, help="large-layer width D = d*n"
        ),
        click.option(
            "--d", "d", type=int, default=4, show_default=True, help="small-circuit width"
        ),
        click.option(
            "--S",
            "S",
            type=int,
            default=6,
            show_default=True,
            help="redundancy: large neurons per small neuron",
        ),
        click.option(
            "--T", "T", type=int, default=None, help="number of circuits  [default: T_max(D/d, S)]"
        ),
        click.option("--L", "L", type=int, default=4, show_default=True, help="layers"),
        click.option(
            "--z", "z", type=int, default=2, show_default=True, help="active circuits per sample"
        ),
        click.option("--batch", type=int, default=2000, show_default=True, help="samples"),
        click.option(
            "--seed", type=int, default=0, show_default=True, help="seed of network and batch"
        ),
        click.option(
            "--sample-seed", "sample_seed", type=int, default=None,
            help="seed of the batch  [default: derived from --seed; with --load, the batch the "
                 "network was saved with]",
        ),
        click.option(
            "--family",
            type=RegistryChoice("family", circuits.FAMILIES),
            default="signed",
            show_default=True,
            help="circuit family",
        ),
        click.option(
            "--bias", type=float, default=0.0, show_default=True, help="shared bias beta <= 0"
        ),
        click.option(
            "--variant",
            type=RegistryChoice("variant", patterns.VARIANTS),
            default="plain",
            show_default=True,
            help="pattern design and read-out",
        ),
        click.option(
            "--construction",
            type=RegistryChoice("construction", constructions.CONSTRUCTIONS),
            default="cis2",
            show_default=True,
            help="how the large weights are formed",
        ),
        click.option(
            "--kappa-scale",
            "kappa_scale",
            type=float,
            default=1.0,
            show_default=True,
            help="ris-capped: factor on kappa (1.15: more suppression)",
        ),
        click.option(
            "--rot-bias",
            "rot_bias",
            type=float,
            default=1.0,
            show_default=True,
            help="rotation family: bias size b >= 0",
        ),
        click.option(
            "--engine",
            type=RegistryChoice("engine", ENGINES),
            default="auto",
            show_default=True,
            help="auto: sparse or factorised per layer and chunk",
        ),
        click.option(
            "--threshold",
            "threshold_fraction",
            type=float,
            default=0.1,
            show_default=True,
            help="false activation: |read-out| above this fraction of the circuits' mean active "
                 "norm on their default inputs (fixed per network, not taken from the batch)",
        ),
        click.option(
            "--json", "as_json", is_flag=True, help="print one JSON object instead of tables"
        ),
    ]
    checked = _refuse_unused_network_options(fn)
    for opt in reversed(opts):
        checked = opt(checked)
    return checked


def _given(name: str) -> bool:
    """Whether the option ``name`` of the current command was given (not its default)."""
    source = click.get_current_context().get_parameter_source(name)
    return source not in (click.core.ParameterSource.DEFAULT, None)


def _refuse_unused_network_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse --kappa-scale without construction ris-capped and --rot-bias without the rotation
    family: each would be accepted and silently ignored."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **params: Any) -> Any:
        if _given("kappa_scale") and params.get("construction") != "ris-capped":
            raise click.UsageError("--kappa-scale is used only by --construction ris-capped; "
                                   "leave it out or choose that construction")
        corrected = (params.get("variant") == "corrected"
                     or params.get("construction") in ("ris-uncapped", "ris-split"))
        if params.get("engine") == "sparse" and corrected:
            raise click.UsageError(
                "--engine sparse skips circuits no active neuron touches, which a corrected "
                "read-out (every circuit reads every neuron) does not allow: it would run the "
                "factorised pass; use --engine factorised or auto")
        if _given("rot_bias") and params.get("family") != "rotation":
            raise click.UsageError("--rot-bias is used only by --family rotation; leave it out "
                                   "or choose that family")
        return fn(*args, **params)

    return wrapper


#: options of ``cis run`` / ``cis check`` that define the network (refused together with --load)
NETWORK_FIELDS = ("D", "d", "S", "T", "L", "seed", "family", "bias", "variant", "construction",
                  "kappa_scale", "rot_bias")


def network_file_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--save NET`` / ``--load NET`` (a network file, ``kernel.io``) for a command that runs one
    network: the command then receives ``network=`` instead of the network options."""

    @functools.wraps(fn)
    def wrapper(*args: Any, save: str | None, load: str | None, **params: Any) -> Any:
        if save is None and load is None:
            return fn(*args, **params)
        try:
            params = _network_from_file(save, load, params)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        if save is None:
            return fn(*args, **params)
        # saved only once the command has validated everything and run (exit 0, or 1 for a
        # failed check): a refused request writes nothing
        try:
            result = fn(*args, **params)
        except click.exceptions.Exit as done:
            if done.exit_code in (0, 1):
                _save_network(params["network"], save)
            raise
        _save_network(params["network"], save)
        return result

    wrapper = click.option(
        "--load", type=click.Path(dir_okay=False), default=None,
        help="run the network saved in this file (instead of building one from the options)",
    )(wrapper)
    return click.option(
        "--save", type=click.Path(dir_okay=False), default=None,
        help="also save the network to this file (reload it with --load)",
    )(wrapper)


def _network_from_file(
    save: str | None, load: str | None, params: dict[str, Any]
) -> dict[str, Any]:
    """The command's parameters with the network options replaced by ``network=``."""
    from click.core import ParameterSource

    from kernel.io import load_network
    from kernel.network import NetworkConfig, build_network

    if load is not None:
        if save is not None:
            raise ConfigError("--save and --load cannot be combined (the file is already saved)")
        ctx = click.get_current_context()
        given = [f for f in NETWORK_FIELDS if ctx.get_parameter_source(f) not in (
            ParameterSource.DEFAULT, None)]
        if given:
            raise ConfigError(
                f"--{given[0]} cannot be combined with --load (the network comes from the file)"
            )
        net = load_network(load)
    else:
        from cis.paths import output_file

        output_file(str(save), "--save")  # checked before the work, written after it
        net = build_network(NetworkConfig(**{k: params[k] for k in NETWORK_FIELDS}))
    return {**{k: v for k, v in params.items() if k not in NETWORK_FIELDS}, "network": net}


def _save_network(net: Any, path: str) -> None:
    from kernel.io import save_network

    try:
        save_network(net, path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cis-toolkit")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


#: set by the global ``--debug`` flag: internal errors print their traceback
_STATE = {"debug": False}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_package_version(), "--version", prog_name="cis",
                      message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="print the traceback of an internal error (exit 3)")
def cli(debug: bool) -> None:
    """Circuits in superposition (Linsefors & Bushnaq 2025): build, run, measure, bound.

    Exit codes: 0 success, 1 a check or verification failed, 2 bad input or environment,
    3 internal error, 130 interrupted."""
    _STATE["debug"] = debug


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``cis``: every error is one line on stderr; exit codes 0 success, 1 a check
    failed, 2 bad input or environment, 3 internal error, 130 interrupted (``cis.exits``)."""
    from cis.exits import run_guarded

    _STATE["debug"] = False
    sys.exit(run_guarded(lambda: cli.main(args=argv, prog_name="cis", standalone_mode=False),
                         debug=lambda: _STATE["debug"]))


@cli.command()
@network_options
@network_file_options
@_guard
def run(as_json: bool, **params: Any) -> None:
    """Build a network, run a batch, print the errors per layer."""
    from kernel.measure import run as run_measure

    result = run_measure(**params).to_dict()
    if as_json:
        click.echo(report.dumps(result))
    else:
        report.print_tables(*report.run_tables(result))


@cli.command()
@click.option("--n", "n", type=int, default=None, help="neurons per block (T_max, packing bound)")
@click.option("--S", "S", type=int, default=None, help="pattern size")
@click.option("--D", "D", type=int, default=None, help="inverse problem: large-layer width")
@click.option(
    "--d", "d", type=int, default=4, show_default=True, help="inverse problem: small width"
)
@click.option(
    "--z", "z", type=int, default=2, show_default=True, help="inverse problem: active circuits"
)
@click.option("--L", "L", type=int, default=4, show_default=True, help="inverse problem: layers")
@click.option(
    "--budget",
    type=float,
    default=None,
    help="inverse problem: error budget, relative: active MSE at layer L <= budget x mean "
         "|a^L|^2 of the circuits (as in capacity sweeps; the JSON gives budget_absolute)",
)
@click.option("--T", "T", type=int, default=None, help="inverse problem: T for the smallest D")
@click.option(
    "--method",
    type=click.Choice(["cavity", "post"]),
    default="cavity",
    show_default=True,
    help="inverse problem: cavity recursion (reported as largest_T) or the post's formula only",
)
@click.option(
    "--family", default="signed", show_default=True, help="inverse problem (cavity): circuit family"
)
@click.option(
    "--bias",
    type=float,
    default=0.0,
    show_default=True,
    help="inverse problem (cavity): shared bias",
)
@click.option(
    "--variant",
    default="plain",
    show_default=True,
    help="inverse problem (cavity): plain | corrected",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="inverse problem (cavity): network seed"
)
@click.option(
    "--samples",
    type=int,
    default=4000,
    show_default=True,
    help="inverse problem (cavity): Monte Carlo trajectories per class",
)
@click.option("--json", "as_json", is_flag=True)
@_guard
def capacity(
    n: int | None,
    S: int | None,
    D: int | None,
    d: int,
    z: int,
    L: int,
    budget: float | None,
    T: int | None,
    method: str,
    family: str,
    bias: float,
    variant: str,
    seed: int,
    samples: int,
    as_json: bool,
) -> None:
    """Capacity T_max(n, S) of the prime-step design and the packing bound; with
    --budget --D [--d --z --L --S --T], the largest T (and smallest D) for an error budget
    (docs/capacity.md).

    The inverse problem reports the cavity recursion's answer (largest_T = largest_T_cavity,
    smallest_D = smallest_D_cavity; S defaults to 6) and the post's leading-order answer beside it
    (largest_T_post, smallest_D_post), which is optimistic at bias 0."""
    _capacity_mode_options(n, budget, method)
    out: dict[str, Any] = {}
    if n is not None:
        if S is None:
            raise click.MissingParameter(param_hint="'--S'", param_type="option")
        out = {
            "n": n,
            "S": S,
            "T_max": patterns.capacity(n, S),
            "packing_bound": patterns.packing_bound(n, S),
        }
    else:
        assert budget is not None
        if D is None:
            raise click.MissingParameter(param_hint="'--D'", param_type="option")
        from bounds.capacity import inverse_problem

        if method == "cavity":
            from cis.compare import CAVITY_MIN_SAMPLES
            from kernel.validate import integer

            integer("samples", samples, low=CAVITY_MIN_SAMPLES)
            limits.check_cavity(samples, d, L, S or 6, runs=64)
            # the bisection builds the design up to T_max: refuse by the cheap lower bound of
            # T_max before counting it exactly (seconds for a block of 10^8 neurons)
            limits.check_network(D, d, S or 6, None, L, variant)
        from cis.experiment import BUDGET_NORMALISATION, signal_power

        # the budget is relative to the circuits' own signal, as in capacity sweeps: the
        # library's inverse problem takes the absolute MSE
        a2 = signal_power({"family": family, "L": L, "d": d, "bias": bias, "seed": seed})
        try:
            answer = inverse_problem(
                budget * a2,
                D,
                d,
                z,
                L,
                S=S,
                T=T,
                a2=a2,
                wa2=a2,
                method=method,
                bias=bias,
                family=family,
                variant=variant,
                seed=seed,
                samples=samples,
            )
        except OverflowError:  # the post's T for such a budget is not a finite number
            raise ConfigError(f"budget={budget} is too large: the post's formula gives no "
                              "finite T") from None
        out.update(answer)
        out.update({"budget": budget, "budget_normalisation": BUDGET_NORMALISATION,
                    "budget_absolute": budget * a2, "a2_population": a2})
    if as_json:
        click.echo(report.dumps(out))
    elif budget is not None:  # one row per quantity: cavity (reported) and post labelled apart
        report.print_tables(
            report.table(
                "capacity inverse problem", ["quantity", "value"], [[k, v] for k, v in out.items()]
            )
        )
    else:
        report.print_tables(report.table("capacity", list(out), [list(out.values())]))


#: options of ``cis capacity`` by mode: the forward problem (--n --S) and the inverse problem
#: (--budget --D ...); the cavity's own options only with --method cavity
_CAPACITY_FORWARD = ("n", "S")
_CAPACITY_CAVITY_ONLY = ("family", "bias", "variant", "seed", "samples")


def _capacity_mode_options(n: int | None, budget: float | None, method: str) -> None:
    """Refuse a mode that is unclear, and options the chosen mode would silently ignore."""
    ctx = click.get_current_context()

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) not in (
            click.core.ParameterSource.DEFAULT, click.core.ParameterSource.DEFAULT_MAP, None)

    if budget is None and n is None:
        raise click.UsageError("give --n and --S, or --budget and --D for the inverse problem")
    if budget is not None and n is not None:
        raise click.UsageError(
            "--n (T_max of a block of n neurons) and --budget (the inverse problem, which takes "
            "--D, so n = D/d) are different modes; give one of them"
        )
    allowed: tuple[str, ...]
    if n is not None:
        mode, allowed = "--n (capacity of a block)", _CAPACITY_FORWARD
    else:
        mode = f"--budget with --method {method}"
        allowed = tuple(p.name for p in ctx.command.params if p.name and p.name != "n")
        if method == "post":
            allowed = tuple(a for a in allowed if a not in _CAPACITY_CAVITY_ONLY)
    for p in ctx.command.params:
        if p.name and p.name not in (*allowed, "as_json", "method") and given(p.name):
            flag = p.opts[0] if isinstance(p, click.Option) else p.name
            raise click.UsageError(f"{flag} is not used by {mode}; leave it out")
    if n is not None and given("method"):
        raise click.UsageError(f"--method is not used by {mode}; leave it out")


def _register_optional_commands() -> None:
    """Sub-commands that live in their own module ``cis/<name>.py`` (a click command ``<name>``)."""
    import importlib

    for name in ("check", "verify", "bench", "export", "dataset", "sweep", "plot", "score"):
        try:
            module = importlib.import_module(f"cis.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"cis.{name}":
                raise
            continue
        cli.add_command(getattr(module, name))


_register_optional_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
