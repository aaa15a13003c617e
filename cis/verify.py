"""``cis verify``: run the property suite (``properties.suite``) and print a summary table."""

from __future__ import annotations

import sys
import time

import click

from cis import report


@click.command()
@click.option("--profile", "profile_name", type=click.Choice(["dev", "ci", "thorough"]),
              default="ci", show_default=True,
              help="Hypothesis profile: dev (fast), ci (derandomised), thorough (5000 examples)")
@click.option("--max-examples", type=click.IntRange(min=1), default=None,
              help="examples per property  [default: the profile's]")
@click.option("--property", "only", multiple=True,
              help="run only this property (repeatable); see the table for names")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of a table")
def verify(profile_name: str, max_examples: int | None, only: tuple[str, ...],
           as_json: bool) -> None:
    """Run the property suite at a profile; exit 0 if every property holds, else 1.

    Columns: examples run, result, worst slack (>= 0 holds; 0 = at the bound; for counts of
    violations, 0 = none), seconds, and the message of the tightest example (or the failure).
    """
    from kernel.engines import compile_kernels
    from properties.profiles import profile
    from properties.suite import PROPERTIES, run_property

    unknown = [p for p in only if p not in PROPERTIES]
    if unknown:
        raise click.BadParameter(f"{unknown[0]!r} is not one of {', '.join(PROPERTIES)}",
                                 param_hint="--property")
    config = profile(profile_name, max_examples)
    compile_kernels()  # outside the timings
    t0 = time.perf_counter()
    names = [name for name in PROPERTIES if not only or name in only]
    reports = [run_property(PROPERTIES[name], config)
               for name in report.progress(names, f"verify ({profile_name})")]
    total = time.perf_counter() - t0
    ok = all(r.passed for r in reports)
    if as_json:
        click.echo(report.dumps({"profile": profile_name, "max_examples": config.max_examples,
                                 "passed": ok, "seconds": total,
                                 "properties": [r.to_dict() for r in reports]}))
    else:
        from rich.markup import escape  # messages contain [i], which rich would read as markup

        rows = [[r.name, r.kind, r.examples, "pass" if r.passed else "FAIL", r.worst_slack,
                 r.seconds, escape(r.failure or r.worst_message)] for r in reports]
        title = (f"property suite, profile {profile_name} (max_examples={config.max_examples}): "
                 f"{sum(r.passed for r in reports)}/{len(reports)} hold, {total:.1f} s")
        report.print_tables(report.table(
            title, ["property", "kind", "examples", "result", "worst slack", "seconds",
                    "message"], rows))
    if not ok:
        sys.exit(1)
