"""Main directions of a model's latent space, for the Shape Explorer: steer a shape along them with sliders.

The directions are the principal axes (PCA) of the training codes the model already stores: its fitted
prior's component means (for a VAE, the aggregate posterior: one mean per training shape), weighted as the
prior weighs them. A family (label) with at least MIN_FAMILY_SHAPES training shapes gets its own set from
its own prior, so "a longer sword" is a sword's main change rather than the whole model's. Each direction
keeps `sigma`, the training codes' standard deviation along it, so a slider moves in units of the spread
the model saw (amounts up to limits.MAX_AMOUNT sigmas). A model without a fitted prior uses its label
priors pooled, else N(0, I)'s latent axes (training_codes).

Each direction is described by decoding the set's mean code at -2 sigma and +2 sigma and naming what
changes most in the bounding box of the decoded points ("taller", "wider (x)", ...); its sign is chosen
so that the named change is what a positive amount does.

The sets are stored beside the weights as `directions.safetensors`, stamped with the weights' SHA-256: a
file whose stamp does not match (the weights changed) or that cannot be read is recomputed on first use
and rewritten (when the folder is writable; else kept in memory). Training, fine-tuning and refitting
write it with the model (`refresh_directions`).
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checkpoints import LoadedModel, atomic_write_bytes, bytes_to_tensors, load_model
from .errors import AtlasError, OutputError
from .limits import MAX_DIRECTIONS
from .prior import GaussianMixturePrior
from .regular import read_regular
from .templates import random_points

DIRECTIONS_FILE = "directions.safetensors"
FORMAT = "atlasvae-directions"
MIN_FAMILY_SHAPES = 16
MAX_DIRECTIONS_FILE_BYTES = 256 << 20
DESCRIBE_SIGMAS = 2.0  # the description compares the decoded shapes at -2 and +2 sigma
DESCRIBE_POINTS = 1024  # decoded points per shape: enough for a bounding box
MAX_NAME = 16  # characters: the add-on shows descriptions as slider labels
BIGGER = 0.6  # every axis grows by at least this share of the largest growth: "bigger"
SECOND = 0.5  # a second axis is named when its change is at least this share of the first's
MIN_EXTENT_CHANGE = 0.03  # log ratio of extents under which the bounding box "does not change"
MIN_SHIFT = 0.05  # centroid shift (unit ball) under which a shape "does not move"
_GROW = ("wider", "longer", "taller")
_SHRINK = ("narrower", "shorter y", "flatter")  # "taller, shorter" would read as a contradiction
_AXIS_TAG = (" (x)", " (y)", "")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DirectionSet:
    """The main directions of one set of training codes: their weighted mean (D,), unit directions (k, D)
    (orthonormal rows, by decreasing variance), the codes' standard deviation along each (k,), and what each
    does to the decoded shape, in at most MAX_NAME characters."""

    mean: np.ndarray
    vectors: np.ndarray
    sigma: np.ndarray
    descriptions: tuple[str, ...]

    def move(self, latent: np.ndarray, moves: list[tuple[int, float]]) -> np.ndarray:
        """`latent` moved by each (direction index, amount in sigmas) in turn."""
        out = np.asarray(latent, dtype=np.float64).copy()
        for index, amount in moves:
            out += amount * self.sigma[index] * self.vectors[index]
        return out


@dataclass(frozen=True)
class Directions:
    """A model's direction sets: the model-wide one and one per family with enough shapes; `stamp` is the
    SHA-256 of the weights they were computed from."""

    stamp: str
    overall: DirectionSet
    families: dict[str, DirectionSet] = field(default_factory=dict)

    def of(self, label: str | None) -> tuple[str | None, DirectionSet]:
        """The set for `label` and the family it belongs to: the family's own, else (None) the model-wide one."""
        if label is not None and label in self.families:
            return label, self.families[label]
        return None, self.overall


def principal_directions(prior: GaussianMixturePrior, count: int = MAX_DIRECTIONS
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (D,), up to `count` principal directions (k, D) and their standard deviations (k,) of a prior's
    component means, weighted by the prior's weights.

    A full-covariance component (an autoencoder's EM fit) stands for many codes, so its own covariance is
    added; a diagonal one (a VAE's posterior of one shape) is that one code's uncertainty, not spread among
    training shapes, so it is left out. Directions with no variance are dropped; each direction's sign puts
    its largest component positive (describe() may flip it again)."""
    w = np.asarray(prior.weights, dtype=np.float64)
    means = np.asarray(prior.means, dtype=np.float64)
    mean = w @ means
    centred = means - mean
    cov = (centred * w[:, None]).T @ centred
    if not prior.diagonal:
        cov += np.einsum("k,kij,klj->il", w, prior.chol, prior.chol)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(-values, kind="stable")  # equal variances (N(0, I)) keep the latent axes' order
    values, vectors = values[order], vectors[:, order].T
    keep = values > max(float(values[0]), 0.0) * 1e-10 if len(values) else values > 0
    keep &= np.arange(len(values)) < count
    values, vectors = values[keep], vectors[keep]
    signs = np.sign(vectors[np.arange(len(vectors)), np.abs(vectors).argmax(axis=1)])
    return mean, vectors * signs[:, None], np.sqrt(values)


def describe(low: np.ndarray, high: np.ndarray) -> tuple[str, bool]:
    """What changes most from the decoded points `low` (N, 3) to `high`, and whether to flip the direction
    so that a positive move does the named change: the bounding box's extents (log ratio per axis x, y, z),
    else the centroid's shift, else "fine detail"."""
    def extents(p: np.ndarray) -> np.ndarray:
        result: np.ndarray = np.maximum(p.max(axis=0) - p.min(axis=0), 1e-6)
        return result

    change = np.log(extents(high) / extents(low))
    first = int(np.abs(change).argmax())
    if abs(change[first]) >= MIN_EXTENT_CHANGE:
        flip = bool(change[first] < 0)
        change = -change if flip else change
        if change.min() >= BIGGER * change[first]:
            return "bigger", flip
        rest = [a for a in np.argsort(-np.abs(change)) if a != first]
        second = int(rest[0])
        if abs(change[second]) >= max(SECOND * change[first], MIN_EXTENT_CHANGE):
            word = _GROW[second] if change[second] > 0 else _SHRINK[second]
            both = f"{_GROW[first]}, {word}"
            if len(both) <= MAX_NAME:
                return both, flip
        return _GROW[first] + _AXIS_TAG[first], flip
    shift = high.mean(axis=0) - low.mean(axis=0)
    axis = int(np.abs(shift).argmax())
    if abs(shift[axis]) >= MIN_SHIFT:
        flip = bool(shift[axis] < 0)
        return ("moves up" if axis == 2 else f"moves +{'xy'[axis]}"), flip
    return "fine detail", False


def _unique(names: list[str]) -> tuple[str, ...]:
    """Names made distinct with a count ("taller", "taller 2"), so no two sliders read alike; a counted name
    too long for MAX_NAME keeps its first part ("taller, narrower 2" -> "taller 2")."""
    used: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate in used:
            n += 1
            candidate = f"{name} {n}" if len(f"{name} {n}") <= MAX_NAME else f"{name.split(',')[0]} {n}"
        used.add(candidate)
        out.append(candidate)
    return tuple(out)


def direction_set(prior: GaussianMixturePrior, decode: Callable[[np.ndarray], np.ndarray],
                  count: int = MAX_DIRECTIONS) -> DirectionSet:
    """The principal directions of `prior`, each described (and its sign chosen) from `decode` (latents
    (n, D) -> points (n, N, 3)) at the mean -/+ DESCRIBE_SIGMAS sigma."""
    mean, vectors, sigma = principal_directions(prior, count)
    step = DESCRIBE_SIGMAS * sigma[:, None] * vectors
    points = decode(np.concatenate([mean - step, mean + step])) if len(vectors) else np.zeros((0, 1, 3))
    names = []
    for k in range(len(vectors)):
        name, flip = describe(points[k], points[len(vectors) + k])
        vectors[k] *= -1.0 if flip else 1.0
        names.append(name)
    return DirectionSet(mean=mean, vectors=vectors, sigma=sigma, descriptions=_unique(names))


def family_priors(lm: LoadedModel) -> dict[str, GaussianMixturePrior]:
    """The label priors that stand for at least MIN_FAMILY_SHAPES training shapes: a VAE's has one component
    per shape; an EM fit has at most one component per 4 codes (prior.fit_gmm), so 4 components vouch for 16."""
    return {label: p for label, p in sorted(lm.label_priors.items())
            if p.components >= (MIN_FAMILY_SHAPES if p.diagonal else MIN_FAMILY_SHAPES // 4)}


def training_codes(lm: LoadedModel) -> GaussianMixturePrior:
    """The mixture whose component means stand for a model's training codes: its fitted prior, else its label
    priors pooled (each component weighted as one of all the labels' components), else N(0, I) (a model
    with no fitted prior samples from it, so every direction is as main as another; the latent axes serve)."""
    if lm.prior is not None:
        return lm.prior
    parts = [p for _label, p in sorted(lm.label_priors.items())]
    if parts and len({p.diagonal for p in parts}) == 1:
        weights = np.concatenate([p.weights * p.components for p in parts])
        return GaussianMixturePrior(weights=weights / weights.sum(), means=np.concatenate([p.means for p in parts]),
                                    chol=np.concatenate([p.chol for p in parts]))
    dim = lm.config.latent_dim
    return GaussianMixturePrior(weights=np.ones(1), means=np.zeros((1, dim)), chol=np.eye(dim)[None])


def compute_directions(lm: LoadedModel, device: torch.device | str = "cpu") -> Directions:
    """Every direction set of a loaded model (see the module docstring and training_codes)."""
    gen = torch.Generator().manual_seed(0)
    template = random_points(lm.config.template, lm.config.patches, DESCRIBE_POINTS, gen, device)

    def decode(z: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = lm.model.decode(torch.as_tensor(z, dtype=torch.float32, device=device), template)
        points: np.ndarray = out.float().cpu().numpy().astype(np.float64)
        return points

    return Directions(stamp=lm.weights_sha256, overall=direction_set(training_codes(lm), decode),
                      families={label: direction_set(p, decode) for label, p in family_priors(lm).items()})


def _key(label: str | None) -> str:
    return "all" if label is None else f"family.{label}"


def directions_to_bytes(directions: Directions) -> bytes:
    """The safetensors bytes of `directions`: float64 tensors per set, descriptions and stamp as metadata."""
    from safetensors.torch import save as st_save

    sets: dict[str | None, DirectionSet] = {None: directions.overall}
    sets.update(directions.families)
    tensors = {f"{_key(label)}.{name}": torch.from_numpy(np.ascontiguousarray(getattr(s, name), dtype=np.float64))
               for label, s in sets.items() for name in ("mean", "vectors", "sigma")}
    meta = {"format": FORMAT, "weights_sha256": directions.stamp, "families": json.dumps(sorted(directions.families)),
            "descriptions": json.dumps({_key(label): list(s.descriptions) for label, s in sets.items()})}
    return bytes(st_save(tensors, metadata=meta))


def write_directions(folder: str | Path, directions: Directions) -> Path:
    """Write `directions` into a model folder atomically; an OutputError when the folder is not writable."""
    path = Path(folder) / DIRECTIONS_FILE
    atomic_write_bytes(path, directions_to_bytes(directions))
    return path


def read_directions(folder: str | Path, stamp: str, latent_dim: int) -> Directions | None:
    """The directions stored in a model folder if they were computed from the weights `stamp` names and hold
    `latent_dim`-wide sets; None when missing, stale or unreadable (then they are recomputed)."""
    path = Path(folder) / DIRECTIONS_FILE
    if not path.exists() or not stamp:
        return None
    try:
        data = read_regular(path, MAX_DIRECTIONS_FILE_BYTES)
        (length,) = struct.unpack_from("<Q", data, 0)
        meta = json.loads(data[8:8 + length]).get("__metadata__") or {}
        if meta.get("format") != FORMAT or meta.get("weights_sha256") != stamp:
            _log.info("%s was computed from other weights; recomputing it", path)
            return None
        tensors = bytes_to_tensors(data, path)
        names = json.loads(meta["descriptions"])

        def one(label: str | None) -> DirectionSet:
            key = _key(label)
            mean, vectors, sigma = (tensors[f"{key}.{n}"].numpy() for n in ("mean", "vectors", "sigma"))
            words = tuple(str(w) for w in names[key])
            if mean.shape != (latent_dim,) or vectors.shape != (len(sigma), latent_dim) or len(words) != len(sigma):
                raise ValueError(f"set {key!r} has shapes {mean.shape}, {vectors.shape}, {sigma.shape}")
            return DirectionSet(mean=mean, vectors=vectors, sigma=sigma, descriptions=words)

        return Directions(stamp=stamp, overall=one(None),
                          families={str(label): one(str(label)) for label in json.loads(meta["families"])})
    except (AtlasError, struct.error, ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        _log.warning("%s cannot be read (%s); recomputing it", path, exc)
        return None


def directions_of(lm: LoadedModel, device: torch.device | str = "cpu") -> Directions:
    """A loaded model's directions: the stored ones when their stamp matches its weights, else computed now
    and written beside the weights (a folder that cannot be written keeps them in memory, with a warning)."""
    found = read_directions(lm.path, lm.weights_sha256, lm.config.latent_dim)
    if found is not None:
        return found
    directions = compute_directions(lm, device)
    if lm.weights_sha256:
        try:
            write_directions(lm.path, directions)
        except OutputError as exc:
            _log.warning("directions of model %r are kept in memory only: %s", lm.name, exc)
    return directions


def refresh_directions(folder: str | Path, device: torch.device | str = "cpu") -> Directions:
    """Compute and write the directions of the model just saved in `folder` (train, finetune, refit-prior).

    A folder that takes the model but not this file (a disk filling up just then) is not a failed run: the
    directions can be derived again, and are, on first use; the problem is logged."""
    lm = load_model(folder, device)
    directions = compute_directions(lm, device)
    try:
        write_directions(folder, directions)
    except OutputError as exc:
        _log.warning("the directions of %s are computed on first use instead: %s", folder, exc)
    return directions
