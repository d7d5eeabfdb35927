"""Developer sessions. Run with ``uv run nox -s <session>``; ``uv run nox -l`` lists them.

Every session syncs its own virtual environment from ``uv.lock`` (``--frozen``: the lock is the
truth, never re-resolved here), so each session proves its environment installs from scratch.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
# member name -> its tests folder
MEMBERS = {
    "diffcore": "tests/diffcore",
    "difflab-vision": "tests/vision",
    "difflab-brain3d": "tests/brain3d",
    "difflab-science": "tests/science",
    "difflab-physics": "tests/physics",
    "difflab-medical": "tests/medical",
    "difflab-motion": "tests/motion",
    "difflab-audio": "tests/audio",
    "difflab": "tests/difflab",
}
SOURCES = ["packages/diffcore/src/diffcore"] + [
    f"packages/{m}/src/difflab" for m in MEMBERS if m.startswith("difflab-")
]


def _sync(session: nox.Session, *args: str) -> None:
    """``uv sync`` the lock into this session's virtualenv."""
    session.run_install(
        "uv",
        "sync",
        "--frozen",
        "--no-default-groups",
        *args,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


def _pytest(session: nox.Session, *default: str) -> None:
    session.run("pytest", *(session.posargs or default), env={"PYTHONHASHSEED": "0"})


@nox.session
def tests(session: nox.Session) -> None:
    """The default fast suite of every package (no `slow`, no `gpu`)."""
    _sync(session, "--all-packages", "--group", "test")
    _pytest(session, "tests")


@nox.session
@nox.parametrize("member", list(MEMBERS))
def tests_package(session: nox.Session, member: str) -> None:
    """Install ONE member (and only what it depends on) and run its tests."""
    _sync(session, "--package", member, "--exact", "--group", "test")
    _pytest(session, MEMBERS[member], "tests/test_workspace.py")


@nox.session
def slow(session: nox.Session) -> None:
    """Long reproduction runs (marked `slow`)."""
    _sync(session, "--all-packages", "--group", "test")
    _pytest(session, "tests", "-m", "slow", "-s")


@nox.session
def gpu(session: nox.Session) -> None:
    """GPU parity tests: each Triton/CUDA kernel against its pure-torch twin (needs CUDA)."""
    _sync(session, "--all-packages", "--group", "test", "--extra", "triton")
    _pytest(session, "tests", "-m", "gpu")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    _sync(session, "--only-group", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over every member's sources."""
    _sync(session, "--all-packages", "--group", "typecheck")
    session.run("mypy", *SOURCES)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the Sphinx site with warnings as errors."""
    _sync(session, "--all-packages", "--group", "docs")
    session.run(
        "sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html", "-q"
    )


@nox.session(venv_backend="none")
def wheels(session: nox.Session) -> None:
    """Build every member; install diffcore + difflab-science wheels in a fresh venv; smoke test."""
    dist = ROOT / "dist"
    session.run("uv", "build", "--all-packages", "--out-dir", str(dist), "--clear")
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        py = str(venv / "bin" / "python")
        session.run("uv", "venv", "--python", "3.11", str(venv), "-q")
        wheels = [str(w) for w in dist.glob("diffcore-*.whl")]
        wheels += [str(w) for w in dist.glob("difflab_science-*.whl")]
        session.run("uv", "pip", "install", "--python", py, *wheels, "-q")
        # Run from the temp dir so the clone's sources cannot shadow the installed wheels.
        with session.chdir(tmp):
            session.run(py, str(ROOT / "tests" / "smoke_wheels.py"), external=True)
        session.run(str(venv / "bin" / "difflab"), "info", external=True)
        session.run(str(venv / "bin" / "difflab"), "science", "--help", external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks under shared/bench/; results go to bench-results/."""
    _sync(session, "--all-packages", "--group", "test", "--group", "bench")
    scripts = session.posargs or sorted(str(p) for p in (ROOT / "shared" / "bench").glob("*.py"))
    os.makedirs(ROOT / "bench-results", exist_ok=True)
    for script in scripts:
        session.run("python", script)
