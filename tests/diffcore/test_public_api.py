"""Every name a public module lists in ``__all__`` must import (cf. flow_matching's solver
__init__ listing a name it never imported)."""

import importlib

import pytest

MODULES = [
    "diffcore",
    "diffcore.processes",
    "diffcore.objectives",
    "diffcore.samplers",
    "diffcore.nets",
    "diffcore.train",
    "diffcore.ops",
    "diffcore.guidance",
    "diffcore.distributed",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name):
    module = importlib.import_module(name)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ lists missing names {missing}"
    assert len(set(module.__all__)) == len(module.__all__)
