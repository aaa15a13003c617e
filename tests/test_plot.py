"""``cis check --plot``: a PNG of predicted vs measured MSE per layer."""

from __future__ import annotations

import pytest

from cis.cli import main


def test_check_writes_a_png(tmp_path, capsys):
    path = tmp_path / "check.png"
    with pytest.raises(SystemExit) as exc:
        main(["check", "--D", "400", "--S", "5", "--T", "60", "--L", "2", "--batch", "50",
              "--samples", "500", "--json", "--plot", str(path)])
    assert exc.value.code in (0, 1)  # the verdict is not what this test is about
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
