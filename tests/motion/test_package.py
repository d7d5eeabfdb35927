import importlib.metadata

import difflab.motion
from diffcore import cli


def test_imports_and_version():
    assert difflab.motion.__version__ == importlib.metadata.version("difflab-motion")


def test_command_group_registered(capsys):
    parser = cli.build_parser()
    assert "motion" in parser.format_help()
    assert cli.main(["motion"]) == 0
    assert "usage: difflab motion" in capsys.readouterr().out
