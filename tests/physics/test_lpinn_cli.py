import argparse
import json

import pytest

from difflab.physics.lpinn.cli import register_lpinn


def _parser():
    parser = argparse.ArgumentParser(prog="difflab physics")
    register_lpinn(parser.add_subparsers(dest="physics_command"))
    return parser


@pytest.mark.parametrize("equation", ["convection", "burgers"])
def test_cli_quick_run(tmp_path, capsys, equation):
    args = _parser().parse_args(
        [
            "lpinn",
            "--equation",
            equation,
            "--beta",
            "30",
            "--quick",
            "--no-progress",
            "--adam-steps",
            "10",
            "--lbfgs-steps",
            "5",
            "--out",
            str(tmp_path),
        ]
    )
    assert args.func(args) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["equation"] == equation
    for model in ("lpinn", "pinn"):
        assert 0 <= metrics[model]["rel_l2"] < 10
    assert (tmp_path / "solution.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "LPINN" in out and "PINN" in out


def test_cli_rejects_unknown_equation(tmp_path):
    with pytest.raises(SystemExit):
        _parser().parse_args(["lpinn", "--equation", "heat", "--out", str(tmp_path)])
