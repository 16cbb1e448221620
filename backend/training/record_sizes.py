"""`record-sizes`: give a trained model the typical sizes of its training shapes without retraining.

Models trained before sizes were kept sample at unit size; this reads their training meshes (through the
point cache, so a second time is quick), measures every shape's bounding box and writes the medians into
config.json's metadata (backend/sizes.py). The weights file is never touched: its checksum still matches.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..checkpoints import CONFIG_FILE, WEIGHTS_FILE, atomic_write_json, finish_interrupted_save, read_model_config
from ..data.datasets import load_folder, procedural_point_sets
from ..errors import CheckpointError, ConfigError, DataError
from ..sizes import SIZES_KEY, typical_sizes
from .config import parse_procedural
from .events import ProgressFn, emit


def record_sizes(model_dir: str | Path, data: str | None = None, procedural: str | None = None,
                 cache_dir: str | None = None, force: bool = False,
                 progress: ProgressFn | None = None) -> dict[str, Any]:
    """Measure the shapes in `data` (a mesh folder; labels from its folders) or `procedural` and record their
    typical sizes in `model_dir`'s config.json; replacing sizes it already records needs `force`.

    Without either, the folder recorded in the model's training settings is read."""
    folder = Path(model_dir)
    if folder.is_dir():
        finish_interrupted_save(folder)  # so the config read and replaced is the one that vouches for the weights
    config = read_model_config(folder)
    raw_meta = config.get("meta")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    if meta.get(SIZES_KEY) is not None and not force:
        raise ConfigError(f"{folder}: already records typical sizes; pass --force to replace them")
    weights = folder / WEIGHTS_FILE
    try:
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    except OSError as exc:
        raise CheckpointError(f"{weights}: cannot read weights ({exc.strerror or exc})") from None
    if digest != config.get("weights_sha256"):
        raise CheckpointError(f"{weights}: weights file is truncated, corrupt or from another model "
                              f"(its checksum does not match {CONFIG_FILE})")
    if data is None and procedural is None:
        recorded = meta.get("train_config")
        if isinstance(recorded, dict):
            data, procedural = recorded.get("data"), recorded.get("procedural")
        if data is None and procedural is None:
            raise ConfigError(f"{folder}: does not record its training data; pass --data DIR or --procedural SPEC")
    if procedural is not None:
        families, per_family = parse_procedural(procedural)
        sets = procedural_point_sets(families, per_family, seed=0)
    else:
        assert data is not None
        if not Path(data).is_dir():
            raise ConfigError(f"{data}: not a folder; pass --data with the model's training meshes")
        emit(progress, {"event": "log", "message": f"reading the shapes under {data}"})
        sets = load_folder(data, cache_dir=cache_dir, progress=progress is None)
    sizes = typical_sizes(sets.extents, sets.labels)
    if sizes is None:
        raise DataError(f"{data or procedural}: no shape with a non-zero size on every axis")
    config["meta"] = {**meta, SIZES_KEY: sizes}
    atomic_write_json(folder / CONFIG_FILE, config)
    summary = {"model": str(folder), "data": data, "procedural": procedural, **sizes}
    emit(progress, {"event": "done", **summary})
    return summary
