"""``cis score``: compare a method's output (parameter subcomponents or a dictionary) with a
network's true parts (``kernel.score``; file layout in ``kernel.io.candidates``; see
docs/scoring.md)."""

from __future__ import annotations

import json

import click

from cis.cli import _guard
from kernel import score as scoring
from kernel.io import safe_write
from kernel.io.candidates import read_candidates
from kernel.io.export import load_any_network
from kernel.validate import ConfigError


@click.command()
@click.argument("network_file", metavar="NET", type=click.Path(dir_okay=False))
@click.argument("candidates_file", metavar="CANDIDATES", type=click.Path(dir_okay=False))
@click.option("--thresholds", default="0.5,0.9", show_default=True,
              help="quality thresholds of the per-circuit recall, comma-separated")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="also write the scores as JSON to this file ('-': stdout, no table)")
@_guard
def score(network_file: str, candidates_file: str, thresholds: str, json_out: str | None
          ) -> None:
    """Score CANDIDATES (subcomponents and/or dictionaries per layer) against the true parts of
    NET (a network file or an export)."""
    try:
        taus = tuple(float(x) for x in thresholds.split(","))
    except ValueError:
        raise ConfigError(
            f"thresholds={thresholds!r} must be comma-separated numbers in [0, 1]") from None
    net = load_any_network(network_file)
    comps, dicts = read_candidates(candidates_file, net)
    results = [scoring.score_components(net, layer, c, thresholds=taus)
               for layer, c in sorted(comps.items())]
    results += [scoring.score_dictionary(net, layer, a) for layer, a in sorted(dicts.items())]
    doc = {"network": network_file, "candidates": candidates_file,
           "layers": [r.as_dict() for r in results]}
    text = json.dumps(doc, indent=2) + "\n"
    if json_out == "-":
        click.echo(text, nl=False)
        return
    click.echo(scoring.table(results))
    if json_out is not None:
        safe_write(json_out, lambda fh: fh.write(text.encode()),
                   protect=(network_file, candidates_file))
