"""Checkpoints as safetensors plus JSON, written atomically and verified on load.

A training checkpoint is a directory::

    step-00001000/
      checkpoint.json        manifest: format, step, config, loop state, optimizer structure,
                             EMA settings, and the size and SHA-256 of every file below
      model.safetensors      model.state_dict()
      ema.safetensors        EMA shadow parameters          (when an EMA is given)
      optimizer.safetensors  optimizer state tensors        (when an optimizer is given)
      rng.safetensors        torch CPU (and CUDA) RNG states and named generator states

Nothing is ever unpickled: tensors go through safetensors, everything else through JSON
(optimizer ``state_dict`` is split into its tensors and a JSON skeleton that points at them).
Each file is written to a temporary name, fsynced and moved into place with ``os.replace``; a
checkpoint directory is assembled under a temporary name and renamed as a whole, so a crash
leaves either the old checkpoint or the new one, never a partial one. On load, every file's
size and hash are checked first, so a missing, truncated or corrupted file raises
`CheckpointError` naming it instead of failing inside torch.

`save_pretrained` / `from_pretrained` store a model alone (``config.json`` +
``model.safetensors``) in a local folder.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import shutil
import tempfile
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import safetensors
import safetensors.torch
import torch
from torch import Tensor, nn

from .ema import EMA

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "atomic_write_bytes",
    "capture_rng",
    "from_pretrained",
    "latest_checkpoint",
    "load_checkpoint",
    "restore_rng",
    "save_checkpoint",
    "save_pretrained",
]

FORMAT = "diffcore.checkpoint"
PRETRAINED_FORMAT = "diffcore.pretrained"
FORMAT_VERSION = 1
MANIFEST = "checkpoint.json"
MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
CONFIG_FILE = "config.json"
LATEST = "latest"
_HASH_CHUNK = 1 << 20  # bytes read at a time when hashing
_TENSOR = "__tensor__"  # JSON skeleton markers
_TUPLE = "__tuple__"
_ITEMS = "__items__"
_CPU_RNG = "torch.cpu"
_CUDA_RNG = "torch.cuda."
_GEN_RNG = "generator."

M = TypeVar("M", bound=nn.Module)


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupted or does not fit what loads it."""


@dataclass(frozen=True)
class Checkpoint:
    """What `load_checkpoint` read besides the states it loaded in place.

    Attributes:
        path: the checkpoint directory.
        step: the training step it was saved at.
        config: the JSON config saved with it (None if none).
        state: the JSON loop state saved with it (None if none).
    """

    path: Path
    step: int
    config: Any
    state: Any


# ---------------------------------------------------------------------------- atomic files


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry (renames) to disk where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` via a temporary file, fsync and ``os.replace``.

    Readers see the old file or the new one, never a partial one; on any error the temporary
    file is removed and `path` is untouched.

    Args:
        path: destination file; its folder must exist.
        data: the contents.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=False) + "\n").encode())


def _atomic_save_tensors(path: Path, tensors: Mapping[str, Tensor]) -> dict[str, Any]:
    """Write tensors as safetensors atomically; return the file's size and SHA-256."""
    prepared = _prepare_tensors(tensors, path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        safetensors.torch.save_file(prepared, tmp, metadata={"format": "pt"})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        info = _file_info(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return info


def _prepare_tensors(tensors: Mapping[str, Tensor], path: Path) -> dict[str, Tensor]:
    """Detached, contiguous CPU tensors; a storage shared by several keys is cloned."""
    out: dict[str, Tensor] = {}
    seen: set[int] = set()
    for key, value in tensors.items():
        if not isinstance(value, Tensor):
            raise CheckpointError(
                f"{path.name}: value for {key!r} is a {type(value).__name__}, not a tensor."
            )
        t = value.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr() if t.numel() else None
        if ptr is not None and ptr in seen:
            t = t.clone()
        elif ptr is not None:
            seen.add(ptr)
        out[key] = t
    return out


def _file_info(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}


def _load_tensors(path: Path, info: Mapping[str, Any] | None) -> dict[str, Tensor]:
    """Load a safetensors file, checking existence, size and hash first."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} is missing.")
    if info is not None:
        actual = _file_info(path)
        if actual["bytes"] != info.get("bytes"):
            raise CheckpointError(
                f"checkpoint file {str(path)!r} is truncated or overwritten: "
                f"{actual['bytes']} bytes, the manifest says {info.get('bytes')}."
            )
        if actual["sha256"] != info.get("sha256"):
            raise CheckpointError(
                f"checkpoint file {str(path)!r} is corrupted: its SHA-256 does not match "
                "the manifest."
            )
    try:
        return safetensors.torch.load_file(path)
    except (safetensors.SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"checkpoint file {str(path)!r} is not a readable safetensors file ({err})."
        ) from err


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} is missing.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(
            f"checkpoint file {str(path)!r} is not valid JSON (truncated or corrupted?): {err}"
        ) from err


# ------------------------------------------------------------- nested state <-> JSON + tensors


def _encode(obj: Any, key: str, tensors: dict[str, Tensor], file: str) -> Any:
    """JSON skeleton of `obj`; its tensors go into `tensors` under dotted keys."""
    if isinstance(obj, Tensor):
        if key in tensors:
            raise CheckpointError(f"{file}: two tensors map to the key {key!r}.")
        tensors[key] = obj
        return {_TENSOR: key}
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, tuple):
        return {_TUPLE: [_encode(v, f"{key}.{i}", tensors, file) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{key}.{i}", tensors, file) for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, f"{key}.{k}", tensors, file) for k, v in obj.items()}
        items = []
        for k, v in obj.items():
            if not (k is None or isinstance(k, bool | int | float | str)):
                raise CheckpointError(
                    f"{file}: cannot store a mapping key of type {type(k).__name__} at {key!r}."
                )
            items.append([k, _encode(v, f"{key}.{k}", tensors, file)])
        return {_ITEMS: items}
    raise CheckpointError(
        f"{file}: cannot store a value of type {type(obj).__name__} at {key!r} "
        "(only tensors, numbers, strings, None, lists, tuples and dicts)."
    )


def _decode(obj: Any, tensors: Mapping[str, Tensor], file: str) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors, file) for v in obj]
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            key = obj[_TENSOR]
            if key not in tensors:
                raise CheckpointError(f"{file}: the manifest refers to a missing tensor {key!r}.")
            return tensors[key]
        if set(obj) == {_TUPLE}:
            return tuple(_decode(v, tensors, file) for v in obj[_TUPLE])
        if set(obj) == {_ITEMS}:
            return {k: _decode(v, tensors, file) for k, v in obj[_ITEMS]}
        return {k: _decode(v, tensors, file) for k, v in obj.items()}
    return obj


def _to_json(config: Any) -> Any:
    """A config (dataclass, mapping or JSON value) as JSON data."""
    if config is None:
        return None
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    try:
        return json.loads(json.dumps(config))
    except (TypeError, ValueError) as err:
        raise TypeError(f"`config` must be JSON-serialisable: {err}") from err


# ------------------------------------------------------------------------- state loading


def _check_model_tensors(model: nn.Module, tensors: Mapping[str, Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint file {str(path)!r} does not fit the model: missing keys {missing}, "
            f"unexpected keys {unexpected}."
        )
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"checkpoint file {str(path)!r}: {key!r} has shape {tuple(value.shape)}, the "
                f"model expects {tuple(expected[key].shape)}."
            )


def _load_into_model(model: nn.Module, tensors: Mapping[str, Tensor], path: Path) -> None:
    _check_model_tensors(model, tensors, path)
    model.load_state_dict(dict(tensors), strict=True)


def capture_rng(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Tensor]:
    """RNG states: torch's CPU generator, CUDA generators if CUDA is in use, and `generators`.

    Args:
        generators: named generators owned by the caller (data order, noise, ...).

    Returns:
        name -> uint8 state tensor.
    """
    states = {_CPU_RNG: torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            states[f"{_CUDA_RNG}{i}"] = state
    for name, gen in (generators or {}).items():
        states[f"{_GEN_RNG}{name}"] = gen.get_state()
    return states


def restore_rng(
    states: Mapping[str, Tensor],
    generators: Mapping[str, torch.Generator] | None = None,
    *,
    restore_global: bool = True,
    file: str = RNG_FILE,
) -> None:
    """Set the named generators (and, if asked, torch's global RNGs) from `capture_rng` output.

    Args:
        states: what `capture_rng` returned.
        generators: generators to set in place, by the names they were saved under.
        restore_global: also set torch's CPU RNG and the CUDA RNGs that were saved.
        file: file name for error messages.
    """
    for name, gen in (generators or {}).items():
        key = f"{_GEN_RNG}{name}"
        if key not in states:
            raise CheckpointError(f"{file}: no state saved for generator {name!r}.")
        try:
            gen.set_state(states[key])
        except (RuntimeError, TypeError, ValueError) as err:
            raise CheckpointError(
                f"{file}: the state saved for generator {name!r} does not fit a "
                f"{gen.device} generator ({err})."
            ) from err
    if not restore_global:
        return
    if _CPU_RNG not in states:
        raise CheckpointError(f"{file}: no torch CPU RNG state saved.")
    try:
        torch.set_rng_state(states[_CPU_RNG])
    except (RuntimeError, TypeError, ValueError) as err:
        raise CheckpointError(f"{file}: invalid torch CPU RNG state ({err}).") from err
    cuda = sorted(
        (int(k[len(_CUDA_RNG) :]), v) for k, v in states.items() if k.startswith(_CUDA_RNG)
    )
    if cuda and torch.cuda.is_available():
        if len(cuda) != torch.cuda.device_count():
            raise CheckpointError(
                f"{file}: saved CUDA RNG states for {len(cuda)} devices, this machine has "
                f"{torch.cuda.device_count()}."
            )
        torch.cuda.set_rng_state_all([state for _, state in cuda])


# ------------------------------------------------------------------------ checkpoints


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module | Mapping[str, Tensor],
    step: int,
    optimizer: torch.optim.Optimizer | Mapping[str, Any] | None = None,
    ema: EMA | Mapping[str, Any] | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
    config: Any = None,
    state: Any = None,
) -> Path:
    """Write a training checkpoint directory atomically (see the module docstring).

    Args:
        path: the checkpoint directory to create (replaced if it exists).
        model: saved with ``state_dict()``; or the state dict itself (e.g. full tensors
            gathered from FSDP shards).
        step: the training step.
        optimizer: its state, split into safetensors tensors and a JSON skeleton; or its
            ``state_dict()``.
        ema: its shadow tensors and settings; or its ``state_dict()``.
        generators: named generators whose states are saved along with torch's global RNGs.
        config: JSON-serialisable config (a dataclass is converted with ``asdict``).
        state: JSON-serialisable loop state (epoch, cursor, ...).

    Returns:
        The checkpoint directory.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        files: dict[str, Any] = {}
        model_state = model.state_dict() if isinstance(model, nn.Module) else model
        files[MODEL_FILE] = _atomic_save_tensors(tmp / MODEL_FILE, model_state)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "step": int(step),
            "torch": torch.__version__,
            "config": _to_json(config),
            "state": _to_json(state),
        }
        if optimizer is not None:
            tensors: dict[str, Tensor] = {}
            opt_state = optimizer if isinstance(optimizer, Mapping) else optimizer.state_dict()
            manifest["optimizer"] = _encode(opt_state, "opt", tensors, OPTIMIZER_FILE)
            files[OPTIMIZER_FILE] = _atomic_save_tensors(tmp / OPTIMIZER_FILE, tensors)
        if ema is not None:
            ema_state = dict(ema) if isinstance(ema, Mapping) else ema.state_dict()
            shadow = ema_state.pop("shadow")
            manifest["ema"] = ema_state
            files[EMA_FILE] = _atomic_save_tensors(tmp / EMA_FILE, shadow)
        files[RNG_FILE] = _atomic_save_tensors(tmp / RNG_FILE, capture_rng(generators))
        manifest["generators"] = sorted(generators or {})
        manifest["files"] = files
        _atomic_write_json(tmp / MANIFEST, manifest)
        _replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _replace_dir(src: Path, dst: Path) -> None:
    """Move directory `src` to `dst`, replacing an existing `dst`."""
    old = None
    if dst.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".old", dir=dst.parent))
        os.replace(dst, old / dst.name)
    os.replace(src, dst)
    _fsync_dir(dst.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    ema: EMA | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
    restore_global_rng: bool = False,
) -> Checkpoint:
    """Load a checkpoint written by `save_checkpoint` into the given objects, in place.

    All files are read and verified (size, SHA-256, keys, shapes) before anything is
    modified, so a bad checkpoint leaves the objects as they were.

    Args:
        path: the checkpoint directory.
        model: receives the model state.
        optimizer: receives the optimizer state (the checkpoint must have one).
        ema: receives the EMA state (the checkpoint must have one).
        generators: named generators to restore (saved under the same names).
        restore_global_rng: also restore torch's global CPU and CUDA RNG states.

    Returns:
        The step, config and loop state saved with it.

    Raises:
        CheckpointError: a file is missing, truncated, corrupted or does not fit.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint directory {str(path)!r} does not exist.")
    manifest = _read_json(path / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{str(path / MANIFEST)!r} is not a {FORMAT} manifest.")
    if manifest.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{str(path / MANIFEST)!r} has format version {manifest.get('version')}, this "
            f"diffcore reads version {FORMAT_VERSION}."
        )
    files = manifest.get("files", {})

    def load(name: str) -> dict[str, Tensor]:
        if name not in files:
            raise CheckpointError(f"checkpoint {str(path)!r} has no {name} (saved without it?).")
        return _load_tensors(path / name, files[name])

    model_tensors = load(MODEL_FILE)
    _check_model_tensors(model, model_tensors, path / MODEL_FILE)
    rng_states = load(RNG_FILE)
    opt_state = None
    if optimizer is not None:
        opt_tensors = load(OPTIMIZER_FILE)
        opt_state = _decode(manifest.get("optimizer"), opt_tensors, OPTIMIZER_FILE)
        _check_optimizer_state(optimizer, opt_state, path / OPTIMIZER_FILE)
    ema_state = None
    if ema is not None:
        if "ema" not in manifest:
            raise CheckpointError(f"checkpoint {str(path)!r} has no EMA state.")
        ema_state = {**manifest["ema"], "shadow": load(EMA_FILE)}
        _check_ema_state(ema, ema_state, path / EMA_FILE)

    # Everything verified: now modify the objects.
    _load_into_model(model, model_tensors, path / MODEL_FILE)
    if optimizer is not None:
        try:
            optimizer.load_state_dict(opt_state)  # type: ignore[arg-type]
        except (KeyError, ValueError, RuntimeError, TypeError) as err:
            raise CheckpointError(
                f"checkpoint file {str(path / OPTIMIZER_FILE)!r} does not fit the optimizer "
                f"({err})."
            ) from err
    if ema is not None and ema_state is not None:
        try:
            ema.load_state_dict(ema_state)
        except (KeyError, ValueError) as err:
            raise CheckpointError(f"checkpoint file {str(path / EMA_FILE)!r}: {err}") from err
    restore_rng(
        rng_states, generators, restore_global=restore_global_rng, file=str(path / RNG_FILE)
    )
    return Checkpoint(
        path=path,
        step=int(manifest.get("step", 0)),
        config=manifest.get("config"),
        state=manifest.get("state"),
    )


def _check_ema_state(ema: EMA, state: Mapping[str, Any], path: Path) -> None:
    shadow = state["shadow"]
    missing = sorted(set(ema.shadow) - set(shadow))
    unexpected = sorted(set(shadow) - set(ema.shadow))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint file {str(path)!r} does not fit the EMA: missing keys {missing}, "
            f"unexpected keys {unexpected}."
        )
    for key, value in shadow.items():
        if tuple(value.shape) != tuple(ema.shadow[key].shape):
            raise CheckpointError(
                f"checkpoint file {str(path)!r}: {key!r} has shape {tuple(value.shape)}, the "
                f"EMA expects {tuple(ema.shadow[key].shape)}."
            )
    if not isinstance(state.get("num_updates"), int):
        raise CheckpointError(f"checkpoint file {str(path)!r}: no EMA update count saved.")


def _check_optimizer_state(optimizer: torch.optim.Optimizer, state: Any, path: Path) -> None:
    if not isinstance(state, dict) or "param_groups" not in state or "state" not in state:
        raise CheckpointError(f"checkpoint file {str(path)!r}: no optimizer state saved.")
    saved = [len(g.get("params", [])) for g in state["param_groups"]]
    current = [len(g["params"]) for g in optimizer.param_groups]
    if saved != current:
        raise CheckpointError(
            f"checkpoint file {str(path)!r} does not fit the optimizer: parameter groups of "
            f"sizes {saved} were saved, the optimizer has {current}."
        )


def latest_checkpoint(root: str | os.PathLike[str]) -> Path | None:
    """The newest checkpoint under `root`: the one named in ``root/latest``, else the highest step.

    Args:
        root: a folder of checkpoint directories (as `diffcore.train.fit` writes them).

    Returns:
        The directory, or None when there is none.
    """
    root = Path(root)
    pointer = root / LATEST
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8").strip()
        target = root / name
        if not name or not (target / MANIFEST).is_file():
            raise CheckpointError(
                f"{str(pointer)!r} names {name!r}, which is not a checkpoint directory under "
                f"{str(root)!r}."
            )
        return target
    candidates = [p for p in root.glob("step-*") if (p / MANIFEST).is_file()]
    if not candidates:
        return None
    return max(candidates, key=lambda p: _step_of(p.name))


def _step_of(name: str) -> int:
    try:
        return int(name.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1


# --------------------------------------------------------------------------- pretrained


def save_pretrained(model: nn.Module, path: str | os.PathLike[str], config: Any = None) -> Path:
    """Save a model to a local folder as ``model.safetensors`` + ``config.json``.

    Args:
        model: the model; its class should take the config as its only positional argument
            (``cls(config)``), as the `diffcore.nets` networks do.
        path: the folder (created if needed; existing files are replaced atomically).
        config: a config dataclass or a JSON mapping of keyword arguments; defaults to
            ``model.config``.

    Returns:
        The folder.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if config is None:
        config = getattr(model, "config", None)
        if config is None:
            raise ValueError(
                "`config` is required when the model has no `config` attribute; pass the "
                "dataclass or the keyword arguments it was built from."
            )
    is_dataclass = dataclasses.is_dataclass(config) and not isinstance(config, type)
    if not is_dataclass and not isinstance(config, Mapping):
        raise TypeError(
            f"`config` must be a dataclass instance or a mapping, got {type(config).__name__}."
        )
    info = _atomic_save_tensors(path / MODEL_FILE, model.state_dict())
    manifest = {
        "format": PRETRAINED_FORMAT,
        "version": FORMAT_VERSION,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "config_kind": "dataclass" if is_dataclass else "kwargs",
        "config_class": f"{type(config).__module__}.{type(config).__qualname__}"
        if is_dataclass
        else None,
        "config": _to_json(config),
        "files": {MODEL_FILE: info},
    }
    _atomic_write_json(path / CONFIG_FILE, manifest)
    return path


def from_pretrained(
    cls: type[M],
    path: str | os.PathLike[str],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> M:
    """Build ``cls`` from a folder written by `save_pretrained` (no code is unpickled).

    The model is built on the meta device (no random init), its tensors are assigned from
    the verified safetensors file, and it is returned in eval mode.

    Args:
        cls: the model class; with a ``config_class`` attribute when a dataclass config was
            saved.
        path: the folder.
        device: where to put the model (default CPU).
        dtype: cast floating-point tensors to this dtype (default: as saved).

    Returns:
        The model.

    Raises:
        CheckpointError: a file is missing, truncated or corrupted, or does not fit ``cls``.
    """
    path = Path(path)
    config_path = path / CONFIG_FILE
    manifest = _read_json(config_path)
    if not isinstance(manifest, dict) or manifest.get("format") != PRETRAINED_FORMAT:
        raise CheckpointError(f"{str(config_path)!r} is not a {PRETRAINED_FORMAT} config.")
    saved_class = manifest.get("class", "")
    if saved_class.rsplit(".", 1)[-1] != cls.__qualname__.rsplit(".", 1)[-1]:
        raise CheckpointError(
            f"{str(config_path)!r} was saved from {saved_class!r}, not {cls.__qualname__!r}."
        )
    raw = manifest.get("config")
    if not isinstance(raw, dict):
        raise CheckpointError(f"{str(config_path)!r} has no config mapping.")
    tensors = _load_tensors(path / MODEL_FILE, manifest.get("files", {}).get(MODEL_FILE))

    def build() -> M:
        if manifest.get("config_kind") == "dataclass":
            config_cls = getattr(cls, "config_class", None)
            if config_cls is None:
                raise CheckpointError(
                    f"{str(config_path)!r} holds a dataclass config but {cls.__qualname__} has "
                    "no `config_class` attribute to rebuild it."
                )
            return cls(_config_from_json(config_cls, raw, config_path))
        return cls(**raw)

    try:
        with torch.device("meta"):
            model = build()
    except (TypeError, ValueError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(
            f"{str(config_path)!r}: cannot build {cls.__qualname__} from the saved config ({err})."
        ) from err
    _check_model_tensors(model, tensors, path / MODEL_FILE)
    model.load_state_dict(tensors, strict=True, assign=True)
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:  # non-persistent buffers: build for real and copy the weights in
        model = build()
        model.load_state_dict(tensors, strict=True)
    model = model.to(device=device or "cpu")
    if dtype is not None:
        model = model.to(dtype=dtype)
    return model.eval()


def _config_from_json(config_cls: type, raw: Mapping[str, Any], path: Path) -> Any:
    """Rebuild a config dataclass from JSON, turning lists back into tuples where typed so."""
    if not dataclasses.is_dataclass(config_cls):
        raise CheckpointError(f"{config_cls!r} is not a dataclass.")
    names = {f.name for f in dataclasses.fields(config_cls)}
    for key in raw:
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise CheckpointError(
                f"{str(path)!r}: config field {key!r} is unknown to {config_cls.__name__}{hint}."
            )
    try:
        hints = typing.get_type_hints(config_cls)
    except (NameError, TypeError):
        hints = {}
    kwargs = {k: _tupleize(v, hints.get(k)) for k, v in raw.items()}
    return config_cls(**kwargs)


def _mentions_tuple(hint: Any) -> bool:
    if hint is None:
        return False
    origin = typing.get_origin(hint)
    if origin is tuple or hint is tuple:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_mentions_tuple(a) for a in typing.get_args(hint))
    return False


def _tupleize(value: Any, hint: Any) -> Any:
    if isinstance(value, list) and _mentions_tuple(hint):
        return tuple(_tupleize(v, tuple) if isinstance(v, list) else v for v in value)
    return value
