"""JSON-RPC 2.0 framing for the stdio backend: parsing, replies, error codes, mesh encoding, params.

One JSON object per line, UTF-8. Kept free of torch so the protocol can be tested and reused cheaply.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Mapping, Sequence

import numpy as np

from backend.data.meshio import Mesh, validate_mesh
from backend.errors import MeshError
from backend.surface import ShapeMesh

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
BACKEND_ERROR = -32000
BUSY = -32001
OUT_OF_MEMORY = -32002
NO_MODEL = -32003
CANCELLED = -32004

RequestId = int | str | None
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # longest request line by default (the add-on's client keeps a copy)
ID_SCAN_BYTES = 4096  # how much of each end of an unparseable or oversized line is searched for its id
_LAST_KEY_ID = re.compile(r'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")\s*\}\s*$')


class RpcError(Exception):
    """A JSON-RPC error to send back: code, a message naming the problem, and the request id if known."""

    def __init__(self, code: int, message: str, request_id: RequestId = None, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.data = data

    def to_line(self) -> bytes:
        """The error response line for this error."""
        return error_line(self.request_id, self.code, self.message, self.data)


def invalid_params(message: str) -> RpcError:
    """Shorthand for an invalid-params error; `message` must name the param."""
    return RpcError(INVALID_PARAMS, message)


@dataclass(frozen=True)
class Request:
    """A well-formed request; `is_notification` when it carried no id (so it gets no reply)."""

    method: str
    params: dict[str, Any]
    id: RequestId = None
    is_notification: bool = False


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def recover_id(head: bytes, tail: bytes = b"") -> RequestId:
    """The top-level "id" of a message that cannot be parsed whole, from its first or last bytes; else None.

    The head is scanned as JSON tokens (so an "id" nested in params or inside a string is not taken); the
    tail only yields an id that is the object's last member.
    """
    found = _top_level_id(head.decode("utf-8", "replace"))
    if found is None and tail:
        match = _LAST_KEY_ID.search(tail.decode("utf-8", "replace"))
        if match:
            with_value = json.loads(match.group(1))
            found = with_value if isinstance(with_value, (int, str)) else None
    return found


def _top_level_id(text: str) -> RequestId:
    decoder = json.JSONDecoder()
    depth, i = 0, 0
    while i < len(text):
        char = text[i]
        if char == '"':
            try:
                key, end = decoder.raw_decode(text, i)
            except ValueError:
                return None
            colon = end + len(text[end:]) - len(text[end:].lstrip())
            if depth == 1 and key == "id" and text[colon:colon + 1] == ":":
                start = colon + 1 + len(text[colon + 1:]) - len(text[colon + 1:].lstrip())
                try:
                    value, _ = decoder.raw_decode(text, start)
                except ValueError:
                    return None
                return value if isinstance(value, (int, str)) and not isinstance(value, bool) else None
            i = end
            continue
        depth += char in "{["
        depth -= char in "}]"
        i += 1
    return None


def parse_request(line: bytes | str) -> Request | RpcError:
    """Parse one protocol line into a Request, or the RpcError to answer it with (never raises)."""
    raw = line.encode("utf-8", "replace") if isinstance(line, str) else bytes(line)
    try:
        text = line.decode("utf-8") if isinstance(line, (bytes, bytearray)) else line
    except UnicodeDecodeError as exc:
        return RpcError(PARSE_ERROR, f"parse error: line is not valid UTF-8 ({exc.reason} at byte {exc.start})",
                        recover_id(raw[:ID_SCAN_BYTES], raw[-ID_SCAN_BYTES:]))
    try:
        message = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        return RpcError(PARSE_ERROR, f"parse error: line is not valid JSON ({exc})",
                        recover_id(raw[:ID_SCAN_BYTES], raw[-ID_SCAN_BYTES:]))
    if isinstance(message, list):
        return RpcError(INVALID_REQUEST, "invalid request: batch requests are not supported, send one object a line")
    if not isinstance(message, dict):
        return RpcError(INVALID_REQUEST, f"invalid request: expected a JSON object, got {type(message).__name__}")

    has_id = "id" in message
    request_id = message.get("id")
    if has_id and (isinstance(request_id, bool) or not isinstance(request_id, (int, str, type(None)))):
        return RpcError(INVALID_REQUEST, f"invalid request: 'id' must be a string, integer or null, "
                                         f"got {_short_repr(request_id)}")
    if message.get("jsonrpc") != "2.0":
        return RpcError(INVALID_REQUEST, f"invalid request: 'jsonrpc' must be \"2.0\", "
                                         f"got {_short_repr(message.get('jsonrpc'))}", request_id)
    method = message.get("method")
    if not isinstance(method, str) or not method:
        return RpcError(INVALID_REQUEST, f"invalid request: 'method' must be a non-empty string, "
                                         f"got {_short_repr(method)}", request_id)
    params = message.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return RpcError(INVALID_PARAMS, f"invalid params: 'params' must be an object of named params, "
                                        f"got {type(params).__name__}", request_id)
    return Request(method=method, params=params, id=request_id, is_notification=not has_id)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def to_jsonable(value: Any) -> Any:
    """Convert results to plain JSON types: paths to str, numpy to Python, non-finite floats to None."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii") + b"\n"


def result_line(request_id: RequestId, result: Any) -> bytes:
    """A success response line (with trailing newline)."""
    return _dumps({"jsonrpc": "2.0", "id": request_id, "result": to_jsonable(result)})


def error_line(request_id: RequestId, code: int, message: str, data: Any = None) -> bytes:
    """An error response line (with trailing newline)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = to_jsonable(data)
    return _dumps({"jsonrpc": "2.0", "id": request_id, "error": error})


def notification_line(method: str, params: Mapping[str, Any]) -> bytes:
    """A notification line (no id): used for job progress and completion events."""
    return _dumps({"jsonrpc": "2.0", "method": method, "params": to_jsonable(params)})


def encode_mesh(mesh: Mesh) -> dict[str, Any]:
    """Mesh -> wire dict: base64 little-endian float32 vertices and int32 faces plus their counts."""
    vertices = np.ascontiguousarray(mesh.vertices, dtype="<f4").reshape(-1, 3)
    faces = np.ascontiguousarray(mesh.faces, dtype="<i4").reshape(-1, 3)
    out = {
        "vertices": base64.b64encode(vertices.tobytes()).decode("ascii"),
        "faces": base64.b64encode(faces.tobytes()).decode("ascii"),
        "vertex_count": int(vertices.shape[0]),
        "face_count": int(faces.shape[0]),
    }
    if isinstance(mesh, ShapeMesh):  # a result: which surface it is and what closing it dropped
        out.update(surface=mesh.surface, pieces_dropped=mesh.pieces_dropped)
        if mesh.latent is not None:  # and where it came from, to decode it again in place
            out.update(latent=encode_latent(mesh.latent), scale=mesh.scale, offset=list(mesh.offset),
                       label=mesh.label)
    return out


def encode_latent(latent: np.ndarray) -> str:
    """A latent code (D,) -> base64 little-endian float32, as mesh arrays travel."""
    return base64.b64encode(np.ascontiguousarray(latent, dtype="<f4").reshape(-1).tobytes()).decode("ascii")


def _count(obj: Mapping[str, Any], key: str, name: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid_params(f"param '{name}.{key}' must be a non-negative integer, got {_short_repr(value)}")
    return value


def _base64(value: Any, name: str, kind: str = "a base64 string") -> bytes:
    """The bytes of a base64 field of a request; an invalid-params error naming param `name` otherwise."""
    if not isinstance(value, str):
        raise invalid_params(f"param '{name}' must be {kind}, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid_params(f"param '{name}' is not valid base64 ({exc})") from None


def _array(obj: Mapping[str, Any], key: str, name: str, dtype: str, count: int) -> np.ndarray:
    raw = _base64(obj.get(key), f"{name}.{key}")
    expected = count * 3 * 4
    if len(raw) != expected:
        count_key = "vertex_count" if key == "vertices" else "face_count"
        raise invalid_params(f"param '{name}.{key}' holds {len(raw)} bytes but '{name}.{count_key}' = {count} "
                             f"needs {expected} (3 x 4 bytes each)")
    return np.frombuffer(raw, dtype=dtype).reshape(count, 3)


def decode_mesh(obj: Any, name: str) -> Mesh:
    """Wire dict -> validated Mesh; any problem raises an invalid-params RpcError naming param `name`."""
    if not isinstance(obj, Mapping):
        raise invalid_params(f"param '{name}' must be a mesh object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - {"vertices", "faces", "vertex_count", "face_count"})
    if unknown:
        raise invalid_params(f"param '{name}' has unknown member {unknown[0]!r}")
    vertex_count = _count(obj, "vertex_count", name)
    face_count = _count(obj, "face_count", name)
    vertices = _array(obj, "vertices", name, "<f4", vertex_count)
    faces = _array(obj, "faces", name, "<i4", face_count)
    try:
        return validate_mesh(vertices.astype(np.float64), faces.astype(np.int64), name=f"param '{name}'")
    except MeshError as exc:
        raise invalid_params(str(exc)) from None


@dataclass(frozen=True)
class Param:
    """One named param: kind is "int", "float", "str", "bool", "mesh", "latent" (a base64 float32 code, every
    value finite), "list" (of `item`, `length` = (fewest, most) items) or "object" (of `fields`); bounds are
    inclusive."""

    name: str
    kind: str
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    item: "Param | None" = None
    length: tuple[int, int] | None = None
    fields: tuple["Param", ...] = ()


_KIND_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
               "mesh": "a mesh object", "latent": "a base64 string of little-endian float32 values",
               "list": "a list", "object": "an object"}


def _expectation(spec: Param) -> str:
    text = _KIND_WORDS[spec.kind]
    if spec.kind == "list" and spec.item is not None:
        low, high = spec.length or (0, None)
        count = f"{low}" if low == high else f"{low} to {high}" if high is not None else f"at least {low}"
        return f"a list of {count} items, each {_expectation(spec.item)}"
    if spec.kind == "object":
        return "an object {" + ", ".join(f"{f.name}{'' if f.required else '?'}: {_expectation(f)}"
                                         for f in spec.fields) + "}"
    if spec.choices is not None:
        return "one of " + ", ".join(repr(c) for c in spec.choices)
    if spec.minimum is not None and spec.maximum is not None:
        return f"{text} between {_fmt(spec.minimum)} and {_fmt(spec.maximum)}"
    if spec.minimum is not None:
        return f"{text} >= {_fmt(spec.minimum)}"
    if spec.maximum is not None:
        return f"{text} <= {_fmt(spec.maximum)}"
    if spec.kind == "str":
        return "a non-empty string"
    return text


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def decode_latent(value: Any, name: str) -> np.ndarray:
    """A base64 little-endian float32 latent code -> float64 (D,); an invalid-params error naming `name` if it
    is not base64, not whole float32 values, empty, or holds NaN or infinity."""
    raw = _base64(value, name, _KIND_WORDS["latent"])
    if not raw or len(raw) % 4:
        raise invalid_params(f"param '{name}' holds {len(raw)} bytes: a latent code is one or more float32 "
                             f"values (4 bytes each)")
    code = np.frombuffer(raw, dtype="<f4").astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(code))
    if len(bad):
        raise invalid_params(f"param '{name}' holds NaN or infinite values (first at index {int(bad[0])})")
    return code


def _check_one(spec: Param, value: Any, name: str | None = None) -> Any:
    name = spec.name if name is None else name

    def fail() -> RpcError:
        return invalid_params(f"param '{name}' must be {_expectation(spec)}, got {_short_repr(value)}")

    if spec.kind == "mesh":
        return decode_mesh(value, name)
    if spec.kind == "latent":
        return decode_latent(value, name)
    if spec.kind == "list":
        low, high = spec.length or (0, None)
        if not isinstance(value, list) or len(value) < low or (high is not None and len(value) > high):
            raise fail()
        if spec.item is None:
            raise ValueError(f"list param {spec.name!r} declares no item")
        return [_check_one(spec.item, v, f"{name}[{i}]") for i, v in enumerate(value)]
    if spec.kind == "object":
        if not isinstance(value, dict):
            raise fail()
        return _check_fields(value, spec.fields, f"param '{name}'", f"{name}.")
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise fail()
        return value
    if spec.kind == "str":
        if not isinstance(value, str) or not value or "\x00" in value:
            raise fail()
        if spec.choices is not None and value not in spec.choices:
            raise fail()
        return value
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail()
    elif spec.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise fail()
        value = float(value)
    else:
        raise ValueError(f"unknown param kind {spec.kind!r} for {spec.name!r}")
    if (spec.minimum is not None and value < spec.minimum) or (spec.maximum is not None and value > spec.maximum):
        raise fail()
    return value


def _check_fields(params: Mapping[str, Any], specs: Sequence[Param], where: str, prefix: str = "") -> dict[str, Any]:
    """Check named values against specs: unknown names, missing required ones, types and ranges; fill defaults."""
    known = {spec.name for spec in specs}
    for key in params:
        if key not in known:
            expected = ", ".join(sorted(known)) or "none"
            raise invalid_params(f"unknown param '{prefix}{key}' for {where} (accepted: {expected})")
    values: dict[str, Any] = {}
    for spec in specs:
        if spec.name not in params or params[spec.name] is None:
            if spec.required:
                raise invalid_params(f"missing param '{prefix}{spec.name}' for {where}: "
                                     f"it must be {_expectation(spec)}")
            values[spec.name] = spec.default
            continue
        values[spec.name] = _check_one(spec, params[spec.name], prefix + spec.name)
    return values


def validate_params(params: Mapping[str, Any], specs: Sequence[Param], method: str) -> dict[str, Any]:
    """Check params against specs: unknown names, missing required ones, types and ranges; fill defaults."""
    return _check_fields(params, specs, f"method '{method}'")
