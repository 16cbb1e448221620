"""In-process tests of the protocol module, the add-on's wire codec and device resolution."""

from __future__ import annotations

import base64
import json
import subprocess
from types import ModuleType

import numpy as np
import pytest

from backend import PROTOCOL_VERSION
from backend.data.meshio import Mesh
from backend.errors import ConfigError
from backend.serving.protocol import (
    INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, Param, Request, RpcError, decode_mesh, encode_mesh, error_line,
    notification_line, parse_request, result_line, validate_params,
)

from .harness import PYTHON, REPO

TETRA = Mesh(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64),
             np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]], dtype=np.int64))


def test_parse_valid_request_and_notification() -> None:
    parsed = parse_request(b'{"jsonrpc": "2.0", "id": 7, "method": "sample", "params": {"count": 2}}')
    assert parsed == Request(method="sample", params={"count": 2}, id=7, is_notification=False)
    note = parse_request('{"jsonrpc": "2.0", "method": "handshake"}')
    assert isinstance(note, Request) and note.is_notification and note.params == {}


@pytest.mark.parametrize("line, code, fragment", [
    (b"{not json", PARSE_ERROR, "not valid JSON"),
    (b"\xff\xfe", PARSE_ERROR, "UTF-8"),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"a": NaN}}', PARSE_ERROR, "NaN"),
    (b"[1, 2]", INVALID_REQUEST, "batch"),
    (b'"hello"', INVALID_REQUEST, "got str"),
    (b'{"id": 1, "method": "sample"}', INVALID_REQUEST, "'jsonrpc'"),
    (b'{"jsonrpc": "2.0", "id": 1}', INVALID_REQUEST, "'method'"),
    (b'{"jsonrpc": "2.0", "id": [1], "method": "sample"}', INVALID_REQUEST, "'id'"),
    (b'{"jsonrpc": "2.0", "id": true, "method": "sample"}', INVALID_REQUEST, "'id'"),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "sample", "params": [1]}', INVALID_PARAMS, "named params"),
])
def test_parse_errors_name_the_problem(line: bytes, code: int, fragment: str) -> None:
    parsed = parse_request(line)
    assert isinstance(parsed, RpcError)
    assert parsed.code == code
    assert fragment in parsed.message


def test_parse_error_keeps_request_id_when_known() -> None:
    parsed = parse_request(b'{"jsonrpc": "1.0", "id": "abc", "method": "sample"}')
    assert isinstance(parsed, RpcError) and parsed.request_id == "abc"
    assert json.loads(parsed.to_line())["id"] == "abc"


def test_lines_are_single_json_objects() -> None:
    line = result_line(3, {"text": "line\nbreak \u2028", "value": float("nan"), "arr": np.arange(2)})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"jsonrpc": "2.0", "id": 3, "result": {"text": "line\nbreak \u2028",
                                                                     "value": None, "arr": [0, 1]}}
    assert json.loads(error_line(None, -32000, "boom")) == {"jsonrpc": "2.0", "id": None,
                                                            "error": {"code": -32000, "message": "boom"}}
    assert json.loads(notification_line("progress", {"job_id": "job-1"})) == {
        "jsonrpc": "2.0", "method": "progress", "params": {"job_id": "job-1"}}


SPECS = [Param("count", "int", default=1, minimum=1, maximum=256), Param("scale", "float", default=1.0,
                                                                           minimum=0.0, maximum=10.0),
         Param("path", "str", required=True), Param("flag", "bool", default=True),
         Param("prior", "str", default="auto", choices=("auto", "gmm"))]


def test_validate_params_fills_defaults_and_converts() -> None:
    assert validate_params({"path": "x", "scale": 2}, SPECS, "m") == {
        "count": 1, "scale": 2.0, "path": "x", "flag": True, "prior": "auto"}


@pytest.mark.parametrize("params, message", [
    ({"path": "x", "count": "abc"}, "param 'count' must be an integer between 1 and 256, got 'abc'"),
    ({"path": "x", "count": 0}, "param 'count' must be an integer between 1 and 256, got 0"),
    ({"path": "x", "count": True}, "param 'count' must be an integer between 1 and 256, got True"),
    ({"path": "x", "count": 2.5}, "param 'count' must be an integer between 1 and 256, got 2.5"),
    ({"path": "x", "scale": 11}, "param 'scale' must be a number between 0 and 10, got 11"),
    ({"path": 5}, "param 'path' must be a non-empty string, got 5"),
    ({"path": ""}, "param 'path' must be a non-empty string, got ''"),
    ({"path": "x", "flag": 1}, "param 'flag' must be true or false, got 1"),
    ({"path": "x", "prior": "x"}, "param 'prior' must be one of 'auto', 'gmm', got 'x'"),
    ({}, "missing param 'path' for method 'm'"),
    ({"path": "x", "colour": 1}, "unknown param 'colour' for method 'm'"),
])
def test_validate_params_messages(params: dict, message: str) -> None:
    with pytest.raises(RpcError) as info:
        validate_params(params, SPECS, "m")
    assert info.value.code == INVALID_PARAMS
    assert message in info.value.message


def test_mesh_round_trip_is_little_endian_float32_int32() -> None:
    wire = encode_mesh(TETRA)
    assert wire["vertex_count"] == 4 and wire["face_count"] == 4
    raw = base64.b64decode(wire["vertices"])
    assert len(raw) == 4 * 3 * 4
    assert np.array_equal(np.frombuffer(raw, "<f4").reshape(4, 3), TETRA.vertices.astype(np.float32))
    assert np.array_equal(np.frombuffer(base64.b64decode(wire["faces"]), "<i4").reshape(4, 3), TETRA.faces)
    back = decode_mesh(wire, "mesh")
    assert np.array_equal(back.vertices, TETRA.vertices) and np.array_equal(back.faces, TETRA.faces)


def _bad_wire(**changes: object) -> dict:
    wire = encode_mesh(TETRA)
    wire.update(changes)
    return wire


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(array.tobytes()).decode()


@pytest.mark.parametrize("wire, fragment", [
    ("nope", "param 'm' must be a mesh object"),
    (_bad_wire(vertex_count=5), "param 'm.vertices' holds 48 bytes but 'm.vertex_count' = 5 needs 60"),
    (_bad_wire(face_count=-1), "param 'm.face_count' must be a non-negative integer"),
    (_bad_wire(faces="@@not base64@@"), "param 'm.faces' is not valid base64"),
    (_bad_wire(vertices=None), "param 'm.vertices' must be a base64 string"),
    (_bad_wire(colour=1), "param 'm' has unknown member 'colour'"),
    (_bad_wire(vertices=_b64(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, np.nan]], "<f4")), ),
     "param 'm': 1 of 4 vertices are NaN or infinite"),
    (_bad_wire(faces=_b64(np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 9]], "<i4"))),
     "param 'm': faces refer to vertex 9 but there are only 4 vertices"),
])
def test_decode_mesh_errors_name_the_param(wire: object, fragment: str) -> None:
    with pytest.raises(RpcError) as info:
        decode_mesh(wire, "m")
    assert info.value.code == INVALID_PARAMS
    assert fragment in info.value.message


def test_addon_wire_matches_protocol(wire_module: ModuleType) -> None:
    ours = wire_module.encode_mesh(TETRA.vertices.astype(np.float32), TETRA.faces.astype(np.int32))
    assert ours == encode_mesh(TETRA)
    vertices, faces = wire_module.decode_mesh(encode_mesh(TETRA))
    assert vertices.dtype == np.float32 and faces.dtype == np.int32
    assert vertices.shape == (4, 3) and faces.shape == (4, 3)
    assert np.array_equal(vertices, TETRA.vertices) and np.array_equal(faces, TETRA.faces)
    vertices[0, 0] = 5.0  # decoded arrays are writable copies


@pytest.mark.parametrize("vertices, faces, fragment", [
    (np.zeros((4, 2)), TETRA.faces, "vertices must have shape (V, 3)"),
    (TETRA.vertices, np.zeros((2, 4), int), "faces must have shape (F, 3)"),
    (TETRA.vertices, -TETRA.faces - 1, "non-negative integer"),
    (TETRA.vertices, TETRA.faces.astype(float), "non-negative integer"),
])
def test_addon_wire_rejects_bad_arrays(wire_module: ModuleType, vertices: np.ndarray, faces: np.ndarray,
                                       fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        wire_module.encode_mesh(vertices, faces)
    assert fragment in str(info.value)


@pytest.mark.parametrize("change, fragment", [
    ({"vertex_count": 3}, "needs 36"),
    ({"faces": "!!"}, "not valid base64"),
    ({"faces": _b64(np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 4]], "<i4"))}, "outside 0..3"),
])
def test_addon_wire_decode_rejects_bad_dicts(wire_module: ModuleType, change: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        wire_module.decode_mesh({**encode_mesh(TETRA), **change})
    assert fragment in str(info.value)


def test_client_imports_without_bpy_or_torch() -> None:
    code = ("import sys; from blender_addon.bpyfree import backend_process, client, session, wire; "
            "bad = [m for m in ('bpy', 'torch') if m in sys.modules]; assert not bad, bad; "
            "print(client.PROTOCOL_VERSION)")
    out = subprocess.run([PYTHON, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert int(out.stdout) == PROTOCOL_VERSION


def test_resolve_device_choices() -> None:
    import torch

    from backend.device import describe_device, resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    auto = resolve_device("auto")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert auto.type == expected
    assert describe_device(auto).startswith(expected)
    with pytest.raises(ConfigError, match="'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device 'cuda' is not available"):
            resolve_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(ConfigError, match="device 'mps' is not available"):
            resolve_device("mps")
