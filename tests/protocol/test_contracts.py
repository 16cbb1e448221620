"""The add-on keeps its own copies of a few backend constants (it must not import the backend, which
needs torch). Each copy is pinned here to the backend's value, so changing one side alone fails."""

from __future__ import annotations

import backend
from backend import checkpoints, server
from blender_addon.bpyfree import client, locate


def test_protocol_version_matches() -> None:
    assert client.PROTOCOL_VERSION == backend.PROTOCOL_VERSION


def test_message_size_limit_matches() -> None:
    assert client.DEFAULT_MAX_MESSAGE_BYTES == server.DEFAULT_MAX_MESSAGE_BYTES


def test_model_folder_format_matches() -> None:
    assert (locate.MODEL_FORMAT, locate.CONFIG_FILE, locate.WEIGHTS_FILE) == \
        (checkpoints.FORMAT, checkpoints.CONFIG_FILE, checkpoints.WEIGHTS_FILE)
