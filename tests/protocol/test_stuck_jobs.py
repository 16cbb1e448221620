"""A fine-tune whose data folder holds a FIFO and a link to /dev/zero: it must neither hang nor block others.

Before, the job sat forever at "Reading meshes", `cancel` answered "cancelling" while the job stayed
running, the next fine-tune was refused as busy and `shutdown` waited out its 60 s grace period.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pytest

from .harness import RawServer

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(),
                                reason="needs os.mkfifo and /dev/zero")


def _wait(server: RawServer, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Next notification matching `predicate` (the harness's hang guard bounds the wait)."""
    while True:
        message = server.next_message()
        assert "id" not in message, f"unexpected reply {message}"
        server.notifications.append(message)
        if predicate(message):
            return message


def _job_done(job_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("method") == "job_done" and m["params"]["job_id"] == job_id


def test_special_files_are_skipped_cancel_stops_and_shutdown_cancels(tiny_model: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.data.procedural import write_dataset

    data = tmp_path / "data"
    write_dataset(data, ["sword", "mug"], per_family=2, seed=0)
    os.mkfifo(data / "pipe.obj")
    (data / "zeros.obj").symlink_to("/dev/zero")
    monkeypatch.setenv("ATLASVAE_CACHE", str(tmp_path / "cache"))
    server = RawServer("--model", str(tiny_model))
    try:
        job = server.request("finetune", {"data": str(data), "out": str(tmp_path / "a"), "epochs": 100000})
        job_id = job["result"]["job_id"]
        skip = _wait(server, lambda m: m["params"].get("event") == "skip" and "pipe.obj" in m["params"]["message"])
        assert "not a regular file (a FIFO / named pipe)" in skip["params"]["message"]
        _wait(server, lambda m: m["params"].get("event") == "step")
        assert server.request("cancel", {"job_id": job_id})["result"]["state"] == "cancelling"
        assert _wait(server, _job_done(job_id))["params"]["state"] == "cancelled"
        assert server.request("job_status", {"job_id": job_id})["result"]["state"] == "cancelled"

        second = server.request("finetune", {"data": str(data), "out": str(tmp_path / "b"), "epochs": 100000})
        second_id = second["result"]["job_id"]  # not refused as busy
        assert server.request("shutdown") == {"jsonrpc": "2.0", "id": server.last_id, "result": {}}
        assert _wait(server, _job_done(second_id))["params"]["state"] == "cancelled"
    finally:
        code = server.close()
    assert code == 0
    assert not any("threads still busy at exit" in line for line in server.stderr), server.stderr[-5:]
