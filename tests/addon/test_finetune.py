"""Fine-tuning from the add-on in background mode: the operator blocks until the job ends, progress
properties follow the backend's events, and the new model joins the list, gets selected and loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

BOX_FACES = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                      [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])


def box(size: tuple[float, float, float]) -> np.ndarray:
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=float)
    return (corners - 0.5) * np.array(size)


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture()
def mesh_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "meshes"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        write_obj(folder / f"box_{i}.obj", box(tuple(rng.uniform(0.3, 2.0, size=3))), BOX_FACES)
    return folder


def test_finetune_one_epoch_adds_and_loads_the_new_model(scene: Any, bpy_module: Any, mesh_folder: Path,
                                                         user_dir: Path) -> None:
    from blender_addon import jobs

    bpy = bpy_module
    settings = scene.atlasvae
    settings.finetune_data = str(mesh_folder)
    settings.finetune_epochs = 1
    settings.finetune_name = "boxes-ft"
    assert bpy.ops.atlasvae.finetune_start() == {"FINISHED"}
    state = bpy.context.window_manager.atlasvae_runtime
    out = user_dir / "models" / "boxes-ft"
    assert state.job_state == "done", state.job_message
    assert (state.epoch, state.epochs, state.progress) == (1, 1, pytest.approx(1.0))
    assert state.loss > 0.0
    assert "Fine-tune finished" in state.job_message and str(out) in state.job_message
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert settings.model == "user/boxes-ft" and settings.model_path() == str(out.resolve())
    assert Path(jobs.backend.loaded_model["path"]).resolve() == out.resolve()
    settings.count, settings.seed = 1, 0
    assert bpy.ops.atlasvae.sample() == {"FINISHED"}
    assert "boxes-ft_s0_0" in bpy.data.objects

    with pytest.raises(RuntimeError, match="A model named 'boxes-ft' already exists"):
        bpy.ops.atlasvae.finetune_start()


def test_a_running_finetune_blocks_a_second_one(scene: Any, bpy_module: Any, mesh_folder: Path) -> None:
    bpy = bpy_module
    scene.atlasvae.finetune_data = str(mesh_folder)
    state = bpy.context.window_manager.atlasvae_runtime
    previous = state.job_state, state.job_id
    state.job_state, state.job_id = "running", "job-x"
    try:
        with pytest.raises(RuntimeError, match="A fine-tune is already running"):
            bpy.ops.atlasvae.finetune_start()
        assert bpy.ops.atlasvae.finetune_cancel.poll()
    finally:
        state.job_state, state.job_id = previous
    assert not bpy.ops.atlasvae.finetune_cancel.poll()


def test_finetune_input_errors_are_reported(scene: Any, bpy_module: Any, tmp_path: Path, mesh_folder: Path) -> None:
    bpy = bpy_module
    settings = scene.atlasvae
    settings.finetune_data = str(tmp_path / "no-such-folder")
    with pytest.raises(RuntimeError, match="no-such-folder.*does not exist"):
        bpy.ops.atlasvae.finetune_start()
    settings.finetune_data = str(mesh_folder)
    settings.finetune_name = "bad/name"
    with pytest.raises(RuntimeError, match="must not contain"):
        bpy.ops.atlasvae.finetune_start()
    empty = tmp_path / "empty"
    empty.mkdir()
    settings.finetune_data, settings.finetune_name, settings.finetune_epochs = str(empty), "from-empty", 1
    with pytest.raises(RuntimeError, match="Fine-tune failed: no mesh files .* found under"):
        bpy.ops.atlasvae.finetune_start()
    assert bpy.context.window_manager.atlasvae_runtime.job_state == "failed"
