"""``cis``: the command line. Sub-commands parse options, call the library and render.

Bad input exits with code 2 and a one-line message (click's convention), never a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from cis import report
from kernel import patterns
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
            "--family", default="signed", show_default=True, help="signed | gaussian | permutation"
        ),
        click.option(
            "--bias", type=float, default=0.0, show_default=True, help="shared bias beta <= 0"
        ),
        click.option(
            "--variant", default="plain", show_default=True, help="plain | corrected | random"
        ),
        click.option(
            "--engine",
            default="auto",
            show_default=True,
            help="auto | dense | factorised | sparse (auto: sparse or factorised per layer)",
        ),
        click.option(
            "--threshold",
            "threshold_fraction",
            type=float,
            default=0.1,
            show_default=True,
            help="false activation: |read-out| above this fraction of the mean active norm",
        ),
        click.option(
            "--json", "as_json", is_flag=True, help="print one JSON object instead of tables"
        ),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Circuits in superposition (Linsefors & Bushnaq 2025): build, run, measure, bound."""


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``cis``: every error is one line on stderr, exit code 2 for bad input."""
    try:
        rc = cli.main(args=argv, prog_name="cis", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare ``cis``: help, not an error
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        rc = 0
    except click.ClickException as exc:
        click.echo(f"cis: error: {exc.format_message()}", err=True)
        rc = 2
    except click.exceptions.Exit as exc:
        rc = exc.exit_code
    except click.Abort:
        click.echo("cis: aborted", err=True)
        rc = 1
    sys.exit(rc if isinstance(rc, int) else 0)


@cli.command()
@network_options
@_guard
def run(as_json: bool, **params: Any) -> None:
    """Build a network, run a batch, print the errors per layer (SPEC §6)."""
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
    help="inverse problem: error budget (active MSE at layer L)",
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
    """Capacity T_max(n, S) of the prime-step design and the packing bound (SPEC §2); with
    --budget --D [--d --z --L --S --T], the largest T (and smallest D) for an error budget
    (SPEC §4).

    The inverse problem reports the cavity recursion's answer (largest_T = largest_T_cavity,
    smallest_D = smallest_D_cavity; S defaults to 6) and the post's leading-order answer beside it
    (largest_T_post, smallest_D_post), which is optimistic at bias 0."""
    if budget is None and n is None:
        raise click.UsageError("give --n and --S, or --budget and --D for the inverse problem")
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
    if budget is not None:
        if D is None:
            raise click.MissingParameter(param_hint="'--D'", param_type="option")
        from bounds.capacity import inverse_problem

        out.update(
            inverse_problem(
                budget,
                D,
                d,
                z,
                L,
                S=S,
                T=T,
                method=method,
                bias=bias,
                family=family,
                variant=variant,
                seed=seed,
                samples=samples,
            )
        )
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


def _register_optional_commands() -> None:
    """Sub-commands that live in their own module ``cis/<name>.py`` (a click command ``<name>``)."""
    import importlib

    for name in ("check", "verify", "bench", "sweep", "plot"):
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
