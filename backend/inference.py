"""Inference helpers shared by the service, training, evaluation, prior refits, reports and the benches:
encode cached point clouds to posteriors, reconstruct and decode them, draw latents from a prior (the one
sample_latents), fit and choose latent priors.

Nothing here trains or writes files, so every caller (train, evaluate, refit, reports, bench) can
import it without importing the training loop.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

import numpy as np
import torch

from .errors import ConfigError
from .limits import PRIOR_KINDS
from .losses import chamfer_per_shape
from .model import AtlasVAE
from .prior import GaussianMixturePrior, fit_gmm, fit_label_priors, posterior_mixture, standard_normal
from .templates import random_points

if TYPE_CHECKING:
    from .data.datasets import PointSets  # the datasets (and procedural shapes) stay out of the server's start-up

PRIOR_CHOICE_SHAPES = 64  # validation shapes used to choose the default prior (1-NNA is quadratic)


class PriorSettings(Protocol):
    """What fitting a prior needs of a training configuration."""

    prior_components: int
    prior_spread: float
    seed: int


def shape_seed(seed: int, index: int) -> int:
    """The seed of shape `index` of a request seeded `seed`: each shape has its own stream, so asking for
    more shapes with the same seed keeps the first ones (Count 4 -> 8 adds 4, it does not replace them)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


def sample_latents(count: int, seed: int, latent_dim: int, kind: str = "normal", temperature: float = 1.0, *,
                   prior: GaussianMixturePrior | None = None, label: str | None = None,
                   label_priors: Mapping[str, GaussianMixturePrior] | None = None, default: str = "normal",
                   model_name: str = "") -> np.ndarray:
    """`count` latents (count, latent_dim) for `seed`: the one place every caller draws latents from a prior.

    `kind` is one of PRIOR_KINDS: "normal" N(0, I), "gmm" the fitted `prior`, "auto" the model's `default`.
    A `label` draws from that label's own mixture in `label_priors`, whatever the kind. Strict, so a request
    never silently gets other shapes than it asked for: an unknown kind or label, or "gmm" without a fitted
    prior, is a ConfigError naming the input and the model (`model_name`). A caller that wants a fallback
    decides it before calling. `temperature` scales the spread around the means. Row i is the one latent
    that GaussianMixturePrior.sample or prior.standard_normal draws for shape_seed(seed, i), so the first
    k rows of any count are the k rows of count k.
    """
    if kind not in PRIOR_KINDS:
        raise ConfigError(f"prior must be one of {PRIOR_KINDS}, got {kind!r}")
    if label is not None:
        if label_priors is None or label not in label_priors:
            known = ", ".join(sorted(label_priors or {})) or "none"
            raise ConfigError(f"label {label!r} is not one of model {model_name!r}'s labels ({known})")
        draw: Callable[[int], np.ndarray] = partial(label_priors[label].sample, 1, temperature=temperature)
    elif (default if kind == "auto" else kind) == "gmm":
        if prior is None:
            raise ConfigError(f"model {model_name!r} has no fitted prior; use prior 'normal'")
        draw = partial(prior.sample, 1, temperature=temperature)
    else:
        draw = partial(standard_normal, 1, latent_dim, temperature=temperature)
    rows = [draw(shape_seed(seed, i)) for i in range(count)]
    return np.concatenate(rows) if rows else np.zeros((0, latent_dim))


def pick_points(cloud: np.ndarray, count: int, rng: np.random.Generator, rows: slice = slice(None)) -> np.ndarray:
    """A random subset of `count` points from each cached cloud (B, N, 3), for the clouds at `rows`.

    The random draw covers all B clouds whatever `rows` is, so data-parallel ranks advance `rng` alike
    and each rank's rows get the very points one process would pick for them.
    """
    n = cloud.shape[1]
    idx = rng.random((cloud.shape[0], n))[rows].argsort(axis=1)[:, :count] if count <= n else \
        rng.integers(0, n, (cloud.shape[0], count))[rows]
    return np.take_along_axis(cloud[rows], idx[..., None], axis=1)


@torch.no_grad()
def encode_posteriors(model: AtlasVAE, points: np.ndarray, device: torch.device, count: int = 2500,
                      batch: int = 64) -> tuple[np.ndarray, np.ndarray | None]:
    """Posterior means and log-variances (None for an autoencoder) of every shape, in eval mode."""
    model.eval()
    rng = np.random.default_rng(0)
    mus, logvars = [], []
    for start in range(0, len(points), batch):
        x = torch.as_tensor(pick_points(points[start:start + batch], count, rng), device=device)
        mu, logvar = model.encode(x)
        mus.append(mu.float().cpu().numpy())
        if logvar is not None:
            logvars.append(logvar.float().cpu().numpy())
    return np.concatenate(mus), (np.concatenate(logvars) if logvars else None)


def encode_all(model: AtlasVAE, points: np.ndarray, device: torch.device, count: int = 2500,
               batch: int = 64) -> np.ndarray:
    """Posterior means of every shape (eval mode)."""
    return encode_posteriors(model, points, device, count, batch)[0]


def fit_priors(model: AtlasVAE, train: PointSets, cfg: PriorSettings, device: torch.device
               ) -> tuple[GaussianMixturePrior, dict[str, GaussianMixturePrior]]:
    """The fitted prior and one per label: a VAE's aggregate posterior, an autoencoder's EM mixture."""
    codes, logvar = encode_posteriors(model, train.points, device)
    if logvar is None:
        prior = fit_gmm(codes, cfg.prior_components, cfg.seed)
    else:
        prior = posterior_mixture(codes, logvar, cfg.prior_spread, seed=cfg.seed)
    label_priors = fit_label_priors(codes, train.labels, max(1, cfg.prior_components // 2), cfg.seed,
                                    logvar, cfg.prior_spread) if len(set(train.labels)) > 1 else {}
    return prior, label_priors


@torch.no_grad()
def reconstruct_points(model: AtlasVAE, points: np.ndarray, device: torch.device, count: int = 2500,
                       batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Reconstructions from the posterior mean at `count` template points, and the matching targets."""
    model.eval()
    rng = np.random.default_rng(1)
    gen = torch.Generator().manual_seed(1)
    preds, gts = [], []
    template = random_points(model.cfg.template, model.cfg.patches, count, gen, device)
    for start in range(0, len(points), batch):
        gt = pick_points(points[start:start + batch], count, rng)
        x = torch.as_tensor(gt, device=device)
        mu, _ = model.encode(x)
        preds.append(model.decode(mu, template).float().cpu().numpy())
        gts.append(gt)
    return np.concatenate(preds), np.concatenate(gts)


@torch.no_grad()
def decode_latents(model: AtlasVAE, z: np.ndarray, device: torch.device, count: int = 2048,
                   seed: int = 2) -> np.ndarray:
    """Point clouds (n, count, 3) decoded from latents, each at its own uniform random template points.

    This is the point distribution the Chamfer loss trained, so a cloud is the model's own sample of its
    surface. Each shape gets fresh template points: clouds decoded at one shared set would correspond
    point for point, sit closer to each other than to any reference, and 1-NNA would flag that artefact.
    (Sampling the decoded mesh by area is worse: stretched or folded template triangles, which training
    never weighs, then draw many points.)
    """
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    clouds = []
    for code in np.asarray(z, dtype=np.float32):
        template = random_points(model.cfg.template, model.cfg.patches, count, gen, device)
        clouds.append(_exactly(model.decode(torch.as_tensor(code[None], device=device), template)[0], count, gen))
    return np.stack(clouds)


def _exactly(points: torch.Tensor, count: int, gen: torch.Generator) -> np.ndarray:
    """`count` rows of a decoded cloud: patches of count // K points can fall a few short, so top up."""
    arr = points.float().cpu().numpy()
    if len(arr) < count:
        extra = torch.randint(0, len(arr), (count - len(arr),), generator=gen).numpy()
        arr = np.concatenate([arr, arr[extra]])
    return arr[:count]


def val_chamfer(model: AtlasVAE, points: np.ndarray, device: torch.device) -> float:
    """Mean squared Chamfer (x1e-3, 2500 points) of posterior-mean reconstructions."""
    if len(points) == 0:
        return float("nan")
    preds, gts = reconstruct_points(model, points, device)
    with torch.no_grad():
        cd = chamfer_per_shape(torch.as_tensor(preds), torch.as_tensor(gts))
    return float(cd.mean()) * 1e3


def choose_default_prior(model: AtlasVAE, prior: GaussianMixturePrior, val: np.ndarray, seed: int,
                         device: torch.device) -> dict[str, Any]:
    """The prior ('gmm' or 'normal') whose samples score 1-NNA nearer 50 % on the validation shapes.

    Under 8 validation shapes the measure means nothing, so the fitted prior is kept without scores.
    """
    from .metrics import generation_metrics  # scipy: loaded only when a run finishes

    val = val[::max(1, len(val) // PRIOR_CHOICE_SHAPES)][:PRIOR_CHOICE_SHAPES]
    if len(val) < 8:
        return {"default_prior": "gmm"}
    refs = pick_points(val, 2048, np.random.default_rng(3))
    dim = prior.means.shape[1]
    gmm_s = decode_latents(model, sample_latents(len(val), seed, dim, "gmm", prior=prior), device)
    normal_z = sample_latents(len(val), seed, dim)
    g, s = generation_metrics(gmm_s, refs), generation_metrics(decode_latents(model, normal_z, device), refs)
    return {"default_prior": "gmm" if abs(g["nna_cd"] - 0.5) <= abs(s["nna_cd"] - 0.5) else "normal",
            "val_nna_gmm": g["nna_cd"], "val_nna_normal": s["nna_cd"]}
