import importlib.metadata

import difflab.brain3d
from diffcore import cli


def test_imports_and_version():
    assert difflab.brain3d.__version__ == importlib.metadata.version("difflab-brain3d")


def test_command_group_registered(capsys):
    parser = cli.build_parser()
    assert "brain3d" in parser.format_help()
    assert cli.main(["brain3d"]) == 0
    assert "usage: difflab brain3d" in capsys.readouterr().out
