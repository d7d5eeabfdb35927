"""QM9 and ZINC250k as SMILES lists with GDSS's train/test split.

Both loaders take local files; :func:`download_molecule_dataset` fetches GDSS's copies
(harryjo97/GDSS: data/qm9.csv, data/zinc250k.csv, data/valid_idx_*.json) for users.

QM9 CSV, either of:
- ``gdb_index,smiles[,smiles_source]``: one row per molecule, ``gdb_index`` 1..133,885;
- GDSS / MoFlow's ``qm9.csv``: a ``SMILES1`` column, row r being gdb index r + 1.
QM9 split JSON, either ``{"test_gdb_index": [1-based gdb indices]}`` or GDSS's
``{"valid_idxs": ["000123", ...]}`` (0-based rows, gdb index = row + 1). The test set is
those molecules, the training set every other row (GDSS utils/data_loader_mol.py).

ZINC250k CSV: a ``smiles`` column (GDSS's file keeps a trailing newline inside each SMILES,
which is stripped); split JSON: a list of 0-based test rows.
"""

from __future__ import annotations

import csv
import json
import os
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._convert import QM9_ATOMS, ZINC250K_ATOMS

_GDSS_RAW = "https://raw.githubusercontent.com/harryjo97/GDSS/master/data/"
MOLECULE_URLS = {
    "qm9": (_GDSS_RAW + "qm9.csv", _GDSS_RAW + "valid_idx_qm9.json"),
    "zinc250k": (_GDSS_RAW + "zinc250k.csv", _GDSS_RAW + "valid_idx_zinc250k.json"),
}
QM9_MAX_ATOMS = 9  # GDSS config/qm9.yaml data.max_node_num
ZINC250K_MAX_ATOMS = 38  # GDSS config/zinc250k.yaml data.max_node_num


@dataclass(frozen=True)
class MoleculeDataset:
    """SMILES of a molecule dataset, split as GDSS does.

    Attributes:
        name: ``"qm9"`` or ``"zinc250k"``.
        train: training SMILES, in file order.
        test: test SMILES, in file order.
        atom_types: element vocabulary of its graphs.
        max_atoms: largest number of heavy atoms (GDSS ``max_node_num``).
    """

    name: str
    train: list[str] = field(repr=False)
    test: list[str] = field(repr=False)
    atom_types: tuple[str, ...]
    max_atoms: int


def _read_csv(path: str | os.PathLike[str]) -> tuple[list[str], list[dict[str, str]]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no CSV file at {str(path)!r}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        columns = list(reader.fieldnames or [])
    return columns, rows


def _read_json(path: str | os.PathLike[str]) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no split file at {str(path)!r}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"malformed split file {str(path)!r}: not valid JSON ({err})") from err


def _int_list(values: Any, path: str | os.PathLike[str], what: str) -> list[int]:
    if not isinstance(values, list):
        raise ValueError(f"malformed split file {str(path)!r}: {what} must be a list")
    try:
        return [int(v) for v in values]
    except (TypeError, ValueError) as err:
        raise ValueError(f"malformed split file {str(path)!r}: {what} must be integers") from err


def load_qm9(
    csv_path: str | os.PathLike[str],
    split_path: str | os.PathLike[str],
    *,
    sources: Collection[str] | None = None,
) -> MoleculeDataset:
    """QM9 SMILES with GDSS's test split (formats in the module docstring).

    Args:
        csv_path: QM9 CSV.
        split_path: test split JSON.
        sources: keep only rows whose ``smiles_source`` is in this set (e.g. ``{"gdb17"}``);
            None keeps every row.

    Returns:
        MoleculeDataset with atom types C, N, O, F and at most 9 heavy atoms.
    """
    columns, rows = _read_csv(csv_path)
    if "smiles" in columns:
        smiles_col = "smiles"
    elif "SMILES1" in columns:
        smiles_col = "SMILES1"
    else:
        raise ValueError(
            f"QM9 file {str(csv_path)!r} has no 'smiles' or 'SMILES1' column; columns: {columns}"
        )
    if sources is not None and "smiles_source" not in columns:
        raise ValueError(f"`sources` given but {str(csv_path)!r} has no 'smiles_source' column")
    by_gdb: dict[int, str] = {}
    for r, row in enumerate(rows):
        if sources is not None and row["smiles_source"] not in sources:
            continue
        try:
            gdb = int(row["gdb_index"]) if "gdb_index" in columns else r + 1
        except ValueError as err:
            raise ValueError(
                f"QM9 file {str(csv_path)!r}, row {r + 2}: gdb_index {row['gdb_index']!r} "
                "is not an integer"
            ) from err
        smi = (row[smiles_col] or "").strip()
        if not smi:
            raise ValueError(f"QM9 file {str(csv_path)!r}, row {r + 2}: empty SMILES")
        by_gdb[gdb] = smi
    split = _read_json(split_path)
    if isinstance(split, dict) and "test_gdb_index" in split:
        test_gdb = _int_list(split["test_gdb_index"], split_path, "'test_gdb_index'")
    elif isinstance(split, dict) and "valid_idxs" in split:
        test_gdb = [r + 1 for r in _int_list(split["valid_idxs"], split_path, "'valid_idxs'")]
    else:
        raise ValueError(
            f"malformed split file {str(split_path)!r}: expected 'test_gdb_index' or 'valid_idxs'"
        )
    test_set = set(test_gdb)
    test = [by_gdb[g] for g in test_gdb if g in by_gdb]
    train = [s for g, s in by_gdb.items() if g not in test_set]
    return MoleculeDataset("qm9", train, test, QM9_ATOMS, QM9_MAX_ATOMS)


def load_zinc250k(
    csv_path: str | os.PathLike[str], split_path: str | os.PathLike[str]
) -> MoleculeDataset:
    """ZINC250k SMILES with GDSS's test split (0-based row indices).

    Returns:
        MoleculeDataset with atom types C, N, O, F, P, S, Cl, Br, I and at most 38 heavy atoms.
    """
    columns, rows = _read_csv(csv_path)
    if "smiles" not in columns:
        raise ValueError(f"ZINC250k file {str(csv_path)!r} has no 'smiles' column: {columns}")
    smiles = [(row["smiles"] or "").strip() for row in rows]
    idx = _int_list(_read_json(split_path), split_path, "the split")
    bad = [i for i in idx if not 0 <= i < len(smiles)]
    if bad:
        raise ValueError(
            f"split {str(split_path)!r} has rows {bad[:5]} outside 0..{len(smiles) - 1}"
        )
    test_set = set(idx)
    test = [smiles[i] for i in idx]
    train = [s for i, s in enumerate(smiles) if i not in test_set]
    return MoleculeDataset("zinc250k", train, test, ZINC250K_ATOMS, ZINC250K_MAX_ATOMS)


def download_molecule_dataset(name: str, root: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Download GDSS's CSV and split files for ``"qm9"`` or ``"zinc250k"`` into `root`.

    Needs the network (GitHub); tests never call it. Load the result with :func:`load_qm9` /
    :func:`load_zinc250k`.

    Returns:
        (csv path, split path).
    """
    if name not in MOLECULE_URLS:
        raise ValueError(f"unknown molecule dataset {name!r}; known: {', '.join(MOLECULE_URLS)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for url in MOLECULE_URLS[name]:
        target = root / url.rsplit("/", 1)[1]
        urllib.request.urlretrieve(url, target)  # noqa: S310 (fixed https URL)
        paths.append(target)
    return paths[0], paths[1]
