import subprocess
import sys
from importlib.metadata import entry_points

from diffcore import cli


def installed_groups():
    return {ep.name for ep in entry_points(group=cli.ENTRY_POINT_GROUP)}


def test_help_lists_core_and_installed_groups(capsys):
    parser = cli.build_parser()
    help_text = parser.format_help()
    assert "info" in help_text
    for name in installed_groups():
        assert name in help_text


def test_info_prints_versions_and_devices(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "diffcore" in out and "torch" in out and "cpu" in out


def test_console_script_runs():
    # The installed console script, as a user runs it.
    proc = subprocess.run(
        [sys.executable, "-m", "diffcore.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: difflab" in proc.stdout


def test_unknown_command_fails_cleanly(capsys):
    import pytest

    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
