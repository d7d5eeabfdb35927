import importlib.metadata

import difflab.vision
from diffcore import cli


def test_imports_and_version():
    assert difflab.vision.__version__ == importlib.metadata.version("difflab-vision")


def test_command_group_registered(capsys):
    parser = cli.build_parser()
    assert "vision" in parser.format_help()
    assert cli.main(["vision"]) == 0
    assert "usage: difflab vision" in capsys.readouterr().out
