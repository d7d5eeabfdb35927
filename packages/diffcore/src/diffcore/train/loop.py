"""A small, resumable training loop.

`fit` runs ``steps`` optimizer steps of ``loss_fn(model, batch, generator)``, with gradient
accumulation, clipping, an optional learning-rate schedule, EMA, optional bf16 autocast, a tqdm
progress bar, a JSONL metrics log and periodic checkpoints. Everything random is a function of
``seed``, so a run killed and resumed from a checkpoint continues bit-identically:

* data order: epoch ``e`` visits the data in ``randperm(N)`` drawn from a generator seeded
  with ``(seed, e)``; the checkpoint stores the epoch and the position in it;
* the loss's noise: drawn by ``loss_fn`` from a generator the loop owns and checkpoints;
* dropout and anything else on torch's global RNG: the loop seeds the global RNG from ``seed``
  inside ``torch.random.fork_rng`` (the caller's RNG state is restored on exit) and
  checkpoints it.

Exact equality also needs deterministic kernels: on CUDA call
``torch.use_deterministic_algorithms(True)`` first.

Distributed training is not implemented; model wrapping, data sharding, gradient sync and the
rank that writes files sit behind the small ``_wrap_model``, ``_shard``, ``_no_sync`` and
``_is_writer`` functions, which is where DDP / FSDP2 will plug in.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .checkpoint import (
    LATEST,
    CheckpointError,
    atomic_write_bytes,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from .ema import EMA

__all__ = ["FitResult", "WarmupCosine", "fit"]

LossFn = Callable[[nn.Module, Any, torch.Generator], Tensor]
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
_STEP_DIGITS = 8  # step-00001000
# Independent streams derived from the one seed (numpy SeedSequence words).
_DATA_STREAM = 0
_NOISE_STREAM = 1
_GLOBAL_STREAM = 2


class _Indexable(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


Data = Tensor | Sequence[Tensor] | Mapping[str, Tensor] | _Indexable


@dataclass(frozen=True)
class FitResult:
    """What `fit` returns.

    Attributes:
        step: optimizer steps done in total (including those before a resume).
        loss: mean loss of the last step, or None if no step ran.
        checkpoint: the last checkpoint written or resumed from, or None.
        metrics: path of the JSONL log, or None without ``out_dir``.
    """

    step: int
    loss: float | None
    checkpoint: Path | None
    metrics: Path | None


@dataclass(frozen=True)
class WarmupCosine:
    """Learning-rate multiplier: linear warmup, then cosine decay to ``final``.

    Linear warmup as in Goyal et al. 2017 (arXiv:1706.02677, sec. 2.2); cosine annealing as
    in Loshchilov & Hutter 2017 (arXiv:1608.03983, eq. 5) without restarts. A pure function
    of the step, so nothing about it needs checkpointing.

    Attributes:
        warmup: steps of linear increase from 0 to 1.
        total: step at which the multiplier reaches ``final``.
        final: multiplier after ``total`` steps.

    >>> WarmupCosine(warmup=10, total=110)(5)
    0.5
    """

    warmup: int
    total: int
    final: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.warmup <= self.total:
            raise ValueError(
                f"need 0 <= warmup <= total, got warmup={self.warmup}, total={self.total}."
            )

    def __call__(self, step: int) -> float:
        """Multiplier of the initial learning rate at `step`."""
        if step < self.warmup:
            return step / self.warmup
        if step >= self.total:
            return self.final
        frac = (step - self.warmup) / max(1, self.total - self.warmup)
        return self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * frac))


# ------------------------------------------------------------ distributed seams (single-process)


def _wrap_model(model: nn.Module) -> nn.Module:
    """The module that runs forward/backward (DDP / FSDP2 wrapping goes here)."""
    return model


def _unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module whose state is saved (DDP keeps it in ``.module``)."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def _shard(order: Tensor) -> Tensor:
    """This rank's part of an epoch's index order (all of it on one process)."""
    return order


def _no_sync(model: nn.Module, last_micro_step: bool) -> contextlib.AbstractContextManager[Any]:
    """Skip gradient all-reduce on non-final accumulation steps (DDP's ``no_sync``)."""
    return contextlib.nullcontext()


def _is_writer() -> bool:
    """Whether this process writes logs and checkpoints (rank 0)."""
    return True


# ------------------------------------------------------------------------------ data


def _derive_seed(seed: int, *words: int) -> int:
    """A 64-bit seed for one stream, from numpy's SeedSequence over ``(seed, *words)``."""
    return int(np.random.SeedSequence([seed, *words]).generate_state(1, dtype=np.uint64)[0])


def _data_len(data: Data) -> int:
    if isinstance(data, Tensor):
        if data.ndim == 0:
            raise ValueError("`data` must have a leading sample axis, got a 0-dim tensor.")
        return data.shape[0]
    if isinstance(data, Mapping) or (
        isinstance(data, Sequence) and data and all(isinstance(d, Tensor) for d in data)
    ):
        leaves = list(data.values()) if isinstance(data, Mapping) else list(data)
        if not leaves or not all(isinstance(v, Tensor) and v.ndim >= 1 for v in leaves):
            raise ValueError("`data` as a tuple/dict must hold tensors with a leading sample axis.")
        sizes = {v.shape[0] for v in leaves}
        if len(sizes) != 1:
            raise ValueError(f"tensors in `data` must share their first dimension, got {sizes}.")
        return sizes.pop()
    if hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        return len(data)
    raise TypeError(
        f"`data` must be a tensor, a tuple/dict of tensors or a map-style dataset (with "
        f"__len__ and __getitem__), got {type(data).__name__}; iterables cannot be resumed "
        "exactly."
    )


def _gather(data: Data, idx: Tensor) -> Any:
    if isinstance(data, Tensor):
        return data[idx.to(data.device)]
    if isinstance(data, Mapping):
        return {k: v[idx.to(v.device)] for k, v in data.items()}
    if isinstance(data, Sequence) and data and all(isinstance(d, Tensor) for d in data):
        return tuple(d[idx.to(d.device)] for d in data)
    return torch.utils.data.default_collate([data[int(i)] for i in idx])


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


class _Batches:
    """Batches in the order fixed by ``(seed, epoch)``; the state is (epoch, cursor)."""

    def __init__(self, data: Data, batch_size: int, seed: int) -> None:
        self.data = data
        self.n = _data_len(data)
        if not 1 <= batch_size <= self.n:
            raise ValueError(
                f"`batch_size` must be in [1, len(data)] = [1, {self.n}], got {batch_size}."
            )
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self.cursor = 0  # batches already taken in this epoch
        self._order: Tensor | None = None

    def order(self) -> Tensor:
        if self._order is None:
            gen = torch.Generator().manual_seed(_derive_seed(self.seed, _DATA_STREAM, self.epoch))
            self._order = _shard(torch.randperm(self.n, generator=gen))
        return self._order

    def next(self) -> Any:
        order = self.order()
        if (self.cursor + 1) * self.batch_size > order.numel():  # drop the last partial batch
            self.epoch, self.cursor, self._order = self.epoch + 1, 0, None
            order = self.order()
        start = self.cursor * self.batch_size
        self.cursor += 1
        return _gather(self.data, order[start : start + self.batch_size])

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load(self, state: Mapping[str, Any]) -> None:
        self.epoch, self.cursor, self._order = int(state["epoch"]), int(state["cursor"]), None


# ------------------------------------------------------------------------------ fit


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    steps: int,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    lr_schedule: Callable[[int], float] | None = None,
    grad_accum: int = 1,
    grad_clip: float | None = None,
    ema: EMA | None = None,
    bf16: bool = False,
    seed: int = 0,
    device: torch.device | str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    keep_last: int | None = 3,
    resume: bool = False,
    log_every: int = 1,
    progress: bool = True,
    config: Any = None,
) -> FitResult:
    """Train `model` for `steps` optimizer steps (in total, counting resumed ones).

    Args:
        model: the network; trained in place (put in train mode).
        loss_fn: ``loss_fn(model, batch, generator) -> scalar Tensor``; draw all noise and
            times from ``generator`` (on the training device) so resume is exact.
        data: a (N, ...) tensor, a tuple or dict of such tensors, or a map-style dataset
            (items collated with ``default_collate``); batches are moved to the device.
        steps: total optimizer steps.
        optimizer: built on ``model.parameters()``.
        batch_size: samples per micro-batch; the last partial batch of an epoch is dropped.
        lr_schedule: step -> multiplier of each group's initial lr (e.g. `WarmupCosine`).
        grad_accum: micro-batches per optimizer step (the loss is averaged over them).
        grad_clip: clip the global gradient norm to this value; None for no clipping.
        ema: updated after every optimizer step and checkpointed.
        bf16: run ``loss_fn`` under bf16 autocast (CPU or a CUDA device that supports it).
        seed: fixes data order, the loss generator and the global RNG inside the loop.
        device: where batches and the loss generator live; default: the model's device.
        out_dir: folder for ``metrics.jsonl`` and ``checkpoints/``; None writes nothing.
        checkpoint_every: save every this many steps (and at the end); None: only at the end.
        keep_last: keep this many newest checkpoints; None keeps all.
        resume: continue from the newest checkpoint in ``out_dir`` (fresh start if none).
        log_every: append metrics (and check the loss is finite) every this many steps.
        progress: show a tqdm progress bar.
        config: JSON-serialisable config (or dataclass) stored in each checkpoint.

    Returns:
        Final step, last loss, last checkpoint and metrics path.

    Raises:
        FloatingPointError: the loss became NaN or infinite.
        CheckpointError: the checkpoint to resume from is bad.
    """
    _check_fit_args(steps, batch_size, grad_accum, grad_clip, seed, log_every, checkpoint_every)
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"`keep_last` must be >= 1 or None, got {keep_last}.")
    if resume and out_dir is None:
        raise ValueError("`resume=True` needs `out_dir`, the folder holding the checkpoints.")
    device = torch.device(device) if device is not None else _model_device(model)
    if bf16:
        _check_bf16(device)
    out = Path(out_dir) if out_dir is not None else None
    ckpt_root = out / CHECKPOINT_DIR if out is not None else None
    if out is not None and _is_writer():
        out.mkdir(parents=True, exist_ok=True)

    batches = _Batches(data, batch_size, seed)
    noise = torch.Generator(device=device).manual_seed(_derive_seed(seed, _NOISE_STREAM))
    run = {"seed": seed, "batch_size": batch_size, "grad_accum": grad_accum, "n": batches.n}
    fork_devices = []
    if device.type == "cuda":
        fork_devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=fork_devices, device_type=device.type):
        _seed_global_rng(device, _derive_seed(seed, _GLOBAL_STREAM))
        start, last_ckpt = 0, None
        if resume and ckpt_root is not None:
            last_ckpt = latest_checkpoint(ckpt_root) if ckpt_root.is_dir() else None
            if last_ckpt is not None:
                start = _resume(last_ckpt, model, optimizer, ema, noise, batches, run)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        metrics_path = out / METRICS_FILE if out is not None else None
        if metrics_path is not None and _is_writer():
            _truncate_metrics(metrics_path, start)

        trainee = _wrap_model(model)
        trainee.train()
        state = _LoopState(step=start, checkpoint=last_ckpt)
        bar = tqdm(total=steps, initial=start, disable=not progress, desc="fit", unit="step")
        log = open(metrics_path, "a", encoding="utf-8") if metrics_path is not None else None
        t0 = time.perf_counter()
        try:
            while state.step < steps:
                loss, grad_norm = _train_step(
                    trainee, loss_fn, batches, optimizer, noise,
                    step=state.step, lr_schedule=lr_schedule, grad_accum=grad_accum,
                    grad_clip=grad_clip, bf16=bf16, device=device,
                )  # fmt: skip
                if ema is not None:
                    ema.update(_unwrap_model(trainee))
                state.step += 1
                if state.step % log_every == 0 or state.step == steps:
                    state.loss = loss.item()
                    if not math.isfinite(state.loss):
                        raise FloatingPointError(
                            f"non-finite loss {state.loss} at step {state.step}; lower the "
                            "learning rate, clip gradients or check the data."
                        )
                    record = {
                        "step": state.step,
                        "epoch": batches.epoch,
                        "loss": state.loss,
                        "lr": optimizer.param_groups[0]["lr"],
                        "grad_norm": None if grad_norm is None else grad_norm.item(),
                        "time_s": round(time.perf_counter() - t0, 3),
                    }
                    if ema is not None:
                        record["ema_decay"] = ema.decay_at(ema.num_updates - 1)
                    if log is not None and _is_writer():
                        log.write(json.dumps(record) + "\n")
                    bar.set_postfix(loss=f"{state.loss:.4g}")
                bar.update(1)
                due = checkpoint_every is not None and state.step % checkpoint_every == 0
                if ckpt_root is not None and (due or state.step == steps) and _is_writer():
                    if log is not None:
                        log.flush()
                    state.checkpoint = _save(
                        ckpt_root, state.step, model=_unwrap_model(trainee), optimizer=optimizer,
                        ema=ema, noise=noise, batches=batches, run=run, config=config,
                        keep_last=keep_last,
                    )  # fmt: skip
        finally:
            bar.close()
            if log is not None:
                log.close()
    return FitResult(
        step=state.step, loss=state.loss, checkpoint=state.checkpoint, metrics=metrics_path
    )


@dataclass
class _LoopState:
    step: int
    checkpoint: Path | None
    loss: float | None = None


def _train_step(
    model: nn.Module,
    loss_fn: LossFn,
    batches: _Batches,
    optimizer: torch.optim.Optimizer,
    noise: torch.Generator,
    *,
    step: int,
    lr_schedule: Callable[[int], float] | None,
    grad_accum: int,
    grad_clip: float | None,
    bf16: bool,
    device: torch.device,
) -> tuple[Tensor, Tensor | None]:
    """One optimizer step over `grad_accum` micro-batches; returns (mean loss, grad norm)."""
    if lr_schedule is not None:
        factor = float(lr_schedule(step))
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
    total = torch.zeros((), device=device)
    for micro in range(grad_accum):
        batch = _to_device(batches.next(), device)
        with (
            _no_sync(model, micro == grad_accum - 1),
            torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16),
        ):
            loss = loss_fn(model, batch, noise)
            if not isinstance(loss, Tensor) or loss.ndim != 0:
                shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
                raise ValueError(f"`loss_fn` must return a scalar tensor, got {shape}.")
        (loss.float() / grad_accum).backward()
        total += loss.detach().float()
    grad_norm = None
    if grad_clip is not None:
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total / grad_accum, grad_norm


def _save(
    root: Path,
    step: int,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: EMA | None,
    noise: torch.Generator,
    batches: _Batches,
    run: Mapping[str, Any],
    config: Any,
    keep_last: int | None,
) -> Path:
    name = f"step-{step:0{_STEP_DIGITS}d}"
    path = save_checkpoint(
        root / name,
        model=model,
        step=step,
        optimizer=optimizer,
        ema=ema,
        generators={"noise": noise},
        config=config,
        state={**run, **batches.state()},
    )
    atomic_write_bytes(root / LATEST, (name + "\n").encode())
    if keep_last is not None:
        old = sorted((p for p in root.glob("step-*") if p.is_dir() and p != path), key=_step_key)
        for stale in old[: max(0, len(old) - (keep_last - 1))]:
            shutil.rmtree(stale, ignore_errors=True)
    return path


def _step_key(path: Path) -> int:
    try:
        return int(path.name.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def _resume(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: EMA | None,
    noise: torch.Generator,
    batches: _Batches,
    run: Mapping[str, Any],
) -> int:
    ckpt = load_checkpoint(
        path,
        model=_unwrap_model(model),
        optimizer=optimizer,
        ema=ema,
        generators={"noise": noise},
        restore_global_rng=True,
    )
    saved = ckpt.state if isinstance(ckpt.state, dict) else {}
    for key, value in run.items():
        if key in saved and saved[key] != value:
            raise ValueError(
                f"cannot resume {str(path)!r} exactly: it was trained with {key}={saved[key]}, "
                f"this call has {key}={value}."
            )
    if "epoch" not in saved or "cursor" not in saved:
        raise CheckpointError(f"{str(path)!r} has no data position (epoch, cursor) to resume.")
    batches.load(saved)
    return ckpt.step


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep the log lines of steps <= `step` (drops lines past the checkpoint and torn lines)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and int(record.get("step", 0)) <= step:
            kept.append(line + "\n")
    atomic_write_bytes(path, "".join(kept).encode())


def _seed_global_rng(device: torch.device, seed: int) -> None:
    """Seed torch's CPU RNG and, when training on CUDA, that device's RNG (nothing else)."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _check_bf16(device: torch.device) -> None:
    if device.type == "cpu":
        return
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return
    raise ValueError(
        f"`bf16=True` needs a CPU or a CUDA device with bf16 support, got {device}; use bf16=False."
    )


def _check_fit_args(
    steps: int,
    batch_size: int,
    grad_accum: int,
    grad_clip: float | None,
    seed: int,
    log_every: int,
    checkpoint_every: int | None,
) -> None:
    if steps < 0:
        raise ValueError(f"`steps` must be >= 0, got {steps}.")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    if grad_accum < 1:
        raise ValueError(f"`grad_accum` must be >= 1, got {grad_accum}.")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"`grad_clip` must be > 0 or None, got {grad_clip}.")
    if seed < 0:
        raise ValueError(f"`seed` must be >= 0, got {seed}.")
    if log_every < 1:
        raise ValueError(f"`log_every` must be >= 1, got {log_every}.")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"`checkpoint_every` must be >= 1 or None, got {checkpoint_every}.")
