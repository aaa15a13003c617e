"""Networks outside the process: network files (``netfile``), exports for other frameworks
(``export``) and datasets of sampled forward passes (``dataset``). See docs/io.md."""

from kernel.io.netfile import (
    FORMAT,
    FORMAT_VERSION,
    NetworkFileError,
    load_network,
    network_arrays,
    package_version,
    read_network,
    save_network,
)

__all__ = [
    "FORMAT", "FORMAT_VERSION", "NetworkFileError", "load_network", "network_arrays",
    "package_version", "read_network", "save_network",
]
