"""Fit progress reaches the task that sent the request by its request id, even when the fit's "start" event
was pumped before the worker registered the task (the worker registers right after the request is written)."""

from __future__ import annotations

from typing import Any


def test_a_step_event_without_its_start_still_names_the_job_and_moves_progress(bpy_module: Any) -> None:
    from blender_addon import jobs

    task = jobs.Task(kind="reconstruct", label="Reconstruct", work=lambda t, b: None, apply=lambda r: "")
    jobs._fitting[41] = task
    try:
        step = {"method": "progress", "params": {"request_id": 41, "job_id": "fit-3", "event": "step",
                                                 "step": 15, "steps": 60}}
        assert jobs._route_fit(step)
        assert (task.fit_job, task.fit_fraction) == ("fit-3", 0.25)
        other = {"method": "progress", "params": {"request_id": 42, "job_id": "fit-4", "event": "step",
                                                  "step": 60, "steps": 60}}
        assert jobs._route_fit(other)  # a fit of another request: consumed, this task untouched
        assert (task.fit_job, task.fit_fraction) == ("fit-3", 0.25)
        assert not jobs._route_fit({"method": "progress", "params": {"job_id": "job-1", "epoch": 2}})
    finally:
        jobs._fitting.pop(41, None)
