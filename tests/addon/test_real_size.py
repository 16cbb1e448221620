"""Sample Shapes at real size (issue 27) in real bpy with the real backend: a model that records its families'
sizes gives results at those sizes standing on the cursor's floor, laid out so big ones do not overlap; the
Size option (panel and operator) keeps unit size; a model without sizes gives unit size and says so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from .conftest import HERE, REPO, backend_python, made
from .test_placement import overlaps, world_box

SIZES = {"overall": [1.0, 1.0, 1.0], "labels": {"chair": [0.5, 0.5, 0.9], "building": [20.0, 15.0, 10.0]},
         "shapes": 32}
# Vertices travel as float32 (relative rounding 2**-24 ~ 6e-8) and are placed with float64 matrices: at the
# 27 m diagonal of a building, a few roundings stay far below 1e-5 relative.
RTOL = 1e-5


@pytest.fixture(scope="module")
def sized_model(addon: Any, user_dir: Path) -> Iterator[Path]:
    """A tiny labelled model whose config.json records sizes (the metadata is outside the weights' checksum);
    removed again afterwards so the model list other tests see is unchanged."""
    from blender_addon import properties

    folder = user_dir / "models" / "sized"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([backend_python(), str(HERE / "make_tiny_model.py"), str(folder), "sized", "chair,building"],
                          capture_output=True, text=True, env=env, cwd=str(REPO))
    assert proc.returncode == 0, f"could not build the tiny model:\n{proc.stderr}"
    config = json.loads((folder / "config.json").read_text())
    config["meta"]["sizes"] = SIZES
    (folder / "config.json").write_text(json.dumps(config))
    properties.refresh_models()
    yield folder.resolve()
    shutil.rmtree(folder, ignore_errors=True)
    properties.refresh_models()


@pytest.fixture()
def sized(scene: Any, sized_model: Path) -> Any:
    settings = scene.atlasvae
    settings.model = "user/sized"
    return settings


def test_size_modes_are_the_backends(scene: Any, bpy_module: Any) -> None:
    from backend.limits import DEFAULT_SIZE, SIZE_MODES
    from blender_addon import properties

    assert tuple(item[0] for item in properties.SIZE_MODES) == SIZE_MODES
    for rna in (scene.atlasvae.bl_rna, bpy_module.ops.atlasvae.sample.get_rna_type()):
        assert rna.properties["size"].default == DEFAULT_SIZE
        assert "metres" in rna.properties["size"].description


def test_buildings_come_out_building_sized_on_the_cursor_floor_without_overlapping(sized: Any, bpy_module: Any
                                                                                    ) -> None:
    bpy = bpy_module
    bpy.context.scene.cursor.location = (1.0, 2.0, 0.5)
    assert bpy.ops.atlasvae.sample(count=4, seed=2, family="building", spacing=2.5) == {"FINISHED"}
    objs = made(bpy)
    assert len(objs) == 4 and all(o["atlasvae_size"] == "real" for o in objs)
    boxes = [world_box(o) for o in objs]
    for lo, hi in boxes:
        assert float(np.linalg.norm(hi - lo)) == pytest.approx(float(np.linalg.norm([20, 15, 10])), rel=RTOL)
        assert lo[2] == pytest.approx(0.5, abs=RTOL * 30), "standing on the cursor's floor"
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not overlaps(a, b), "the grid widens for big shapes"


def test_unit_size_from_the_option_or_the_panel(sized: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    assert bpy.ops.atlasvae.sample(count=2, seed=2, family="building", size="unit") == {"FINISHED"}
    sized.size = "unit"
    assert bpy.ops.atlasvae.sample(count=2, seed=3, family="chair") == {"FINISHED"}
    objs = made(bpy)
    assert len(objs) == 4 and {o["atlasvae_size"] for o in objs} == {"unit"}
    for obj in objs:
        lo, hi = world_box(obj)
        assert float(np.linalg.norm(hi - lo)) < 10.0, "the network's own frame (the unit ball, bent by the code)"
    sized.size = "real"
    assert bpy.ops.atlasvae.sample(count=1, seed=3, family="chair") == {"FINISHED"}
    (chair,) = [o for o in made(bpy) if o not in objs]
    lo, hi = world_box(chair)
    assert float(np.linalg.norm(hi - lo)) == pytest.approx(float(np.linalg.norm([0.5, 0.5, 0.9])), rel=RTOL)


def test_a_model_without_sizes_gives_unit_size_and_says_so(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    assert scene.atlasvae.size == "real"
    assert bpy.ops.atlasvae.sample(count=1, seed=1) == {"FINISHED"}
    (obj,) = made(bpy)
    assert obj["atlasvae_size"] == "unit"
    report = bpy.context.window_manager.atlasvae_runtime.last_report
    assert "at unit size (the model records no real sizes)" in report
