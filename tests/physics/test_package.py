import importlib.metadata

import difflab.physics
from diffcore import cli


def test_imports_and_version():
    assert difflab.physics.__version__ == importlib.metadata.version("difflab-physics")


def test_command_group_registered(capsys):
    parser = cli.build_parser()
    assert "physics" in parser.format_help()
    assert cli.main(["physics"]) == 0
    assert "usage: difflab physics" in capsys.readouterr().out
