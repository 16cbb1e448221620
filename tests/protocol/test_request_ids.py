"""Every request that gets an error gets its own id back when the id can be recovered, and a request sent
after `shutdown` is answered (refused) rather than dropped, so a client waiting on it is never left hanging."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from backend.serving.protocol import BACKEND_ERROR, INVALID_REQUEST, PARSE_ERROR

from .harness import HANG_GUARD_S, SMALL_MAX_BYTES, RawServer

PAD = "x" * (SMALL_MAX_BYTES + 5)


@pytest.fixture(scope="module")
def server() -> Iterator[RawServer]:
    server = RawServer("--max-message-bytes", str(SMALL_MAX_BYTES))
    yield server
    server.close()


@pytest.mark.parametrize("message, reply_id", [
    ({"jsonrpc": "2.0", "id": 41, "method": "handshake", "params": {"pad": PAD}}, 41),
    ({"jsonrpc": "2.0", "id": "req-42", "method": "handshake", "params": {"pad": PAD}}, "req-42"),
    ({"jsonrpc": "2.0", "method": "handshake", "params": {"pad": PAD}, "id": 43}, 43),
    ({"jsonrpc": "2.0", "method": "handshake", "params": {"pad": PAD, "inner": {"id": 7}}}, None),
], ids=["id first", "string id", "id last", "only a nested id"])
def test_a_line_too_long_is_answered_with_its_own_id(server: RawServer, message: dict[str, Any],
                                                     reply_id: Any) -> None:
    server.send(json.dumps(message).encode())
    reply = server.reply_to(reply_id)
    assert reply["error"]["code"] == INVALID_REQUEST
    assert f"longer than the {SMALL_MAX_BYTES}-byte limit" in reply["error"]["message"]
    assert server.request("handshake")["result"]["protocol_version"] == 1


@pytest.mark.parametrize("line, reply_id", [
    (b'{"jsonrpc": "2.0", "id": 44, "method": "sam', 44),
    (b'{"jsonrpc": "2.0", "id": "a\\"b", "method": "\xff"}', 'a"b'),
    (b'{"jsonrpc": "2.0", "method": "sample", "params": {"id": 5', None),
], ids=["truncated json", "invalid utf-8", "nested id only"])
def test_a_line_that_does_not_parse_keeps_a_recoverable_id(server: RawServer, line: bytes, reply_id: Any) -> None:
    server.send(line)
    reply = server.reply_to(reply_id)
    assert reply["error"]["code"] == PARSE_ERROR


def test_requests_after_shutdown_are_refused_by_id_then_the_channel_closes() -> None:
    server = RawServer()
    try:
        lines = [{"jsonrpc": "2.0", "id": 1, "method": "shutdown"},
                 {"jsonrpc": "2.0", "id": 2, "method": "handshake"},
                 {"jsonrpc": "2.0", "id": 3, "method": "sample", "params": {"count": 1}}]
        server.send(b"".join(json.dumps(m).encode() + b"\n" for m in lines))
        assert server.reply_to(1)["result"] == {}
        for request_id in (2, 3):
            error = server.reply_to(request_id)["error"]
            assert error["code"] == BACKEND_ERROR and "shutting down" in error["message"]
        assert server.messages.get(timeout=HANG_GUARD_S) is None  # stdout closed: the process is gone
    finally:
        assert server.close() == 0
