"""Request-time fits over the wire: fit/steps params, progress as a job, cancel by job id, clear refusals."""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import trimesh

from backend.limits import MAX_FIT_STEPS
from backend.serving.protocol import CANCELLED, INVALID_PARAMS

from .harness import HANG_GUARD_S, PYTHON, REPO

Notification = dict[str, Any]


@pytest.fixture(scope="module")
def fit_client(client_module: ModuleType, tiny_model: Path) -> Iterator[Any]:
    """Its own backend, so the notifications of these fits never reach another test's client."""
    client = client_module.BackendClient(PYTHON, REPO, args=["--device", "cpu", "--model", str(tiny_model)])
    client.start(timeout=HANG_GUARD_S)
    yield client
    client.stop()


@pytest.fixture(scope="module")
def ring(wire_module: ModuleType) -> dict[str, Any]:
    """A torus on a block, off-centre: a shape the tiny model never saw."""
    torus = trimesh.creation.torus(major_radius=1.0, minor_radius=0.25, major_sections=16, minor_sections=6)
    torus.apply_translation([0.0, 0.0, 1.0])
    both = trimesh.util.concatenate([torus, trimesh.creation.box(extents=(2.0, 0.6, 0.3))])
    return wire_module.encode_mesh(np.asarray(both.vertices) * 3.0 + 5.0, np.asarray(both.faces))


def wait_for(client: Any, predicate: Callable[[Notification], bool], seen: list[Notification]) -> Notification:
    """Drain notifications into `seen` until one there matches (hang guard only, not a timing assertion)."""
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        seen.extend(client.drain_notifications())
        for note in seen:
            if predicate(note):
                return note
        time.sleep(0.02)
    raise AssertionError(f"notification never came; saw {seen[-5:]}")


def test_fit_reports_progress_as_a_job_and_improves_the_chamfer(fit_client: Any, ring: dict) -> None:
    fit_client.drain_notifications()
    encoder = fit_client.call("reconstruct", {"mesh": ring, "resolution": 42})
    assert fit_client.drain_notifications() == []  # one encoder pass is not a job
    full = fit_client.call("reconstruct", {"mesh": ring, "resolution": 42, "fit": "full", "steps": 40})
    assert full["mesh"]["vertex_count"] == 42 and full["chamfer"] < encoder["chamfer"]
    seen: list[Notification] = []
    start = wait_for(fit_client, lambda n: n["params"].get("event") == "start", seen)
    job_id = start["params"]["job_id"]
    assert job_id.startswith("fit-") and start["params"]["method"] == "reconstruct"
    assert start["params"]["fit"] == "full" and isinstance(start["params"]["request_id"], int)
    done = wait_for(fit_client, lambda n: n["method"] == "job_done" and n["params"]["job_id"] == job_id, seen)
    assert done["params"]["state"] == "done"
    steps = [n["params"] for n in seen if n["method"] == "progress" and n["params"].get("event") == "step"]
    assert steps and all(s["job_id"] == job_id and s["steps"] == 40 and s["chamfer"] > 0 for s in steps)
    assert fit_client.call("job_status", {"job_id": job_id})["state"] == "done"


def test_cancel_ends_a_running_fit(fit_client: Any, client_module: ModuleType, ring: dict) -> None:
    fit_client.drain_notifications()
    future = fit_client.submit("reconstruct", {"mesh": ring, "fit": "full", "steps": MAX_FIT_STEPS})
    seen: list[Notification] = []
    step = wait_for(fit_client, lambda n: n["params"].get("event") == "step", seen)
    assert isinstance(future.request_id, int) and step["params"]["request_id"] == future.request_id
    job_id = step["params"]["job_id"]
    assert fit_client.call("cancel", {"job_id": job_id}) == {"job_id": job_id, "state": "cancelling"}
    with pytest.raises(client_module.BackendError) as cancelled:
        future.result(HANG_GUARD_S)
    assert cancelled.value.code == CANCELLED
    assert job_id in cancelled.value.message and f"of {MAX_FIT_STEPS}" in cancelled.value.message
    done = wait_for(fit_client, lambda n: n["method"] == "job_done" and n["params"]["job_id"] == job_id, seen)
    assert done["params"]["state"] == "cancelled"
    assert fit_client.call("job_status", {"job_id": job_id})["state"] == "cancelled"
    assert fit_client.call("sample", {"count": 1, "resolution": 42})["meshes"]  # the model thread is free


def test_latent_fit_for_interpolate_and_variations(fit_client: Any, ring: dict) -> None:
    fitted = fit_client.call("interpolate", {"mesh_a": ring, "mesh_b": ring, "steps": 2, "resolution": 42,
                                             "fit": "latent", "fit_steps": 5})["meshes"]
    plain = fit_client.call("interpolate", {"mesh_a": ring, "mesh_b": ring, "steps": 2, "resolution": 42})["meshes"]
    assert len(fitted) == 2 and fitted[0]["vertices"] != plain[0]["vertices"]
    seen: list[Notification] = []
    wait_for(fit_client, lambda n: n["method"] == "job_done" and n["params"]["state"] == "done", seen)
    varied = fit_client.call("variations", {"mesh": ring, "count": 2, "resolution": 42, "fit": "latent",
                                            "fit_steps": 3})["meshes"]
    assert len(varied) == 2


@pytest.mark.parametrize("method,params,name", [
    ("reconstruct", {"fit": "best"}, "fit"),
    ("reconstruct", {"fit": "full", "steps": 0}, "steps"),
    ("reconstruct", {"fit": "full", "steps": MAX_FIT_STEPS + 1}, "steps"),
    ("reconstruct", {"fit": "latent", "steps": 2.5}, "steps"),
    ("interpolate", {"fit": "full"}, "fit"),
    ("interpolate", {"fit_steps": -3}, "fit_steps"),
    ("variations", {"fit": "full"}, "fit"),
    ("variations", {"fit": "latent", "fit_steps": "many"}, "fit_steps"),
])
def test_bad_fit_params_are_refused_naming_the_param(fit_client: Any, client_module: ModuleType, ring: dict,
                                                      method: str, params: dict, name: str) -> None:
    meshes = {"mesh_a": ring, "mesh_b": ring} if method == "interpolate" else {"mesh": ring}
    with pytest.raises(client_module.BackendError) as refused:
        fit_client.call(method, {**meshes, **params})
    assert refused.value.code == INVALID_PARAMS and f"param '{name}'" in refused.value.message
    assert fit_client.call("handshake")["model"] is not None  # still serving
