import json

from diffcore import cli
from difflab.physics.datasets import load_ks


def test_ks_generate_and_refiner_quick(tmp_path, capsys):
    data = tmp_path / "ks"
    args = ["physics", "ks", "generate", "--out", str(data), "--quick", "--no-progress"]
    args += [
        "--n-train",
        "2",
        "--n-valid",
        "0",
        "--n-test",
        "1",
        "--n-steps",
        "6",
        "--burn-in",
        "2",
    ]
    assert cli.main(args) == 0
    assert json.loads(capsys.readouterr().out)["sizes"]["train"] == 2
    assert load_ks(data, "test").u.shape == (1, 6, 256)
    run = tmp_path / "run"
    common = ["--data", str(data), "--out", str(run), "--no-progress"]
    assert (
        cli.main(["physics", "pde-refiner", "train", *common, "--preset", "quick", "--steps", "2"])
        == 0
    )
    assert (run / "model" / "config.json").exists()
    capsys.readouterr()
    assert cli.main(["physics", "pde-refiner", "evaluate", *common, "--members", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {"corr_time_0.8", "one_step_mse", "estimated_corr_time_0.8"} <= set(summary)
    assert (run / "rollout.png").exists() and (run / "correlation.png").exists()
    assert cli.main(["physics", "pde-refiner", "rollout", *common]) == 0
