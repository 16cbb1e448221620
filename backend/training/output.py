"""A run's output folder: the lock that keeps one run per folder, and the resume state kept beside the model.

Besides the model folder (config.json + model.safetensors) a run keeps train_state.json (the epoch reached,
the run's identity and settings), train_state.safetensors (the optimiser's tensors) and history.json. The
JSON is written last, so it only ever points at files that landed.
"""

from __future__ import annotations

import os
import re
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

import torch

from ..directions import DIRECTIONS_FILE
from ..checkpoints import (CONFIG_FILE, MAX_WEIGHTS_FILE_BYTES, PENDING_CONFIG, WEIGHTS_FILE, atomic_write_bytes,
                           atomic_write_json, bytes_to_tensors, load_model, read_model_config, read_json, save_model,
                           tensors_to_bytes)
from ..errors import BusyError, CheckpointError, ConfigError, cannot_write
from ..regular import irregular_kind, read_regular
from ..model import AtlasVAE
from .config import TrainConfig

STATE_FILE = "train_state.safetensors"
STATE_JSON = "train_state.json"
HISTORY_FILE = "history.json"
LOSS_CURVE_FILE = "loss_curve.png"
LOCK_FILE = ".atlasvae.lock"
RUN_TEMPORARY_PREFIXES = tuple(f".{name}." for name in (CONFIG_FILE, WEIGHTS_FILE, PENDING_CONFIG, STATE_FILE,
                                                        STATE_JSON, HISTORY_FILE, LOSS_CURVE_FILE,
                                                        DIRECTIONS_FILE))
_SHEET_TEMPORARY = re.compile(r"^\.samples_epoch\d+\.png\..+\.tmp$")


class OutputLock:
    """An exclusive advisory lock on the output folder, released on exit (and by the OS on a crash).

    The lock file is opened without following a link (one planted there never makes us create its target
    outside the folder) and removed again on exit, so a run, refused or not, leaves none behind; a run that
    finds the file removed under it by the holder that just released it locks the new one instead. A folder
    the lock itself created and that holds nothing else on exit (a run that failed before writing anything,
    e.g. on bad data) is removed again, so no empty leftover confuses the next run. Whoever holds the lock
    first sweeps the temporary files that interrupted saves left (sweep_temporaries).
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self._fd = -1
        self._created = False

    def __enter__(self) -> "OutputLock":
        self._created = not self.path.parent.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise cannot_write(self.path.parent, exc) from None
        while True:
            fd = self._open()
            try:
                _lock(fd)
            except OSError:
                os.close(fd)
                self._remove_created_folder()
                raise BusyError(f"{self.path.parent}: another training run is writing to this folder") from None
            try:
                current = os.path.samestat(os.fstat(fd), os.lstat(self.path))
            except OSError:
                current = False
            if current:
                break
            os.close(fd)  # the previous holder removed this file on its way out: lock the one there now
        self._fd = fd
        sweep_temporaries(self.path.parent)
        return self

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(self.path, flags, 0o666)
        except OSError as exc:
            self._remove_created_folder()
            if os.path.islink(self.path):
                raise ConfigError(f"{self.path}: the lock file is a link; a lock file is never followed out "
                                  f"of the folder, remove the link") from None
            raise cannot_write(self.path.parent, exc) from None
        kind = irregular_kind(os.fstat(fd).st_mode)
        if kind is not None:
            os.close(fd)
            raise ConfigError(f"{self.path}: the lock file is not a regular file ({kind}); remove it")
        return fd

    def __exit__(self, *exc: object) -> None:
        with suppress(OSError):
            self.path.unlink()  # still holding the lock: a run waiting on this file re-checks and retries
        os.close(self._fd)
        self._remove_created_folder()

    def _remove_created_folder(self) -> None:
        folder = self.path.parent
        with suppress(OSError):
            if self._created and not any(folder.iterdir()):
                folder.rmdir()


def _lock(fd: int) -> None:
    """Take an exclusive lock on `fd` without waiting; OSError when another process holds it."""
    if sys.platform == "win32":
        import msvcrt
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def sweep_temporaries(folder: Path) -> None:
    """Remove the temporary files (".NAME.XXXX.tmp", see atomic_write_bytes) that saves of our own files
    left when they were interrupted; called under the folder's lock, so no save is under way."""
    for path in folder.iterdir():
        name = path.name
        if name.endswith(".tmp") and (name.startswith(RUN_TEMPORARY_PREFIXES) or _SHEET_TEMPORARY.match(name)):
            with suppress(OSError):
                path.unlink()


def prepare_output(cfg: TrainConfig) -> dict[str, Any] | None:
    """Decide between a fresh start and a resume; returns the saved state JSON when resuming.

    A folder with an unfinished run of the same settings resumes; anything else that exists needs
    --resume (finished or not) or --force (start over).
    """
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    state_path = out / STATE_JSON
    if cfg.force:
        _refuse_foreign(out, state_path)
        return None
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


def _refuse_foreign(out: Path, state_path: Path) -> None:
    """--force overwrites a model or a training run, never a folder of other files (a config.json of the
    user's own): such a folder holds an AtlasVAE config.json or a training state, or nothing visible."""
    visible = [p for p in out.iterdir() if not p.name.startswith(".")] if out.is_dir() else []
    if not visible or os.path.lexists(state_path):
        return
    try:
        read_model_config(out)
    except CheckpointError as exc:
        raise ConfigError(f"--out {out}: folder exists and is not a model folder ({exc}); --force only "
                          f"overwrites a model or a training run, so choose another folder") from None


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
    state_file = out / STATE_FILE
    tensors = bytes_to_tensors(read_regular(state_file, MAX_WEIGHTS_FILE_BYTES, CheckpointError), state_file)
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
