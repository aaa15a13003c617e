"""``cis dataset``: sampled forward passes of a saved network with their ground truth, in shards
(columns in ``kernel.io.dataset`` and docs/io.md)."""

from __future__ import annotations

from typing import Any

import click

from cis import report
from cis.cli import _guard
from kernel.engines import ENGINES
from kernel.io import load_network
from kernel.io.dataset import FORMATS, SHARD_SAMPLES, write_dataset
from kernel.validate import ConfigError


@click.command()
@click.argument("network_file", metavar="NET", type=click.Path(dir_okay=False))
@click.option("--samples", type=int, required=True, help="number of samples (forward passes)")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True,
              help="directory to create (must not exist or be empty)")
@click.option("--z", "z", type=int, default=2, show_default=True,
              help="active circuits per sample")
@click.option("--layers", default="all", show_default=True,
              help="layers to record: 'all' or a comma-separated list, e.g. 1,4")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="parquet",
              show_default=True, help="shard file format")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the samples")
@click.option("--shard-size", type=int, default=None,
              help=f"samples per shard  [default: up to {SHARD_SAMPLES}, at most 256 MiB]")
@click.option("--inactive", default=None,
              help="also record the read-outs of these circuits, e.g. 3,17,42")
@click.option("--activations", is_flag=True,
              help="also record the large network's activations A^l (D numbers per layer)")
@click.option("--engine", type=click.Choice(list(ENGINES)), default="auto", show_default=True,
              help="forward engine")
@click.option("--force", is_flag=True, help="write even if the size estimate is over 4 GiB")
@_guard
def dataset(network_file: str, out: str, fmt: str, force: bool, **opts: Any) -> None:
    """Sample forward passes of a saved network NET with their ground truth, into shards."""
    if out.strip() == "":
        raise ConfigError("--out='' is empty; give a directory for the dataset")
    net = load_network(network_file)
    manifest = write_dataset(net, out, fmt=fmt, force=force, progress=report.progress, **opts)
    click.echo(
        f"wrote {manifest['samples']} samples in {len(manifest['shards'])} shards to {out}",
        err=True,
    )
