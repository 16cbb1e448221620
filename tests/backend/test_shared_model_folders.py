"""Model folders are shared between users: whatever is in one is refused by name, never hangs or half-loads.

Every file of a model folder is read as a regular file of bounded size before anything parses it (a FIFO,
a link to /dev/zero or a huge sparse file used to hang the CLI or fill the memory), and the whole config
schema is checked in one place (a `meta` that is not an object used to end in an AttributeError).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backend.checkpoints import CONFIG_FILE, WEIGHTS_FILE, load_model, read_model_config
from backend.cli import main
from backend.errors import CheckpointError
from backend.checkpoints import MAX_WEIGHTS_FILE_BYTES
from backend.limits import MAX_JSON_FILE_BYTES

REPO = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 900.0  # only guards against a hung run; never a speed requirement
POSIX_ONLY = pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(),
                                reason="needs os.mkfifo and /dev/zero")


def _copy(tiny_model_dir: Path, folder: Path) -> Path:
    shutil.copytree(tiny_model_dir, folder)
    return folder


def _edit_config(folder: Path, **changes: object) -> Path:
    config = json.loads((folder / CONFIG_FILE).read_text())
    for key, value in changes.items():
        if key.startswith("meta_"):
            config["meta"][key[5:]] = value
        else:
            config[key] = value
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    return folder


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "backend", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=HANG_GUARD_S)


def _trap(folder: Path, name: str, kind: str) -> None:
    (folder / name).unlink()
    if kind == "fifo":
        os.mkfifo(folder / name)
    else:
        (folder / name).symlink_to("/dev/zero")


@POSIX_ONLY
@pytest.mark.parametrize("name, kind, what", [(WEIGHTS_FILE, "fifo", "a FIFO / named pipe"),
                                              (WEIGHTS_FILE, "zero", "a character device"),
                                              (CONFIG_FILE, "fifo", "a FIFO / named pipe")])
def test_a_model_file_that_is_not_a_regular_file_is_refused_without_reading_it(
        tiny_model_dir: Path, tmp_path: Path, name: str, kind: str, what: str) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "shared")
    _trap(folder, name, kind)
    done = _cli("sample", "--model", str(folder), "--n", "1", "--resolution", "42", "--device", "cpu",
                "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == f"error: {folder / name}: not a regular file ({what})"
    assert not (tmp_path / "out").exists()


def test_a_weights_file_over_the_size_limit_is_refused_before_it_is_read(tiny_model_dir: Path,
                                                                         tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "huge")
    with open(folder / WEIGHTS_FILE, "r+b") as fh:
        fh.truncate(MAX_WEIGHTS_FILE_BYTES + 1)  # sparse: costs no disk space
    with pytest.raises(CheckpointError, match=rf"model\.safetensors: {MAX_WEIGHTS_FILE_BYTES + 1:,} bytes, more "
                                              rf"than the limit of {MAX_WEIGHTS_FILE_BYTES:,}"):
        load_model(folder)


def test_a_config_over_the_size_limit_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "huge")
    with open(folder / CONFIG_FILE, "r+b") as fh:
        fh.truncate(MAX_JSON_FILE_BYTES + 1)
    with pytest.raises(CheckpointError, match=r"config\.json: [\d,]+ bytes, more than the limit"):
        read_model_config(folder)


@pytest.mark.parametrize("changes, problem", [
    ({"meta": "x"}, "'meta' must be a JSON object, got 'x'"),
    ({"meta": None}, "'meta' must be a JSON object, got None"),
    ({"meta": [1]}, "'meta' must be a JSON object, got [1]"),
    ({"meta_default_prior": "fancy"}, "meta 'default_prior' must be one of gmm, normal, got 'fancy'"),
    ({"has_prior": "no"}, "'has_prior' must be true or false, got 'no'"),
    ({"format_version": True}, "'format_version' must be an integer, got True"),
    ({"weights_sha256": 5}, "'weights_sha256' must be a string, got 5"),
    ({"model": []}, "'model' must be a JSON object, got []"),
    ({"labels": "sword"}, "'labels' must be a list of strings, got 'sword'"),
    ({"meta_name": ["a"]}, "meta 'name' must be a string, got ['a']"),
    ({"meta_metrics": 3}, "meta 'metrics' must be a JSON object, got 3"),
    ({"meta_train_config": "x"}, "meta 'train_config' must be a JSON object, got 'x'"),
])
def test_every_config_field_of_the_wrong_type_is_refused_by_name(tiny_model_dir: Path, tmp_path: Path,
                                                                 changes: dict, problem: str) -> None:
    folder = _edit_config(_copy(tiny_model_dir, tmp_path / "bad"), **changes)
    with pytest.raises(CheckpointError) as exc:
        load_model(folder)
    assert str(exc.value) == f"{folder / CONFIG_FILE}: {problem}"


@pytest.mark.parametrize("command", ["sample", "reconstruct", "refit-prior", "finetune"])
def test_every_command_refuses_a_meta_that_is_not_an_object(command: str, tiny_model_dir: Path, tmp_path: Path,
                                                             inputs: dict[str, Path],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    folder = _edit_config(_copy(tiny_model_dir, tmp_path / "bad"), meta="x")
    out = tmp_path / "out"
    argv = {"sample": ["sample", "--model", str(folder), "--n", "1", "--out", str(out)],
            "reconstruct": ["reconstruct", str(inputs["mesh"]), "--model", str(folder), "--fit", "encoder",
                            "--out", str(out / "r.obj")],
            "refit-prior": ["refit-prior", "--model", str(folder), "--out", str(out)],
            "finetune": ["finetune", "--init", str(folder), "--data", str(inputs["data"]), "--out", str(out),
                         "--epochs", "1"]}[command]
    assert main([*argv, "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {folder / CONFIG_FILE}: 'meta' must be a JSON object, got 'x'"
    assert not out.exists()


def test_a_failed_load_keeps_the_previous_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    from backend.serving.service import ModelService

    service = ModelService("cpu")
    service.load(tiny_model_dir)
    bad = _edit_config(_copy(tiny_model_dir, tmp_path / "bad"), meta_name="bad", meta_default_prior="fancy")
    with pytest.raises(CheckpointError, match="default_prior"):
        service.load(bad)
    assert service.info is not None and service.info["name"] == "tiny"
    assert len(service.sample(1, resolution=42)) == 1


def test_stale_temporary_files_of_an_interrupted_save_are_swept_by_the_next_run(make_train_config,
                                                                                tmp_path: Path) -> None:
    from backend.training.loop import run

    out = tmp_path / "run"
    run(make_train_config(out, epochs=1), progress=lambda event: None)
    stale = [out / ".model.safetensors.k1l2m3.tmp", out / ".config.json.abc123.tmp",
             out / ".train_state.json.x9.tmp", out / ".history.json.q.tmp"]
    for path in stale:
        path.write_bytes(b"half a save")
    (out / ".notes.tmp").write_text("the user's")
    run(make_train_config(out, epochs=2, resume=True), progress=lambda event: None)
    assert [p.name for p in stale if p.exists()] == []
    assert (out / ".notes.tmp").read_text() == "the user's"
