"""The interactive-Blender path, headless: operators return at once, a worker thread talks to the
backend, and the dispatch timer (called by hand here, since background bpy never fires timers)
builds the objects on the main thread, records an undo step and follows fine-tune progress."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import BOX_FACES, box, write_obj


def tick_until(jobs: Any, done: Any) -> None:
    """Call the dispatch timer as Blender would until `done()` holds."""
    while not done():
        time.sleep(0.02)
        jobs.tick()


def test_sample_returns_at_once_and_the_timer_adds_the_objects(interactive: Any, bpy_module: Any) -> None:
    jobs, bpy = interactive, bpy_module
    bpy.ops.ed.undo_push(message="before sampling")
    settings = bpy.context.scene.atlasvae
    settings.count, settings.seed = 3, 21
    assert bpy.ops.atlasvae.sample() == {"FINISHED"}
    state = bpy.context.window_manager.atlasvae_runtime
    assert state.last_report == "INFO: Sampling 3 shapes (seed 21)..."
    assert "sample" in jobs.pending_kinds()
    assert bpy.ops.atlasvae.sample() == {"CANCELLED"}, "a second identical request is refused while pending"
    assert state.last_report.startswith("WARNING: Sample Shapes is already under way")
    assert len(jobs.pending()) == 1
    tick_until(jobs, lambda: not jobs.pending_kinds())
    collection = bpy.data.collections["AtlasVAE Samples tiny seed 21"]
    assert len(collection.objects) == 3
    assert state.last_report.startswith("INFO: Sampled 3 shapes from tiny (seed 21)")
    assert jobs.tick() is None, "the timer goes away once nothing is pending"
    bpy.ops.ed.undo()
    assert "AtlasVAE Samples tiny seed 21" not in bpy.data.collections, "the timer recorded its own undo step"


def test_failure_in_the_worker_is_reported_from_the_timer(interactive: Any, bpy_module: Any) -> None:
    jobs, bpy = interactive, bpy_module
    settings = bpy.context.scene.atlasvae
    settings.count, settings.resolution_preset, settings.custom_resolution = 256, "CUSTOM", 200_000
    assert bpy.ops.atlasvae.sample() == {"FINISHED"}
    tick_until(jobs, lambda: not jobs.pending_kinds())
    report = bpy.context.window_manager.atlasvae_runtime.last_report
    assert report.startswith("ERROR: Sample Shapes failed: params 'count' x 'resolution'")


def test_finetune_progress_and_completion_through_the_timer(interactive: Any, bpy_module: Any, tmp_path: Path,
                                                            user_dir: Path) -> None:
    jobs, bpy = interactive, bpy_module
    folder = tmp_path / "boxes"
    folder.mkdir()
    for i in range(8):
        write_obj(folder / f"b{i}.obj", box((1.0 + 0.1 * i, 1.0, 0.5)), BOX_FACES)
    settings = bpy.context.scene.atlasvae
    settings.finetune_data, settings.finetune_epochs, settings.finetune_name = str(folder), 1, "timer-ft"
    state = bpy.context.window_manager.atlasvae_runtime
    assert bpy.ops.atlasvae.finetune_start() == {"FINISHED"}
    assert state.job_state == "submitting"
    assert not bpy.ops.atlasvae.finetune_start.poll(), "one fine-tune at a time"
    tick_until(jobs, lambda: state.job_state not in ("submitting", "running"))
    assert state.job_state == "done", state.job_message
    assert state.epoch == 1 and state.progress == pytest.approx(1.0)
    out = (user_dir / "models" / "timer-ft").resolve()
    assert settings.model == "user/timer-ft" and settings.model_path() == str(out)
    assert state.last_report.startswith("INFO: Fine-tune finished: model timer-ft")
    assert bpy.ops.atlasvae.finetune_start.poll()
