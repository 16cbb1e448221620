"""Family choice for Sample Shapes: the enum offers "Any" plus the chosen model's labels (read from its
config.json without the backend), a chosen family travels to the backend and names the results, and
"Any" sends no label at all."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from .conftest import HERE, REPO, backend_python
from .ui_recorder import draw

LABELS = ("sword", "mug")


@pytest.fixture(scope="module")
def families_model(addon: Any, user_dir: Path) -> Iterator[Path]:
    """A tiny model with per-label priors in the user models folder; removed again afterwards so
    the model list other tests see is unchanged."""
    from blender_addon import properties

    folder = user_dir / "models" / "families"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([backend_python(), str(HERE / "make_tiny_model.py"), str(folder), "families",
                           ",".join(LABELS)], capture_output=True, text=True, env=env, cwd=str(REPO))
    assert proc.returncode == 0, f"could not build the labelled tiny model:\n{proc.stderr}"
    properties.refresh_models()
    yield folder.resolve()
    shutil.rmtree(folder, ignore_errors=True)
    properties.refresh_models()


@pytest.fixture()
def families(scene: Any, families_model: Path) -> Any:
    """The scene's settings with the labelled model chosen."""
    settings = scene.atlasvae
    settings.model = "user/families"
    settings.family = "ANY"
    settings.count, settings.seed = 3, 5
    return settings


def identifiers(bpy: Any, settings: Any) -> list[str]:
    from blender_addon.properties import family_items

    return [item[0] for item in family_items(settings, bpy.context)]


def test_family_enum_offers_any_plus_the_models_labels(families: Any, bpy_module: Any, models_dir: Path) -> None:
    from blender_addon import panels

    bpy = bpy_module
    assert identifiers(bpy, families) == ["ANY", "mug", "sword"]
    families.family = "sword"
    assert families.family == "sword" and families.sample_label() == "sword"
    assert "family" in draw(bpy, panels.VIEW3D_PT_atlasvae_sample)["props"]
    families.model = "bundled/tiny"
    assert identifiers(bpy, families) == ["ANY"], "a model without labels offers only Any"
    assert families.sample_label() is None, "a family the new model lacks is not sent"
    with pytest.raises(TypeError, match="sword"):
        families.family = "sword"


def test_labels_follow_config_edits_and_unreadable_configs_offer_only_any(addon: Any, tmp_path: Path) -> None:
    from blender_addon.properties import family_items, model_labels

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"format": "atlasvae-model", "labels": ["chair", "table"]}), encoding="utf-8")
    assert model_labels(str(tmp_path)) == ["chair", "table"]
    config.write_text(json.dumps({"format": "atlasvae-model", "labels": ["lamp", 3, "", "lamp", "ANY"]}),
                      encoding="utf-8")
    stat = config.stat()
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert model_labels(str(tmp_path)) == ["lamp"], "a newer config is read again; bad entries dropped"
    config.write_text("{not json", encoding="utf-8")
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    assert model_labels(str(tmp_path)) == []
    config.write_text(json.dumps({"format": "atlasvae-model"}), encoding="utf-8")
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 3 * 10**9))
    assert model_labels(str(tmp_path)) == [], "older models have no labels"
    assert model_labels(str(tmp_path / "missing")) == []

    class Settings:
        def model_path(self) -> str:
            return str(tmp_path / "missing")

    assert [item[0] for item in family_items(Settings(), None)] == ["ANY"]  # type: ignore[arg-type]


def local_vertices(obj: Any) -> np.ndarray:
    co = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
    obj.data.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def first_shape(bpy: Any, family: str) -> np.ndarray:
    """Vertices of the first shape the add-on samples now (seed 5) with `family` chosen."""
    bpy.context.scene.atlasvae.family = family
    before = set(bpy.data.objects)
    assert bpy.ops.atlasvae.sample(count=1, seed=5) == {"FINISHED"}
    (obj,) = set(bpy.data.objects) - before
    return local_vertices(obj)


def test_sampling_a_family_sends_the_label_and_names_the_collection(families: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    families.family = "sword"
    assert bpy.ops.atlasvae.sample() == {"FINISHED"}
    collection = bpy.data.collections["AtlasVAE Samples families sword seed 5"]
    objs = sorted(collection.objects, key=lambda o: o["atlasvae_index"])
    assert len(objs) == 3
    assert all(o["atlasvae_label"] == "sword" and o["atlasvae_model"] == "families" for o in objs)
    state = bpy.context.window_manager.atlasvae_runtime
    assert "Sampled 3 sword shapes from families (seed 5)" in state.last_report
    families.family = "mug"
    assert bpy.ops.atlasvae.sample() == {"FINISHED"}
    mug = sorted(bpy.data.collections["AtlasVAE Samples families mug seed 5"].objects,
                 key=lambda o: o["atlasvae_index"])
    assert not np.allclose(local_vertices(objs[0]), local_vertices(mug[0])), \
        "each family has its own prior: the label reached the backend"


def test_any_sends_no_label(families: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    assert families.family == "ANY" and families.sample_label() is None
    assert bpy.ops.atlasvae.sample() == {"FINISHED"}
    collection = bpy.data.collections["AtlasVAE Samples families seed 5"]
    assert len(collection.objects) == 3
    assert all("atlasvae_label" not in o for o in collection.objects)


def test_any_samples_the_whole_model_not_one_family(families: Any, bpy_module: Any) -> None:
    """With Any no label goes to the backend: the shape differs from each family's shape for the same
    seed (a label sent by mistake would reproduce that family's shape exactly)."""
    bpy = bpy_module
    whole = first_shape(bpy, "ANY")
    assert np.allclose(first_shape(bpy, "ANY"), whole), "same seed, same shape"
    for label in LABELS:
        assert not np.allclose(first_shape(bpy, label), whole), label


def test_the_model_card_folds_its_families_away(families: Any, bpy_module: Any) -> None:
    from blender_addon import panels

    from .ui_recorder import draw

    bpy = bpy_module
    state = bpy.context.window_manager.atlasvae_runtime
    state.show_families = False
    folded = draw(bpy, panels.VIEW3D_PT_atlasvae_model)
    assert "show_families" in folded["props"]
    assert not any(name in label for label in folded["labels"] for name in LABELS), "folded by default"
    state.show_families = True
    try:
        shown = " ".join(draw(bpy, panels.VIEW3D_PT_atlasvae_model)["labels"])
        assert all(name in shown for name in LABELS)
    finally:
        state.show_families = False


def test_job_panels_split_labels_from_fields_like_blenders_own(families: Any, bpy_module: Any) -> None:
    from blender_addon import panels

    from .ui_recorder import draw

    for cls in (panels.VIEW3D_PT_atlasvae_sample, panels.VIEW3D_PT_atlasvae_reconstruct,
                panels.VIEW3D_PT_atlasvae_interpolate, panels.VIEW3D_PT_atlasvae_variations,
                panels.VIEW3D_PT_atlasvae_finetune):
        assert draw(bpy_module, cls)["split"] == [True], cls.__name__
