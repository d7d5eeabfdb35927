"""Guards on the workspace layout that every member's test run repeats."""

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists())


def test_every_expected_member_exists():
    names = {p.name for p in MEMBERS}
    expected = {"diffcore", "difflab"} | {
        f"difflab-{d}"
        for d in ("vision", "brain3d", "science", "physics", "medical", "motion", "audio")
    }
    assert expected <= names


@pytest.mark.parametrize("member", MEMBERS, ids=lambda p: p.name)
def test_no_member_ships_difflab_init(member):
    # difflab.* is a PEP 420 namespace: an __init__.py here breaks editable installs of the others.
    assert not (member / "src" / "difflab" / "__init__.py").exists()


@pytest.mark.parametrize("member", MEMBERS, ids=lambda p: p.name)
def test_member_metadata(member):
    meta = tomllib.loads((member / "pyproject.toml").read_text())
    project = meta["project"]
    assert meta["build-system"]["build-backend"] == "hatchling.build"
    assert project["requires-python"] == ">=3.11"
    assert project["description"] and project["license"]
    assert (member / project["readme"]).exists()
    if member.name.startswith("difflab-"):
        assert "diffcore" in project["dependencies"]
        domain = member.name.removeprefix("difflab-")
        ep = project["entry-points"]["difflab.commands"][domain]
        assert ep == f"difflab.{domain}.cli:register"
        assert (member / "src" / "difflab" / domain / "py.typed").exists()
