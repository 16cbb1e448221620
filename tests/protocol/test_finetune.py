"""Fine-tune jobs through the client: progress notifications, busy, cancel, completion, failure."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

import pytest

from backend.serving.protocol import BUSY
from backend.training.config import FINETUNE_LR

from .harness import HANG_GUARD_S, PYTHON, REPO

Notification = dict[str, Any]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from backend.data.procedural import write_dataset

    root = tmp_path_factory.mktemp("finetune_data")
    write_dataset(root, ["sword", "mug"], per_family=3, seed=0)
    return root


@pytest.fixture(scope="module")
def job_client(client_module: ModuleType, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Any]:
    """Its own backend, so fine-tuning cannot change the model other tests expect; point cache in tmp."""
    cache = tmp_path_factory.mktemp("point_cache")
    client = client_module.BackendClient(PYTHON, REPO, args=["--device", "cpu", "--model", str(tiny_model)],
                                         env={"ATLASVAE_CACHE": str(cache)})
    client.start(timeout=HANG_GUARD_S)
    yield client
    client.stop()


def wait_for(client: Any, predicate: Callable[[Notification], bool], seen: list[Notification]) -> Notification:
    """Drain notifications into `seen` until one matches (hang guard only, not a timing assertion)."""
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        for note in client.drain_notifications():
            seen.append(note)
            if predicate(note):
                return note
        time.sleep(0.02)
    raise AssertionError(f"notification never came; saw {seen[-5:]}")


def is_step(job_id: str) -> Callable[[Notification], bool]:
    return lambda n: n["method"] == "progress" and n["params"]["job_id"] == job_id and n["params"]["event"] == "step"


def is_done(job_id: str) -> Callable[[Notification], bool]:
    return lambda n: n["method"] == "job_done" and n["params"]["job_id"] == job_id


def test_cancel_mid_job_keeps_loadable_checkpoint(job_client: Any, client_module: ModuleType, dataset: Path,
                                                  tmp_path: Path, tiny_model: Path) -> None:
    out = tmp_path / "cancelled"
    job_id = job_client.call("finetune", {"data": str(dataset), "out": str(out), "epochs": 1000})["job_id"]
    seen: list[Notification] = []
    step = wait_for(job_client, is_step(job_id), seen)
    assert step["params"]["epochs"] == 1000 and step["params"]["loss"] > 0

    with pytest.raises(client_module.BackendError) as busy:
        job_client.call("finetune", {"data": str(dataset), "out": str(tmp_path / "second"), "epochs": 1})
    assert busy.value.code == BUSY and job_id in busy.value.message
    assert job_client.call("sample", {"count": 1, "resolution": 42})["meshes"]  # quick calls still served

    assert job_client.call("cancel", {"job_id": job_id}) == {"job_id": job_id, "state": "cancelling"}
    done = wait_for(job_client, is_done(job_id), seen)
    assert done["params"]["state"] == "cancelled" and "error" not in done["params"]
    status = job_client.call("job_status", {"job_id": job_id})
    assert status["state"] == "cancelled" and status["last_event"]["event"] == "done"
    assert job_client.call("cancel", {"job_id": job_id})["state"] == "cancelled"
    assert Path(job_client.call("handshake")["model"]["path"]) == tiny_model  # a cancelled job loads nothing

    loaded = job_client.call("load_model", {"path": str(out)})["model"]
    assert loaded["config"]["latent_dim"] == 8  # initialised from the loaded tiny model
    assert len(job_client.call("sample", {"count": 1, "resolution": 42})["meshes"]) == 1


def test_finished_job_loads_new_model(job_client: Any, dataset: Path, tmp_path: Path, tiny_model: Path) -> None:
    out = tmp_path / "tuned"
    job_id = job_client.call("finetune", {"data": str(dataset), "out": str(out), "epochs": 1,
                                          "init": str(tiny_model), "name": "tuned-tiny"})["job_id"]
    seen: list[Notification] = []
    done = wait_for(job_client, is_done(job_id), seen)
    assert done["params"]["state"] == "done", done
    result = done["params"]["result"]
    assert result["state"] == "finished" and Path(result["out"]) == out
    assert result["model"]["name"] == "tuned-tiny" and Path(result["model"]["path"]) == out
    assert any(is_step(job_id)(n) for n in seen)
    assert Path(job_client.call("handshake")["model"]["path"]) == out
    assert job_client.call("job_status", {"job_id": job_id})["state"] == "done"
    recorded = json.loads((out / "config.json").read_text())["meta"]["train_config"]
    assert recorded["lr"] == FINETUNE_LR, "the server fine-tunes at the CLI's fine-tuning rate"


def test_failed_job_reports_error(job_client: Any, dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("not a model")
    job_id = job_client.call("finetune", {"data": str(dataset), "out": str(tmp_path), "epochs": 1,
                                          "load": False})["job_id"]
    done = wait_for(job_client, is_done(job_id), [])
    assert done["params"]["state"] == "failed"
    assert str(tmp_path) in done["params"]["error"] and "not empty" in done["params"]["error"]
    assert job_client.call("job_status", {"job_id": job_id})["error"] == done["params"]["error"]
