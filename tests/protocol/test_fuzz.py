"""Fuzz one server process with >= 1000 random and mutated lines; it must answer each with valid
JSON-RPC and still serve a normal request at the end."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .harness import RawServer
from .test_errors import wire_mesh

MESSAGES_PER_EXAMPLE = 20
EXAMPLES = 60  # 60 x 20 = 1200 messages, all sent to the same process
_sentinels = itertools.count()
_sent = {"messages": 0}

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                         st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)

TEMPLATES: list[dict[str, Any]] = [
    {"method": "handshake", "params": {}},
    {"method": "list_models", "params": {}},
    {"method": "sample", "params": {"count": 2, "seed": 1, "temperature": 1.0, "resolution": 162}},
    {"method": "reconstruct", "params": {"mesh": wire_mesh(), "resolution": 42}},
    {"method": "interpolate", "params": {"mesh_a": wire_mesh(), "mesh_b": wire_mesh(), "steps": 3}},
    {"method": "variations", "params": {"mesh": wire_mesh(), "count": 2, "spread": 0.5, "seed": 3}},
    {"method": "load_model", "params": {"path": "/no/such/model"}},
    {"method": "job_status", "params": {"job_id": "job-1"}},
    {"method": "cancel", "params": {"job_id": "job-1"}},
    {"method": "release", "params": {}},
]


@st.composite
def mutated_request(draw: st.DrawFn) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": draw(st.integers(0, 10**6)),
                               **json.loads(json.dumps(draw(st.sampled_from(TEMPLATES))))}
    params = message["params"]
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["set_param", "drop_param", "drop_key", "set_key", "set_mesh_field"]))
        if action == "set_param" and params:
            params[draw(st.sampled_from(sorted(params)))] = draw(json_values)
        elif action == "drop_param" and params:
            params.pop(draw(st.sampled_from(sorted(params))))
        elif action == "drop_key":
            message.pop(draw(st.sampled_from(["jsonrpc", "id", "method", "params"])), None)
        elif action == "set_key":
            message[draw(st.sampled_from(["jsonrpc", "id", "method", "params", "extra"]))] = draw(json_values)
        elif action == "set_mesh_field" and isinstance(params.get("mesh"), dict):
            params["mesh"][draw(st.sampled_from(["vertices", "faces", "vertex_count", "face_count"]))] = \
                draw(st.one_of(json_values, st.binary(max_size=40).map(lambda b: b.hex())))
    line = json.dumps(message).encode()
    cut = draw(st.sampled_from(["none", "none", "truncate", "flip", "insert"]))
    if cut == "truncate":
        line = line[:draw(st.integers(0, len(line)))]
    elif cut == "flip" and line:
        at = draw(st.integers(0, len(line) - 1))
        line = line[:at] + bytes([line[at] ^ (1 << draw(st.integers(0, 7)))]) + line[at + 1:]
    elif cut == "insert":
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(st.binary(min_size=1, max_size=8)) + line[at:]
    return line


messages = st.one_of(
    mutated_request(),
    mutated_request(),
    st.binary(max_size=120),
    json_values.map(lambda v: json.dumps(v).encode()),
)


def _is_safe(line: bytes) -> bool:
    """Keep the fuzz from stopping the server or starting training jobs."""
    return b"shutdown" not in line and b"finetune" not in line


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(batch=st.lists(messages.filter(_is_safe), min_size=MESSAGES_PER_EXAMPLE, max_size=MESSAGES_PER_EXAMPLE))
def test_fuzzed_messages_get_valid_replies(bare_server: RawServer, batch: list[bytes]) -> None:
    # The sentinel goes through the model queue (release) so replies to earlier model calls precede it.
    sentinel = f"fuzz-sentinel-{next(_sentinels)}"
    payload = b"\n".join(batch) + b"\n" + json.dumps(
        {"jsonrpc": "2.0", "id": sentinel, "method": "release"}).encode() + b"\n"
    bare_server.send(payload)
    _sent["messages"] += len(batch)
    lines = payload.count(b"\n")
    replies = 0
    while True:
        message = bare_server.next_message()
        assert message.get("jsonrpc") == "2.0"
        assert "id" in message, f"unexpected notification {message}"
        assert ("result" in message) != ("error" in message), message
        if "error" in message:
            assert isinstance(message["error"]["code"], int) and message["error"]["message"]
        replies += 1
        if message["id"] == sentinel:
            assert "result" in message, message
            break
    assert replies <= lines


def test_server_still_serves_after_fuzz(bare_server: RawServer) -> None:
    """Runs after the fuzz test above (file order) on the same process."""
    assert _sent["messages"] >= 1000
    result = bare_server.request("handshake")["result"]
    assert result["protocol_version"] == 1 and bare_server.proc.poll() is None
