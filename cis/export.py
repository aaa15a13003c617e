"""``cis export``: a saved network as plain arrays that any framework can load without cis-toolkit
(layouts in ``kernel.io.export`` and docs/io.md)."""

from __future__ import annotations

import click

from cis.cli import _guard
from cis.paths import output_file
from kernel.io import load_network
from kernel.io.export import FORMATS, export_network


@click.command()
@click.argument("network_file", metavar="NET", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="safetensors",
              show_default=True, help="container of the exported file")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True,
              help="file to write")
@click.option("--dense", is_flag=True,
              help="dense feed-forward layout (D x D matrices) instead of the factorised arrays")
@click.option("--force", is_flag=True, help="write a dense export over the 4 GiB size limit")
@_guard
def export(network_file: str, fmt: str, out: str, dense: bool, force: bool) -> None:
    """Export a saved network NET (from cis run --save) for use without cis-toolkit."""
    output_file(out, "--out", inputs=(network_file,))  # never the input, nothing written yet
    net = load_network(network_file)
    path = export_network(net, out, fmt=fmt, dense=dense, force=force)
    layout = "dense" if dense else "factorised"
    click.echo(f"wrote {path} ({layout}, {fmt}, {path.stat().st_size} bytes)", err=True)
