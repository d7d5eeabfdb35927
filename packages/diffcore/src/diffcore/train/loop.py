"""A small, resumable training loop that runs unchanged on one process or under torchrun.

`fit` runs ``steps`` optimizer steps of ``loss_fn(model, batch, generator)``, with gradient
accumulation, clipping, an optional learning-rate schedule, EMA, optional bf16 autocast and
gradient checkpointing, a tqdm progress bar, a JSONL metrics log and periodic checkpoints.

Everything random is a function of ``seed`` and of the position in the run, never of the number
of processes, so a run killed and resumed from a checkpoint continues bit-identically, and a run
on ``W`` ranks computes the same steps as one process with ``W`` times the accumulation:

* data order: epoch ``e`` visits the data in ``randperm(N)`` drawn from a generator seeded
  with ``(seed, e)``; consecutive chunks of ``batch_size`` are the micro-batches, and each
  optimizer step takes the next ``grad_accum * world_size`` of them (across epoch ends);
  micro-batch ``j`` of a step goes to rank ``j % world_size``. The checkpoint stores the epoch
  and the number of micro-batches taken in it;
* the loss's noise: ``loss_fn`` draws it from a generator that the loop re-seeds with
  ``(seed, m)`` before micro-batch ``m`` of the run;
* dropout and anything else on torch's global RNG: the loop re-seeds the global RNG (CPU and
  the training CUDA device) with ``(seed, m)`` too, inside ``torch.random.fork_rng``, so the
  caller's RNG state is restored on exit.

Exact equality also needs deterministic kernels: on CUDA call
``torch.use_deterministic_algorithms(True)`` first. Across different numbers of ranks the
gradient is the same sum in another order, so results agree to float rounding.

Under ``torchrun`` (``WORLD_SIZE > 1``) `fit` joins the process group from the environment
(`diffcore.distributed.init_from_env`), wraps the model in DDP or FSDP2
(`diffcore.train.parallel`), averages the logged loss over ranks, and lets rank 0 alone write
the log and the checkpoints (FSDP shards are gathered to full tensors first). A checkpoint does
not depend on the number of ranks: resume it on any ``W'`` with ``grad_accum' * W'`` equal to
the saved ``grad_accum * W`` and training continues with the same global batch.
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

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import distributed as dist_utils
from ..distributed import derive_seed, epoch_permutation
from .checkpoint import (
    LATEST,
    CheckpointError,
    atomic_write_bytes,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from .ema import EMA
from .parallel import (
    STRATEGIES,
    BlockSelector,
    Parallel,
    Strategy,
    gradient_checkpointing,
    is_sharded,
    wrap,
)

__all__ = ["FitResult", "WarmupCosine", "fit"]

LossFn = Callable[[nn.Module, Any, torch.Generator], Tensor]
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
_STEP_DIGITS = 8  # step-00001000
# Independent streams derived from the one seed (numpy SeedSequence words); the data stream
# (word 0) is `diffcore.distributed.epoch_permutation`'s.
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


# ------------------------------------------------------------------------------ data


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
    """Micro-batches in the order fixed by ``(seed, epoch)``; the state is (epoch, cursor).

    The micro-batch stream is the same for every number of ranks; each rank `take` s its own
    micro-batches and `skip` s the others'.
    """

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
        self.cursor = 0  # micro-batches already taken (by any rank) in this epoch
        self._order: Tensor | None = None

    def order(self) -> Tensor:
        if self._order is None:
            self._order = epoch_permutation(self.n, self.seed, self.epoch)
        return self._order

    def _advance(self) -> Tensor:
        """Indices of the next micro-batch; the last partial batch of an epoch is dropped."""
        order = self.order()
        if (self.cursor + 1) * self.batch_size > order.numel():
            self.epoch, self.cursor, self._order = self.epoch + 1, 0, None
            order = self.order()
        start = self.cursor * self.batch_size
        self.cursor += 1
        return order[start : start + self.batch_size]

    def next(self) -> Any:
        return _gather(self.data, self._advance())

    def skip(self) -> None:
        self._advance()

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
    grad_checkpointing: bool = False,
    parallel: Strategy = "ddp",
    blocks: BlockSelector | None = None,
    find_unused_parameters: bool = False,
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

    On one process this is a plain loop. Under ``torchrun`` every rank calls `fit` with the same
    arguments (each holding the whole `data`); see the module docstring and
    ``docs/distributed.md``. The global batch is ``batch_size * grad_accum * world_size``.

    Args:
        model: the network; trained in place (put in train mode). Under FSDP it is sharded
            in place and stays so after `fit`.
        loss_fn: ``loss_fn(model, batch, generator) -> scalar Tensor``; draw all noise and
            times from ``generator`` (on the training device) so resume is exact.
        data: a (N, ...) tensor, a tuple or dict of such tensors, or a map-style dataset
            (items collated with ``default_collate``); batches are moved to the device.
        steps: total optimizer steps.
        optimizer: built on ``model.parameters()``.
        batch_size: samples per micro-batch (per rank); the last partial batch of an epoch is
            dropped.
        lr_schedule: step -> multiplier of each group's initial lr (e.g. `WarmupCosine`).
        grad_accum: micro-batches per optimizer step on each rank (the loss is averaged over
            all micro-batches of all ranks).
        grad_clip: clip the global gradient norm to this value; None for no clipping.
        ema: updated after every optimizer step and checkpointed.
        bf16: run ``loss_fn`` under bf16 autocast (CPU or a CUDA device that supports it).
        grad_checkpointing: recompute each block's activations in backward instead of
            storing them (see `diffcore.train.parallel.gradient_checkpointing`).
        parallel: with more than one rank, ``"ddp"`` (replicate the model) or ``"fsdp"``
            (shard parameters, gradients, optimizer state and EMA with FSDP2's
            ``fully_shard``, one unit per block); ignored on one process.
        blocks: ``blocks(module) -> bool`` names the blocks for gradient checkpointing and
            FSDP units; default: the children of every ``nn.ModuleList``.
        find_unused_parameters: passed to DDP, for models with parameters that some steps
            do not use.
        seed: fixes data order, the loss generator and the global RNG inside the loop.
        device: where batches and the loss generator live; default: the model's device.
        out_dir: folder for ``metrics.jsonl`` and ``checkpoints/`` (shared by all ranks);
            None writes nothing.
        checkpoint_every: save every this many steps (and at the end); None: only at the end.
        keep_last: keep this many newest checkpoints; None keeps all.
        resume: continue from the newest checkpoint in ``out_dir`` (fresh start if none).
        log_every: append metrics (and check the loss is finite) every this many steps.
        progress: show a tqdm progress bar (on rank 0).
        config: JSON-serialisable config (or dataclass) stored in each checkpoint.

    Returns:
        Final step, last loss (mean over ranks), last checkpoint and metrics path.

    Raises:
        FloatingPointError: the loss became NaN or infinite.
        CheckpointError: the checkpoint to resume from is bad.
        ValueError: a resumed checkpoint was trained with another seed, data size,
            micro-batch size or global batch.
    """
    _check_fit_args(steps, batch_size, grad_accum, grad_clip, seed, log_every, checkpoint_every)
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"`keep_last` must be >= 1 or None, got {keep_last}.")
    if parallel not in STRATEGIES:
        raise ValueError(f"`parallel` must be one of {STRATEGIES}, got {parallel!r}.")
    if resume and out_dir is None:
        raise ValueError("`resume=True` needs `out_dir`, the folder holding the checkpoints.")
    device = torch.device(device) if device is not None else _model_device(model)
    if bf16:
        _check_bf16(device)
    dist_utils.init_from_env(device=device)
    world, rank, writer = dist_utils.world_size(), dist_utils.rank(), dist_utils.is_main()
    out = Path(out_dir) if out_dir is not None else None
    ckpt_root = out / CHECKPOINT_DIR if out is not None else None
    if out is not None and writer:
        out.mkdir(parents=True, exist_ok=True)

    batches = _Batches(data, batch_size, seed)
    noise = torch.Generator(device=device).manual_seed(derive_seed(seed, _NOISE_STREAM))
    run = {
        "seed": seed,
        "batch_size": batch_size,
        "grad_accum": grad_accum,
        "n": batches.n,
        "world_size": world,
    }
    fork_devices = []
    if device.type == "cuda":
        fork_devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=fork_devices, device_type=device.type):
        start, last_ckpt = 0, None
        if resume and ckpt_root is not None:
            last_ckpt = latest_checkpoint(ckpt_root) if ckpt_root.is_dir() else None
            if last_ckpt is not None and is_sharded(model):
                raise ValueError(
                    "cannot resume into a model that is already sharded by FSDP; build a fresh "
                    "model (fit shards it after loading the checkpoint)."
                )
            if last_ckpt is not None:
                start = _resume(last_ckpt, model, optimizer, ema, noise, batches, run)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        metrics_path = out / METRICS_FILE if out is not None else None
        if metrics_path is not None and writer:
            _truncate_metrics(metrics_path, start)

        state = _LoopState(step=start, checkpoint=last_ckpt)
        log = (
            open(metrics_path, "a", encoding="utf-8")
            if metrics_path is not None and writer
            else None
        )
        bar = tqdm(
            total=steps, initial=start, disable=not (progress and writer), desc="fit", unit="step"
        )
        try:
            with contextlib.ExitStack() as stack:
                if grad_checkpointing:
                    stack.enter_context(gradient_checkpointing(model, blocks))
                par = wrap(model, optimizer, ema, strategy=parallel, device=device, select=blocks,
                           find_unused_parameters=find_unused_parameters)  # fmt: skip
                par.module.train()
                step = _Stepper(
                    par, loss_fn, batches, optimizer, noise, seed=seed, world=world, rank=rank,
                    lr_schedule=lr_schedule, grad_accum=grad_accum, grad_clip=grad_clip,
                    bf16=bf16, device=device,
                )  # fmt: skip
                t0 = time.perf_counter()
                while state.step < steps:
                    loss, grad_norm = step(state.step)
                    if ema is not None:
                        ema.update(par.model)
                    state.step += 1
                    if state.step % log_every == 0 or state.step == steps:
                        state.loss = float(dist_utils.all_reduce_mean(loss).item())
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
                        if log is not None:
                            log.write(json.dumps(record) + "\n")
                        bar.set_postfix(loss=f"{state.loss:.4g}")
                    bar.update(1)
                    due = checkpoint_every is not None and state.step % checkpoint_every == 0
                    if ckpt_root is not None and (due or state.step == steps):
                        if log is not None:
                            log.flush()
                        state.checkpoint = _save(
                            ckpt_root, state.step, par=par, optimizer=optimizer, ema=ema,
                            noise=noise, batches=batches, run=run, config=config,
                            keep_last=keep_last, writer=writer,
                        )  # fmt: skip
                par.finish(ema)
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


@dataclass
class _Stepper:
    """One optimizer step over this rank's micro-batches of the global batch."""

    par: Parallel
    loss_fn: LossFn
    batches: _Batches
    optimizer: torch.optim.Optimizer
    noise: torch.Generator
    seed: int
    world: int
    rank: int
    lr_schedule: Callable[[int], float] | None
    grad_accum: int
    grad_clip: float | None
    bf16: bool
    device: torch.device

    def __call__(self, step: int) -> tuple[Tensor, Tensor | None]:
        """Run optimizer step `step`; returns (this rank's mean loss, global grad norm)."""
        if self.lr_schedule is not None:
            factor = float(self.lr_schedule(step))
            for group in self.optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
        per_step = self.grad_accum * self.world
        total = torch.zeros((), device=self.device)
        for j in range(per_step):
            if j % self.world != self.rank:
                self.batches.skip()
                continue
            micro = step * per_step + j  # index of the micro-batch in the whole run
            self.noise.manual_seed(derive_seed(self.seed, _NOISE_STREAM, micro))
            _seed_global_rng(self.device, derive_seed(self.seed, _GLOBAL_STREAM, micro))
            batch = _to_device(self.batches.next(), self.device)
            with self.par.no_sync(j >= per_step - self.world):
                with torch.autocast(
                    device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16
                ):
                    loss = self.loss_fn(self.par.module, batch, self.noise)
                if not isinstance(loss, Tensor) or loss.ndim != 0:
                    shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
                    raise ValueError(f"`loss_fn` must return a scalar tensor, got {shape}.")
                (loss.float() / self.grad_accum).backward()
            total += loss.detach().float()
        grad_norm = None
        if self.grad_clip is not None:
            norm = nn.utils.clip_grad_norm_(self.par.module.parameters(), self.grad_clip)
            grad_norm = self.par.grad_norm(norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total / self.grad_accum, grad_norm


def _save(
    root: Path,
    step: int,
    *,
    par: Parallel,
    optimizer: torch.optim.Optimizer,
    ema: EMA | None,
    noise: torch.Generator,
    batches: _Batches,
    run: Mapping[str, Any],
    config: Any,
    keep_last: int | None,
    writer: bool,
) -> Path:
    """Gather full states on every rank; rank 0 writes; all wait for it."""
    name = f"step-{step:0{_STEP_DIGITS}d}"
    path = root / name
    model_state, opt_state, ema_state = par.full_states(optimizer, ema)
    if writer:
        save_checkpoint(
            path,
            model=model_state,
            step=step,
            optimizer=opt_state,
            ema=ema_state,
            generators={"noise": noise},
            config=config,
            state={**run, **batches.state()},
        )
        atomic_write_bytes(root / LATEST, (name + "\n").encode())
        if keep_last is not None:
            old = sorted(
                (p for p in root.glob("step-*") if p.is_dir() and p != path), key=_step_key
            )
            for stale in old[: max(0, len(old) - (keep_last - 1))]:
                shutil.rmtree(stale, ignore_errors=True)
    dist_utils.barrier()
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
    """Load a checkpoint (on every rank) into the still unwrapped model; returns its step."""
    ckpt = load_checkpoint(
        path, model=model, optimizer=optimizer, ema=ema, generators={"noise": noise}
    )
    saved = ckpt.state if isinstance(ckpt.state, dict) else {}
    for key in ("seed", "batch_size", "n"):
        if key in saved and saved[key] != run[key]:
            raise ValueError(
                f"cannot resume {str(path)!r} exactly: it was trained with {key}={saved[key]}, "
                f"this call has {key}={run[key]}."
            )
    if "grad_accum" in saved:
        saved_world = int(saved.get("world_size", 1))
        per_step = int(saved["grad_accum"]) * saved_world
        if per_step != run["grad_accum"] * run["world_size"]:
            hint = (
                f"use grad_accum={per_step // run['world_size']}"
                if per_step % run["world_size"] == 0
                else f"use a number of ranks that divides {per_step}"
            )
            raise ValueError(
                f"cannot resume {str(path)!r} with the same global batch: it was trained with "
                f"grad_accum={saved['grad_accum']} on {saved_world} rank(s) ({per_step} "
                f"micro-batches per step), this call has grad_accum={run['grad_accum']} on "
                f"{run['world_size']} rank(s); {hint}."
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
