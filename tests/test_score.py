"""Scoring against the truth ranks the oracle, noisy oracles and random candidates correctly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kernel import CONSTRUCTIONS, ConfigError, build_network
from kernel import score as sc
from kernel.io import save_network
from kernel.io.export import export_network
from tests.test_io import run_cli

pytestmark = pytest.mark.nojit  # tiny networks: also run without the JIT

SIGMAS = (0.0, 0.05, 0.2, 0.5, 1.0, 3.0)


@pytest.fixture(scope="module")
def net():
    return build_network(D=160, d=4, S=4, T=None, L=3, seed=1, bias=-0.02)


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_the_oracle_scores_1_at_every_layer(construction):
    net = build_network(D=160, d=4, S=4, T=None, L=3, construction=construction, seed=2)
    for layer in range(1, net.L + 1):
        s = sc.score_components(net, layer, sc.oracle_components(net, layer))
        assert s.values["quality_mean"] > 1 - 1e-6 and s.quality.min() > 1 - 1e-6
        assert s.values["recall@0.9"] == 1.0 and s.values["precision"] == pytest.approx(1, abs=1e-9)
        assert s.values["faithfulness_error"] < 1e-12
        d = sc.score_dictionary(net, layer, sc.oracle_dictionary(net, layer))
        assert d.values == {"mmcs": pytest.approx(1.0), "recall_cos@0.9": 1.0, "matched@0.9": 1.0}


def test_noise_lowers_every_score_monotonically(net):
    for layer in (1, 3):
        oracle = sc.oracle_components(net, layer)
        runs = [sc.score_components(net, layer, sc.noisy(oracle, s, seed=4), chance=False).values
                for s in SIGMAS]
        for key in ("quality_mean", "precision"):
            got = [r[key] for r in runs]
            assert all(a > b for a, b in zip(got, got[1:])), (key, got)
        faith = [r["faithfulness_error"] for r in runs]
        assert all(a < b for a, b in zip(faith, faith[1:])), faith
        recall = [r["recall@0.9"] for r in runs]
        assert all(a >= b for a, b in zip(recall, recall[1:])) and recall[0] == 1 > recall[-1]


def test_noisy_dictionaries_score_monotonically_lower(net):
    rng = np.random.default_rng(0)
    G = sc.oracle_dictionary(net, 2)
    noise = rng.standard_normal(G.shape) / np.sqrt(net.D)
    runs = [sc.score_dictionary(net, 2, G + s * noise, chance=False).values["mmcs"]
            for s in SIGMAS]
    assert runs[0] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(runs, runs[1:])), runs


def test_random_and_shuffled_candidates_score_at_chance(net):
    """Chance levels, stated in every report: random rank-one candidates of the oracle's norms
    rebuild < 1% of a circuit; labels shuffled among the true subcomponents rebuild a circuit only
    when a shuffled label lands on its own circuit (expected quality about d/T per circuit)."""
    for layer in (1, 2):
        oracle = sc.oracle_components(net, layer)
        rand = sc.score_components(net, layer, sc.random_components(net, layer, oracle, seed=3))
        assert rand.values["quality_mean"] < 0.01 and rand.values["recall@0.5"] == 0
        assert rand.values["precision"] < 0.01
        # |R - W|^2 = |R|^2 + |W|^2 for R uncorrelated with W, and |R| = |W| here
        assert rand.values["faithfulness_error"] == pytest.approx(np.sqrt(2), abs=0.1)
        for key in ("quality_mean", "precision"):  # the stated chance is this very baseline
            assert rand.values[key] == pytest.approx(rand.chance[key], abs=0.01)
        shuf = sc.score_components(net, layer, sc.shuffled_labels(oracle, seed=3))
        assert shuf.values["quality_mean"] < 2 * net.d / net.T
        assert shuf.values["recall@0.5"] < 0.1 and shuf.values["precision"] < 0.05
        assert shuf.values["faithfulness_error"] < 1e-12  # labels do not change the sum
        rd = sc.score_dictionary(net, layer, np.random.default_rng(1).standard_normal(
            (net.T * net.d, net.D)))
        assert rd.values["recall_cos@0.9"] == 0 and rd.values["mmcs"] < 0.4
        assert rd.values["mmcs"] == pytest.approx(rd.chance["mmcs"], abs=0.05)


def test_ranking_oracle_noisy_random(net):
    oracle = sc.oracle_components(net, 2)
    q = [sc.score_components(net, 2, c, chance=False).values["quality_mean"]
         for c in (oracle, sc.noisy(oracle, 0.3, seed=1), sc.random_components(net, 2, oracle))]
    assert q[0] > q[1] > q[2]


def test_bad_candidates_are_one_line(net):
    oracle = sc.oracle_components(net, 2)
    with pytest.raises(ConfigError, match=r"layer 2 U has shape \(\d+, 7\), expected"):
        sc.score_components(net, 2, sc.Components(oracle.V, oracle.U[:, :7]))
    with pytest.raises(ConfigError, match="labels must be circuit ids"):
        sc.score_components(net, 2, sc.Components(oracle.V, oracle.U, oracle.labels + net.T))
    with pytest.raises(ConfigError, match="contains non-finite"):
        sc.score_dictionary(net, 2, np.full((3, net.D), np.nan))
    with pytest.raises(ConfigError, match="layer=4 must be <= 3"):
        sc.score_dictionary(net, 4, np.ones((3, net.D)))


def test_cli_scores_an_export_as_its_own_oracle(net, tmp_path):
    src = save_network(net, tmp_path / "net.safetensors")
    dense = export_network(net, tmp_path / "dense.npz", fmt="npz", dense=True)
    res = run_cli("score", str(src), str(dense), "--json", str(tmp_path / "s.json"))
    assert res.returncode == 0, res.stderr
    assert "quality_mean" in res.stdout and "(chance" in res.stdout
    assert max(len(line) for line in res.stdout.splitlines()) <= 80
    doc = json.loads((tmp_path / "s.json").read_text())
    assert [r["layer"] for r in doc["layers"]] == [1, 2, 3]
    assert all(r["recall@0.9"] == 1.0 for r in doc["layers"])
    # the network may be given as an export too; a dictionary file scores as a dictionary
    atoms = sc.oracle_dictionary(net, 3)
    np.savez(tmp_path / "dict.npz", **{"dictionary.l3": atoms})
    res = run_cli("score", str(dense), str(tmp_path / "dict.npz"), "--json", "-")
    assert res.returncode == 0, res.stderr
    layer = json.loads(res.stdout)["layers"][0]
    assert layer["kind"] == "dictionary" and layer["mmcs"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["{net}", "{net}"], "no candidates"),
        (["{net}", "{bad}"], "layer 2 V has shape"),
        (["{net}", "{dense}", "--thresholds", "x"], "must be comma-separated numbers"),
        (["{net}", "{dense}", "--thresholds", "1.5"], "threshold=1.5 must be <= 1"),
        (["{net}", "{dense}", "--json", "{net}"], "is the input file"),
        (["{text}", "{dense}"], "not an npz or safetensors file"),
    ],
    ids=["no-candidates", "bad-shape", "thresholds-word", "threshold-big", "json-over-input",
         "not-a-network"],
)
def test_cli_score_bad_input_exits_2_with_one_line(net, tmp_path, args, expected):
    src = save_network(net, tmp_path / "net.safetensors")
    dense = export_network(net, tmp_path / "dense.npz", fmt="npz", dense=True)
    np.savez(tmp_path / "bad.npz", **{"components.net.3.V": np.ones((5, 2)),
                                      "components.net.3.U": np.ones((2, net.D))})
    (tmp_path / "text.txt").write_text("hello\n")
    fill = {"net": src, "dense": dense, "bad": tmp_path / "bad.npz", "text": tmp_path / "text.txt"}
    res = run_cli("score", *[a.format(**fill) for a in args])
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and expected in res.stderr, res.stderr


def test_the_python_example_of_the_docs_runs(capsys):
    from tests.test_export import doc_block

    exec(doc_block("scoring-python", page="scoring.md"), {})
    out = capsys.readouterr().out
    assert out.count("quality_mean") == 2 and "(chance" in out


def test_candidates_files_and_networks_from_exports(net, tmp_path):
    """In process (the CLI tests run in a subprocess): an export is a network and a candidates
    file; bad files are one line naming the key."""
    from kernel.io.candidates import layer_module, module_layer, read_candidates
    from kernel.io.export import load_any_network, network_of_export
    from tests.test_io import assert_same_network

    dense = export_network(net, tmp_path / "d.safetensors", dense=True)
    fact = export_network(net, tmp_path / "f.npz", fmt="npz")
    for path in (dense, fact):
        back = load_any_network(path)
        assert back.config == net.config
        np.testing.assert_array_equal(back.offsets, net.offsets)
    assert_same_network(net, load_any_network(fact))
    comps, dicts = read_candidates(dense, net)
    assert sorted(comps) == [1, 2, 3] and not dicts
    np.testing.assert_array_equal(comps[2].labels, np.repeat(np.arange(net.T), net.d))
    assert [module_layer(layer_module(layer)) for layer in (1, 2, 3)] == [1, 2, 3]
    bad = {"one": {"components.net.2.V": np.ones((3, 2))},
           "two": {"components.net.3.V": np.ones((3, 2))},
           "three": {"dictionary.l9": np.ones((3, 2))},
           "four": {"other": np.ones(2)}}
    words = {"one": "not a decomposed module", "two": "no matching components.net.3.U",
             "three": "dictionary.l9 layer=9 must be <= 3", "four": "no candidates"}
    for name, arrays in bad.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(ConfigError, match=words[name]):
            read_candidates(tmp_path / f"{name}.npz", net)
    np.savez(tmp_path / "plain.npz", x=np.ones(2))
    with pytest.raises(ConfigError, match="no 'cis-export' marker"):
        network_of_export(tmp_path / "plain.npz")
    with pytest.raises(ConfigError, match="cannot read"):
        read_candidates(tmp_path, net)  # a directory
    (tmp_path / "text").write_text("hello")
    with pytest.raises(ConfigError, match="not an npz or safetensors file"):
        read_candidates(tmp_path / "text", net)
