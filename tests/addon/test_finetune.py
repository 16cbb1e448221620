"""Fine-tuning from the add-on in background mode: the operator blocks until the job ends, progress
properties follow the backend's events, and the new model joins the list, gets selected and loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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
    for obj in bpy.context.view_layer.objects:
        obj.select_set(False)
    with pytest.raises(RuntimeError, match="Select the mesh objects to fine-tune on"):
        bpy.ops.atlasvae.finetune_start(source="SELECTED", name="from-nothing")
    with pytest.raises(RuntimeError, match="Collection 'Nope' does not exist"):
        bpy.ops.atlasvae.finetune_start(source="COLLECTION", collection="Nope", name="from-nothing")


@pytest.mark.parametrize("source", ["SELECTED", "COLLECTION"])
def test_finetune_from_scene_objects_writes_their_evaluated_meshes_then_cleans_up(
        scene: Any, bpy_module: Any, user_dir: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    """Artists keep assets in .blend files: the selected objects or a collection's objects (modifiers
    applied) go to the user folder's finetune-data/NAME, the same fine-tune runs on it, and the folder is
    removed once it finished."""
    import shutil

    from .conftest import add_mesh_object, select_only

    bpy = bpy_module
    props = bpy.data.collections.new("Props")
    scene.collection.children.link(props)
    objs = []
    for i in range(8):
        obj = add_mesh_object(bpy, f"Crate{i}", kind="cube", location=(3.0 * i, 0.0, 0.0),
                              scale=(1.0 + 0.1 * i, 1.0, 0.5))
        bevel = obj.modifiers.new("Bevel", "BEVEL")
        bevel.width = 0.05
        for collection in list(obj.users_collection):
            collection.objects.unlink(obj)
        props.objects.link(obj)
        objs.append(obj)
    select_only(bpy, objs if source == "SELECTED" else [])
    name = f"crates-{source.lower()}"
    root = user_dir / "finetune-data" / name
    exported: list[list[str]] = []
    real_rmtree = shutil.rmtree

    def remove(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path) == root and root.is_dir():
            exported.append(sorted(str(p.relative_to(path)) for p in Path(path).rglob("*.obj")))
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", remove)
    family = "Props" if source == "COLLECTION" else name
    assert bpy.ops.atlasvae.finetune_start(source=source, collection="Props", epochs=1, name=name) == {"FINISHED"}
    state = bpy.context.window_manager.atlasvae_runtime
    assert state.job_state == "done", state.job_message
    assert exported == [[f"{family}/Crate{i}.obj" for i in range(8)]], "one OBJ per object, the family's folder"
    assert (user_dir / "models" / name / "model.safetensors").is_file()
    assert scene.atlasvae.model == f"user/{name}"
    assert not root.exists(), "the export is removed once the fine-tune finished"
    assert [o.name for o in props.objects] == [f"Crate{i}" for i in range(8)], "the scene objects are untouched"
    assert all(len(o.data.vertices) == 8 for o in objs), "modifiers are applied to a copy, not to the objects"
    real_rmtree(user_dir / "models" / name)
    scene.atlasvae.model = "bundled/tiny"
