"""The add-on keeps its own copies of a few backend constants and rules (it must not import the backend,
which needs torch). Each copy is pinned here to the backend's, so changing one side alone fails."""

from __future__ import annotations

import json
from pathlib import Path

import backend
from backend import checkpoints
from backend.serving import protocol
from blender_addon.bpyfree import client, locate


def test_protocol_version_matches() -> None:
    assert client.PROTOCOL_VERSION == backend.PROTOCOL_VERSION


def test_message_size_limit_matches() -> None:
    assert client.DEFAULT_MAX_MESSAGE_BYTES == protocol.DEFAULT_MAX_MESSAGE_BYTES


def test_model_folder_format_matches() -> None:
    assert (locate.MODEL_FORMAT, locate.CONFIG_FILE, locate.WEIGHTS_FILE) == \
        (checkpoints.FORMAT, checkpoints.CONFIG_FILE, checkpoints.WEIGHTS_FILE)


def test_model_discovery_lists_the_same_models_in_the_same_order(tmp_path: Path) -> None:
    from backend.serving.service import ModelService

    bundled, user = tmp_path / "bundled", tmp_path / "user"
    for root, folder, name in [(bundled, "b_model", "Beta"), (bundled, "A_model", None), (user, "c_model", "gamma"),
                               (user, "Z_model", None)]:
        (root / folder).mkdir(parents=True)
        meta = {"name": name} if name else {}
        (root / folder / checkpoints.CONFIG_FILE).write_text(json.dumps({"format": checkpoints.FORMAT, "meta": meta}))
        (root / folder / checkpoints.WEIGHTS_FILE).write_bytes(b"")
    (bundled / "not_a_model").mkdir()
    backend_side = [(m["name"], m["path"]) for m in ModelService.list_models([bundled, user])]
    addon_side = [(e.name, str(e.path)) for e in locate.find_models([(bundled, "bundled"), (user, "user")])]
    assert backend_side == addon_side
    assert [name for name, _ in addon_side] == ["A_model", "Beta", "gamma", "Z_model"]
