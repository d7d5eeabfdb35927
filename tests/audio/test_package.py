import importlib.metadata

import difflab.audio
from diffcore import cli


def test_imports_and_version():
    assert difflab.audio.__version__ == importlib.metadata.version("difflab-audio")


def test_command_group_registered(capsys):
    parser = cli.build_parser()
    assert "audio" in parser.format_help()
    assert cli.main(["audio"]) == 0
    assert "usage: difflab audio" in capsys.readouterr().out
