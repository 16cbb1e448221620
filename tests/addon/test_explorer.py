"""The Shape Explorer in real bpy with the real backend: results store their latent, a slider change reshapes
the object in place, the release records one undo step that Ctrl+Z takes back, a saved and reopened .blend
(with its model folder moved) explores again, Toward blends two results, Randomise / Reset, Apply and
Apply as Shape Key. The model is the tiny identity sphere with a stored prior (make_tiny_model.py PRIOR),
so the backend finds directions in it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from .conftest import made, make_tiny_model, select_only
from .ui_recorder import draw


@pytest.fixture(scope="module")
def explore_model(addon: Any, user_dir: Path) -> Iterator[Path]:
    """The tiny model with a prior in the user models folder; removed afterwards so other tests' model
    lists are unchanged."""
    from blender_addon import properties

    folder = make_tiny_model(user_dir / "models" / "explorable", "explorable", "", "sphere", "prior")
    properties.refresh_models()
    yield folder.resolve()
    shutil.rmtree(folder, ignore_errors=True)
    properties.refresh_models()


@pytest.fixture()
def explorable(scene: Any, explore_model: Path, bpy_module: Any) -> Iterator[Any]:
    """Two sampled results of the explorable model, patches (so vertex counts stay comparable), the
    first one active."""
    from blender_addon import explore

    settings = scene.atlasvae
    settings.model = "user/explorable"
    settings.surface = "patches"
    bpy = bpy_module
    assert bpy.ops.atlasvae.sample(count=2, seed=4, surface="patches", resolution=642) == {"FINISHED"}
    objs = made(bpy)
    select_only(bpy, [objs[0]])
    yield objs
    explore.drop_session()
    bpy.context.scene.atlasvae.surface = "auto"  # the scene now (a test may have loaded a .blend)


def positions(obj: Any) -> np.ndarray:
    co = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
    obj.data.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def sliders(bpy: Any) -> Any:
    return bpy.context.window_manager.atlasvae_explorer


def test_every_result_stores_what_exploring_needs(explorable: Any, explore_model: Path) -> None:
    from blender_addon.explore import shape_of

    shape = shape_of(explorable[0])
    assert shape is not None
    assert shape.latent.shape == (6,) and shape.resolution == 642 and shape.surface == "patches"
    assert Path(shape.model_path) == explore_model
    assert np.allclose(shape.frame[:3, :3], np.eye(3)), "a sample's frame only moves it onto its base"
    other = shape_of(explorable[1])
    assert other is not None and not np.array_equal(other.latent, shape.latent)


def test_slider_reshapes_in_place_and_undo_restores(explorable: Any, bpy_module: Any) -> None:
    from blender_addon import explore

    bpy = bpy_module
    obj = explorable[0]
    name = obj.name
    before = positions(obj)
    location = tuple(obj.location)
    bpy.ops.ed.undo_push(message="before exploring")
    sliders(bpy).amounts[0] = 2.0
    explore.settle()
    obj = bpy.data.objects[name]
    moved = positions(obj)
    assert moved.shape == before.shape and np.abs(moved - before).max() > 1e-3, "the slider reshaped the mesh"
    assert tuple(obj.location) == location, "in place: the object did not move"
    assert bpy.ops.atlasvae.explore_commit() == {"FINISHED"}
    obj = bpy.data.objects[name]
    assert list(obj["atlasvae_amounts"])[0] == pytest.approx(2.0)
    assert "atlasvae_explored_latent" in obj
    assert sliders(bpy).amounts[0] == pytest.approx(2.0)
    assert bpy.ops.ed.undo() == {"FINISHED"}
    obj = bpy.data.objects[name]
    assert np.allclose(positions(obj), before, atol=1e-6), "Ctrl+Z gives the previous shape back"
    assert sliders(bpy).amounts[0] == pytest.approx(0.0), "and the slider shows the restored value"


def test_a_drag_sends_the_newest_position_not_every_one(explorable: Any, interactive: Any, bpy_module: Any) -> None:
    from blender_addon import explore

    bpy = bpy_module
    explore._watching[0] = True  # the modal watcher that follows a drag needs a window; it stands in for it
    try:
        for step in range(1, 41):
            sliders(bpy).amounts[1] = step * 0.05
        live = explore.session()
        assert live is not None
        explore.commit()
        explore.settle()
    finally:
        explore._watching[0] = False
    assert live.coalescer.sent < 41, "positions passed while the backend worked were never sent"
    assert live.coalescer.sent + live.coalescer.replaced == 41
    obj = bpy.data.objects[explorable[0].name]
    assert list(obj["atlasvae_amounts"])[1] == pytest.approx(2.0), "the last position is the one kept"
    assert live.timings and all(latency < 5.0 for latency, _apply, _n in live.timings)


def test_saved_and_reopened_results_explore_again_with_the_model_folder_moved(
        explorable: Any, bpy_module: Any, tmp_path: Path) -> None:
    from blender_addon import explore

    bpy = bpy_module
    name = explorable[0].name
    latent = np.array(list(explorable[0]["atlasvae_latent"]))
    explorable[0]["atlasvae_model_path"] = str(tmp_path / "gone" / "explorable")  # another machine's folder
    path = tmp_path / "explored.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(path))
    obj = bpy.data.objects[name]
    assert np.array_equal(np.array(list(obj["atlasvae_latent"])), latent)
    select_only(bpy, [obj])
    before = positions(obj)
    sliders(bpy).amounts[2] = -2.0
    explore.settle()
    assert np.abs(positions(bpy.data.objects[name]) - before).max() > 1e-3


def test_toward_blends_to_the_other_selected_result(explorable: Any, bpy_module: Any) -> None:
    from blender_addon import explore

    bpy = bpy_module
    a, b = explorable
    select_only(bpy, [b, a], active=a)
    target = positions(b)
    sliders(bpy).blend = 1.0
    explore.settle()
    assert bpy.ops.atlasvae.explore_commit() == {"FINISHED"}
    a = bpy.data.objects[a.name]
    assert a["atlasvae_toward_name"] == b.name
    assert np.allclose(list(a["atlasvae_explored_latent"]), list(b["atlasvae_latent"]), atol=1e-5)
    shape_a, shape_b = explore.shape_of(a), explore.shape_of(b)
    assert shape_a is not None and shape_b is not None
    mine = positions(a) - shape_a.frame[:3, 3]
    theirs = target - shape_b.frame[:3, 3]
    assert np.allclose(mine, theirs, atol=1e-3), "blend 1 is the other result's shape, in this one's place"
    explore.drop_session()  # as after reopening the file: the blend and its target come from the object
    select_only(bpy, [a])
    sliders(bpy).amounts[0] = 0.01
    assert bpy.ops.atlasvae.explore_commit() == {"FINISHED"}
    a = bpy.data.objects[a.name]
    assert np.allclose(list(a["atlasvae_explored_latent"]), list(b["atlasvae_latent"]), atol=0.05), \
        "a slider moved later keeps the stored blend toward the same result"


def test_randomise_then_reset_returns_the_result_as_made(explorable: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    obj = explorable[0]
    made_as = positions(obj)
    assert bpy.ops.atlasvae.explore_randomise() == {"FINISHED"}
    obj = bpy.data.objects[obj.name]
    assert any(abs(v) > 0 for v in obj["atlasvae_amounts"])
    assert np.abs(positions(obj) - made_as).max() > 1e-3
    assert bpy.ops.atlasvae.explore_reset() == {"FINISHED"}
    obj = bpy.data.objects[obj.name]
    assert np.allclose(positions(obj), made_as, atol=1e-5)
    assert all(v == 0 for v in obj["atlasvae_amounts"])


def test_apply_keeps_the_shape_as_plain_mesh(explorable: Any, bpy_module: Any) -> None:
    from blender_addon import explore

    bpy = bpy_module
    sliders(bpy).amounts[0] = 1.5
    assert bpy.ops.atlasvae.explore_commit() == {"FINISHED"}
    obj = bpy.data.objects[explorable[0].name]
    shaped = positions(obj)
    assert bpy.ops.atlasvae.explore_apply() == {"FINISHED"}
    assert explore.shape_of(obj) is None and "atlasvae_latent" not in obj
    assert np.array_equal(positions(obj), shaped)
    assert not bpy.ops.atlasvae.explore_randomise.poll()
    drawn = draw(bpy, explore.VIEW3D_PT_atlasvae_explore)
    assert "keeps no shape code" in " ".join(drawn["labels"]) and "amounts" not in drawn["props"]


def test_apply_as_shape_key_keeps_both_shapes(explorable: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    obj = explorable[0]
    made_as = positions(obj)
    sliders(bpy).amounts[0] = 2.5
    assert bpy.ops.atlasvae.explore_commit() == {"FINISHED"}
    obj = bpy.data.objects[obj.name]
    explored = positions(obj)
    assert bpy.ops.atlasvae.explore_shape_key() == {"FINISHED"}
    keys = obj.data.shape_keys.key_blocks
    assert [k.name for k in keys] == ["Basis", "Explored"] and keys["Explored"].value == 1.0
    basis = np.array([tuple(p.co) for p in keys["Basis"].data])
    key = np.array([tuple(p.co) for p in keys["Explored"].data])
    assert np.allclose(basis, made_as, atol=1e-5), "the Basis is the result as made"
    assert np.allclose(key, explored, atol=1e-5), "the key is the explored shape"


def test_panel_draws_a_slider_per_direction_with_short_labels(explorable: Any, bpy_module: Any) -> None:
    from blender_addon import explore

    explore._tables.clear()
    drawn = draw(bpy_module, explore.VIEW3D_PT_atlasvae_explore)  # the directions are fetched off the main thread
    assert "amounts" not in drawn["props"] and any("Loading" in label for label in drawn["labels"])
    sliders(bpy_module).amounts[0] = 0.5  # a script's change fetches them at once (background mode)
    live = explore.session()
    assert live is not None and 6 <= len(live.table.directions) <= 8
    assert all(0 < len(d.description) <= 16 for d in live.table.directions), "short enough for a slider label"
    drawn = draw(bpy_module, explore.VIEW3D_PT_atlasvae_explore)
    assert drawn["props"].count("amounts") == len(live.table.directions) and True in drawn["split"]
    assert {"atlasvae.explore_randomise", "atlasvae.explore_reset", "atlasvae.explore_apply",
            "atlasvae.explore_shape_key"} <= set(drawn["operators"])


def test_a_reconstruction_explores_in_its_sources_frame(explorable: Any, bpy_module: Any) -> None:
    from blender_addon import explore

    from .conftest import add_mesh_object

    bpy = bpy_module
    source = add_mesh_object(bpy, "Source", "cube", location=(4.0, 1.0, 0.5), rotation=(0.0, 0.0, 0.6),
                             scale=(1.0, 2.0, 1.0))
    assert bpy.ops.atlasvae.reconstruct(fit="full", fit_steps=3, surface="patches", resolution=642) == {"FINISHED"}
    result = next(o for o in made(bpy) if o.get("atlasvae_source") == "Source")
    shape = explore.shape_of(result)
    assert shape is not None
    assert np.allclose(shape.frame, np.linalg.inv(np.array(source.matrix_world)), atol=1e-6), \
        "the reply's world coordinates map into the result's own frame (the source's transform)"
    select_only(bpy, [result])
    sliders(bpy).amounts[0] = 0.0  # binds the session
    drawn = draw(bpy, explore.VIEW3D_PT_atlasvae_explore)
    assert any("Full fit" in label for label in drawn["labels"]), "a Full fit says the sliders move the model's version"
    before, matrix = positions(result), np.array(result.matrix_world)
    sliders(bpy).amounts[0] = 1.0
    explore.settle()
    result = bpy.data.objects[result.name]
    assert np.abs(positions(result) - before).max() > 1e-3 and np.allclose(np.array(result.matrix_world), matrix)


def test_variations_and_interpolation_steps_are_explorable(explorable: Any, bpy_module: Any) -> None:
    from blender_addon import explore

    bpy = bpy_module
    a, b = explorable
    select_only(bpy, [a])
    assert bpy.ops.atlasvae.variations(count=2, fit="encoder", surface="patches", resolution=642) == {"FINISHED"}
    select_only(bpy, [a, b])
    assert bpy.ops.atlasvae.interpolate(steps=3, fit="encoder", surface="patches", resolution=642) == {"FINISHED"}
    variations = [o for o in made(bpy) if "_var" in o.name]
    steps = [o for o in made(bpy) if "_to_" in o.name]
    assert len(variations) == 2 and len(steps) == 3
    for obj in variations + steps:
        shape = explore.shape_of(obj)
        assert shape is not None and shape.resolution == 642, obj.name
    select_only(bpy, [steps[1]])
    before = positions(steps[1])
    sliders(bpy).amounts[0] = -1.0
    explore.settle()
    assert np.abs(positions(bpy.data.objects[steps[1].name]) - before).max() > 1e-3


def test_directions_the_backend_refuses_are_shown_with_a_retry(explorable: Any, bpy_module: Any) -> None:
    import time

    from blender_addon import explore

    obj = explorable[0]
    obj["atlasvae_label"] = "no-such-family"  # a label this model does not know: the backend names it
    drawn = draw(bpy_module, explore.VIEW3D_PT_atlasvae_explore)
    assert any("Loading" in label or "No directions" in label for label in drawn["labels"]), \
        drawn["labels"]  # the fetch thread may have its answer before this draw reads it
    deadline = time.monotonic() + 60
    while explore._fetching and time.monotonic() < deadline:
        time.sleep(0.05)
    drawn = draw(bpy_module, explore.VIEW3D_PT_atlasvae_explore)
    text = " ".join(drawn["labels"])
    assert "No directions" in text and "label" in text, text
    assert "atlasvae.explore_retry" in drawn["operators"] and "amounts" not in drawn["props"]
    assert bpy_module.ops.atlasvae.explore_retry() == {"FINISHED"}
    assert not explore._table_errors


def _hold_sender(explore: Any) -> Any:
    """Keep the Explorer's sender thread busy until the returned event is set, so that requests offered
    meanwhile stay in flight or waiting (what a slow backend does during a fast drag)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    gate = threading.Event()
    if explore._sender[0] is None:
        explore._sender[0] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atlasvae-explore")
    explore._sender[0].submit(gate.wait, 30)
    return gate


def test_a_release_overtaken_by_a_new_drag_keeps_the_objects_own_surface(explorable: Any, bpy_module: Any) -> None:
    from blender_addon import explore

    bpy = bpy_module
    obj = explorable[0]
    obj["atlasvae_surface"] = "closed"
    sliders(bpy).amounts[0] = 0.5  # binds the session: its shape's surface is closed
    explore.settle()
    gate = _hold_sender(explore)
    try:
        sliders(bpy).amounts[0] = 1.0  # in flight
        explore.commit()  # the release: waiting, with the closed surface
        sliders(bpy).amounts[0] = 1.5  # a new drag starts before the reply: replaces the release
    finally:
        gate.set()
    live = explore.session()
    assert live is not None and live.coalescer.replaced == 1
    explore.settle()
    obj = bpy.data.objects[obj.name]
    assert obj["atlasvae_surface"] == "closed", "a release never switches a closed result to patches"
    assert list(obj["atlasvae_amounts"])[0] == pytest.approx(1.5)


def test_the_undo_step_stores_the_slider_values_of_its_mesh(explorable: Any, bpy_module: Any) -> None:
    from blender_addon import explore

    bpy = bpy_module
    obj = explorable[0]
    sliders(bpy).amounts[0] = 2.0
    explore.commit()
    live = explore.session()
    assert live is not None
    live.amounts[0] = -1.0  # the sliders moved on before the release's reply landed
    explore.settle()
    obj = bpy.data.objects[obj.name]
    assert list(obj["atlasvae_amounts"])[0] == pytest.approx(2.0), "the values the stored mesh was made from"


def test_a_release_still_out_when_another_result_is_explored_is_applied(explorable: Any, bpy_module: Any) -> None:
    from blender_addon import explore

    bpy = bpy_module
    a, b = explorable
    sliders(bpy).amounts[0] = 2.0
    explore.commit()  # released; its reply has not been applied yet
    select_only(bpy, [b])
    sliders(bpy).amounts[1] = 1.0  # the artist moves on to B meanwhile
    explore.commit()
    explore.settle()
    a, b = bpy.data.objects[a.name], bpy.data.objects[b.name]
    assert list(a["atlasvae_amounts"])[0] == pytest.approx(2.0), "A's release was applied and stored"
    assert list(b["atlasvae_amounts"])[1] == pytest.approx(1.0)
    assert explore.session() is explore.session_of(b) and explore.session_of(a) is None, "idle ones are let go"


def test_toward_a_result_of_another_model_is_refused_with_a_message(explorable: Any, bpy_module: Any) -> None:
    from blender_addon import explore, runtime

    bpy = bpy_module
    a, b = explorable
    b["atlasvae_latent"] = [0.5, 0.5, 0.5, 0.5]  # a result of another model, with a smaller latent
    b["atlasvae_model_path"] = str(Path(a["atlasvae_model_path"]).parent / "other")
    b["atlasvae_model"] = "other"
    select_only(bpy, [b, a], active=a)
    assert explore.toward_object(bpy.context, a) is None
    before = positions(a)
    sliders(bpy).blend = 1.0  # no target: nothing happens (the directions are fetched now)
    explore.settle()
    assert np.array_equal(positions(bpy.data.objects[a.name]), before)
    drawn = draw(bpy, explore.VIEW3D_PT_atlasvae_explore)
    assert any("another model" in label for label in drawn["labels"]), drawn["labels"]
    live = explore.session()
    assert live is not None
    live.toward = np.zeros(4, dtype=np.float32)  # as stored by an older version: reported, never raised
    sliders(bpy).blend = 0.5
    explore.settle()
    report = runtime.runtime().last_report
    assert "Explorer" in report and "different models" in report, report


def test_exploring_needs_object_mode_and_says_so(explorable: Any, bpy_module: Any) -> None:
    from blender_addon import explore, runtime

    bpy = bpy_module
    obj = explorable[0]
    before = positions(obj)
    assert bpy.ops.object.mode_set(mode="EDIT") == {"FINISHED"}
    try:
        sliders(bpy).amounts[0] = 2.0
        explore.settle()
        assert "Object Mode" in runtime.runtime().last_report
        assert not bpy.ops.atlasvae.explore_randomise.poll() and not bpy.ops.atlasvae.explore_commit.poll()
        drawn = draw(bpy, explore.VIEW3D_PT_atlasvae_explore)
        assert any("Object Mode" in label for label in drawn["labels"]) and "amounts" not in drawn["props"]
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    obj = bpy.data.objects[obj.name]
    assert np.array_equal(positions(obj), before), "leaving Edit Mode wrote back the mesh it held"
    assert "atlasvae_amounts" not in obj


def test_a_linked_duplicate_keeps_its_shape(explorable: Any, bpy_module: Any) -> None:
    from blender_addon import explore

    bpy = bpy_module
    obj = explorable[0]
    assert bpy.ops.object.duplicate(linked=True) == {"FINISHED"}
    twin = bpy.context.active_object
    assert twin is not obj and twin.data == obj.data, "Alt+D shares the mesh"
    before = positions(twin)
    select_only(bpy, [obj])
    sliders(bpy).amounts[0] = 2.0
    assert bpy.ops.atlasvae.explore_commit() == {"FINISHED"}
    obj, twin = bpy.data.objects[obj.name], bpy.data.objects[twin.name]
    assert np.abs(positions(obj) - before).max() > 1e-3
    assert np.array_equal(positions(twin), before), "the linked duplicate was not reshaped with it"
    assert explore.shape_of(twin) is not None


def test_a_result_keeps_its_own_face_budget(explorable: Any, bpy_module: Any) -> None:
    from blender_addon import explore

    bpy = bpy_module
    obj = explorable[0]
    made_with = int(obj["atlasvae_face_budget"])
    bpy.context.scene.atlasvae.face_budget = made_with + 1000  # the scene's setting changed since
    sliders(bpy).amounts[0] = 0.5
    explore.settle()
    live = explore.session()
    assert live is not None and live.face_budget == made_with, "the closed surface is remade as it was made"


def test_directions_are_fetched_again_when_the_weights_change(explorable: Any, explore_model: Path) -> None:
    import os
    from dataclasses import replace

    from blender_addon import explore
    from blender_addon.operators.common import launch_config
    from blender_addon.properties import settings

    import bpy

    config = replace(launch_config(settings(bpy.context)), model_path=str(explore_model))
    bpy.context.window_manager.atlasvae_explorer.amounts[0] = 0.5  # a session bound to the first table
    explore.settle()
    first = explore.directions(config, None, blocking=True)
    assert explore.directions(config, None) is first, "cached"
    weights = explore_model / "model.safetensors"
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))  # retrained in place
    try:
        second = explore.directions(config, None, blocking=True)
        assert second is not None and second is not first, "the cache follows the weights"
        live = explore.session()
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 4_000_000_000))  # and again, with a session bound
        bpy.context.window_manager.atlasvae_explorer.amounts[0] = 0.25
        explore.settle()
        assert explore.session() is not live and explore.session().table is not second, "the session rebinds"
    finally:
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_randomise_says_what_it_does(addon: Any, bpy_module: Any) -> None:
    from blender_addon import explore
    from blender_addon.bpyfree.explorer import RANDOM_SPREAD

    text = explore.ATLASVAE_OT_explore_randomise.__doc__ or ""
    assert "standard deviation" in text and "training shapes" not in text, "small moves, not a new sample"
    assert RANDOM_SPREAD == 1.0 and "one standard deviation" in text


def test_a_redraw_during_a_drag_reads_the_cached_directions_only(explorable: Any, bpy_module: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from blender_addon import explore

    bpy = bpy_module
    sliders(bpy).amounts[0] = 0.5  # fetches the directions
    explore.settle()
    live = explore.session()
    assert live is not None and live.timings.maxlen == explore.TIMINGS_KEPT, "a long drag keeps a bounded record"

    def no_config(*_args: Any) -> None:
        raise AssertionError("the panel built a launch config although the directions are cached")

    monkeypatch.setattr(explore, "launch_config", no_config)
    drawn = draw(bpy, explore.VIEW3D_PT_atlasvae_explore)
    assert drawn["props"].count("amounts") == len(live.table.directions)
