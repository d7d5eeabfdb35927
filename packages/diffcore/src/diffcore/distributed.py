"""Running on several processes with ``torch.distributed``: ranks, seeds, data order, sampling.

Scaling out uses PyTorch's own stack: launch with ``torchrun`` (or SLURM's ``srun`` calling
``torchrun``), which sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; `init_from_env` joins that process group (gloo on CPU, NCCL for CUDA
tensors). Without those variables every helper here answers as a single process (rank 0 of
1), so the same code runs unchanged on a laptop.

Everything random is a function of a seed and an index, never of the number of ranks:

* `derive_seed` turns ``(seed, *words)`` into an independent 64-bit seed (numpy's
  ``SeedSequence``), e.g. one per data epoch, per micro-batch or per generated item;
* `epoch_permutation` is the data order of an epoch, a function of ``(seed, epoch)``;
  `ShardedSampler` hands rank ``r`` of ``W`` the positions ``r, r + W, ...`` of it, so the
  ranks partition the (truncated) epoch and the union of their batches at any step is the same
  set of samples for every ``W`` with the same global batch;
* `split_sample` splits ``n`` generated items into fixed-size micro-batches that do not depend
  on ``W``; micro-batch ``k`` draws from a generator seeded with ``(seed, k)`` and ranks take
  micro-batches round-robin, so the gathered result is identical on 1, 2 or 3 ranks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from tqdm.auto import tqdm

from .tree import Tree, batch_size, leaves, tree_map

__all__ = [
    "ShardedSampler",
    "all_reduce_mean",
    "barrier",
    "derive_seed",
    "epoch_permutation",
    "init_from_env",
    "is_distributed",
    "is_main",
    "load_parts",
    "local_device",
    "local_rank",
    "rank",
    "seeded_generator",
    "shard_indices",
    "split_sample",
    "world_size",
]

_ENV_NEEDED = ("RANK", "MASTER_ADDR", "MASTER_PORT")
_DATA_STREAM = 0  # derive_seed word for epoch permutations (fit uses the same stream)
_PART = "part-{:06d}.safetensors"
_PART_GLOB = "part-*.safetensors"
_PART_META = "tree"
_GATHER = ("rank0", "all", "none")

T = TypeVar("T", Tensor, float, Mapping[str, Any])


# ------------------------------------------------------------------- process group and ranks


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer.") from err


def init_from_env(
    *,
    device: torch.device | str | None = None,
    backend: str | None = None,
    timeout: timedelta | None = None,
) -> bool:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Does nothing when a process group is already initialised or when ``WORLD_SIZE`` is unset
    or 1. Otherwise initialises from the ``env://`` variables; on CUDA it first selects the
    device ``cuda:LOCAL_RANK``.

    Args:
        device: the training device; picks the backend when ``backend`` is None: ``"gloo"``
            for CPU, ``"cpu:gloo,cuda:nccl"`` for CUDA (NCCL for GPU tensors, gloo for the
            few CPU collectives). Default: `local_device`.
        backend: force a backend (``"gloo"``, ``"nccl"``, ...).
        timeout: collective timeout (torch's default when None).

    Returns:
        True when this process is part of a process group of more than one rank.

    Raises:
        RuntimeError: ``WORLD_SIZE > 1`` but the other variables are missing.
    """
    if not dist.is_available():
        return False
    if dist.is_initialized():
        return dist.get_world_size() > 1
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return False
    missing = [name for name in _ENV_NEEDED if not os.environ.get(name)]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={world} but {', '.join(missing)} not set; launch with `torchrun "
            "--nproc-per-node N script.py` (or set RANK, MASTER_ADDR and MASTER_PORT)."
        )
    dev = torch.device(device) if device is not None else local_device()
    if backend is None:
        backend = "cpu:gloo,cuda:nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev.index if dev.index is not None else local_rank())
    kwargs: dict[str, Any] = {"backend": backend, "init_method": "env://"}
    if timeout is not None:
        kwargs["timeout"] = timeout
    dist.init_process_group(**kwargs)
    return dist.get_world_size() > 1


def is_distributed() -> bool:
    """True inside an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes in the group (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def local_rank() -> int:
    """This process's rank on its node: ``LOCAL_RANK`` (set by torchrun), else 0."""
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    """Whether this process is rank 0, the one that logs and writes files."""
    return rank() == 0


def local_device() -> torch.device:
    """``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank() % torch.cuda.device_count())
    return torch.device("cpu")


def barrier() -> None:
    """Wait for every rank (a no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


def _comm_device(like: Tensor) -> torch.device:
    """Where a tensor must be for the group's backend (NCCL-only groups need CUDA)."""
    backend = str(dist.get_backend()).lower()
    if "gloo" not in backend and like.device.type == "cpu" and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return like.device


def all_reduce_mean(value: T) -> T:
    """The mean of `value` over ranks (returned unchanged when not distributed).

    Args:
        value: a tensor, a Python number, or a mapping of names to either (e.g. metrics);
            every rank must pass the same structure.

    Returns:
        The same kind of object holding the rank mean; tensors keep their device and dtype.

    >>> all_reduce_mean({"loss": 2.0})
    {'loss': 2.0}
    """
    if not is_distributed():
        return value
    if isinstance(value, Mapping):
        keys = list(value)
        parts = [torch.as_tensor(value[k], dtype=torch.float64).reshape(-1) for k in keys]
        flat = _all_reduce_mean_tensor(torch.cat(parts) if parts else torch.zeros(0))
        out: dict[str, Any] = {}
        offset = 0
        for key, part in zip(keys, parts, strict=True):
            chunk = flat[offset : offset + part.numel()]
            offset += part.numel()
            original = value[key]
            if isinstance(original, Tensor):
                out[key] = chunk.reshape(original.shape).to(original.device, original.dtype)
            else:
                out[key] = float(chunk.item())
        return out  # type: ignore[return-value]
    if isinstance(value, Tensor):
        return _all_reduce_mean_tensor(value)
    if isinstance(value, int | float):
        return float(_all_reduce_mean_tensor(torch.tensor(float(value))).item())
    raise TypeError(
        f"`value` must be a tensor, a number or a mapping of those, got {type(value).__name__}."
    )


def _all_reduce_mean_tensor(value: Tensor) -> Tensor:
    work_dtype = torch.float64 if value.dtype == torch.float64 else torch.float32
    buf = value.detach().to(device=_comm_device(value), dtype=work_dtype).clone()
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return (buf / dist.get_world_size()).to(device=value.device, dtype=value.dtype)


# ------------------------------------------------------------------------ seeds and sharding


def derive_seed(seed: int, *words: int) -> int:
    """An independent 64-bit seed for the stream ``(seed, *words)``.

    Built with numpy's ``SeedSequence``, whose outputs for different word tuples are
    statistically independent, so ``derive_seed(s, k)`` can seed item ``k`` of a job.

    Args:
        seed: the job's seed, >= 0.
        *words: non-negative integers naming the stream (epoch, micro-batch, ...).

    Returns:
        A seed in [0, 2**64).

    >>> derive_seed(0, 1) == derive_seed(0, 1) != derive_seed(0, 2)
    True
    """
    if seed < 0 or any(w < 0 for w in words):
        raise ValueError(f"`seed` and `words` must be >= 0, got seed={seed}, words={words}.")
    return int(np.random.SeedSequence([seed, *words]).generate_state(1, dtype=np.uint64)[0])


def seeded_generator(
    seed: int, *words: int, device: torch.device | str | None = None
) -> torch.Generator:
    """A ``torch.Generator`` on `device` seeded with ``derive_seed(seed, *words)``."""
    gen = torch.Generator(device=torch.device(device) if device is not None else "cpu")
    return gen.manual_seed(derive_seed(seed, *words))


def shard_indices(n: int, *, rank: int | None = None, world_size: int | None = None) -> range:
    """The items of ``range(n)`` that `rank` handles: ``rank, rank + W, rank + 2W, ...``.

    Args:
        n: number of items (samples, micro-batches, PDE trajectories, phantoms...).
        rank: default: this process's rank.
        world_size: default: the group's size.

    Returns:
        A range; over all ranks the ranges partition ``range(n)``.

    >>> list(shard_indices(7, rank=1, world_size=3))
    [1, 4]
    """
    r = _rank() if rank is None else rank
    w = _world_size() if world_size is None else world_size
    if n < 0:
        raise ValueError(f"`n` must be >= 0, got {n}.")
    if w < 1 or not 0 <= r < w:
        raise ValueError(f"need 0 <= rank < world_size, got rank={r}, world_size={w}.")
    return range(r, n, w)


_rank = rank  # the public names are shadowed by same-named arguments below
_world_size = world_size


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """The data order of one epoch: ``randperm(n)`` from a generator seeded by (seed, epoch).

    Args:
        n: dataset size.
        seed: the run's seed.
        epoch: the epoch, from 0.

    Returns:
        (n,) int64 permutation; the same on every rank and for every number of ranks.
    """
    gen = torch.Generator().manual_seed(derive_seed(seed, _DATA_STREAM, epoch))
    return torch.randperm(n, generator=gen)


class ShardedSampler(torch.utils.data.Sampler[int]):
    """A ``DataLoader`` sampler whose order is a function of (seed, epoch, rank).

    Each epoch the indices are permuted by `epoch_permutation` (or kept in order without
    shuffling), truncated to a multiple of the number of ranks (``drop_last``) or padded by
    wrapping around, and rank ``r`` of ``W`` takes positions ``r, r + W, ...``. The ranks
    therefore partition the epoch, and the first ``b`` indices of every rank together are
    positions ``0 .. W*b - 1`` of the permutation: the global batch holds the same samples for
    every ``W`` that keeps ``W * b`` fixed.

    Args:
        data: the dataset (its ``len`` is used) or its size.
        seed: the run's seed.
        shuffle: permute each epoch; False keeps ``0 .. n-1``.
        drop_last: truncate the epoch to a multiple of the number of ranks; False pads it by
            repeating indices from the start.
        rank: default: this process's rank.
        world_size: default: the group's size.

    >>> s = ShardedSampler(10, seed=0, rank=1, world_size=2)
    >>> s.set_epoch(3)
    >>> len(list(s))
    5
    """

    def __init__(
        self,
        data: Any,
        *,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        self.n = int(data) if isinstance(data, int) else len(data)
        self.rank = _rank() if rank is None else rank
        self.world_size = _world_size() if world_size is None else world_size
        shard_indices(0, rank=self.rank, world_size=self.world_size)  # validates
        if seed < 0:
            raise ValueError(f"`seed` must be >= 0, got {seed}.")
        if drop_last and self.n < self.world_size:
            raise ValueError(
                f"`data` has {self.n} items, fewer than the {self.world_size} ranks; use "
                "drop_last=False or fewer ranks."
            )
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order `__iter__` yields."""
        if epoch < 0:
            raise ValueError(f"`epoch` must be >= 0, got {epoch}.")
        self.epoch = epoch

    def _total(self) -> int:
        w = self.world_size
        return (self.n // w) * w if self.drop_last else -(-self.n // w) * w

    def __len__(self) -> int:
        return self._total() // self.world_size

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            order = epoch_permutation(self.n, self.seed, self.epoch)
        else:
            order = torch.arange(self.n)
        total = self._total()
        if total > self.n:  # pad by wrapping around
            order = order[torch.arange(total) % self.n]
        order = order[:total]
        return iter(order[self.rank :: self.world_size].tolist())


# ------------------------------------------------------------------------ split sampling


def split_sample(
    fn: Callable[[int, torch.Generator], Tree],
    n: int,
    *,
    seed: int,
    micro_batch: int = 64,
    device: torch.device | str | None = None,
    gather: Literal["rank0", "all", "none"] = "rank0",
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> Tree | None:
    """Generate `n` items over all ranks; the result does not depend on the number of ranks.

    The items are cut into ``ceil(n / micro_batch)`` micro-batches (the last may be smaller);
    micro-batch ``k`` is ``fn(size_k, generator_k)`` with ``generator_k`` seeded by
    ``derive_seed(seed, k)``, and rank ``r`` computes micro-batches ``r, r + W, ...``. Because
    neither the cut nor the seeds depend on ``W``, the gathered items are the same on 1 or
    many ranks (bit for bit, given deterministic kernels). Under ``torchrun`` the process group
    is joined from the environment first (`init_from_env`).

    Args:
        fn: ``fn(count, generator) -> tree`` whose leaves have leading size ``count``; draws
            all its randomness from ``generator``. E.g. sampling from a diffusion model (see
            `diffcore.samplers.sample_n`), PDE trajectories or phantoms.
        n: number of items.
        seed: the job's seed.
        micro_batch: items per call of `fn`; keep it fixed to reproduce a job.
        device: device of the generators; default: `local_device`.
        gather: ``"rank0"``: rank 0 returns all items in order, other ranks None; ``"all"``:
            every rank returns them; ``"none"``: nothing is communicated, every rank returns
            None (use with `out_dir`).
        out_dir: also write micro-batch ``k`` to ``out_dir/part-{k:06d}.safetensors`` (each
            rank its own; the folder's contents do not depend on the number of ranks). Read it
            back with `load_parts`.
        progress: show a progress bar on rank 0.

    Returns:
        The items as one tree (leaves concatenated along dim 0, on the device `fn` returned
        them on), or None (see `gather`).
    """
    if n < 1:
        raise ValueError(f"`n` must be >= 1, got {n}.")
    if micro_batch < 1:
        raise ValueError(f"`micro_batch` must be >= 1, got {micro_batch}.")
    if gather not in _GATHER:
        raise ValueError(f"`gather` must be one of {_GATHER}, got {gather!r}.")
    dev = torch.device(device) if device is not None else local_device()
    init_from_env(device=dev)
    num_parts = -(-n // micro_batch)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    mine: list[tuple[int, Tree]] = []
    ks = shard_indices(num_parts)
    for k in tqdm(ks, disable=not (progress and is_main()), desc="split_sample", unit="batch"):
        count = min(micro_batch, n - k * micro_batch)
        part = fn(count, seeded_generator(seed, k, device=dev))
        got = batch_size(part)
        if got != count:
            raise ValueError(f"`fn` returned {got} items for micro-batch {k}, asked for {count}.")
        if out is not None:
            _save_part(out / _PART.format(k), part)
        if gather != "none":
            mine.append((k, part))
    if gather == "none":
        barrier()
        return None
    if not is_distributed():
        return _concat([p for _, p in mine])
    target = _output_device(mine)
    local = [(k, tree_map(lambda x: x.detach().cpu(), p)) for k, p in mine]
    if gather == "all":
        everyone: list[Any] = [None] * world_size()
        dist.all_gather_object(everyone, local)
    else:
        everyone = [None] * world_size() if is_main() else []
        dist.gather_object(local, everyone if is_main() else None, dst=0)
        if not is_main():
            return None
    parts = sorted((kp for chunk in everyone for kp in chunk), key=lambda kp: kp[0])
    if [k for k, _ in parts] != list(range(num_parts)):
        raise RuntimeError(
            f"gathered micro-batches {[k for k, _ in parts]}, expected 0..{num_parts - 1}."
        )
    return tree_map(lambda x: x.to(target), _concat([p for _, p in parts]))


def _output_device(parts: list[tuple[int, Tree]]) -> torch.device:
    for _, part in parts:
        for leaf in leaves(part):
            if isinstance(leaf, Tensor):
                return leaf.device
    return torch.device("cpu")


def _concat(parts: list[Tree]) -> Tree:
    if len(parts) == 1:
        return parts[0]
    return tree_map(lambda *xs: torch.cat(xs, dim=0), parts[0], *parts[1:])


def _save_part(path: Path, part: Tree) -> None:
    import json

    import safetensors.torch

    from .train.checkpoint import _encode, atomic_write_bytes

    tensors: dict[str, Tensor] = {}
    skeleton = _encode(part, "x", tensors, path.name)
    data = safetensors.torch.save(
        {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
        metadata={_PART_META: json.dumps(skeleton)},
    )
    atomic_write_bytes(path, data)


def load_parts(path: str | os.PathLike[str], *, device: torch.device | str = "cpu") -> Tree:
    """Read back what `split_sample` wrote with ``out_dir``, concatenated in item order.

    Args:
        path: the ``out_dir`` folder.
        device: where to put the tensors.

    Returns:
        The items as one tree, as ``split_sample(..., gather="rank0")`` returns them.

    Raises:
        FileNotFoundError: the folder holds no parts.
        ValueError: a part is missing from the numbered sequence or unreadable.
    """
    import json

    import safetensors

    from .train.checkpoint import _decode

    folder = Path(path)
    files = sorted(folder.glob(_PART_GLOB))
    if not files:
        raise FileNotFoundError(f"no {_PART_GLOB} files in {str(folder)!r}.")
    numbers = [int(f.name[len("part-") : -len(".safetensors")]) for f in files]
    if numbers != list(range(len(files))):
        missing = sorted(set(range(max(numbers) + 1)) - set(numbers))
        raise ValueError(f"{str(folder)!r} lacks parts {missing} (a rank did not finish?).")
    parts = []
    for f in files:
        try:
            with safetensors.safe_open(f, framework="pt", device=str(device)) as handle:
                skeleton = json.loads((handle.metadata() or {})[_PART_META])
                tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
        except (KeyError, OSError, ValueError, safetensors.SafetensorError) as err:
            raise ValueError(f"{str(f)!r} is not a readable part file ({err}).") from err
        parts.append(_decode(skeleton, tensors, f.name))
    return _concat(parts)
