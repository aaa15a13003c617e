"""The dictionary-learning experiment runs end to end on a tiny network (needs scikit-learn)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("sklearn")


def test_one_point_of_the_sweep_runs_and_scores_above_chance():
    path = Path(__file__).parents[1] / "experiments" / "dictionary_learning.py"
    spec = importlib.util.spec_from_file_location("dictionary_learning", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.run_point(D=80, S=3, L=2, load=0.2, sparsity="p=2/T", samples=600, seed=0,
                         alpha=0.2, layers=(1,))
    (row,) = rows
    assert row["T"] >= 2 and row["atoms"] == row["T"] * 4
    assert row["chance_mmcs"] < row["mmcs"] <= 1.0
