"""Model evaluation: reconstruction (Chamfer x1e-3 at 2500 points, F-score@1%, normal consistency) and
generation (MMD-CD, COV-CD, 1-NNA-CD at 2048 points as PointFlow defines them; improved precision and
recall; the share of samples in pieces; samples' and held-out shapes' distance to the nearest training
shape) against reference shapes. Definitions: docs/benchmarks.md, "Definitions"."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoints import LoadedModel, load_model
from .data.datasets import PointSets, load_folder, procedural_point_sets
from .data.meshio import Mesh
from .data.oriented import Oriented, folder_samples, procedural_samples
from .data.sampling import sample_surface_normals
from .device import resolve_device
from .errors import ConfigError, MeshError
from .metrics import (generation_metrics, nearest_distances, nearest_summary, normal_consistency, patch_pieces,
                      reconstruction_metrics)
from .inference import decode_latents, encode_all, pick_points, reconstruct_points, sample_latents
from .templates import template_mesh
from .training.config import config_from_args, parse_procedural

GEN_POINTS = 2048
NORMAL_POINTS = 2500  # oriented surface samples per shape, reference and reconstruction alike
MESH_RESOLUTION = 2562  # template-mesh vertices a reconstruction is decoded at for its normals (the add-on's default)
PIECES_RESOLUTION = 4096  # template-grid vertices a sample is decoded at to count its pieces
DECODE_BATCH = 16


def reference_sets(data: str | None, procedural: str | None, seed: int, max_per_label: int = 0) -> PointSets:
    """Reference shapes from a folder or from procedural families (fresh seeds: unseen in training); with
    `max_per_label`, at most that many of each label, drawn by `seed` (1-NNA's cost grows with the square)."""
    if procedural is not None:
        families, per_family = parse_procedural(procedural)
        sets = procedural_point_sets(families, per_family, seed)
    else:
        assert data is not None
        sets = load_folder(data, progress=False)
    if isinstance(max_per_label, bool) or not isinstance(max_per_label, int) or max_per_label < 0:
        raise ConfigError(f"max_per_label must be an integer >= 0 (0: all), got {max_per_label!r}")
    if max_per_label == 0:
        return sets
    rng = np.random.default_rng(seed)
    labels = np.array(sets.labels)
    keep = np.sort(np.concatenate([
        rng.choice(idx, max_per_label, replace=False) if len(idx) > max_per_label else idx
        for idx in (np.flatnonzero(labels == label) for label in sorted(set(sets.labels)))]))
    return PointSets(points=sets.points[keep], extents=sets.extents[keep], names=[sets.names[i] for i in keep],
                     labels=[sets.labels[i] for i in keep], skipped=sets.skipped, warnings=sets.warnings)


def training_shapes(lm: LoadedModel, train_data: str | None, use: bool = True
                    ) -> tuple[np.ndarray | None, dict[str, Any]]:
    """The training shapes (GEN_POINTS points each) the nearest-training distances are measured to, and
    where they came from: `train_data` (every mesh in that folder) if given, else the training split the
    model recorded (its folder, or its procedural families), if that can be rebuilt here."""
    if not use:
        return None, {"source": None, "note": "not measured (--no-train-data)"}
    if train_data is not None:
        sets = load_folder(train_data, progress=False)
        return _clouds(sets), {"source": "--train-data", "path": str(train_data), "shapes": len(sets)}
    recorded = lm.meta.get("train_config")
    if not isinstance(recorded, dict):
        return None, {"source": None, "note": "the model records no training data; pass --train-data DIR"}
    try:
        cfg = replace(config_from_args(recorded), cache_dir=None, init=None, freeze=())
    except (ConfigError, TypeError) as exc:
        return None, {"source": None, "note": f"the model's recorded training settings are invalid ({exc})"}
    if cfg.procedural is None and not (cfg.data is not None and Path(cfg.data).is_dir()):
        return None, {"source": None, "note": f"the recorded training data {cfg.data} is not a folder here; "
                                              f"pass --train-data DIR"}
    from .training.data import load_data  # the training loop's split, only when it is needed

    train = load_data(cfg, progress=lambda event: None)["train"]
    where = cfg.data if cfg.procedural is None else f"procedural {cfg.procedural} seed {cfg.seed}"
    return _clouds(train), {"source": "recorded", "path": where, "shapes": len(train)}


def evaluate_points(lm: LoadedModel, refs: np.ndarray, device: Any, samples: int, seed: int,
                    priors: tuple[str, ...], label: str | None = None, *,
                    normals: np.ndarray | None = None, train: np.ndarray | None = None,
                    heldout_to_train: np.ndarray | None = None) -> dict[str, Any]:
    """Reconstruction metrics on `refs`, and generation metrics for each prior kind in `priors`.

    With a `label` the model has a prior for, 'gmm' samples come from that label's mixture, else from the
    whole model's; 'gmm' needs a model with a fitted prior (inference.sample_latents says so otherwise).
    `normals` holds each ref's normal consistency (NaN where unknown); with `train` clouds and the refs'
    own `heldout_to_train` distances, each prior's samples are compared with the training set too.
    """
    preds, gts = reconstruct_points(lm.model, refs, device, count=2500)
    out: dict[str, Any] = {"shapes": int(len(refs)), **reconstruction_metrics(preds, gts)}
    if normals is not None:
        known = normals[np.isfinite(normals)]
        out["normal_consistency"] = float(known.mean()) if len(known) else None
    ref_clouds = pick_points(refs, GEN_POINTS, np.random.default_rng(seed))
    for kind in priors:
        own = label if kind == "gmm" and label in lm.label_priors else None
        z = sample_latents(samples or len(refs), seed, lm.config.latent_dim, kind, prior=lm.prior, label=own,
                           label_priors=lm.label_priors, model_name=lm.name)
        gen = decode_latents(lm.model, z, device, count=GEN_POINTS)
        metrics: dict[str, Any] = generation_metrics(gen, ref_clouds)
        metrics["pieces_share"] = float(np.mean([patch_pieces(p) > 1 for p in decode_patches(lm, z, device)]))
        if train is not None and heldout_to_train is not None:
            metrics["nearest_train"] = nearest_summary(nearest_distances(gen, train), heldout_to_train)
        out[f"generation_{kind}"] = metrics
    return out


def evaluate_model(model_dir: str | Path, data: str | None = None, procedural: str | None = None,
                   seed: int = 1, samples: int = 0, device: str = "auto", train_data: str | None = None,
                   nearest: bool = True, max_per_label: int = 0, default_only: bool = False) -> dict[str, Any]:
    """Metrics per reference label and over all references, for both priors the model has (only its
    default prior with `default_only`), on at most `max_per_label` references a label (0: all).

    The nearest-training distances need the training shapes (training_shapes says where they come from);
    `nearest` False skips them, the costliest part after the 1-NNA matrix.
    """
    dev = resolve_device(device)
    lm = load_model(model_dir, dev)
    sets = reference_sets(data, procedural, seed, max_per_label)
    default_prior = lm.meta.get("default_prior", "gmm" if lm.prior is not None else "normal")
    priors = ("gmm", "normal") if lm.prior is not None else ("normal",)
    if default_only:
        priors = (default_prior,)
    train, train_info = training_shapes(lm, train_data, nearest)
    heldout = None if train is None else nearest_distances(_clouds(sets), train)
    consistency = reconstruction_normals(lm, sets, dev, data, procedural, seed)
    labels = np.array(sets.labels)
    groups: dict[str, Any] = {}
    for label in sorted(set(sets.labels)):
        idx = np.flatnonzero(labels == label)
        if len(idx) >= 2:
            groups[label] = evaluate_points(lm, sets.points[idx], dev, samples, seed, priors, label,
                                            normals=consistency[idx], train=train,
                                            heldout_to_train=None if heldout is None else heldout[idx])
            groups[label]["label_prior"] = label in lm.label_priors
    report: dict[str, Any] = {"model": str(model_dir), "name": lm.name, "device": str(dev),
                              "references": data or f"procedural {procedural} seed {seed}",
                              "reference_shapes": len(sets), "max_per_label": max_per_label,
                              "default_prior": default_prior, "train_data": train_info, "groups": groups}
    if len(groups) > 1:
        report["all"] = evaluate_points(lm, sets.points, dev, samples, seed, priors, normals=consistency,
                                        train=train, heldout_to_train=heldout)
    return report


def reconstruction_normals(lm: LoadedModel, sets: PointSets, device: Any, data: str | None,
                           procedural: str | None, seed: int) -> np.ndarray:
    """Each reference's normal consistency between its mesh and the decoded mesh of its posterior mean
    (NORMAL_POINTS oriented samples of each); NaN where its mesh can no longer be read."""
    if procedural is not None:
        oriented: Any = procedural_samples(sets.names, seed, NORMAL_POINTS)
    else:
        assert data is not None
        oriented = folder_samples(data, sets.names, NORMAL_POINTS)
    z = encode_all(lm.model, sets.points, device)
    _, faces = template_mesh(lm.config.template, lm.config.patches, MESH_RESOLUTION)
    out = np.full(len(sets), np.nan)
    for start in range(0, len(z), DECODE_BATCH):
        vertices = decode_patches(lm, z[start:start + DECODE_BATCH], device, MESH_RESOLUTION)
        for i, verts in enumerate(vertices, start):
            ref: Oriented | None = next(oriented)
            if ref is None:
                continue
            try:
                pred = sample_surface_normals(Mesh(verts.reshape(-1, 3), faces), NORMAL_POINTS,
                                              np.random.default_rng([seed, i]))
            except MeshError:  # a reconstruction decoded to no area at all
                continue
            out[i] = normal_consistency(pred[0], pred[1], ref[0], ref[1])
    return out


@torch.no_grad()
def decode_patches(lm: LoadedModel, z: np.ndarray, device: Any, resolution: int = PIECES_RESOLUTION
                   ) -> np.ndarray:
    """Latents (n, D) decoded at the template mesh's vertices: (n, patches, vertices per patch, 3)."""
    lm.model.eval()
    pts, _ = template_mesh(lm.config.template, lm.config.patches, resolution)
    template = torch.as_tensor(pts, device=device)
    out = []
    for start in range(0, len(z), DECODE_BATCH):
        zb = torch.as_tensor(np.asarray(z[start:start + DECODE_BATCH], dtype=np.float32), device=device)
        out.append(lm.model.decode(zb, template).float().cpu().numpy().reshape(len(zb), *pts.shape[:2], 3))
    return np.concatenate(out) if out else np.zeros((0, *pts.shape[:2], 3), dtype=np.float32)


def _clouds(sets: PointSets) -> np.ndarray:
    """GEN_POINTS points of each shape, one fixed draw, so every query meets the same training clouds."""
    return pick_points(sets.points, GEN_POINTS, np.random.default_rng(0))
