"""A fine-tune job whose output disk is full fails with the path and the reason, not "internal error"."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.faults import fill, mounted_tmpfs
from .harness import RawServer


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    for mount in mounted_tmpfs(tmp_path / "disk", 1 << 20):
        fill(mount, 0)
        yield mount


def test_a_job_on_a_full_disk_fails_naming_the_path(full_disk: Path, tiny_model: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.data.procedural import write_dataset

    data = tmp_path / "data"
    write_dataset(data, ["sword", "mug"], per_family=2, seed=0)
    monkeypatch.setenv("ATLASVAE_CACHE", str(tmp_path / "cache"))
    server = RawServer("--model", str(tiny_model))
    try:
        out = full_disk / "run"
        job_id = server.request("finetune", {"data": str(data), "out": str(out), "epochs": 1})["result"]["job_id"]
        while True:
            message = server.next_message()
            if message.get("method") == "job_done" and message["params"]["job_id"] == job_id:
                break
        assert message["params"]["state"] == "failed"
        error = message["params"]["error"]
        assert error.startswith(str(out)) and "No space left on device" in error and "internal error" not in error
        assert server.request("handshake")["result"]["model"]["name"] == "tiny"  # still serving
    finally:
        assert server.close() == 0
