"""Data parallelism for `fit`: DDP or FSDP2 wrapping, and gradient checkpointing.

* ``"ddp"``: ``torch.nn.parallel.DistributedDataParallel``; every rank holds the whole model
  and gradients are averaged over ranks (Li et al. 2020, arXiv:2006.15704).
* ``"fsdp"``: ``torch.distributed.fsdp.fully_shard`` (FSDP2) on every block and then on the
  root; parameters, gradients, optimizer state and the EMA shadow are sharded over ranks as
  ``DTensor`` s and gathered to full tensors only to save a checkpoint (Zhao et al. 2023,
  arXiv:2304.11277).
* gradient checkpointing: each block's forward runs under ``torch.utils.checkpoint`` (the
  non-reentrant variant), so its activations are recomputed in the backward pass instead of
  stored (Chen et al. 2016, arXiv:1604.06174); dropout masks are replayed exactly.

A *block* is by default a child of an ``nn.ModuleList`` (the repeated layers of
`diffcore.nets`' MLP, U-Net and DiT); pass a predicate to choose others.
"""

from __future__ import annotations

import contextlib
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .ema import EMA

__all__ = ["find_blocks", "gradient_checkpointing"]

Strategy = Literal["ddp", "fsdp"]
STRATEGIES = ("ddp", "fsdp")
BlockSelector = Callable[[nn.Module], bool]


def find_blocks(model: nn.Module, select: BlockSelector | None = None) -> list[nn.Module]:
    """The blocks of `model` that are checkpointed or sharded one by one.

    Args:
        model: the network.
        select: ``select(module) -> bool`` picks blocks among ``model.modules()`` (the root
            excluded); default: the children of every ``nn.ModuleList``, outermost lists first
            (modules inside a block are not searched).

    Returns:
        The blocks, in ``model.modules()`` order (parents before their children).
    """
    if select is not None:
        return [m for m in model.modules() if m is not model and select(m)]
    blocks: list[nn.Module] = []

    def walk(module: nn.Module) -> None:
        for child in module.children():
            if isinstance(child, nn.ModuleList):
                blocks.extend(child.children())
            else:
                walk(child)

    walk(model)
    return blocks


def _checkpointed(forward: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return run


@contextlib.contextmanager
def gradient_checkpointing(
    model: nn.Module, select: BlockSelector | None = None
) -> Iterator[list[nn.Module]]:
    """Context in which each block of `model` recomputes its activations in backward.

    Parameter names, the state dict and the results are unchanged (to float rounding); the
    blocks' ``forward`` is wrapped on the instance and restored on exit.

    Args:
        model: the network.
        select: which modules are blocks (see `find_blocks`).

    Yields:
        The checkpointed blocks.

    Raises:
        ValueError: `model` has no blocks to checkpoint.

    >>> from diffcore.nets import MLPDenoiser
    >>> net = MLPDenoiser.from_preset("tiny")
    >>> with gradient_checkpointing(net) as blocks:
    ...     net(torch.zeros(4, 2), torch.rand(4)).sum().backward()
    >>> len(blocks) == net.config.depth
    True
    """
    blocks = find_blocks(model, select)
    if not blocks:
        raise ValueError(
            f"found no blocks to checkpoint in {type(model).__name__} (no nn.ModuleList); pass "
            "grad_checkpointing=lambda m: isinstance(m, MyBlock) to name them."
        )
    patched: list[tuple[nn.Module, bool, Any]] = []
    try:
        for block in blocks:
            own = "forward" in block.__dict__
            patched.append((block, own, block.__dict__.get("forward")))
            block.forward = _checkpointed(block.forward)
        yield blocks
    finally:
        for block, own, previous in reversed(patched):
            if own:
                block.forward = previous
            else:
                del block.forward


# ------------------------------------------------------------------------------ wrapping


def _full(value: Any) -> Any:
    """A full tensor from a DTensor shard (a collective: call it on every rank)."""
    # No DTensor can exist before its module is imported; importing it costs seconds.
    module = sys.modules.get("torch.distributed.tensor")
    if module is not None and isinstance(value, module.DTensor):
        return value.full_tensor()
    return value


@dataclass
class Parallel:
    """The module that runs forward/backward and how to sync and gather it.

    Attributes:
        module: what ``loss_fn`` receives (the model itself, its DDP wrapper, or the model
            after ``fully_shard``).
        model: the plain model whose state is saved.
        strategy: None (one process), ``"ddp"`` or ``"fsdp"``.
    """

    module: nn.Module
    model: nn.Module
    strategy: Strategy | None = None

    def no_sync(self, sync: bool) -> contextlib.AbstractContextManager[Any]:
        """Skip the gradient reduction unless `sync` (the last local micro-batch)."""
        if sync or self.strategy is None:
            return contextlib.nullcontext()
        if self.strategy == "ddp":
            return self.module.no_sync()  # type: ignore[operator]
        return _fsdp_no_sync(self.module)

    def grad_norm(self, value: Tensor) -> Tensor:
        """The global gradient norm from ``clip_grad_norm_`` as a plain tensor."""
        return _full(value)

    def full_states(
        self, optimizer: torch.optim.Optimizer, ema: EMA | None
    ) -> tuple[dict[str, Tensor], dict[str, Any], dict[str, Any] | None]:
        """Model, optimizer and EMA states with full tensors (collective under FSDP).

        Returns:
            (model state dict, optimizer state dict, EMA state dict or None).
        """
        model_state = {k: _full(v) for k, v in self.model.state_dict().items()}
        opt_state = optimizer.state_dict()
        if self.strategy == "fsdp":
            opt_state = {
                **opt_state,
                "state": {
                    i: {k: _full(v) for k, v in s.items()} for i, s in opt_state["state"].items()
                },
            }
        ema_state = None
        if ema is not None:
            ema_state = ema.state_dict()
            ema_state["shadow"] = {k: _full(v) for k, v in ema_state["shadow"].items()}
        return model_state, opt_state, ema_state

    def finish(self, ema: EMA | None) -> None:
        """After training: give the EMA full tensors again (collective under FSDP)."""
        if ema is not None and self.strategy == "fsdp":
            for name, value in list(ema.shadow.items()):
                ema.shadow[name] = _full(value)


@contextlib.contextmanager
def _fsdp_no_sync(module: nn.Module) -> Iterator[None]:
    module.set_requires_gradient_sync(False)  # type: ignore[operator]
    try:
        yield
    finally:
        module.set_requires_gradient_sync(True)  # type: ignore[operator]


def wrap(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: EMA | None,
    *,
    strategy: Strategy,
    device: torch.device,
    select: BlockSelector | None = None,
    find_unused_parameters: bool = False,
) -> Parallel:
    """Wrap `model` for the current process group (unchanged on a single process).

    Rank 0's parameters, buffers and EMA shadow are broadcast first, so every rank starts
    from the same state whatever its own initialisation. Under FSDP the `optimizer`'s
    parameter groups and state and the EMA shadow are moved onto the sharded parameters.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"`parallel` must be one of {STRATEGIES}, got {strategy!r}.")
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return Parallel(module=model, model=model)
    _broadcast_from_rank0(model, ema)
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters,
        )
        return Parallel(module=ddp, model=model, strategy="ddp")
    return _shard_fsdp(model, optimizer, ema, select)


def is_sharded(model: nn.Module) -> bool:
    """Whether `model` was already sharded by ``fully_shard`` (e.g. by an earlier `fit`)."""
    if not (dist.is_available() and dist.is_initialized()):
        return False
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


@torch.no_grad()
def _broadcast_from_rank0(model: nn.Module, ema: EMA | None) -> None:
    from torch.distributed.tensor import DTensor

    tensors = [*model.parameters(), *model.buffers()]
    if ema is not None:
        tensors += list(ema.shadow.values())
    for t in tensors:
        if not isinstance(t, DTensor):  # shards of an already sharded model stay as they are
            dist.broadcast(t.detach(), src=0)


def _shard_fsdp(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: EMA | None,
    select: BlockSelector | None,
) -> Parallel:
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor, distribute_tensor

    before = {id(p): (name, tuple(p.shape)) for name, p in model.named_parameters()}
    for group in optimizer.param_groups:
        for p in group["params"]:
            if id(p) not in before:
                raise ValueError(
                    "`optimizer` holds a parameter that is not in `model`; with parallel='fsdp' "
                    "build the optimizer on model.parameters()."
                )
    if not is_sharded(model):  # a second `fit` call gets the model already sharded
        for block in reversed(find_blocks(model, select)):  # children before their parents
            fully_shard(block)
        fully_shard(model)
    after = dict(model.named_parameters())

    def shard_like(value: Any, param: Tensor, shape: tuple[int, ...]) -> Any:
        if (
            isinstance(param, DTensor)
            and isinstance(value, Tensor)
            and not isinstance(value, DTensor)
            and value.shape == shape
        ):
            return distribute_tensor(value.to(param.device), param.device_mesh, param.placements)
        return value

    new_state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
    for group in optimizer.param_groups:
        params = []
        for p in group["params"]:
            name, shape = before[id(p)]
            new = after[name]
            params.append(new)
            if p in optimizer.state:
                new_state[new] = {
                    k: shard_like(v, new, shape) for k, v in optimizer.state[p].items()
                }
        group["params"] = params
    optimizer.state = new_state
    if ema is not None:
        shapes = {name: shape for name, shape in before.values()}
        for name, value in list(ema.shadow.items()):
            ema.shadow[name] = shard_like(value, after[name], shapes[name])
    return Parallel(module=model, model=model, strategy="fsdp")
