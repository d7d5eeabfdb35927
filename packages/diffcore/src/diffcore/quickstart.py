"""``difflab quickstart``: placeholder until the 2-D quickstart lands."""
