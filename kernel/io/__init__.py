"""Networks outside the process: network files (``netfile``), exports for other frameworks
(``export``) and datasets of sampled forward passes (``dataset``). See docs/io.md."""

from kernel.io.netfile import (
    FORMAT,
    FORMAT_VERSION,
    NetworkFileError,
    file_sha256,
    load_network,
    network_arrays,
    network_hash,
    package_version,
    read_network,
    safe_write,
    save_network,
)

__all__ = [
    "FORMAT", "FORMAT_VERSION", "NetworkFileError", "file_sha256", "load_network",
    "network_arrays", "network_hash", "package_version", "read_network", "safe_write",
    "save_network",
]
