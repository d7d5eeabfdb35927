"""Frechet ChemNet Distance (Preuer et al. 2018, J. Chem. Inf. Model. 58(9)).

FCD = |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) between Gaussians fitted to ChemNet's
penultimate activations of two SMILES sets. ChemNet and its weights come from the ``fcd``
package, which ships them (``ChemNet_v0.13_pretrained.pt``): nothing is downloaded. As MOSES
(used by GDSS for "FCD/Test"), invalid generated SMILES are dropped and both sets are
canonicalised first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..molecules._convert import canonical_smiles
from ._molecules import valid_canonical


def chemnet_activations(
    smiles: Sequence[str], *, device: str = "cpu", batch_size: int = 128
) -> np.ndarray:
    """ChemNet activations (n, 512) of SMILES strings, computed in this process.

    Args:
        smiles: SMILES, used as given (canonicalise them first for FCD).
        device: torch device for ChemNet.
        batch_size: SMILES per forward pass.
    """
    import fcd  # the bundled ChemNet; imported lazily (it loads torch weights)

    model = fcd.load_ref_model()
    # n_jobs=0: no DataLoader worker processes.
    return np.asarray(
        fcd.get_predictions(model, list(smiles), batch_size=batch_size, n_jobs=0, device=device)
    )


def fcd_score(
    generated: Sequence[str | None],
    reference: Sequence[str],
    *,
    device: str = "cpu",
    batch_size: int = 128,
) -> float:
    """FCD between generated SMILES (invalid ones dropped) and reference SMILES.

    Args:
        generated: generated SMILES.
        reference: reference (test) SMILES; an invalid one raises, naming it.
        device: torch device for ChemNet.
        batch_size: SMILES per forward pass.

    Returns:
        FCD >= 0 (about 0 for equal sets).
    """
    gen = valid_canonical(generated)
    ref = [canonical_smiles(s) for s in reference]
    if len(gen) < 2 or len(ref) < 2:
        raise ValueError(
            f"FCD needs at least 2 valid molecules per set, got {len(gen)} generated "
            f"and {len(ref)} reference"
        )
    act = chemnet_activations(gen + ref, device=device, batch_size=batch_size).astype(np.float64)
    a, b = act[: len(gen)], act[len(gen) :]
    return frechet_distance(a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T))


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + Tr(s1 + s2 - 2 (s1 s2)^(1/2)) for covariance matrices s1, s2 (D, D).

    Tr((s1 s2)^(1/2)) is taken as the sum of square roots of the eigenvalues of the symmetric
    PSD matrix s1^(1/2) s2 s1^(1/2), which has the same spectrum as s1 s2.
    """
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = root1 @ s2 @ root1
    tr_cov = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_cov)
