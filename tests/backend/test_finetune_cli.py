"""`python -m backend finetune` run as a user runs it, in a subprocess: messy folders, refusals, kill -9, Ctrl-C.

Every run uses a tiny architecture and a dozen procedural shapes so the whole file stays small; the runs
that get interrupted use enough epochs that they are still training when the signal arrives.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend.checkpoints import load_model
from backend.data.procedural import write_dataset
from backend.serving.service import ModelService

REPO = Path(__file__).resolve().parents[2]
TINY_ARCH_FLAGS = ["--latent-dim", "16", "--decoder-width", "32", "--decoder-layers", "1"]
RUN_FLAGS = ["--points", "128", "--batch-size", "4", "--sheet-every", "0", "--device", "cpu"]
LONG_EPOCHS = 20  # long enough that a run is still training when the test interrupts it
SAFETY_TIMEOUT_S = 900.0  # only guards against a hung run; never a speed requirement
POSIX_ONLY = pytest.mark.skipif(os.name == "nt", reason="SIGKILL and SIGINT to a child need POSIX signals")

# Bad files mixed into the data folder: relative path -> what the loader should notice.
BAD_FILES = ("empty.obj", "readme_renamed.stl", "picture.ply", "extras/nan_vertex.obj", "extras/collapsed.obj")
IGNORED_FILES = ("notes.txt", "extras/notes.txt")


def _png_bytes() -> bytes:
    """The first bytes of a 1x1 PNG: enough for anything that sniffs the format."""
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)


def _write_bad_files(root: Path) -> None:
    (root / "extras").mkdir(parents=True, exist_ok=True)
    contents = {
        "empty.obj": b"",
        "readme_renamed.stl": b"this is a text file\nwith a mesh suffix\n",
        "picture.ply": _png_bytes(),
        "extras/nan_vertex.obj": b"v 0 0 0\nv 1 0 0\nv 0 nan 0\nf 1 2 3\n",
        "extras/collapsed.obj": b"v 1 1 1\nv 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\nf 1 3 4\n",
        "notes.txt": b"meshes for the sword project\n",
        "extras/notes.txt": b"todo\n",
    }
    for name, data in contents.items():
        (root / name).write_bytes(data)


def _snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every file under root, and a marker for every folder, keyed by relative path."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        found[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "<dir>"
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment every CLI run gets: this checkout on the path, a private point cache, one thread."""
    cache = tmp_path_factory.mktemp("point_cache")
    return {**os.environ, "PYTHONPATH": str(REPO), "ATLASVAE_CACHE": str(cache), "OMP_NUM_THREADS": "1"}


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "backend", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=SAFETY_TIMEOUT_S)


@pytest.fixture(scope="module")
def init_model(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Path:
    """A one-epoch tiny model trained from the command line, to fine-tune from."""
    out = tmp_path_factory.mktemp("init") / "base"
    result = _cli(["train", "--procedural", "sword,mug:4", "--out", str(out), "--epochs", "1",
                   *TINY_ARCH_FLAGS, *RUN_FLAGS], env)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def clean_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two procedural families, six meshes each, and nothing else."""
    root = tmp_path_factory.mktemp("clean") / "shapes"
    write_dataset(root, ["sword", "mug"], per_family=6, seed=3)
    return root


@pytest.fixture(scope="module")
def messy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clean dataset with broken meshes and non-mesh files mixed in, at the top and in a subfolder."""
    root = tmp_path_factory.mktemp("messy") / "shapes"
    write_dataset(root, ["sword", "mug"], per_family=6, seed=3)
    _write_bad_files(root)
    return root


def _finetune_args(init: Path, data: Path, out: Path, epochs: int) -> list[str]:
    return ["finetune", "--init", str(init), "--data", str(data), "--out", str(out), "--epochs", str(epochs),
            *RUN_FLAGS]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str], init_model: Path,
             messy_data: Path) -> dict[str, Any]:
    """A finished two-epoch fine-tune on the messy folder, with the folder's snapshot from before it."""
    out = tmp_path_factory.mktemp("finetuned") / "swords"
    before = _snapshot(messy_data)
    args = _finetune_args(init_model, messy_data, out, epochs=2)
    return {"out": out, "args": args, "before": before, "result": _cli(args, env)}


def test_messy_folder_finetunes_and_names_each_bad_file(finished: dict[str, Any]) -> None:
    result = finished["result"]
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    for name in BAD_FILES:
        mentions = [line for line in lines if name in line]
        assert len(mentions) == 1, f"{name}: expected one line, got {mentions}\n{result.stderr}"
        assert re.fullmatch(rf"skipped {re.escape(name)}: \S.*", mentions[0]), mentions[0]
    for name in IGNORED_FILES:
        assert name not in result.stderr, f"non-mesh file {name} should be ignored silently"
    assert json.loads(result.stdout)["state"] == "finished"


def test_mesh_specific_reasons_are_given(finished: dict[str, Any]) -> None:
    reasons = {line.split(": ", 1)[0].removeprefix("skipped "): line.split(": ", 1)[1]
               for line in finished["result"].stderr.splitlines() if line.startswith("skipped ")}
    assert "empty" in reasons["empty.obj"]
    assert "STL" in reasons["readme_renamed.stl"]
    assert "PNG" in reasons["picture.ply"]
    assert "NaN" in reasons["extras/nan_vertex.obj"]
    assert "same point" in reasons["extras/collapsed.obj"]


def test_skipped_files_are_summarised(finished: dict[str, Any]) -> None:
    usable, skipped = 12, len(BAD_FILES)
    summaries = [line for line in finished["result"].stderr.splitlines()
                 if not line.startswith("skipped ") and "skip" in line.lower()
                 and re.search(rf"\b{usable}\b", line) and re.search(rf"\b{skipped}\b", line)]
    assert summaries, finished["result"].stderr


def test_data_folder_is_untouched(finished: dict[str, Any], messy_data: Path) -> None:
    assert finished["result"].returncode == 0, finished["result"].stderr
    assert _snapshot(messy_data) == finished["before"]


def test_finetuned_folder_loads_and_samples(finished: dict[str, Any]) -> None:
    assert finished["result"].returncode == 0, finished["result"].stderr
    out = finished["out"]
    state = _read_json(out / "train_state.json")
    assert state["finished"] is True and state["epoch"] == 2
    meta = _read_json(out / "config.json")["meta"]
    assert meta["train_shapes"] + meta["val_shapes"] == 12
    assert set(meta["labels"]) <= {"sword", "mug"}
    service = ModelService("cpu")
    info = service.load(out)
    assert info["has_prior"] is True
    meshes = service.sample(3, seed=1, resolution=162)
    assert len(meshes) == 3
    for mesh in meshes:
        assert mesh.vertices.shape[1] == 3 and len(mesh.faces) > 0
        assert np.isfinite(mesh.vertices).all()


def test_too_few_usable_files_is_an_error_naming_the_folder(tmp_path: Path, env: dict[str, str],
                                                             init_model: Path, clean_data: Path) -> None:
    data = tmp_path / "few"
    _write_bad_files(data)
    good = data / "the_only_sword.obj"
    good.write_bytes((clean_data / "sword" / "sword_0000.obj").read_bytes())
    out = tmp_path / "never_trained"
    result = _cli(_finetune_args(init_model, data, out, epochs=2), env)
    assert result.returncode == 2, result.stderr
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert str(data) in errors[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    visible = [p.name for p in out.iterdir() if not p.name.startswith(".")] if out.exists() else []
    assert visible == [], f"nothing should have been written, found {visible}"


def test_finished_folder_is_not_overwritten(finished: dict[str, Any], env: dict[str, str]) -> None:
    assert finished["result"].returncode == 0, finished["result"].stderr
    out = finished["out"]
    weights, state = _sha256(out / "model.safetensors"), _sha256(out / "train_state.json")
    result = _cli(finished["args"], env)
    assert result.returncode == 2, result.stderr
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert "--resume" in errors[0] and "--force" in errors[0]
    assert _sha256(out / "model.safetensors") == weights
    assert _sha256(out / "train_state.json") == state


def _start(args: list[str], env: dict[str, str], logs: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Start a CLI run in the background with stderr in a file (its progress bar would fill a pipe)."""
    stderr_path = logs / "stderr.txt"
    with open(stderr_path, "wb") as err, open(logs / "stdout.txt", "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "backend", *args], cwd=REPO, env=env, stdout=out,
                                stderr=err)
    return proc, stderr_path


def _wait_for_saved_epoch(proc: subprocess.Popen[bytes], out: Path, stderr_path: Path) -> int:
    """Poll until the run's committed state (train_state.json, written last) records a finished epoch.

    history.json is written just before train_state.json; polling the later file means a signal sent
    now never lands between the two writes of the first checkpoint.
    """
    deadline = time.monotonic() + SAFETY_TIMEOUT_S
    state_path = out / "train_state.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"run exited with {proc.returncode} before an epoch was saved:\n{stderr_path.read_text()}")
        try:
            epoch = int(_read_json(state_path)["epoch"])
        except (OSError, ValueError, KeyError):
            epoch = 0
        if epoch >= 1:
            return epoch
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    pytest.fail(f"no epoch was saved within the safety timeout:\n{stderr_path.read_text()}")


def _assert_resumes_and_finishes(args: list[str], env: dict[str, str], out: Path, saved_epoch: int,
                                 history_before: list[dict[str, Any]]) -> None:
    result = _cli(args, env)
    assert result.returncode == 0, result.stderr
    assert f"resuming from epoch {saved_epoch}" in result.stderr
    history = _read_json(out / "history.json")
    assert [r["epoch"] for r in history] == list(range(1, LONG_EPOCHS + 1))
    assert history[:saved_epoch] == history_before, "epochs saved before the interruption must be kept as they were"
    state = _read_json(out / "train_state.json")
    assert state["finished"] is True and state["epoch"] == LONG_EPOCHS
    load_model(out)


@POSIX_ONLY
def test_resume_after_kill_9(tmp_path: Path, env: dict[str, str], init_model: Path, clean_data: Path) -> None:
    out = tmp_path / "killed"
    args = _finetune_args(init_model, clean_data, out, epochs=LONG_EPOCHS)
    proc, stderr_path = _start(args, env, tmp_path)
    _wait_for_saved_epoch(proc, out, stderr_path)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=SAFETY_TIMEOUT_S) == -signal.SIGKILL

    state = _read_json(out / "train_state.json")
    assert state["finished"] is False, "the run finished before the kill; raise LONG_EPOCHS"
    saved = int(state["epoch"])
    assert 1 <= saved < LONG_EPOCHS
    load_model(out)  # config.json's checksum matches the weights on disk
    history = _read_json(out / "history.json")
    assert [r["epoch"] for r in history] == list(range(1, saved + 1))
    _assert_resumes_and_finishes(args, env, out, saved, history)


@POSIX_ONLY
def test_ctrl_c_saves_a_checkpoint_exits_130_and_resumes(tmp_path: Path, env: dict[str, str], init_model: Path,
                                                         clean_data: Path) -> None:
    out = tmp_path / "interrupted"
    args = _finetune_args(init_model, clean_data, out, epochs=LONG_EPOCHS)
    proc, stderr_path = _start(args, env, tmp_path)
    seen = _wait_for_saved_epoch(proc, out, stderr_path)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=SAFETY_TIMEOUT_S) == 130, stderr_path.read_text()
    assert "stopping after this step" in stderr_path.read_text()

    state = _read_json(out / "train_state.json")
    assert state["finished"] is False
    saved = int(state["epoch"])
    # Stopped within a step of the signal: the epoch then under way (or, had the signal come while an
    # epoch was being saved, the next one) is the last one recorded, far from the end of the run.
    assert seen <= saved <= seen + 1 < LONG_EPOCHS
    assert json.loads((tmp_path / "stdout.txt").read_text())["state"] == "cancelled"
    load_model(out)
    history = _read_json(out / "history.json")
    assert [r["epoch"] for r in history] == list(range(1, saved + 1))
    _assert_resumes_and_finishes(args, env, out, saved, history)
