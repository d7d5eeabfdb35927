"""`difflab science gdss train|sample|evaluate` end to end on a tiny generated dataset."""

import json

import torch

from diffcore.cli import main
from difflab.science import graphs


def test_cli_quick_run_writes_checkpoints_samples_and_metrics(tmp_path):
    gs = graphs.community_small(20, generator=torch.Generator().manual_seed(0))
    graphs.save_graph_json(gs, tmp_path / "data" / "community_small.json", name="cs")
    out = tmp_path / "run"
    common = ["--config", "community-small-quick", "--data-dir", str(tmp_path / "data"),
              "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(["science", "gdss", "train", *common, "--epochs", "2"]) == 0
    assert list((out / "train" / "checkpoints").glob("*/*.safetensors"))
    assert (out / "model" / "net" / "model.safetensors").is_file()
    assert main(["science", "gdss", "sample", *common, "--n", "4", "--steps", "3"]) == 0
    assert (out / "samples.safetensors").is_file()
    assert len(json.loads((out / "samples.json").read_text())["graphs"]) == 4
    assert main(["science", "gdss", "evaluate", *common]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"degree", "cluster", "orbit", "spectral"}
    assert all(v >= 0 for v in metrics.values())


def test_cli_help_lists_gdss(capsys):
    assert main(["science"]) == 0
    assert "gdss" in capsys.readouterr().out
