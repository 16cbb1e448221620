"""A running fine-tune is not killed under the artist (issue 28, item 6): Stop Backend cancels it and waits
for it to save its last finished epoch before ending the backend, and a dependency install that finishes
meanwhile switches the backend to the new environment only once the fine-tune has ended."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .test_install_operator import prefs, standin_wheels  # noqa: F401 - fixtures


def tick_until(jobs: Any, done: Any, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
        jobs.tick()


def start_finetune(bpy: Any, jobs: Any, folder: Path, name: str) -> Any:
    """A long fine-tune on `folder`, running and past its first epoch."""
    state = bpy.context.window_manager.atlasvae_runtime
    assert bpy.ops.atlasvae.finetune_start(source="FOLDER", data=str(folder), epochs=500, name=name) == {"FINISHED"}
    tick_until(jobs, lambda: state.job_state == "running" and state.epoch >= 1)
    return state


def test_stop_backend_lets_a_running_finetune_save_before_ending_it(interactive: Any, bpy_module: Any,
                                                                   mesh_folder: Path, user_dir: Path) -> None:
    from blender_addon.bpyfree import backend_process
    from blender_addon.operators.finetune import unfinished

    jobs, bpy = interactive, bpy_module
    state = start_finetune(bpy, jobs, mesh_folder, "stopped-ft")
    assert bpy.ops.atlasvae.backend_stop() == {"FINISHED"}, "the question is invoke's; execute stops"
    tick_until(jobs, lambda: "stop" not in jobs.pending_kinds())
    assert backend_process.backend.client is None
    assert state.job_state == "cancelled", state.job_message
    assert state.last_report.startswith("INFO: Backend stopped"), state.last_report
    assert state.job_message.startswith("Fine-tune cancelled (partial model kept"), "not 'failed: backend stopped'"
    assert unfinished(user_dir / "models" / "stopped-ft"), "its last finished epoch was saved: it can resume"


def test_an_install_that_ends_during_a_finetune_switches_the_backend_after_it(
        interactive: Any, bpy_module: Any, mesh_folder: Path, prefs: Any, standin_wheels: Path) -> None:  # noqa: F811
    from blender_addon import preferences
    from blender_addon.bpyfree import backend_process

    jobs, bpy = interactive, bpy_module
    state = start_finetune(bpy, jobs, mesh_folder, "install-ft")
    client = backend_process.backend.client
    bpy.context.preferences.system.use_online_access = False
    prefs.wheelhouse = str(standin_wheels)
    assert bpy.ops.atlasvae.install_backend() == {"FINISHED"}
    deadline = time.monotonic() + 300
    while preferences._install_tick() is not None:  # the install's timer, as Blender would call it
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert "installed" in state.install_line and "when the running fine-tune ends" in state.install_line
    assert backend_process.backend.client is client and backend_process.backend.running, "not stopped under it"
    assert state.job_state == "running"
    assert preferences._restart_when_free() == preferences.RESTART_POLL_S, "still waiting for the fine-tune"
    assert bpy.ops.atlasvae.finetune_cancel() == {"FINISHED"}
    tick_until(jobs, lambda: not state.job_running())
    assert state.job_state == "cancelled"
    assert preferences._restart_when_free() is None and backend_process.backend.client is None, \
        "stopped once the fine-tune ended; the next use starts it with the new environment"
    if bpy.app.timers.is_registered(preferences._restart_when_free):
        bpy.app.timers.unregister(preferences._restart_when_free)


def test_stop_waits_as_long_as_the_server_gives_a_cancelled_job() -> None:
    from backend.serving.dispatcher import JOB_STOP_WAIT_S
    from blender_addon.operators.finetune import SAVE_WAIT_S

    assert SAVE_WAIT_S == JOB_STOP_WAIT_S


def _stopped_backend(bpy: Any) -> Any:
    """The real backend, started by a sample, then frozen by the OS (SIGSTOP): a backend that answers nothing."""
    import os
    import signal

    from blender_addon.bpyfree import backend_process

    assert bpy.ops.atlasvae.sample(count=1) == {"FINISHED"}
    client = backend_process.backend.client
    assert client is not None and client.pid
    os.kill(client.pid, signal.SIGSTOP)
    return client


def test_stop_does_not_hang_on_a_backend_that_no_longer_answers(scene: Any, bpy_module: Any) -> None:
    import os
    import signal
    import threading

    from blender_addon.bpyfree import backend_process
    from blender_addon.operators.finetune import end_before_stop

    client = _stopped_backend(bpy_module)
    ended: list[Any] = []
    worker = threading.Thread(target=lambda: ended.append(end_before_stop(backend_process.backend, "job-1", 1.0)))
    try:
        worker.start()
        worker.join(timeout=60.0)  # only so that a hang fails instead of blocking the suite
        assert not worker.is_alive(), "end_before_stop waited on a backend that does not answer"
        assert ended == [None], "no job status: the stop goes on and ends the backend"
    finally:
        os.kill(client.pid, signal.SIGCONT)
        worker.join()


def test_an_install_restart_waits_for_requests_in_flight(scene: Any, bpy_module: Any) -> None:
    import os
    import signal

    from blender_addon import preferences
    from blender_addon.bpyfree import backend_process

    client = _stopped_backend(bpy_module)
    try:
        reply = client.submit("list_models")
        assert client.in_flight() == 1
        assert preferences._restart_when_free() == preferences.RESTART_POLL_S, "would kill the request"
        assert backend_process.backend.client is client
    finally:
        os.kill(client.pid, signal.SIGCONT)
    assert "models" in reply.result(timeout=60.0)
    assert client.in_flight() == 0
    assert preferences._restart_when_free() is None and backend_process.backend.client is None
