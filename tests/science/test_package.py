import importlib.metadata

import difflab.science
from diffcore import cli


def test_imports_and_version():
    assert difflab.science.__version__ == importlib.metadata.version("difflab-science")


def test_command_group_registered(capsys):
    parser = cli.build_parser()
    assert "science" in parser.format_help()
    assert cli.main(["science"]) == 0
    assert "usage: difflab science" in capsys.readouterr().out
