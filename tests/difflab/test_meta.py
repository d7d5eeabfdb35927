import importlib

import pytest

DOMAINS = ["vision", "brain3d", "science", "physics", "medical", "motion", "audio"]


@pytest.mark.parametrize("domain", DOMAINS)
def test_meta_package_installs_every_domain(domain):
    module = importlib.import_module(f"difflab.{domain}")
    assert module.__version__


def test_difflab_is_a_namespace_package():
    import difflab

    assert getattr(difflab, "__file__", None) is None
    assert len(list(difflab.__path__)) >= len(DOMAINS)
