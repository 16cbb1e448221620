"""The Fit option of Reconstruct, Interpolate and Variations, in real bpy with the real backend: each fit mode
brings the result closer to the mesh, the option reaches the backend, and cancelling a running fit stops
it in the backend, not only in the scene."""

from __future__ import annotations

import time
from typing import Any

import pytest

from blender_addon.bpyfree.client import BackendError

from .conftest import add_mesh_object, made, select_only
from .test_progress import scene_state

HANG_GUARD_S = 120.0  # only so that a broken cancel fails instead of hanging the suite


def reconstruct_chamfer(bpy: Any, source: Any, fit: str) -> float:
    select_only(bpy, [source])
    before = set(bpy.data.objects.keys())
    assert bpy.ops.atlasvae.reconstruct(fit=fit, fit_steps=60) == {"FINISHED"}
    (name,) = set(bpy.data.objects.keys()) - before
    result = bpy.data.objects[name]
    assert result["atlasvae_fit"] == fit
    return float(result["atlasvae_chamfer_x1e3"])


def test_each_fit_mode_follows_the_mesh_more_closely(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    monkey = add_mesh_object(bpy, "Monkey", kind="monkey")
    encoder = reconstruct_chamfer(bpy, monkey, "encoder")
    latent = reconstruct_chamfer(bpy, monkey, "latent")
    full = reconstruct_chamfer(bpy, monkey, "full")
    assert full < latent < encoder, (encoder, latent, full)


def test_the_panel_fit_is_the_default_and_the_sections_show_it(scene: Any, bpy_module: Any) -> None:
    from blender_addon import panels

    from .ui_recorder import draw

    bpy = bpy_module
    assert scene.atlasvae.fit == "full" and scene.atlasvae.endpoint_fit == "latent"
    assert "fit" in draw(bpy, panels.VIEW3D_PT_atlasvae_reconstruct)["props"]
    assert "endpoint_fit" in draw(bpy, panels.VIEW3D_PT_atlasvae_interpolate)["props"]
    assert "endpoint_fit" in draw(bpy, panels.VIEW3D_PT_atlasvae_variations)["props"]
    scene.atlasvae.fit = "encoder"
    try:
        cube = add_mesh_object(bpy, "Cube", kind="cube")
        select_only(bpy, [cube])
        assert bpy.ops.atlasvae.reconstruct() == {"FINISHED"}
        assert bpy.data.objects["Cube_recon"]["atlasvae_fit"] == "encoder", "the panel's choice is the default"
    finally:
        scene.atlasvae.fit = "full"


def test_interpolate_and_variations_take_a_fit(scene: Any, bpy_module: Any) -> None:
    bpy = bpy_module
    a = add_mesh_object(bpy, "A", kind="cube", location=(-3.0, 0.0, 0.0))
    b = add_mesh_object(bpy, "B", kind="monkey", location=(3.0, 0.0, 0.0))
    select_only(bpy, [a, b])
    assert bpy.ops.atlasvae.interpolate(steps=3, fit="latent") == {"FINISHED"}
    select_only(bpy, [a, b])
    assert bpy.ops.atlasvae.interpolate(steps=3, fit="encoder") == {"FINISHED"}
    select_only(bpy, [b])
    assert bpy.ops.atlasvae.variations(count=2, fit="latent") == {"FINISHED"}
    with pytest.raises(TypeError, match="full"):
        bpy.ops.atlasvae.variations(count=2, fit="full")


def test_cancelling_a_running_fit_stops_it_in_the_backend(interactive: Any, bpy_module: Any) -> None:
    jobs, bpy = interactive, bpy_module
    monkey = add_mesh_object(bpy, "Monkey", kind="monkey")
    select_only(bpy, [monkey])
    before = scene_state(bpy)
    assert bpy.ops.atlasvae.reconstruct(fit="full", fit_steps=5000) == {"FINISHED"}
    task = jobs.pending()[0]
    deadline = time.monotonic() + HANG_GUARD_S
    while not (task.fit_job and task.fit_fraction > 0):
        assert time.monotonic() < deadline, "the fit never reported a step"
        time.sleep(0.02)
        jobs.tick()
    job = task.fit_job
    assert bpy.ops.atlasvae.cancel() == {"FINISHED"}
    assert task.future is not None
    with pytest.raises(BackendError, match="'reconstruct' cancelled"):
        task.future.result(timeout=HANG_GUARD_S)
    client = jobs.backend.client
    assert client is not None
    status = client.call("job_status", {"job_id": job})
    assert status["state"] == "cancelled", status
    assert status["last_event"]["step"] < 5000
    for _ in range(3):
        jobs.tick()
    assert scene_state(bpy) == before and not made(bpy)
