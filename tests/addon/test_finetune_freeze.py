"""Keep Fixed in the Fine-tune section: the panel draws it, the operator takes it as an option (the
sidebar's value by default), the backend keeps those layer groups of the starting model bit for bit,
and a combination the backend refuses reaches the artist in the backend's own words."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

from .conftest import REPO, backend_python
from .ui_recorder import draw


def finetune(bpy: Any, **options: Any) -> set[str]:
    """bpy.ops.atlasvae.finetune_start(**options)."""
    return bpy.ops.atlasvae.finetune_start(**options)  # type: ignore[no-any-return]


def groups_of(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """A model folder's network weights by layer group ("encoder.*", "decoders.*"); its prior is left out."""
    weights = load_file(str(path / "model.safetensors"))
    split = {group: {name: value for name, value in weights.items() if name.startswith(prefix)}
             for group, prefix in (("encoder", "encoder."), ("decoder", "decoders."))}
    assert split["encoder"] and split["decoder"], sorted(weights)
    return split


def test_the_fine_tune_section_draws_keep_fixed(scene: Any, bpy_module: Any) -> None:
    from blender_addon import panels

    drawn = draw(bpy_module, panels.VIEW3D_PT_atlasvae_finetune)
    assert "finetune_freeze" in drawn["props"]
    assert "Keep Fixed:" in drawn["labels"]


def test_every_choice_has_a_tooltip_and_is_a_backend_layer_group() -> None:
    """The identifiers are sent as they are: they must be the backend's --freeze group names."""
    from blender_addon.properties import FREEZE_GROUPS

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([backend_python(), "-c", "from backend.training.finetune import LAYER_GROUPS; print(*LAYER_GROUPS)"],
                          capture_output=True, text=True, env=env, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    assert sorted(group for group, *_ in FREEZE_GROUPS) == sorted(proc.stdout.split())
    assert all(len(description) > 40 for _g, _n, description, *_ in FREEZE_GROUPS)
    encoder = next(description for group, _n, description, *_ in FREEZE_GROUPS if group == "encoder")
    assert "few meshes" in encoder, "the tooltip says when to use it"


def test_a_frozen_group_keeps_the_base_weights_bit_for_bit(scene: Any, bpy_module: Any, mesh_folder: Path,
                                                           models_dir: Path, user_dir: Path) -> None:
    """From the sidebar (encoder) and as the operator's own option (decoder): the kept group's tensors
    equal the starting model's exactly, while every tensor of the other group moved."""
    bpy = bpy_module
    settings = scene.atlasvae
    # Two epochs: the tiny model's code heads start at zero, so its point layers get no gradient in step one.
    settings.finetune_source, settings.finetune_data, settings.finetune_epochs = "FOLDER", str(mesh_folder), 2
    base = groups_of(models_dir / "tiny")
    settings.finetune_freeze, settings.finetune_name = {"encoder"}, "boxes-enc-fixed"
    runs = [("encoder", "boxes-enc-fixed", {}), ("decoder", "boxes-dec-fixed", {"freeze": {"decoder"}})]
    try:
        for kept, name, options in runs:
            settings.model = "bundled/tiny"
            settings.finetune_name = name
            assert finetune(bpy, **options) == {"FINISHED"}
            state = bpy.context.window_manager.atlasvae_runtime
            assert state.job_state == "done", state.job_message
            tuned = groups_of(user_dir / "models" / name)
            trained = "decoder" if kept == "encoder" else "encoder"
            assert base[kept].keys() == tuned[kept].keys()
            for key, value in base[kept].items():
                assert value.dtype == tuned[kept][key].dtype and value.tobytes() == tuned[kept][key].tobytes(), key
            moved = [key for key, value in base[trained].items() if not np.array_equal(value, tuned[trained][key])]
            assert moved == list(base[trained]), f"{trained} tensors left as they were: " \
                f"{sorted(set(base[trained]) - set(moved))}"
        assert settings.finetune_freeze == {"encoder"}, "the operator's option does not change the sidebar"
    finally:
        settings.finetune_freeze, settings.model = set(), "bundled/tiny"


def test_freezing_everything_fails_with_the_backends_reason(scene: Any, bpy_module: Any, mesh_folder: Path,
                                                            user_dir: Path) -> None:
    bpy = bpy_module
    settings = scene.atlasvae
    settings.finetune_source, settings.finetune_data, settings.finetune_epochs = "FOLDER", str(mesh_folder), 1
    with pytest.raises(RuntimeError, match="Fine-tune failed: .*freezes every weight, so nothing would train"):
        finetune(bpy, freeze={"encoder", "decoder"}, name="all-fixed")
    state = bpy.context.window_manager.atlasvae_runtime
    assert state.job_state == "failed"
    assert "freezes every weight" in state.last_report
    assert not (user_dir / "models" / "all-fixed").exists()
