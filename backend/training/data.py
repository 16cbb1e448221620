"""A run's shapes: read once (a mesh folder or procedural families) and split into train / val / test."""

from __future__ import annotations

import threading
from pathlib import Path

from ..data.datasets import PointSets, load_folder, procedural_point_sets, split_files
from ..data.packs import is_pack, read_pack
from ..errors import ConfigError, DataError
from .config import TrainConfig, parse_procedural
from .events import ProgressFn, emit

MIN_SHAPES = 4


def load_data(cfg: TrainConfig, progress: ProgressFn | None = None,
              cancel: threading.Event | None = None) -> dict[str, PointSets]:
    """Read the dataset once and split it into train / val / test point sets (deterministic)."""
    if cfg.procedural is not None:
        families, per_family = parse_procedural(cfg.procedural)
        sets = procedural_point_sets(families, per_family, cfg.seed)
    elif cfg.data is None:
        raise ConfigError("give exactly one of --data DIR or --procedural FAMILIES:COUNT")
    elif is_pack(cfg.data):
        sets = read_pack(cfg.data)
    else:
        sets = load_folder(cfg.data, cache_dir=cfg.cache_dir, max_faces=cfg.max_faces,
                           progress=progress is None, cancel=cancel)
        for name, reason in sets.skipped:
            emit(progress, {"event": "skip", "message": f"skipped {name}: {reason}"})
        for warning in sets.warnings:
            emit(progress, {"event": "log", "message": f"warning: {warning}"})
        if sets.skipped:
            emit(progress, {"event": "log", "message": f"using {len(sets.names)} mesh files under {cfg.data}; "
                                                       f"skipped {len(sets.skipped)} (listed above)"})
    if len(sets.names) < MIN_SHAPES:
        where = cfg.data or cfg.procedural
        raise DataError(f"{where}: only {len(sets.names)} usable meshes (need at least {MIN_SHAPES}); "
                        f"{len(sets.skipped)} skipped")
    root = Path(cfg.data) if cfg.data else Path("procedural")
    splits = split_files([root / n for n in sets.names], root, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    index = {str(root / n): i for i, n in enumerate(sets.names)}
    return {split: subset(sets, [index[str(p)] for p in paths]) for split, paths in splits.items()}


def subset(sets: PointSets, idx: list[int]) -> PointSets:
    """The shapes of `sets` at positions `idx`."""
    return PointSets(points=sets.points[idx], names=[sets.names[i] for i in idx],
                     labels=[sets.labels[i] for i in idx], extents=sets.extents[idx], skipped=[])
