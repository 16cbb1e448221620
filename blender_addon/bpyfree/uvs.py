"""UV maps for decoded meshes: every mesh a model decodes at one resolution shares its template's faces,
so one set of per-corner UVs (asked from the backend once, then cached) maps them all."""

from __future__ import annotations

import base64
import threading
from typing import Any

import numpy as np

from .client import BackendClient, BackendError

_cache: dict[tuple[str, int, int], np.ndarray] = {}
_lock = threading.Lock()


def template_uvs(client: BackendClient, model: dict[str, Any], resolution: int) -> np.ndarray | None:
    """(corners, 2) float32 UVs for meshes `model` decodes at `resolution`; None when the model info
    names no template or the backend cannot give them (the meshes are then made without UVs)."""
    config: dict[str, Any] = model["config"] if isinstance(model.get("config"), dict) else {}
    template, patches = config.get("template"), config.get("patches", 1)
    if not isinstance(template, str) or not isinstance(patches, int):
        return None
    key = (template, patches, int(resolution))
    with _lock:
        if key in _cache:
            return _cache[key]
    try:
        reply = client.call("template_uvs", {"template": template, "patches": patches, "resolution": int(resolution)})
        uvs = np.frombuffer(base64.b64decode(reply["uvs"]), dtype="<f4").reshape(-1, 2).copy()
    except (BackendError, KeyError, ValueError, TypeError):
        return None
    with _lock:
        _cache[key] = uvs
    return uvs
