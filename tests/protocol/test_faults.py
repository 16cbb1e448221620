"""Faults inside the backend (patched in before main() runs): stray prints, OOM, unexpected exceptions.

The protocol channel must stay clean and the server must keep serving after each.
"""

from __future__ import annotations

import json
from pathlib import Path

from backend.serving.protocol import BACKEND_ERROR, OUT_OF_MEMORY

from .harness import RawServer

FAULTS = '''
import os
from backend.serving.service import ModelService

def noisy_load(self, path):
    print("stray print from a library")
    os.write(1, b"stray write to fd 1\\n")
    return ORIGINAL_LOAD(self, path)

def oom_sample(self, count, **kwargs):
    if count == 2:
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
    if count == 3:
        raise MemoryError()
    if count == 4:
        raise KeyError("surprise")
    return ORIGINAL_SAMPLE(self, count, **kwargs)

ORIGINAL_LOAD, ORIGINAL_SAMPLE = ModelService.load, ModelService.sample
ModelService.load, ModelService.sample = noisy_load, oom_sample
'''


def test_stray_output_never_reaches_protocol_channel(tiny_model: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server = RawServer("--model", str(tiny_model), "--log-file", str(log), prelude=FAULTS)
    assert server.request("handshake")["result"]["model"]["name"] == "tiny"
    assert server.request("load_model", {"path": str(tiny_model)})["result"]["model"]["name"] == "tiny"
    assert server.close() == 0
    assert all(json.loads(line)["jsonrpc"] == "2.0" for line in server.raw_lines)
    assert "stray print from a library" in server.stderr and "stray write to fd 1" in server.stderr
    assert "loaded model" in log.read_text()


def test_oom_and_unexpected_errors_keep_server_alive(tiny_model: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server = RawServer("--model", str(tiny_model), "--log-file", str(log), prelude=FAULTS)
    try:
        oom = server.request("sample", {"count": 2})["error"]
        assert oom["code"] == OUT_OF_MEMORY
        assert "out of memory on cpu during 'sample'" in oom["message"]
        assert "lower the resolution or count" in oom["message"] and "Tried to allocate" in oom["message"]
        assert server.request("sample", {"count": 3})["error"]["code"] == OUT_OF_MEMORY
        unexpected = server.request("sample", {"count": 4})["error"]
        assert unexpected["code"] == BACKEND_ERROR
        assert "internal error in 'sample': KeyError: 'surprise'" in unexpected["message"]
        assert len(server.request("sample", {"count": 1, "resolution": 42})["result"]["meshes"]) == 1
    finally:
        assert server.close() == 0
    text = log.read_text()
    assert "Traceback" in text and "KeyError: 'surprise'" in text
