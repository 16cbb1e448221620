"""Find what the add-on needs on disk: the backend package, model folders and a Python with torch.

bpy-free and torch-free, so it runs in Blender, in plain pytest and in build_addon.py alike. The
backend runs in its own interpreter; every candidate interpreter is checked once by importing torch
in a subprocess, and the answer is cached for the session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

ADDON_DIR = Path(__file__).resolve().parent.parent  # the add-on folder (this file is in its bpyfree/)
PYTHON_ENV = "ATLASVAE_PYTHON"
MODELS_ENV = "ATLASVAE_MODELS_DIR"
MODEL_FORMAT = "atlasvae-model"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
RUN_STATE_FILE = "train_state.json"  # backend/training/output.py STATE_JSON; a test pins it
CHECK_TIMEOUT_S = 180.0
DEV_ONLY_PACKAGES = frozenset({"bpy", "fake-bpy-module", "pytest", "hypothesis", "mypy"})


class LocateError(RuntimeError):
    """Something the add-on needs could not be found; the message lists what was tried."""


@dataclass(frozen=True)
class ModelEntry:
    """One model folder the add-on can offer: display name, folder and where it was found."""

    name: str
    path: Path
    source: str  # "bundled", "user" (fine-tuned outputs live there too) or "env"
    key: str = ""  # "<source>/<folder name>": the same on every machine, saved in .blend files


def backend_root(addon_dir: Path | None = None) -> Path:
    """The folder that contains the `backend` package: the add-on itself when bundled, else its parent."""
    addon = Path(addon_dir) if addon_dir is not None else ADDON_DIR
    candidates = (addon, addon.parent)
    for folder in candidates:
        if (folder / "backend" / "__init__.py").is_file():
            return folder
    tried = ", ".join(str(c / "backend") for c in candidates)
    raise LocateError(f"AtlasVAE backend package not found (looked for {tried}); reinstall the add-on")


def bundled_models_dir(addon_dir: Path | None = None) -> Path | None:
    """Models shipped with the add-on ($ATLASVAE_MODELS_DIR overrides), or None when there are none."""
    override = os.environ.get(MODELS_ENV)
    if override:
        return Path(override).expanduser()
    addon = Path(addon_dir) if addon_dir is not None else ADDON_DIR
    for folder in (addon / "models", addon.parent / "models"):
        if folder.is_dir():
            return folder
    return None


def user_models_dir(user_dir: Path) -> Path:
    """Where fine-tuned models are written inside the user folder."""
    return Path(user_dir) / "models"


def finetune_data_dir(user_dir: Path, name: str) -> Path:
    """Where a fine-tune of scene objects named `name` keeps its exported meshes: one path per name, so the
    run (which records the folder it trained on) finds the same data when it is resumed."""
    return Path(user_dir) / "finetune-data" / name


def read_run_state(folder: Path) -> dict[str, Any] | None:
    """A training run's train_state.json (the epoch reached, finished or not, the run's settings under
    "config"), or None when the folder holds no readable one."""
    try:
        state = json.loads((Path(folder) / RUN_STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return state if isinstance(state, dict) else None


_run_states: dict[Path, tuple[int, dict[str, Any] | None]] = {}  # train_state.json by path: (mtime_ns, state)


def unfinished_runs(models_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(folder, run state) of every run in `models_dir` that stopped before its last epoch, most recently
    saved first (the backend resumes such a run when it is started again with the same settings). Each
    train_state.json is read again only when it changed, so a panel may ask on every redraw."""
    found = []
    for folder in Path(models_dir).iterdir() if Path(models_dir).is_dir() else []:
        path = folder / RUN_STATE_FILE
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            continue
        cached = _run_states.get(path)
        if cached is None or cached[0] != mtime:
            cached = _run_states[path] = (mtime, read_run_state(folder))
        state = cached[1]
        if state is not None and state.get("finished") is False:
            found.append((mtime, folder, state))
    return [(folder, state) for _mtime, folder, state in sorted(found, key=lambda f: -f[0])]


def venv_python(venv: Path, windows: bool | None = None) -> Path:
    """The interpreter inside a virtual environment folder."""
    is_windows = os.name == "nt" if windows is None else windows
    return Path(venv) / "Scripts" / "python.exe" if is_windows else Path(venv) / "bin" / "python"


def user_venv_dir(user_dir: Path) -> Path:
    """The backend environment that "Install backend dependencies" creates in the user folder."""
    return Path(user_dir) / "venv"


def fallback_user_dir() -> Path:
    """A per-user config folder for AtlasVAE when Blender offers no extension folder."""
    if os.name == "nt":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "atlasvae"


def read_config(folder: Path) -> dict[str, Any] | None:
    """A model folder's config.json as a dict (json only, no torch), or None when missing or unreadable.
    The add-on's one reader of the model-folder format; the backend's is checkpoints.read_config."""
    try:
        config = json.loads((Path(folder) / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return config if isinstance(config, dict) else None


def config_labels(folder: Path) -> list[str]:
    """The family labels a model folder offers (config.json "labels": non-empty strings, first of each)."""
    config = read_config(folder)
    labels = config.get("labels") if config is not None else None
    if not isinstance(labels, list):
        return []
    return list(dict.fromkeys(x for x in labels if isinstance(x, str) and x.strip()))


def model_name(folder: Path) -> str | None:
    """The display name of a model folder (meta name or folder name), or None if it is not one."""
    if not (folder / WEIGHTS_FILE).is_file():
        return None
    config = read_config(folder)
    if config is None or config.get("format") != MODEL_FORMAT:
        return None
    meta = config.get("meta")
    name = meta.get("name") if isinstance(meta, dict) else None
    return str(name) if name else folder.name


def find_models(roots: Sequence[tuple[Path | None, str]]) -> list[ModelEntry]:
    """Model folders at or one level below each (root, source); first occurrence of a path wins."""
    found: list[ModelEntry] = []
    seen: set[Path] = set()
    for root, source in roots:
        if root is None or not Path(root).is_dir():
            continue
        root = Path(root)
        children = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name.lower())
        for folder in (root, *children):
            resolved = folder.resolve()
            name = model_name(folder)
            if name is None or resolved in seen:
                continue
            seen.add(resolved)
            found.append(ModelEntry(name=name, path=resolved, source=source, key=f"{source}/{folder.name}"))
    return found


_checked: dict[str, tuple[bool, str]] = {}
_checked_lock = threading.Lock()


def check_python(python: str | Path, timeout: float = CHECK_TIMEOUT_S) -> tuple[bool, str]:
    """Whether `python` runs and can import torch: (ok, reason); cached per path for the session."""
    key = str(python)
    with _checked_lock:
        if key in _checked:
            return _checked[key]
    path = Path(python)
    if not path.is_file():
        verdict = (False, "no such file")
    else:
        try:
            proc = subprocess.run([key, "-c", "import torch"], capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as exc:
            verdict = (False, f"cannot run it ({exc})")
        else:
            if proc.returncode == 0:
                verdict = (True, "torch imports")
            else:
                lines = (proc.stderr or "").strip().splitlines()
                verdict = (False, lines[-1] if lines else f"exit status {proc.returncode}")
    with _checked_lock:
        _checked[key] = verdict
    return verdict


def forget_checks() -> None:
    """Drop cached interpreter checks, e.g. after installing the backend environment."""
    with _checked_lock:
        _checked.clear()


def python_candidates(preference: str, user_dir: Path | None,
                      addon_dir: Path | None = None) -> list[tuple[str, Path]]:
    """Interpreters to try, in order, each with a label saying where it came from."""
    addon = Path(addon_dir) if addon_dir is not None else ADDON_DIR
    out: list[tuple[str, Path]] = []
    if preference.strip():
        out.append(("preferences", Path(preference.strip()).expanduser()))
    env = os.environ.get(PYTHON_ENV, "").strip()
    if env:
        out.append((f"${PYTHON_ENV}", Path(env).expanduser()))
    if user_dir is not None:
        out.append(("user environment", venv_python(user_venv_dir(user_dir))))
    out.append(("project .venv", venv_python(addon.parent / ".venv")))
    out.append(("this Python", Path(sys.executable)))
    return out


EXPLICIT = ("preferences", f"${PYTHON_ENV}")
_EXPLICIT_TEXT = {"preferences": "set in the add-on preferences", f"${PYTHON_ENV}": f"set by ${PYTHON_ENV}"}


def find_python(preference: str = "", user_dir: Path | None = None, addon_dir: Path | None = None) -> str:
    """The interpreter for the backend. One the user named (preferences, else $ATLASVAE_PYTHON) is used
    or refused, never silently replaced: LocateError names its path and why. Without one, the first
    automatic candidate that imports torch; LocateError lists every one tried."""
    tried: list[str] = []
    for label, path in python_candidates(preference, user_dir, addon_dir):
        if label in EXPLICIT:
            ok, reason = check_python(path)
            if ok:
                return str(path)
            problem = "does not exist" if reason == "no such file" else f"cannot run the backend ({reason})"
            raise LocateError(f"Backend Python {path} ({_EXPLICIT_TEXT[label]}) {problem}. It must be a Python "
                              "interpreter with torch installed: fix the path, or clear it to let AtlasVAE "
                              "search (or use 'Install Backend Dependencies').")
        ok, reason = check_python(path)
        if ok:
            return str(path)
        tried.append(f"{label} {path}: {reason}")
    raise LocateError("No Python with torch found for the AtlasVAE backend. Tried: " + "; ".join(tried)
                      + ". Set the interpreter in the add-on preferences or use 'Install backend dependencies'.")


def runtime_requirements(requirements: Path) -> list[str]:
    """Pinned lines of a requirements file minus development-only packages (bpy, pytest, ...)."""
    lines: list[str] = []
    for raw in Path(requirements).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name = line
        for sep in ("==", ">=", "<=", "~=", "!=", ">", "<", "[", ";", " "):
            name = name.split(sep, 1)[0]
        if name.strip().lower().replace("_", "-") not in DEV_ONLY_PACKAGES:
            lines.append(line)
    return lines


def requirements_file(addon_dir: Path | None = None) -> Path:
    """The backend requirements shipped with the add-on, or the repo's list in development."""
    addon = Path(addon_dir) if addon_dir is not None else ADDON_DIR
    candidates = (addon / "requirements.txt", addon.parent / "backend" / "requirements.txt",
                  addon.parent / "requirements.txt")
    for path in candidates:
        if path.is_file():
            return path
    raise LocateError("No backend requirements list found (looked for "
                      + ", ".join(str(p) for p in candidates) + ")")


def _folder_name(path: str) -> str:
    """The last part of a folder path recorded on the machine that trained a model (meaningless elsewhere)."""
    return Path(str(path).replace("\\", "/")).name or str(path)


def model_card(folder: Path) -> list[tuple[str, str]]:
    """Facts about a model folder for the UI, read from its config.json without torch: the families it
    can sample, what it was trained on (folder names only: the trainer's paths mean nothing here), how
    long, how well, and when it was trained (no date when the model records none: a file's date is when
    it was copied or installed). [] if the folder has no config."""
    config = read_config(folder)
    if config is None:
        return []
    meta: dict[str, Any] = config["meta"] if isinstance(config.get("meta"), dict) else {}
    train: dict[str, Any] = meta["train_config"] if isinstance(meta.get("train_config"), dict) else {}
    labels = config.get("labels") or meta.get("labels") or []
    facts = [("Families", ", ".join(str(x) for x in labels) if labels else "one (no family labels)")]
    data = _folder_name(train["data"]) if train.get("data") else (
        f"procedural {train['procedural']}" if train.get("procedural") else None)
    if data:
        counts = [f"{meta[key]} {what}" for key, what in (("train_shapes", "shapes"), ("val_shapes", "held out"))
                  if isinstance(meta.get(key), int)]
        facts.append(("Trained on", data + (f" ({', '.join(counts)})" if counts else "")))
    if train.get("init"):
        facts.append(("Fine-tuned from", _folder_name(train["init"])))
    if isinstance(meta.get("epoch"), int):
        done = "" if meta.get("finished", True) else " (unfinished)"
        facts.append(("Epochs", f"{meta['epoch']}{done}"))
    metrics: dict[str, Any] = meta["metrics"] if isinstance(meta.get("metrics"), dict) else {}
    if isinstance(metrics.get("val_chamfer_x1e3"), (int, float)):
        facts.append(("Validation Chamfer", f"{metrics['val_chamfer_x1e3']:.2f} x1e-3"))
    trained = meta.get("trained_at")
    if isinstance(trained, str) and trained:
        facts.append(("Trained", trained))
    return facts
