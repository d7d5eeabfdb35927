"""diffcore.discrete with learning: a masked diffusion model recovers a Markov chain, and
Gumbel-softmax trajectories give reward gradients that agree with exact and REINFORCE ones."""

import torch

from diffcore.discrete import (
    Ancestral,
    DiscreteDenoiser,
    LogLinearSchedule,
    MaskedDiffusionELBO,
    MaskedProcess,
    TokenDenoiser,
    TokenDenoiserConfig,
    relaxed_sample,
)
from diffcore.samplers import sample, uniform_t


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- Markov chain

A = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.4, 0.1, 0.5]], dtype=torch.float64)


def stationary(a):
    evals, evecs = torch.linalg.eig(a.T)
    pi = evecs[:, evals.real.argmax()].real
    return pi / pi.sum()


def markov_chain(n, length, g):
    x = torch.empty(n, length, dtype=torch.long)
    x[:, 0] = torch.multinomial(stationary(A).float(), n, replacement=True, generator=g)
    for i in range(1, length):
        x[:, i] = torch.multinomial(A[x[:, i - 1]].float(), 1, generator=g).squeeze(-1)
    return x


def transition_estimate(x, v):
    counts = torch.zeros(v, v, dtype=torch.float64)
    for i in range(x.shape[1] - 1):
        ones = torch.ones(x.shape[0], dtype=torch.float64)
        counts.index_put_((x[:, i], x[:, i + 1]), ones, accumulate=True)
    return counts / counts.sum(1, keepdim=True)


def test_masked_diffusion_recovers_markov_chain():
    v, length = 3, 8
    g = gen(0)
    data = markov_chain(20_000, length, g)
    process = MaskedProcess(vocab_size=v)
    cfg = TokenDenoiserConfig(
        vocab_size=v,
        max_length=length,
        hidden=32,
        depth=2,
        heads=2,
        mlp_ratio=2.0,
        time_conditioning=False,
    )
    net = TokenDenoiser(cfg, generator=gen(1))
    elbo = MaskedDiffusionELBO(process)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    for _ in range(300):
        batch = data[torch.randint(0, data.shape[0], (128,), generator=g)]
        loss = elbo.loss(net, batch, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model = DiscreteDenoiser(net, process)
    x1 = process.prior_sample(torch.empty(1500, length, dtype=torch.long))
    with torch.no_grad():
        x = sample(model, x1, uniform_t(process, 32), Ancestral(), generator=g, progress=False).x
    assert bool((x < v).all())
    a_hat = transition_estimate(x, v)
    err = float((a_hat - A).abs().max())
    print(f"recovered transition matrix\n{a_hat.numpy().round(3)}\nmax abs error {err:.4f}")
    assert err < 0.08
    # the untrained network's samples are far from the chain: the test has power
    fresh = DiscreteDenoiser(TokenDenoiser(cfg, generator=gen(1)), process)
    with torch.no_grad():
        x0 = sample(fresh, x1, uniform_t(process, 8), Ancestral(), generator=g, progress=False).x
    assert float((transition_estimate(x0, v) - A).abs().max()) > 0.2


# --------------------------------------------------------------------------- Gumbel gradients

V, L = 3, 4
PROCESS = MaskedProcess(vocab_size=V, schedule=LogLinearSchedule(eps=0.0))


class BiasOnly(torch.nn.Module):
    """p(x0 | x_t) = softmax(b) at every masked position: E[fraction of 0s] = softmax(b)_0."""

    def __init__(self):
        super().__init__()
        self.b = torch.nn.Parameter(torch.tensor([0.3, -0.2, 0.1]))

    def forward(self, x, t):
        return self.b.expand(x.shape[0], x.shape[1], V)


def reinforce_grad(model, param, n, steps, seed):
    """Score-function estimate of d E[fraction of token 0] / d param along ancestral paths.

    log p(path) = sum over unmasking events of log p(x0^l = token | x_t); the stay-masked
    probabilities of the masked process do not depend on the network (SUBS).
    """
    grid = uniform_t(PROCESS, steps)
    x1 = PROCESS.prior_sample(torch.empty(n, L, dtype=torch.long))
    with torch.no_grad():
        traj = sample(
            model,
            x1,
            grid,
            Ancestral(),
            generator=gen(seed),
            progress=False,
            return_trajectory=True,
        ).trajectory
    logp = torch.zeros(n)
    for i in range(steps):
        x, nxt = traj[i], traj[i + 1]
        new = (x == V) & (nxt != V)
        lp = model(x, grid[i]).gather(-1, nxt.clamp(max=V - 1)[..., None]).squeeze(-1)
        logp = logp + torch.where(new, lp, torch.zeros(())).sum(-1)
    reward = (traj[-1] == 0).double().mean(-1)
    (grad,) = torch.autograd.grad(((reward - reward.mean()) * logp).mean(), param)
    return grad


def gumbel_grad(model, param, n, steps, seed, **kwargs):
    x1 = PROCESS.prior_sample(torch.empty(n, L, dtype=torch.long))
    y = relaxed_sample(
        model, x1, uniform_t(PROCESS, steps), generator=gen(seed), progress=False, **kwargs
    )
    assert torch.equal(y.detach()[..., V], torch.zeros(n, L))  # nothing left masked
    (grad,) = torch.autograd.grad(y[..., 0].mean(), param)
    return grad


def test_gumbel_gradient_agrees_with_exact_and_reinforce():
    net = BiasOnly()
    model = DiscreteDenoiser(net, PROCESS)
    p = net.b.detach().softmax(0)
    exact = p[0] * (torch.eye(V)[0] - p)
    rf = reinforce_grad(model, net.b, 20_000, 16, seed=0)
    gs = gumbel_grad(model, net.b, 20_000, 16, seed=1, temperature=0.5)
    soft = gumbel_grad(model, net.b, 20_000, 16, seed=1, temperature=0.5, straight_through=False)
    print(f"exact {exact.tolist()}\nREINFORCE {rf.tolist()}\nGumbel-ST {gs.tolist()}")
    assert float((rf - exact).norm() / exact.norm()) < 0.1
    assert bool((torch.sign(gs) == torch.sign(exact)).all())
    assert 0.6 < float(gs @ exact / exact.norm() ** 2) < 1.2  # relaxation bias at tau = 0.5
    torch.testing.assert_close(soft, gs)  # linear reward, input-free net: same gradient
    # truncation: only positions unmasked in the last k of n steps (a fraction k/n under the
    # log-linear schedule) pass gradients; none at all with k = 0
    part = gumbel_grad(model, net.b, 20_000, 16, seed=1, temperature=0.5, grad_steps=4)
    ratio = float(part @ gs / gs.norm() ** 2)
    assert 0.15 < ratio < 0.35, ratio
    x1 = PROCESS.prior_sample(torch.empty(4, L, dtype=torch.long))
    none = relaxed_sample(model, x1, uniform_t(PROCESS, 8), grad_steps=0, progress=False)
    assert not none.requires_grad


def test_gumbel_gradient_through_a_network_matches_reinforce_in_sign():
    g = gen(3)
    cfg = TokenDenoiserConfig(
        vocab_size=V, max_length=L, hidden=16, depth=1, heads=2, time_scale=1.0
    )
    net = TokenDenoiser(cfg, generator=g)
    with torch.no_grad():
        for prm in net.parameters():
            prm.copy_(0.5 * torch.randn(prm.shape, generator=g))
    model = DiscreteDenoiser(net, PROCESS)
    rf = reinforce_grad(model, net.out.bias, 8000, 8, seed=4)
    gs = gumbel_grad(model, net.out.bias, 8000, 8, seed=5, temperature=0.5)
    cos = float(rf @ gs / (rf.norm() * gs.norm()))
    print(f"REINFORCE {rf.tolist()}\nGumbel-ST {gs.tolist()}\ncosine {cos:.3f}")
    assert bool((torch.sign(gs) == torch.sign(rf)).all())
    assert cos > 0.9
    assert 0.5 < float(gs.norm() / rf.norm()) < 2.0
