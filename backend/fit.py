"""Fit the model to one shape at request time (AtlasNet's shape-specific optimisation).

The encoder maps a shape it never saw to the nearest thing it knows; optimising against the shape's own
surface samples makes the result faithful. Three modes, each starting where the previous one ends:

- ``encoder``: the encoder's posterior mean, one pass (what the model "thinks" the shape is);
- ``latent``:  Adam on the latent code with the decoder frozen, so the shape stays the model's own
  (interpolation and variations start here);
- ``full``:    then Adam on the code and a per-request deep copy of the decoder; the loaded model's
  weights are never touched (the copy is the only thing that receives gradients).

Every step draws fresh template points and fresh target points from a fixed pool of surface samples, so
the decoder cannot fit one sample set. Batch norm stays in eval mode (batch size 1 would break batch
statistics). A step checks `cancel` before it starts, so a cancel is answered within one step. A phase
stops early once a moving average of its Chamfer has not improved by `min_improvement` (relative) for
`patience` steps. Nearest neighbours come from backend.losses (a KD-tree on the CPU, chunked exact
search on a GPU), so the same code runs on CPU, CUDA and MPS.

Default schedule, chosen with bench/bench_fit.py on 16 real meshes (docs/benchmarks.md, "Request-time
fit"; ratios are median Chamfer over a fitted ellipsoid's): `latent` 100 Adam steps on the code at lr 2e-2
(0.24; lr 1e-2 0.30, 50 steps 0.41); `full` 200 steps of 1 000 target and template points, the first 20 %
on the code alone, then the code (lr 2e-2) and every decoder layer (lr 1e-3) together (0.074, 4.7 s median on
our shared 2 cores). Measured and not taken: 300 steps (0.068 vs 0.072, 1.5x the time), 1 500 points (0.068,
1.5x the work a step), only the later layers (0.070), decoder lr 2e-3 / 3e-3 (0.081 / 0.178), drawing
targets towards parts the output misses (`focus` 0.5 / 0.8: 0.083 / 0.098), a denser output template
(10 242 or 40 962 vertices: the output mesh's own Chamfer unchanged). Early stopping (patience 40 steps at
0.5 % on a moving average, after a warm-up of as many steps) ended none of the 16 default fits.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .data.meshio import Mesh
from .data.sampling import sample_surface
from .errors import AtlasError, ConfigError
from .losses import chamfer_loss, nearest_indices
from .model import AtlasVAE
from .limits import DEFAULT_FIT_STEPS, FIT_MODES, MAX_FIT_STEPS, MIN_FIT_STEPS
from .templates import random_points

ADAPT_CHOICES = ("all", "head")

ProgressFn = Callable[[dict[str, Any]], None]


class FitCancelled(AtlasError):
    """Raised when a fit is cancelled; carries the step it stopped before."""

    def __init__(self, step: int, steps: int) -> None:
        super().__init__(f"fit cancelled before step {step + 1} of {steps}")
        self.step, self.steps = step, steps


@dataclass(frozen=True)
class FitSchedule:
    """How a fit spends its steps; `steps` is the whole budget (both phases for `full`)."""

    steps: int = DEFAULT_FIT_STEPS["full"]
    latent_share: float = 0.2
    latent_lr: float = 2e-2
    decoder_lr: float = 1e-3
    points: int = 1000
    pool: int = 20_000
    patience: int = 40
    min_improvement: float = 0.005
    adapt: str = "all"
    ema: float = 0.1
    focus: float = 0.0
    focus_every: int = 10

    def phase_steps(self, mode: str) -> tuple[int, int]:
        """(latent steps, full steps) for a mode."""
        if mode == "encoder":
            return 0, 0
        if mode == "latent":
            return self.steps, 0
        latent = max(1, int(round(self.steps * self.latent_share))) if self.steps > 1 else 0
        return latent, self.steps - latent


def check_fit(mode: Any, steps: Any = None, steps_name: str = "steps") -> tuple[str, int]:
    """Validate a fit mode and step count (None = the mode's default); raises ConfigError naming the param."""
    if mode not in FIT_MODES:
        raise ConfigError(f"fit must be one of {', '.join(FIT_MODES)}, got {mode!r}")
    if steps is None:
        return mode, DEFAULT_FIT_STEPS[mode]
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or \
            not MIN_FIT_STEPS <= steps <= MAX_FIT_STEPS:
        raise ConfigError(f"{steps_name} must be an integer between {MIN_FIT_STEPS} and {MAX_FIT_STEPS}, "
                          f"got {steps!r}")
    return mode, int(steps)


@dataclass
class FitResult:
    """A fitted latent code (1, D), the decoders to use with it, and what the fit did."""

    z: torch.Tensor
    decoders: nn.ModuleList
    mode: str
    history: list[float] = field(default_factory=list)
    steps_run: int = 0
    stopped_early: list[str] = field(default_factory=list)

    def decode(self, z: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        """Like AtlasVAE.decode, with this fit's decoders."""
        return torch.cat([dec(z, template[k]) for k, dec in enumerate(self.decoders)], dim=1)


def surface_pool(mesh_unit: Mesh, count: int, seed: int) -> np.ndarray:
    """`count` surface samples of a unit-ball mesh: the fit's targets."""
    return sample_surface(mesh_unit, count, np.random.default_rng(seed))


class _Plateau:
    """Early stopping on an exponential moving average of a noisy per-step loss.

    The first `patience` steps of a phase only warm the average up: when the decoder starts to move, the
    loss first rises, and measuring progress from the phase's first steps would stop it right there."""

    def __init__(self, patience: int, min_improvement: float, ema: float) -> None:
        self.patience, self.min_improvement, self.ema = patience, min_improvement, ema
        self.avg: float | None = None
        self.best = float("inf")
        self.seen = 0
        self.since_best = 0

    def update(self, loss: float) -> bool:
        """Feed one loss; True once it has stopped improving."""
        self.avg = loss if self.avg is None else (1 - self.ema) * self.avg + self.ema * loss
        self.seen += 1
        if self.seen <= self.patience:
            return False
        if self.avg < self.best * (1 - self.min_improvement):
            self.best, self.since_best = self.avg, 0
        else:
            self.since_best += 1
        return self.since_best >= self.patience


class _Adam:
    """Adam (Kingma & Ba) over parameter groups {"params", "lr"}, betas 0.9/0.999, eps 1e-8.

    torch.optim's first use imports torch._dynamo, about 2 s that the first fit of every backend process
    would spend before its first step (and a cancel would wait for); these few tensor ops avoid that."""

    def __init__(self, groups: list[dict[str, Any]], betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.groups, self.betas, self.eps, self.t = groups, betas, eps, 0
        self.moments = [[(torch.zeros_like(p), torch.zeros_like(p)) for p in g["params"]] for g in groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of every parameter."""
        for group in self.groups:
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One bias-corrected Adam update of every parameter that has a gradient."""
        self.t += 1
        b1, b2 = self.betas
        fix1, fix2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for group, moments in zip(self.groups, self.moments):
            for p, (m, v) in zip(group["params"], moments):
                if p.grad is None:
                    continue
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                p.addcdiv_(m, (v / fix2).sqrt_().add_(self.eps), value=-group["lr"] / fix1)


def _adapted_parameters(decoders: nn.ModuleList, adapt: str) -> list[nn.Parameter]:
    if adapt == "all":
        return list(decoders.parameters())
    if adapt == "head":
        return [p for name, p in decoders.named_parameters() if name.split(".")[1] in ("layers", "out")]
    raise ConfigError(f"adapt must be one of {ADAPT_CHOICES}, got {adapt!r}")


def _focus_weights(target: torch.Tensor, decoded: torch.Tensor, focus: float) -> np.ndarray:
    """Sampling probabilities over the target pool: a share `focus` in proportion to each point's squared
    distance from the current output, so parts the output does not reach yet (thin legs) get more points."""
    idx, _ = nearest_indices(target[None], decoded)
    dist = (target - decoded[0, idx[0]]).square().sum(-1).cpu().numpy().astype(np.float64)  # MPS has no float64
    uniform = np.full(len(dist), 1.0 / len(dist))
    total = dist.sum()
    if not total > 0:
        return uniform
    p = (1 - focus) * uniform + focus * dist / total
    weights: np.ndarray = p / p.sum()  # numpy's stubs type this division as Any
    return weights


def fit_code(model: AtlasVAE, z0: torch.Tensor, targets: np.ndarray, mode: str,
        schedule: FitSchedule = FitSchedule(), progress: ProgressFn | None = None,
        cancel: threading.Event | None = None, seed: int = 0) -> FitResult:
    """Fit latent code `z0` (1, D) (and, for `full`, a copy of the decoder) to `targets` (N, 3) unit-ball points.

    `model` is only read; its decoders are deep-copied so nothing it holds changes or gets gradients.
    """
    check_fit(mode, schedule.steps if mode != "encoder" else None)
    latent_steps, full_steps = schedule.phase_steps(mode)
    total = latent_steps + full_steps
    if total == 0:
        return FitResult(z=z0.detach().clone(), decoders=model.decoders, mode=mode)
    device = z0.device
    decoders = copy.deepcopy(model.decoders).eval().requires_grad_(False)
    result = FitResult(z=z0.detach().clone(), decoders=decoders, mode=mode)
    cfg = model.cfg
    target = torch.as_tensor(targets, dtype=torch.float32, device=device)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    points = min(schedule.points, len(targets))
    z = result.z.requires_grad_(True)
    step = 0
    focus_p: np.ndarray | None = None
    for phase, count in (("latent", latent_steps), ("full", full_steps)):
        if count == 0:
            continue
        groups: list[dict[str, Any]] = [{"params": [z], "lr": schedule.latent_lr}]
        if phase == "full":
            weights = _adapted_parameters(decoders, schedule.adapt)
            for p in weights:
                p.requires_grad_(True)
            groups.append({"params": weights, "lr": schedule.decoder_lr})
        optimiser = _Adam(groups)
        plateau = _Plateau(schedule.patience, schedule.min_improvement, schedule.ema)
        for i in range(count):
            if cancel is not None and cancel.is_set():
                raise FitCancelled(step, total)
            template = random_points(cfg.template, cfg.patches, points, gen, device)
            if focus_p is None:
                chosen = rng.choice(len(targets), size=points, replace=False)
            else:
                chosen = rng.choice(len(targets), size=points, replace=True, p=focus_p)
            picks = torch.as_tensor(chosen, device=device)
            optimiser.zero_grad(set_to_none=True)
            decoded = result.decode(z, template)
            loss = chamfer_loss(decoded, target[picks][None])
            if schedule.focus > 0 and step % schedule.focus_every == 0:
                focus_p = _focus_weights(target, decoded.detach(), schedule.focus)
            loss.backward()
            optimiser.step()
            value = float(loss.detach())
            result.history.append(value)
            step += 1
            if progress is not None:
                progress({"event": "step", "phase": phase, "step": step, "steps": total,
                          "chamfer": value * 1e3, "loss": value})
            if i + 1 < count and plateau.update(value):
                result.stopped_early.append(f"{phase}@{i + 1}")
                step += count - i - 1  # the skipped steps count as done for progress
                break
    result.steps_run = len(result.history)
    result.z = z.detach()
    decoders.requires_grad_(False)
    return result
