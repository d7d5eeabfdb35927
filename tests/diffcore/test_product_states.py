"""GDSS-like product states (X, A): per-leaf processes, symmetric A, masked nodes, zero CoM."""

import pytest
import torch

from diffcore.predictions import Denoiser
from diffcore.processes import VE, LinearVP, NodeMask, SymmetricAdjacency, ZeroCenterOfMass
from diffcore.samplers import (
    DDIM,
    GHVB,
    RK4,
    S4,
    DDPMAncestral,
    DPMSolver,
    DPMSolverPP2M,
    DPMSolverPP2MHeavyBall,
    DPMSolverPP2S,
    DPMSolverPP3M,
    Euler,
    EulerMaruyama,
    Heun,
    Midpoint,
    PredictorCorrector,
    SDEDPMSolverPP2M,
    UniPC,
    sample,
    uniform_t,
)

RULES = [
    Euler(),
    Heun(),
    Midpoint(),
    RK4(),
    DDIM(),
    DDIM(eta=1.0),
    DPMSolver(solver_order=3),
    DPMSolverPP2S(),
    DPMSolverPP2M(),
    DPMSolverPP3M(),
    UniPC(),
    EulerMaruyama(),
    DDPMAncestral(),
    PredictorCorrector(),
    SDEDPMSolverPP2M(),
    S4(),
    GHVB(),
    DPMSolverPP2MHeavyBall(),
]
B, N, F = 3, 6, 4


def graph_setup():
    mask = torch.ones(B, N)
    mask[0, 4:] = 0
    mask[2, 5:] = 0
    proc_x = LinearVP(constraint=NodeMask(mask))
    proc_a = VE(sigma_max=2.0, constraint=SymmetricAdjacency(mask))

    def net(state, t):  # a deliberately asymmetric toy score network coupling X and A
        x, a = state
        w = torch.arange(N * N, dtype=a.dtype).reshape(N, N) / (N * N)
        out_a = torch.tanh(a @ w + x.sum(-1, keepdim=True))
        out_x = torch.tanh(a @ x + t[:, None, None])
        return out_x, out_a

    return Denoiser(net, ("eps", "eps"), (proc_x, proc_a)), mask


@pytest.mark.parametrize("rule", RULES, ids=str)
def test_symmetry_and_masks_preserved(rule):
    model, mask = graph_setup()
    g = torch.Generator().manual_seed(0)
    procs = model.process
    x = (
        procs[0].prior_sample(torch.empty(B, N, F), generator=g),
        procs[1].prior_sample(torch.empty(B, N, N), generator=g),
    )
    out = sample(model, x, uniform_t(procs[0], 4, t_end=0.05), rule, generator=g, progress=False).x
    xs, adj = out
    torch.testing.assert_close(adj, adj.transpose(1, 2))
    assert float(torch.diagonal(adj, dim1=1, dim2=2).abs().max()) == 0.0
    pad = mask == 0
    assert float(xs[pad].abs().max()) == 0.0
    assert float(adj[pad].abs().max()) == 0.0 and float(adj.transpose(1, 2)[pad].abs().max()) == 0.0


def test_symmetric_noise_has_unit_variance_off_diagonal():
    c = SymmetricAdjacency()
    z = c.project_noise(torch.randn(4000, 5, 5, generator=torch.Generator().manual_seed(0)))
    off = z[:, 0, 1]
    assert abs(float(off.std()) - 1) < 0.05


@pytest.mark.parametrize("rule", [Heun(), DPMSolverPP2M(), EulerMaruyama()], ids=str)
def test_zero_center_of_mass_kept(rule):
    mask = torch.ones(2, 5)
    mask[1, 3:] = 0
    proc = LinearVP(constraint=ZeroCenterOfMass(mask))
    model = Denoiser(lambda x, t: torch.sin(x) + 1.0, "eps", proc)
    g = torch.Generator().manual_seed(0)
    x = proc.prior_sample(torch.empty(2, 5, 3), generator=g)
    out = sample(model, x, uniform_t(proc, 5, t_end=0.05), rule, generator=g, progress=False).x
    com = (out * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    assert float(com.abs().max()) < 1e-5
    assert float(out[1, 3:].abs().max()) == 0.0


def test_dict_states_work_like_tuples():
    proc = {"pos": LinearVP(), "feat": VE()}
    model = Denoiser(
        lambda s, t: {"pos": -s["pos"], "feat": torch.zeros_like(s["feat"])},
        {"pos": "eps", "feat": "x0"},
        proc,
    )
    x = {"pos": torch.randn(2, 3), "feat": torch.randn(2, 4)}
    out = sample(model, x, uniform_t(proc["pos"], 3, t_end=0.05), DPMSolverPP2M(), progress=False).x
    assert set(out) == {"pos", "feat"} and out["feat"].shape == (2, 4)
