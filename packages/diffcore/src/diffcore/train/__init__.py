"""Training utilities: EMA, safetensors checkpoints and a small resumable training loop."""

from .checkpoint import (
    Checkpoint,
    CheckpointError,
    atomic_write_bytes,
    capture_rng,
    from_pretrained,
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    save_pretrained,
)
from .ema import EMA
from .loop import FitResult, WarmupCosine, fit
from .parallel import find_blocks, gradient_checkpointing

__all__ = [
    "EMA",
    "Checkpoint",
    "CheckpointError",
    "FitResult",
    "WarmupCosine",
    "atomic_write_bytes",
    "capture_rng",
    "find_blocks",
    "fit",
    "from_pretrained",
    "gradient_checkpointing",
    "latest_checkpoint",
    "load_checkpoint",
    "restore_rng",
    "save_checkpoint",
    "save_pretrained",
]
