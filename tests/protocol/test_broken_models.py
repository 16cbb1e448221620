"""A shared model folder that is broken never takes the server down or half-loads: `load_model` answers an
error naming the file, the previous model stays loaded and the model thread keeps serving."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from backend.serving.protocol import BACKEND_ERROR

from .harness import RawServer


def _broken(tiny_model: Path, folder: Path, how: str) -> Path:
    shutil.copytree(tiny_model, folder)
    if how == "fifo":
        (folder / "model.safetensors").unlink()
        os.mkfifo(folder / "model.safetensors")
    else:
        config = json.loads((folder / "config.json").read_text())
        config["meta"] = "x"
        (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_a_broken_model_is_refused_and_the_previous_one_keeps_serving(tiny_model: Path, tmp_path: Path) -> None:
    server = RawServer("--model", str(tiny_model))
    try:
        for how, problem in (("fifo", "model.safetensors: not a regular file (a FIFO / named pipe)"),
                             ("meta", "config.json: 'meta' must be a JSON object, got 'x'")):
            folder = _broken(tiny_model, tmp_path / how, how)
            error = server.request("load_model", {"path": str(folder)})["error"]
            assert error["code"] == BACKEND_ERROR and error["message"] == f"{folder}/{problem}"
            assert server.request("handshake")["result"]["model"]["name"] == "tiny"
            assert len(server.request("sample", {"count": 1, "resolution": 42})["result"]["meshes"]) == 1
    finally:
        assert server.close() == 0


def test_a_broken_model_given_at_start_is_a_warning_not_a_crash(tiny_model: Path, tmp_path: Path) -> None:
    folder = _broken(tiny_model, tmp_path / "meta", "meta")
    server = RawServer("--model", str(folder))
    try:
        handshake = server.request("handshake")["result"]
        assert handshake["model"] is None
        assert handshake["warnings"] == [f"could not load the model given with --model: {folder}/config.json: "
                                         f"'meta' must be a JSON object, got 'x'"]
        assert server.request("load_model", {"path": str(tiny_model)})["result"]["model"]["name"] == "tiny"
    finally:
        assert server.close() == 0
