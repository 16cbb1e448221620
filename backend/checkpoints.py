"""Model folders on disk: `config.json` + `model.safetensors`, written atomically, checked on load.

The JSON records the architecture, the SHA-256 of the weights file and free-form metadata; a weights
file that is truncated, corrupt or from another config is refused with a message naming the file.
Nothing here unpickles anything.

Save protocol (`save_model`); every file write is a temporary file, fsync, then an atomic rename:
  0. finish an interrupted save: if `.config.json.pending` vouches (by SHA-256) for the weights on disk,
     rename it to `config.json`; otherwise it is stale (its weights never landed) and is deleted;
  1. write the new config as `.config.json.pending`;
  2. write the new weights as `model.safetensors`;
  3. rename `.config.json.pending` to `config.json`, then fsync the folder.
Invariant: the weights on disk are vouched for by `config.json` or by the pending config, and step 1
never overwrites a pending config that vouches for them (step 0 has consumed it). So a crash at any
point, in any number of saves in a row, leaves a folder that loads: the previous model, or the new one.
`load_model` accepts the pending config when it, and not `config.json`, vouches for the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .errors import AtlasError, CheckpointError, ConfigError, cannot_write
from .filemode import new_file_mode
from .limits import MAX_JSON_FILE_BYTES, PRIOR_KINDS
from .model import MAX_PARAMETERS, AtlasVAE, ModelConfig, expected_shapes
from .prior import LABEL_PREFIX, GaussianMixturePrior
from .regular import read_regular
from .sizes import read_sizes

FORMAT = "atlasvae-model"
FORMAT_VERSION = 2  # written when a prior is diagonal (std (K, D)) so that older backends refuse it clearly; else 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
PENDING_CONFIG = ".config.json.pending"  # the next config.json, written before the weights it vouches for
# The largest network's float32 weights plus room for its priors (at most 4096 components per mixture).
MAX_WEIGHTS_FILE_BYTES = 4 * MAX_PARAMETERS + (1 << 30)
DEFAULT_PRIORS = tuple(sorted(set(PRIOR_KINDS) - {"auto"}))  # what a model's meta may name


@dataclass
class LoadedModel:
    """A model ready for inference plus what its folder says about it."""

    model: AtlasVAE
    config: ModelConfig
    prior: GaussianMixturePrior | None
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)
    label_priors: dict[str, GaussianMixturePrior] = field(default_factory=dict)
    weights_sha256: str = ""  # of the weights file: stamps what is derived from them (backend/directions.py)

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.path.name)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one, never half.

    A failure to write (disk full, no permission, read-only) is an OutputError naming the path.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    try:
        os.chmod(tmp, new_file_mode(path))
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise cannot_write(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomically write `obj` as pretty JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def tensors_to_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    """Serialise tensors in safetensors format (contiguous CPU copies)."""
    return st_save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})


def bytes_to_tensors(data: bytes, source: Path) -> dict[str, torch.Tensor]:
    """Parse safetensors bytes, turning any parse failure into a CheckpointError naming `source`."""
    try:
        return st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{source}: not a valid safetensors file ({exc})") from None


def save_model(folder: str | Path, model: AtlasVAE, prior: GaussianMixturePrior | None = None,
               meta: dict[str, Any] | None = None,
               label_priors: dict[str, GaussianMixturePrior] | None = None) -> Path:
    """Write a model folder by the save protocol in the module docstring (survives any sequence of crashes)."""
    folder = Path(folder)
    tensors = dict(model.state_dict())
    if prior is not None:
        tensors.update(prior.to_tensors())
    for label, label_prior in (label_priors or {}).items():
        tensors.update(label_prior.to_tensors(f"{LABEL_PREFIX}{label}."))
    data = tensors_to_bytes(tensors)
    diagonal = any(p.diagonal for p in [prior, *(label_priors or {}).values()] if p is not None)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION if diagonal else 1, "model": model.cfg.to_dict(),
              "weights_sha256": hashlib.sha256(data).hexdigest(), "has_prior": prior is not None,
              "labels": sorted(label_priors or {}),
              "meta": meta or {}}
    finish_interrupted_save(folder)
    atomic_write_json(folder / PENDING_CONFIG, config)
    atomic_write_bytes(folder / WEIGHTS_FILE, data)
    os.replace(folder / PENDING_CONFIG, folder / CONFIG_FILE)
    _fsync_folder(folder)
    return folder


def finish_interrupted_save(folder: Path) -> None:
    """Step 0 of the save protocol: make `config.json` vouch for the weights on disk again."""
    pending = folder / PENDING_CONFIG
    if not pending.exists():
        return
    try:
        digest = hashlib.sha256(read_regular(folder / WEIGHTS_FILE, MAX_WEIGHTS_FILE_BYTES)).hexdigest()
    except AtlasError:
        digest = ""
    if _pending_config(folder, digest) is not None:
        os.replace(pending, folder / CONFIG_FILE)
    else:
        pending.unlink(missing_ok=True)
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    """Make the renames in `folder` durable (POSIX); a no-op where folders cannot be opened."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path, error: type[AtlasError] = CheckpointError) -> Any:
    """Parse a JSON file of a model or run folder, read as a regular file of bounded size; `error` otherwise."""
    data = read_regular(path, MAX_JSON_FILE_BYTES, error)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: unreadable JSON ({exc})") from None


def read_model_config(folder: str | Path) -> dict[str, Any]:
    """Read and check a model folder's config.json (check_config)."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: model folder does not exist")
    if not os.path.lexists(path):
        raise CheckpointError(f"{folder}: not a model folder (no {CONFIG_FILE})")
    config = read_json(path)
    check_config(config, path)
    checked: dict[str, Any] = config
    return checked


def check_config(config: Any, path: Path) -> None:
    """The whole schema of a model config in one place: every field the backend reads, by type and value.

    The weights' checksum does not cover the config, so anything in it may have been edited by hand.
    """
    def refuse(problem: str) -> CheckpointError:
        return CheckpointError(f"{path}: {problem}")

    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise refuse("not an AtlasVAE model config (format field missing or wrong)")
    version = config.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise refuse(f"'format_version' must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise refuse(f"written by a newer AtlasVAE (format version {version} > {FORMAT_VERSION}); update the backend")
    for key in ("model", "meta"):
        if not isinstance(config.get(key, {}), dict):
            raise refuse(f"'{key}' must be a JSON object, got {config[key]!r}")
    if not isinstance(config.get("weights_sha256", ""), str):
        raise refuse(f"'weights_sha256' must be a string, got {config['weights_sha256']!r}")
    if not isinstance(config.get("has_prior", False), bool):
        raise refuse(f"'has_prior' must be true or false, got {config['has_prior']!r}")
    labels = config.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise refuse(f"'labels' must be a list of strings, got {labels!r}")
    meta = config.get("meta", {})
    if meta.get("name") is not None and not isinstance(meta["name"], str):
        raise refuse(f"meta 'name' must be a string, got {meta['name']!r}")
    if "default_prior" in meta and meta["default_prior"] not in DEFAULT_PRIORS:
        raise refuse(f"meta 'default_prior' must be one of {', '.join(DEFAULT_PRIORS)}, got {meta['default_prior']!r}")
    for key in ("metrics", "train_config"):
        if not isinstance(meta.get(key, {}), dict):
            raise refuse(f"meta '{key}' must be a JSON object, got {meta[key]!r}")
    read_sizes(meta, str(path))


def load_model(folder: str | Path, device: torch.device | str = "cpu") -> LoadedModel:
    """Load a model folder for inference (eval mode) on `device`."""
    folder = Path(folder)
    config = read_model_config(folder)
    weights = folder / WEIGHTS_FILE
    data = read_regular(weights, MAX_WEIGHTS_FILE_BYTES, CheckpointError)
    digest = hashlib.sha256(data).hexdigest()
    if digest != config.get("weights_sha256"):
        pending = _pending_config(folder, digest)
        if pending is not None:
            check_config(pending, folder / PENDING_CONFIG)
            config = pending
    if digest != config.get("weights_sha256"):
        raise CheckpointError(f"{weights}: weights file is truncated, corrupt or from another model "
                              f"(its checksum does not match {CONFIG_FILE})")
    try:
        cfg = ModelConfig.from_dict(config.get("model", {}))
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{folder / CONFIG_FILE}: invalid model config ({exc})") from None
    check_shapes(expected_shapes(cfg), {k: v for k, v in header_shapes(data, weights).items()
                                        if not k.startswith(("prior.", LABEL_PREFIX))}, weights)
    tensors = bytes_to_tensors(data, weights)
    prior = GaussianMixturePrior.from_tensors(tensors, str(weights)) if config.get("has_prior") else None
    labels = config.get("labels", [])
    label_priors = {label: GaussianMixturePrior.from_tensors(tensors, str(weights), f"{LABEL_PREFIX}{label}.")
                    for label in labels}
    for p in [prior, *label_priors.values()]:
        if p is not None and p.means.shape[1] != cfg.latent_dim:
            raise CheckpointError(f"{weights}: a prior has {p.means.shape[1]} latent dimensions but the model "
                                  f"config has {cfg.latent_dim}")
    model = AtlasVAE(cfg)
    load_state(model, {k: v for k, v in tensors.items()
                       if not k.startswith(("prior.", LABEL_PREFIX))}, weights)
    model.to(device).eval()
    return LoadedModel(model=model, config=cfg, prior=prior, path=folder, meta=config.get("meta", {}),
                       label_priors=label_priors, weights_sha256=digest)


def _pending_config(folder: Path, digest: str) -> dict[str, Any] | None:
    """The pending config of a save cut short after its weights were written, if it vouches for `digest`."""
    path = folder / PENDING_CONFIG
    if not os.path.lexists(path):
        return None
    try:
        pending = read_json(path)
    except AtlasError:
        return None
    if isinstance(pending, dict) and pending.get("format") == FORMAT and pending.get("weights_sha256") == digest:
        return pending
    return None


def header_shapes(data: bytes, source: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes listed in a safetensors file's JSON header, read without building any tensor."""
    try:
        (length,) = struct.unpack_from("<Q", data, 0)
        if length > len(data) - 8:
            raise ValueError(f"header length {length} exceeds the file's {len(data)} bytes")
        header = json.loads(data[8:8 + length])
        return {name: tuple(int(n) for n in entry["shape"]) for name, entry in header.items()
                if name != "__metadata__"}
    except (struct.error, ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{source}: not a valid safetensors file (bad header: {exc})") from None


def load_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Copy tensors into `model`, naming missing, unexpected and mis-shaped keys on mismatch."""
    check_shapes({k: tuple(v.shape) for k, v in model.state_dict().items()},
                 {k: tuple(v.shape) for k, v in tensors.items()}, source)
    model.load_state_dict(tensors, strict=True)


def check_shapes(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], source: Path) -> None:
    """Refuse weights whose tensor names or shapes differ from what the model config needs, naming them."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [f"{k} {found[k]} != {v}" for k, v in expected.items() if k in found and found[k] != v]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append(f"shape mismatch {'; '.join(shapes[:5])}")
        raise CheckpointError(f"{source}: weights do not fit the model config ({'; '.join(parts)})")


def is_model_folder(path: str | Path) -> bool:
    """True when `path` looks like a model folder (has both files); cheap, does not validate."""
    p = Path(path)
    return (p / CONFIG_FILE).is_file() and (p / WEIGHTS_FILE).is_file()
