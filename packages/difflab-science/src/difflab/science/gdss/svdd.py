"""GDSS steered by SVDD (Li et al. 2024, arXiv:2408.08252) toward drug-likeness.

Rewards read a clean state ``(X, A)`` as molecules (:func:`molecules.dense_to_mols`, GDSS's
quantisation and valency rules): QED (RDKit ``QED.qed``, Bickerton et al. 2012) and optionally
the synthetic-accessibility score (Ertl & Schuffenhauer 2009; RDKit's Contrib ``sascorer``,
which ships inside the rdkit wheel; where it is missing the SA term is skipped with a warning).
Invalid molecules get reward 0 (QED) and the worst SA. Guidance is
:class:`diffcore.guidance.SVDD` with :class:`~diffcore.guidance.svdd.PosteriorMeanValue`
(SVDD-PM): the reward of the posterior mean ``x0_hat(x_t)``, no value network.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from rdkit import Chem, rdBase
from rdkit.Chem import QED
from torch import Tensor

from diffcore.guidance.svdd import SVDD, PosteriorMeanValue

from .. import molecules as mol
from .model import _fit_mask
from .pipeline import GDSS, GDSSSamples, make_step_rule

__all__ = ["MoleculeReward", "SVDDReport", "sa_scorer", "svdd_compare", "svdd_sample"]

_SA_WORST = 10.0  # sascorer's range is 1 (easy) .. 10 (hard)


def sa_scorer() -> Callable[[Chem.Mol], float] | None:
    """RDKit Contrib's ``sascorer.calculateScore`` if the wheel ships it, else None."""
    from rdkit.Chem import RDConfig

    path = os.path.join(RDConfig.RDContribDir, "SA_Score")
    if not os.path.isfile(os.path.join(path, "sascorer.py")):
        return None
    if path not in sys.path:
        sys.path.append(path)
    try:
        module = importlib.import_module("sascorer")
    except Exception:  # noqa: BLE001 - a broken Contrib must not break sampling
        return None
    return module.calculateScore


def _to_mol(g: mol.MolGraph) -> Chem.Mol | None:
    if g.num_atoms == 0:
        return None
    try:
        return mol.largest_fragment(mol.graph_to_mol(g))
    except (mol.InvalidMoleculeError, ValueError):
        return None


def _sa(scorer: Callable[[Chem.Mol], float], m: Chem.Mol) -> float:
    """SA score; fragments from ``largest_fragment`` need their ring info computed first."""
    try:
        Chem.FastFindRings(m)
        return float(scorer(m))
    except (RuntimeError, ValueError):
        return _SA_WORST


@dataclass(frozen=True, eq=False)
class MoleculeReward:
    """``reward((X, A)) -> (B,)``: QED minus ``sa_weight * (SA - 1) / 9`` of decoded molecules.

    Attributes:
        atom_types: element vocabulary of X's channels.
        node_mask: (B, N) mask of the sampled graphs (repeated for k*B candidate batches).
        sa_weight: weight of the normalised SA penalty (0: QED only).
    """

    atom_types: tuple[str, ...]
    node_mask: Tensor | None = None
    sa_weight: float = 0.0

    def molecules(self, state: tuple[Tensor, Tensor]) -> list[Chem.Mol | None]:
        """Decode a batch; None for invalid or empty graphs."""
        x, adj = state
        mask = _fit_mask(self.node_mask, x.shape[0])
        x = x.float()
        adj = 0.5 * (adj + adj.transpose(-1, -2)).float()
        return [_to_mol(g) for g in mol.dense_to_mols(x, adj, self.atom_types, mask)]

    def __call__(self, state: tuple[Tensor, Tensor]) -> Tensor:
        """(B,) rewards, on the device of the state."""
        sa = sa_scorer() if self.sa_weight else None
        if self.sa_weight and sa is None:
            warnings.warn("RDKit Contrib sascorer not found; SA term skipped", stacklevel=2)
        rdBase.DisableLog("rdApp.*")
        vals = []
        for m in self.molecules(state):
            if m is None:
                vals.append(0.0 - (self.sa_weight if sa is not None else 0.0))
                continue
            r = QED.qed(m)
            if sa is not None:
                r -= self.sa_weight * (_sa(sa, m) - 1.0) / (_SA_WORST - 1.0)
            vals.append(r)
        leaf = state[0]
        return torch.tensor(vals, dtype=torch.float64, device=leaf.device).to(leaf.dtype)


def svdd_sample(
    model: GDSS,
    n: int,
    *,
    atom_types: Sequence[str] | None = None,
    n_candidates: int = 8,
    alpha: float = 0.0,
    sa_weight: float = 0.0,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> GDSSSamples:
    """Sample ``n`` molecules with SVDD-PM around the config's stochastic sampler.

    Args:
        model: a trained molecule GDSS.
        n: molecules to generate.
        atom_types: vocabulary (default: ``model.atom_types``).
        n_candidates: SVDD's M.
        alpha: SVDD temperature (0 = argmax).
        sa_weight: add the SA penalty (see :class:`MoleculeReward`).
        steps: sampling steps (default ``config.steps``).
        generator: source of all randomness (masks, noise, SVDD's choices).
        progress: show a progress bar.
    """
    types = tuple(atom_types or model.atom_types or ())
    if len(types) != model.config.max_feat_num:
        raise ValueError(
            f"`atom_types` must list {model.config.max_feat_num} elements, got {types}"
        )
    mask = model.node_masks(n, generator=generator)
    reward = MoleculeReward(types, mask, sa_weight)
    rule = SVDD(
        rule=make_step_rule(model.config),
        value=PosteriorMeanValue(reward),
        n_candidates=n_candidates,
        alpha=alpha,
    )
    return model.sample(
        n, sampler=rule, steps=steps, mask=mask, generator=generator, progress=progress
    )


@dataclass
class SVDDReport:
    """Mean reward and validity, unguided vs guided."""

    unguided: dict[str, float]
    guided: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"unguided": self.unguided, "guided": self.guided}


def _summary(samples: GDSSSamples, types: tuple[str, ...], sa_weight: float) -> dict[str, float]:
    reward = MoleculeReward(types, samples.mask, sa_weight)
    mols = reward.molecules((samples.x, samples.adj))
    qed = [QED.qed(m) for m in mols if m is not None]
    r = reward((samples.x, samples.adj))
    return {
        "mean_reward": float(r.mean()),
        "mean_qed_valid": float(sum(qed) / len(qed)) if qed else 0.0,
        "validity_wo_correction": len(qed) / max(1, len(mols)),
        "seconds": samples.seconds,
    }


def svdd_compare(
    model: GDSS,
    n: int,
    *,
    atom_types: Sequence[str] | None = None,
    n_candidates: int = 8,
    alpha: float = 0.0,
    sa_weight: float = 0.0,
    steps: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> SVDDReport:
    """Unguided vs SVDD-guided sampling with the same seed: mean reward, QED, validity."""
    types = tuple(atom_types or model.atom_types or ())
    base = model.sample(
        n,
        sampler=make_step_rule(model.config),
        steps=steps,
        generator=torch.Generator().manual_seed(seed),
        progress=progress,
    )
    guided = svdd_sample(
        model, n, atom_types=types, n_candidates=n_candidates, alpha=alpha, sa_weight=sa_weight,
        steps=steps, generator=torch.Generator().manual_seed(seed), progress=progress,
    )  # fmt: skip
    return SVDDReport(_summary(base, types, sa_weight), _summary(guided, types, sa_weight))
