"""Bad input sent to a real server process: every one gets a JSON-RPC error naming the problem, and
the server keeps answering afterwards."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from backend.serving.protocol import (
    BACKEND_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, NO_MODEL, PARSE_ERROR,
)

from .harness import SMALL_MAX_BYTES, RawServer

VERTS = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype="<f4")
FACES = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]], dtype="<i4")


def wire_mesh(vertices: np.ndarray = VERTS, faces: np.ndarray = FACES) -> dict:
    return {"vertices": base64.b64encode(vertices.astype("<f4").tobytes()).decode(),
            "faces": base64.b64encode(faces.astype("<i4").tobytes()).decode(),
            "vertex_count": len(vertices), "face_count": len(faces)}


def request(request_id: int, method: str, params: object = None) -> bytes:
    message: dict = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode()


NAN_VERTS = VERTS.copy()
NAN_VERTS[2, 1] = np.inf
BAD_FACES = FACES.copy()
BAD_FACES[3, 2] = 4

CASES = [
    ("malformed json", b'{"jsonrpc": "2.0", "id": 1, "method": "sam', 1, PARSE_ERROR, "not valid JSON"),
    ("invalid utf-8", b'{"jsonrpc": "2.0", "id": 1, "method": "\xff"}', 1, PARSE_ERROR, "UTF-8"),
    ("malformed json, no id", b'{"jsonrpc": "2.0", "method": "sam', None, PARSE_ERROR, "not valid JSON"),
    ("non-object", b"42", None, INVALID_REQUEST, "expected a JSON object, got int"),
    ("batch", b"[]", None, INVALID_REQUEST, "batch requests are not supported"),
    ("wrong jsonrpc", json.dumps({"jsonrpc": "1.0", "id": 2, "method": "handshake"}).encode(), 2,
     INVALID_REQUEST, "'jsonrpc' must be \"2.0\""),
    ("method not a string", json.dumps({"jsonrpc": "2.0", "id": 3, "method": 5}).encode(), 3,
     INVALID_REQUEST, "'method' must be a non-empty string"),
    ("unknown method", request(4, "explode"), 4, METHOD_NOT_FOUND, "unknown method 'explode'"),
    ("params not an object", request(5, "sample", [1, 2]), 5, INVALID_PARAMS, "'params' must be an object"),
    ("missing param", request(6, "reconstruct", {}), 6, INVALID_PARAMS, "missing param 'mesh'"),
    ("wrong param type", request(7, "sample", {"count": "abc"}), 7, INVALID_PARAMS,
     "param 'count' must be an integer between 1 and 256, got 'abc'"),
    ("param out of range", request(8, "sample", {"temperature": -1}), 8, INVALID_PARAMS,
     "param 'temperature' must be a number between 0 and 10, got -1"),
    ("unknown param", request(9, "sample", {"colour": "red"}), 9, INVALID_PARAMS,
     "unknown param 'colour' for method 'sample'"),
    ("too many vertices requested", request(10, "sample", {"count": 256, "resolution": 200000}), 10,
     INVALID_PARAMS, "params 'count' x 'resolution'"),
    ("non-finite vertices", request(11, "reconstruct", {"mesh": wire_mesh(NAN_VERTS)}), 11, INVALID_PARAMS,
     "param 'mesh': 1 of 4 vertices are NaN or infinite"),
    ("faces past vertex count", request(12, "variations", {"mesh": wire_mesh(faces=BAD_FACES)}), 12,
     INVALID_PARAMS, "param 'mesh': faces refer to vertex 4 but there are only 4 vertices"),
    ("bad base64", request(13, "interpolate", {"mesh_a": wire_mesh(), "mesh_b": {**wire_mesh(), "faces": "*"}}),
     13, INVALID_PARAMS, "param 'mesh_b.faces' is not valid base64"),
    ("count mismatch", request(14, "reconstruct", {"mesh": {**wire_mesh(), "vertex_count": 3}}), 14,
     INVALID_PARAMS, "'mesh.vertex_count' = 3 needs 36"),
    ("no model", request(15, "sample", {"count": 1}), 15, NO_MODEL, "no model is loaded"),
    ("unknown job", request(16, "job_status", {"job_id": "job-99"}), 16, INVALID_PARAMS,
     "param 'job_id': no job 'job-99'"),
    ("cancel unknown job", request(17, "cancel", {"job_id": "nope"}), 17, INVALID_PARAMS, "no job 'nope'"),
    ("missing model folder", request(18, "load_model", {"path": "/no/such/model"}), 18, BACKEND_ERROR,
     "/no/such/model"),
    ("missing finetune data", request(19, "finetune", {"data": "/no/such/data", "out": "/tmp/x", "epochs": 1}),
     19, INVALID_PARAMS, "param 'data': folder '/no/such/data' does not exist"),
    ("finetune epochs missing", request(20, "finetune", {"data": "/", "out": "/tmp/x"}), 20, INVALID_PARAMS,
     "missing param 'epochs'"),
]


@pytest.mark.parametrize("line, reply_id, code, fragment", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_bad_input_gets_named_error_and_server_survives(bare_server: RawServer, line: bytes, reply_id: object,
                                                        code: int, fragment: str) -> None:
    bare_server.send(line)
    reply = bare_server.reply_to(reply_id)
    assert reply["jsonrpc"] == "2.0" and "result" not in reply
    assert reply["error"]["code"] == code
    assert fragment in reply["error"]["message"]
    assert bare_server.request("handshake")["result"]["protocol_version"] == 1


def test_oversized_line_is_rejected_and_skipped(bare_server: RawServer) -> None:
    huge = b'{"jsonrpc": "2.0", "id": 1, "method": "handshake", "params": {"pad": "' + b"x" * (SMALL_MAX_BYTES + 5)
    bare_server.send(huge + b'"}}')
    reply = bare_server.reply_to(1)
    assert reply["error"]["code"] == INVALID_REQUEST
    assert f"longer than the {SMALL_MAX_BYTES}-byte limit" in reply["error"]["message"]
    assert bare_server.request("handshake")["result"]["protocol_version"] == 1


def test_notification_gets_no_reply(bare_server: RawServer) -> None:
    bare_server.send(b'{"jsonrpc": "2.0", "method": "handshake"}')
    bare_server.send(b'{"jsonrpc": "2.0", "method": "sample", "params": {"count": "x"}}')
    bare_server.send(b"   ")
    assert "result" in bare_server.request("list_models")  # reply_to fails on any other reply first


def test_release_without_model(bare_server: RawServer) -> None:
    result = bare_server.request("release")["result"]
    assert result["released"] is False
    assert result["rss_before"] > 0 and result["rss_after"] > 0


def test_model_calls_without_model_name_load_model(bare_server: RawServer) -> None:
    for method, params in [("reconstruct", {"mesh": wire_mesh()}),
                           ("interpolate", {"mesh_a": wire_mesh(), "mesh_b": wire_mesh()}),
                           ("variations", {"mesh": wire_mesh()})]:
        error = bare_server.request(method, params)["error"]
        assert error["code"] == NO_MODEL and "load_model" in error["message"]


def test_load_model_names_a_broken_folder(bare_server: RawServer, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    error = bare_server.request("load_model", {"path": str(tmp_path)})["error"]
    assert error["code"] == BACKEND_ERROR and str(tmp_path) in error["message"]


def test_template_uvs_need_no_model_and_name_a_bad_template(bare_server: RawServer) -> None:
    reply = bare_server.request("template_uvs", {"template": "sphere", "resolution": 642})
    uvs = np.frombuffer(base64.b64decode(reply["result"]["uvs"]), dtype="<f4").reshape(-1, 2)
    assert reply["result"]["corner_count"] == len(uvs) == 1280 * 3
    bad = bare_server.request("template_uvs", {"template": "torus"})
    assert bad["error"]["code"] == INVALID_PARAMS and "template" in bad["error"]["message"]
