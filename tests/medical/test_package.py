import importlib.metadata

import difflab.medical
from diffcore import cli


def test_imports_and_version():
    assert difflab.medical.__version__ == importlib.metadata.version("difflab-medical")


def test_command_group_registered(capsys):
    parser = cli.build_parser()
    assert "medical" in parser.format_help()
    assert cli.main(["medical"]) == 0
    assert "usage: difflab medical" in capsys.readouterr().out
