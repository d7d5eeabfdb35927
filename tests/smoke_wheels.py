"""Run by ``nox -s wheels`` inside a fresh venv holding only diffcore + difflab-science wheels."""

import importlib.metadata as metadata

import diffcore
import difflab.science

names = {dist.metadata["Name"] for dist in metadata.distributions()}
extra = sorted(n for n in names if n.startswith("difflab-") and n != "difflab-science")
if extra:
    raise SystemExit(f"installing difflab-science pulled in other domain packages: {extra}")
print("wheels ok:", diffcore.__version__, difflab.science.__version__)
