"""What a person reads (issue 28, items 9 and 8): one clean line per operator tooltip, counts that agree
with their noun, and a message saying what to do when Blender's Python lacks numpy."""

from __future__ import annotations

from typing import Any


def test_every_operator_tooltip_is_one_clean_line(addon: Any, bpy_module: Any) -> None:
    ops = bpy_module.ops.atlasvae
    names = [name for name in dir(ops) if not name.startswith("_")]
    assert len(names) > 10
    for name in names:
        description = getattr(ops, name).get_rna_type().description
        assert description, f"atlasvae.{name} has no tooltip"
        assert "\n" not in description and "  " not in description, f"atlasvae.{name}: {description!r}"


def test_sampling_one_shape_says_shape(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    assert bpy.ops.atlasvae.sample(count=1, seed=2) == {"FINISHED"}
    report = bpy.context.window_manager.atlasvae_runtime.last_report
    assert "Sampled 1 shape from" in report, report


def test_every_count_agrees_with_its_noun(interactive: Any, bpy_module: Any) -> None:
    from blender_addon.feedback import counted

    from .conftest import add_mesh_object, select_only

    jobs, bpy = interactive, bpy_module
    assert [counted(n, "mesh object") for n in (0, 1, 2)] == ["0 mesh objects", "1 mesh object", "2 mesh objects"]
    select_only(bpy, [add_mesh_object(bpy, "Src", "cube")])
    assert bpy.ops.atlasvae.reconstruct(fit="encoder") == {"FINISHED"}
    assert bpy.context.window_manager.atlasvae_runtime.last_report == "INFO: Reconstructing 1 object..."


def test_without_numpy_enabling_says_what_to_do(monkeypatch: Any) -> None:
    import sys

    import pytest

    import blender_addon

    monkeypatch.setitem(sys.modules, "numpy", None)  # what a Blender whose Python lacks numpy gives
    with pytest.raises(ImportError, match="needs numpy in Blender's own Python.*official builds"):
        blender_addon.register()
