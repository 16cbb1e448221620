"""Model evaluation: reconstruction (Chamfer x1e-3 at 2500 points, F-score@1%) and generation
(MMD-CD, COV-CD, 1-NNA-CD at 2048 points, as PointFlow defines them) against reference shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .checkpoints import LoadedModel, load_model
from .data.datasets import PointSets, load_folder, procedural_point_sets
from .device import resolve_device
from .metrics import generation_metrics, reconstruction_metrics
from .inference import decode_latents, pick_points, reconstruct_points, sample_latents
from .training.config import parse_procedural

GEN_POINTS = 2048


def reference_sets(data: str | None, procedural: str | None, seed: int) -> PointSets:
    """Reference shapes from a folder or from procedural families (fresh seeds: unseen in training)."""
    if procedural is not None:
        families, per_family = parse_procedural(procedural)
        return procedural_point_sets(families, per_family, seed)
    assert data is not None
    return load_folder(data, progress=False)


def evaluate_points(lm: LoadedModel, refs: np.ndarray, device: Any, samples: int, seed: int,
                    priors: tuple[str, ...], label: str | None = None) -> dict[str, Any]:
    """Reconstruction metrics on `refs`, and generation metrics for each prior kind in `priors`.

    With a `label` the model has a prior for, 'gmm' samples come from that label's mixture, else from the
    whole model's; 'gmm' needs a model with a fitted prior (inference.sample_latents says so otherwise).
    """
    preds, gts = reconstruct_points(lm.model, refs, device, count=2500)
    out: dict[str, Any] = {"shapes": int(len(refs)), **reconstruction_metrics(preds, gts)}
    ref_clouds = pick_points(refs, GEN_POINTS, np.random.default_rng(seed))
    for kind in priors:
        own = label if kind == "gmm" and label in lm.label_priors else None
        z = sample_latents(samples or len(refs), seed, lm.config.latent_dim, kind, prior=lm.prior, label=own,
                           label_priors=lm.label_priors, model_name=lm.name)
        gen = decode_latents(lm.model, z, device, count=GEN_POINTS)
        out[f"generation_{kind}"] = generation_metrics(gen, ref_clouds)
    return out


def evaluate_model(model_dir: str | Path, data: str | None = None, procedural: str | None = None,
                   seed: int = 1, samples: int = 0, device: str = "auto") -> dict[str, Any]:
    """Metrics per reference label and over all references, for both priors the model has."""
    dev = resolve_device(device)
    lm = load_model(model_dir, dev)
    sets = reference_sets(data, procedural, seed)
    priors = ("gmm", "normal") if lm.prior is not None else ("normal",)
    labels = np.array(sets.labels)
    groups: dict[str, Any] = {}
    for label in sorted(set(sets.labels)):
        idx = np.flatnonzero(labels == label)
        if len(idx) >= 2:
            groups[label] = evaluate_points(lm, sets.points[idx], dev, samples, seed, priors, label)
            groups[label]["label_prior"] = label in lm.label_priors
    default_prior = lm.meta.get("default_prior", "gmm" if lm.prior is not None else "normal")
    report: dict[str, Any] = {"model": str(model_dir), "name": lm.name, "device": str(dev),
                              "references": data or f"procedural {procedural} seed {seed}",
                              "default_prior": default_prior, "groups": groups}
    if len(groups) > 1:
        report["all"] = evaluate_points(lm, sets.points, dev, samples, seed, priors)
    return report
