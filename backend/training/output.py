"""A run's output folder: the lock that keeps one run per folder, and the resume state kept beside the model.

Besides the model folder (config.json + model.safetensors) a run keeps train_state.json (the epoch reached,
the run's identity and settings), train_state.safetensors (the optimiser's tensors) and history.json. The
JSON is written last, so it only ever points at files that landed.
"""

from __future__ import annotations

import os
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

import torch

from ..checkpoints import (MAX_WEIGHTS_FILE_BYTES, atomic_write_bytes, atomic_write_json, bytes_to_tensors,
                           load_model, read_json, save_model, tensors_to_bytes)
from ..errors import BusyError, CheckpointError, ConfigError, cannot_write
from ..regular import read_regular
from ..model import AtlasVAE
from .config import TrainConfig

STATE_FILE = "train_state.safetensors"
STATE_JSON = "train_state.json"
HISTORY_FILE = "history.json"
LOCK_FILE = ".atlasvae.lock"


class OutputLock:
    """An exclusive advisory lock on the output folder, released on exit (and by the OS on a crash).

    A folder the lock itself created and that holds nothing else on exit (a run that failed before
    writing anything, e.g. on bad data) is removed again, so no empty leftover confuses the next run.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self._fh: Any = None
        self._created = False

    def __enter__(self) -> "OutputLock":
        self._created = not self.path.parent.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a+")
        except OSError as exc:
            raise cannot_write(self.path.parent, exc) from None
        try:
            if sys.platform == "win32":
                import msvcrt
                msvcrt.locking(self._fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.close()
            raise BusyError(f"{self.path.parent}: another training run is writing to this folder") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()
        folder = self.path.parent
        if self._created and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
            self.path.unlink(missing_ok=True)
            with suppress(OSError):
                folder.rmdir()


def prepare_output(cfg: TrainConfig) -> dict[str, Any] | None:
    """Decide between a fresh start and a resume; returns the saved state JSON when resuming.

    A folder with an unfinished run of the same settings resumes; anything else that exists needs
    --resume (finished or not) or --force (start over).
    """
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    if cfg.force:
        return None
    state_path = out / STATE_JSON
    state: dict[str, Any] | None = None
    if os.path.lexists(state_path):
        try:
            state = read_json(state_path, ConfigError)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (the training state); use --force to start over") from None
        if not isinstance(state, dict):
            raise ConfigError(f"{state_path}: unreadable training state (not a JSON object); "
                              f"use --force to start over")
    if state is not None:
        identity, saved = cfg.run_identity(), state.get("run") or {}
        differ = [k for k in identity if saved.get(k) != identity[k]]
        if differ:
            raise ConfigError(f"--out {out}: holds a run with other settings ({', '.join(differ)}); "
                              f"use the same settings or --force to start over")
        if cfg.resume or not state.get("finished"):
            return state
        raise ConfigError(f"--out {out}: already holds a finished model; pass --resume to train it further "
                          f"or --force to overwrite it")
    visible = [p for p in out.iterdir() if not p.name.startswith(".")] if out.is_dir() else []
    if visible:
        raise ConfigError(f"--out {out}: folder exists and is not empty; choose another folder or pass --force")
    if cfg.resume:
        raise ConfigError(f"--out {out}: nothing to resume there")
    return None


def write_run_marker(out: Path, cfg: TrainConfig, meta: dict[str, Any]) -> None:
    """Mark the folder as holding this unfinished run before anything else is written to it.

    A run that dies at any later step (a full disk, a kill) then leaves a folder that a rerun of the same
    command recognises and resumes, instead of a "folder is not empty" refusal.
    """
    atomic_write_json(out / STATE_JSON, {"epoch": 0, "finished": False, "run": cfg.run_identity(),
                                         "opt_scalars": {}, "config": cfg.to_flat(), "meta": meta})


def save_state(out: Path, model: AtlasVAE, opt: torch.optim.Optimizer, cfg: TrainConfig, epoch: int,
               history: list[dict[str, Any]], meta: dict[str, Any], finished: bool) -> None:
    """Checkpoint: model folder first, then optimiser state, then the JSON that points at both."""
    save_model(out, model, meta={**meta, "epoch": epoch, "finished": finished})
    tensors = {f"opt.{i}.{k}": v for i, st in opt.state_dict()["state"].items() for k, v in st.items()
               if torch.is_tensor(v)}
    scalars = {f"{i}.{k}": v for i, st in opt.state_dict()["state"].items() for k, v in st.items()
               if not torch.is_tensor(v)}
    atomic_write_bytes(out / STATE_FILE, tensors_to_bytes(tensors or {"empty": torch.zeros(0)}))
    atomic_write_json(out / HISTORY_FILE, history)
    atomic_write_json(out / STATE_JSON, {"epoch": epoch, "finished": finished, "run": cfg.run_identity(),
                                         "opt_scalars": scalars, "config": cfg.to_flat(), "meta": meta})


def mark_finished(out: Path, cfg: TrainConfig, epoch: int, meta: dict[str, Any]) -> None:
    """Record in train_state.json that the run finished (after the final model was written)."""
    path = out / STATE_JSON
    state = read_json(path) if path.is_file() else {}
    state.update({"epoch": epoch, "finished": True, "run": cfg.run_identity(), "meta": meta})
    atomic_write_json(path, state)


def restore_state(out: Path, model: AtlasVAE, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load the checkpointed weights into `model` and, when it landed, the optimiser state into `opt`."""
    loaded = load_model(out, next(model.parameters()).device)
    model.load_state_dict(loaded.model.state_dict())
    if not (out / STATE_FILE).is_file():
        return  # the optimiser state never landed: Adam restarts its moments, the weights carry on
    tensors = bytes_to_tensors(read_regular(out / STATE_FILE, MAX_WEIGHTS_FILE_BYTES, CheckpointError), out / STATE_FILE)
    opt_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value
    for key, value in state.get("opt_scalars", {}).items():
        idx, name = key.split(".", 1)
        opt_state.setdefault(int(idx), {})[name] = value
    sd = opt.state_dict()
    sd["state"] = opt_state
    opt.load_state_dict(sd)
