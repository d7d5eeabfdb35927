"""Train, roll out and evaluate PDE-Refiner and the MSE baseline on KS datasets."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from diffcore.train import EMA, WarmupCosine, fit
from diffcore.train.checkpoint import from_pretrained, save_pretrained

from ..datasets import load_ks
from ..metrics import RolloutMetrics, rollout_metrics
from ..solvers.ks import KSTrajectories
from .config import PDERefinerConfig
from .model import PDERefiner, condition_scalars

__all__ = ["evaluate", "load_model", "make_pairs", "plot_rollout", "rollout", "train"]


def make_pairs(data: KSTrajectories, history: int = 1) -> dict[str, torch.Tensor]:
    """All (history, next) training pairs of a split.

    Returns:
        ``{"history": (M, H, N), "next": (M, N), "params": (M, 3)}`` with
        ``M = B (T - H)``.
    """
    u = data.u.to(torch.float32)
    b, t, n = u.shape
    if t <= history:
        raise ValueError(f"trajectories have {t} steps; need more than history={history}.")
    windows = u.unfold(1, history + 1, 1)  # (B, T - H, N, H + 1)
    windows = windows.permute(0, 1, 3, 2).reshape(-1, history + 1, n)
    params = condition_scalars(data.length, n, data.dt)
    return {
        "history": windows[:, :history].contiguous(),
        "next": windows[:, history].contiguous(),
        "params": params.repeat_interleave(t - history, dim=0),
    }


def _loss(model: torch.nn.Module, batch: Any, generator: torch.Generator | None) -> torch.Tensor:
    # Through __call__ (PDERefiner.forward is its loss) so that DDP/FSDP wrappers see it.
    return model(batch, generator=generator)


def train(
    config: PDERefinerConfig,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
    max_train: int | None = None,
    progress: bool = True,
) -> PDERefiner:
    """Train on ``data_dir``'s train split, save the EMA weights to ``out_dir/model``.

    Args:
        config: model and training settings.
        data_dir: dataset folder (see `difflab.physics.datasets`).
        out_dir: run folder: ``checkpoints/``, ``metrics.jsonl`` and ``model/``.
        seed: weights, data order and noise.
        device: training device (default CPU).
        max_train: use only the first this many training trajectories.
        progress: progress bar.

    Returns:
        The model with EMA weights, in eval mode.
    """
    data = load_ks(data_dir, "train")
    if max_train is not None:
        data = replace(
            data, u=data.u[:max_train], length=data.length[:max_train], index=data.index[:max_train]
        )
    if data.u.shape[-1] != config.n_points:
        config = replace(config, n_points=data.u.shape[-1])
    dev = torch.device(device) if device is not None else torch.device("cpu")
    model = PDERefiner(config, generator=torch.Generator().manual_seed(seed)).to(dev)
    model.set_normalization(data.u.to(dev))
    pairs = make_pairs(data, config.history)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    ema = EMA(model, decay=config.ema_decay)
    out = Path(out_dir)
    fit(
        model,
        _loss,
        pairs,
        steps=config.steps,
        optimizer=opt,
        batch_size=min(config.batch_size, len(pairs["next"])),
        lr_schedule=WarmupCosine(warmup=min(config.warmup, config.steps - 1), total=config.steps),
        grad_clip=config.grad_clip,
        ema=ema,
        seed=seed,
        device=dev,
        out_dir=out,
        checkpoint_every=None,
        keep_last=1,
        log_every=max(1, config.steps // 100),
        progress=progress,
        config=asdict(config),
    )
    ema.copy_to(model)
    model.eval()
    save_pretrained(model, out / "model", config)
    return model


def load_model(run_dir: str | Path, *, device: torch.device | str | None = None) -> PDERefiner:
    """Load the model a `train` run saved (``run_dir/model`` or the model folder itself)."""
    path = Path(run_dir)
    if (path / "model").is_dir():
        path = path / "model"
    return from_pretrained(PDERefiner, path, device=device)


def rollout(
    model: PDERefiner,
    data: KSTrajectories,
    *,
    steps: int | None = None,
    members: int = 1,
    seed: int = 0,
    batch_size: int = 64,
    progress: bool = True,
) -> torch.Tensor:
    """Roll out from the first ``history`` states of every trajectory.

    Returns:
        (B, steps, N) predictions of states ``H .. H + steps - 1`` when ``members == 1``,
        else (members, B, steps, N) ensemble rollouts.
    """
    h = model.config.history
    horizon = data.u.shape[1] - h if steps is None else steps
    dev = model.u_std.device
    gen = torch.Generator(device=dev).manual_seed(seed)
    outs = []
    for s in range(0, len(data), batch_size):
        init = data.u[s : s + batch_size, :h].to(dev, torch.float32)
        length = data.length[s : s + batch_size].to(dev)
        if members == 1:
            outs.append(
                model.rollout(
                    init, length, data.dt, horizon, generator=gen, progress=progress
                ).cpu()
            )
        else:
            outs.append(
                model.ensemble_rollout(
                    init, length, data.dt, horizon, members, generator=gen, progress=progress
                ).cpu()
            )
    return torch.cat(outs, dim=0 if members == 1 else 1)


def evaluate(
    model: PDERefiner,
    data: KSTrajectories,
    *,
    seed: int = 0,
    batch_size: int = 64,
    members: int = 0,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Rollout metrics on a split; with ``out_dir``, also ``metrics.json`` and PNG plots.

    Args:
        model: trained model.
        data: ground-truth trajectories (B, T, N).
        seed: refinement noise.
        batch_size: trajectories rolled out together.
        members: ensemble size for the uncertainty estimate (refiner only; 0 = none).
        out_dir: where to write results.
        progress: progress bars.

    Returns:
        Summary scalars (correlation times for 0.8/0.9/0.95, one-step and unrolled MSE, ...).
    """
    h = model.config.history
    pred = rollout(model, data, seed=seed, batch_size=batch_size, progress=progress)
    truth = data.u[:, h:].to(torch.float32)
    m = rollout_metrics(pred, truth, dt=data.dt)
    summary: dict[str, Any] = {"method": model.config.method, "n_trajectories": len(data)}
    summary.update(m.summary())
    # One-step MSE with true inputs everywhere (teacher forcing), not only at the first step.
    pairs = make_pairs(data, h)
    n_one = min(len(pairs["next"]), 4096)
    dev = model.u_std.device
    gen = torch.Generator(device=dev).manual_seed(seed)
    one = model.predict_next(
        pairs["history"][:n_one].to(dev), pairs["params"][:n_one, 0].to(dev), data.dt, generator=gen
    ).cpu()
    summary["one_step_mse_teacher_forced"] = float(((one - pairs["next"][:n_one]) ** 2).mean())
    spread = None
    if members > 1 and model.config.method == "refiner":
        ens = rollout(
            model, data, members=members, seed=seed + 1, batch_size=batch_size, progress=progress
        )
        spread = _ensemble_correlation(ens)
        summary["ensemble_members"] = members
        for thr, times in _ensemble_times(spread, data.dt).items():
            summary[f"estimated_corr_time_{thr:g}"] = float(times.mean())
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(summary, indent=2))
        from safetensors.torch import save_file

        save_file(
            {"prediction": pred.contiguous(), "correlation": m.correlation.float().contiguous()},
            str(out / "rollout.safetensors"),
        )
        plot_rollout(truth[0], pred[0], data.dt, out / "rollout.png", title=model.config.method)
        plot_metrics(m, data.dt, out / "correlation.png", spread=spread)
    return summary


def _ensemble_correlation(ens: torch.Tensor) -> torch.Tensor:
    """Mean Pearson correlation between ensemble members, (B, T) (sec. 4.4 of the paper)."""
    from ..metrics import pearson_per_step

    e = ens.shape[0]
    corrs = [
        pearson_per_step(ens[i].double(), ens[j].double())
        for i in range(e)
        for j in range(i + 1, e)
    ]
    return torch.stack(corrs).mean(0)


def _ensemble_times(corr: torch.Tensor, dt: float) -> dict[float, torch.Tensor]:
    from ..metrics import THRESHOLDS, correlation_time

    return {t: correlation_time(corr, t, dt) for t in THRESHOLDS}


def plot_rollout(
    truth: torch.Tensor, pred: torch.Tensor, dt: float, path: str | Path, *, title: str = ""
) -> Path:
    """Space-time images of truth, prediction and error for one trajectory (T, N)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_end = truth.shape[0] * dt
    vmax = float(truth.abs().max())
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharey=True)
    panels = [
        ("truth", truth, "RdBu_r"),
        (f"prediction {title}", pred, "RdBu_r"),
        ("error", pred - truth, "RdBu_r"),
    ]
    for ax, (name, img, cmap) in zip(axes, panels, strict=True):
        im = ax.imshow(
            img.numpy(),
            aspect="auto",
            origin="lower",
            cmap=cmap,
            vmin=-vmax,
            vmax=vmax,
            extent=(0, truth.shape[1], 0, t_end),
        )
        ax.set_title(name)
        ax.set_xlabel("grid point")
    axes[0].set_ylabel("time")
    fig.colorbar(im, ax=axes, shrink=0.8)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_metrics(
    m: RolloutMetrics, dt: float, path: str | Path, *, spread: torch.Tensor | None = None
) -> Path:
    """Correlation vs time (mean and 10-90% band), and the error spectrum at the last step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corr = m.correlation.double()
    t = (torch.arange(corr.shape[1]) + 1) * dt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ax = axes[0]
    ax.plot(t, corr.mean(0), label="correlation to truth")
    ax.fill_between(t, corr.quantile(0.1, dim=0), corr.quantile(0.9, dim=0), alpha=0.3)
    if spread is not None:
        ax.plot(t, spread.mean(0), "--", label="between ensemble members")
    for thr in m.times:
        ax.axhline(thr, color="grey", lw=0.5)
    ax.set_xlabel("time")
    ax.set_ylabel("Pearson correlation")
    ax.legend()
    if m.error_spectrum is not None and m.target_spectrum is not None:
        ax = axes[1]
        ax.semilogy(m.target_spectrum[-1], label="truth (last step)")
        ax.semilogy(m.error_spectrum[0], label="error (first step)")
        ax.semilogy(m.error_spectrum[-1], label="error (last step)")
        ax.set_xlabel("wavenumber")
        ax.set_ylabel("power")
        ax.legend()
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
