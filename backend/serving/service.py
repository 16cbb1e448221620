"""In-process model operations shared by the CLI and the server: load, sample, reconstruct, interpolate.

Meshes go in and out in the caller's frame; the service normalises inputs to the unit ball for the
network and maps results back, so a reconstruction lands where the original is. Samples come out at
their family's real size (backend/sizes.py) when the model records sizes, else in the unit ball.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..checkpoints import LoadedModel, is_model_folder, load_model, read_model_config
from ..directions import Directions, DirectionSet, directions_of
from ..data.meshio import Mesh, Normalisation, normalisation_of
from ..data.sampling import sample_surface
from ..device import resolve_device
from ..errors import AtlasError, ConfigError
from ..fit import FitResult, FitSchedule, ProgressFn, check_fit, fit_code, surface_pool
from ..metrics import chamfer
from ..inference import sample_latents
from ..limits import DEFAULT_FACE_BUDGET, DEFAULT_SIZE, DEFAULT_SURFACE, SHARED_DECODER_FITS
from ..prior import nearest_labels
from ..sizes import Sizes, read_sizes, size_frame
from ..surface import ShapeMesh, finish, resolve_surface
from ..templates import mesh_vertex_count, random_points, template_mesh

ENCODE_POINTS = 2500
DECODE_BATCH = 16
DECODE_ACTIVATION_BYTES = 64 << 20  # the decoder's working memory per slice, whatever count x resolution
ACTIVATION_COPIES = 3  # activations alive at once in a decoder layer (input, output, norm/ReLU result)
# Peak memory of sample / interpolate / variations above the loaded model, measured with
# bench/bench_memory.py (docs/benchmarks.md), for meshes of V vertices each (after the template snaps):
#     peak ~ DECODE_ACTIVATION_BYTES + TEMPLATE_BYTES_PER_VERTEX * V + OUTPUT_BYTES_PER_VERTEX * count * V
# The last term is the server's (float64 vertices, base64 vertices and faces, the JSON reply line: about
# 120 B per vertex measured; the CLI needs about 30 B). The cap keeps that term within OUTPUT_MEMORY_BUDGET,
# for the CLI and the server alike. A closed surface adds surface.CLOSING_PEAK_BYTES while it is made (one
# shape at a time, whatever the count; its vertices count in V, see check_output_size).
TEMPLATE_BYTES_PER_VERTEX = 2048
OUTPUT_BYTES_PER_VERTEX = 128
OUTPUT_MEMORY_BUDGET = 512 << 20
MAX_OUTPUT_VERTICES = OUTPUT_MEMORY_BUDGET // OUTPUT_BYTES_PER_VERTEX  # 4 194 304
FIT_SEED = 0
_log = logging.getLogger(__name__)


class NoModelError(AtlasError):
    """Raised when an operation needs a model and none is loaded."""


class ModelService:
    """Holds at most one loaded model and runs inference with it; thread-safe.

    Requests reach it already checked against backend/options.py's bounds, by the wire (serving/methods.py) or
    the CLI's arguments; the output cap (check_output_size) needs the loaded model, so each edge calls it."""

    def __init__(self, device: str = "auto") -> None:
        self._device = resolve_device(device)
        self._loaded: LoadedModel | None = None
        self._sizes: Sizes | None = None
        self._directions: Directions | None = None  # the loaded model's, read or computed on first use
        self._lock = threading.RLock()

    @property
    def device(self) -> str:
        return str(self._device)

    @property
    def info(self) -> dict[str, Any] | None:
        with self._lock:
            return None if self._loaded is None else self._describe(self._loaded)

    def _describe(self, lm: LoadedModel) -> dict[str, Any]:
        return {"name": lm.name, "path": str(lm.path), "config": lm.config.to_dict(),
                "has_prior": lm.prior is not None, "default_prior": self._default_prior(lm),
                "labels": sorted(lm.label_priors), "metrics": lm.meta.get("metrics", {}),
                "sizes": lm.meta.get("sizes")}

    def load(self, model_dir: str | Path) -> dict[str, Any]:
        """Load a model folder, replacing any loaded model only once the new one loaded and described fine."""
        loaded = load_model(model_dir, self._device)
        sizes = read_sizes(loaded.meta, str(Path(model_dir) / "config.json"))
        info = self._describe(loaded)
        if sizes is None:
            _log.info("model %s records no typical sizes (made before they were kept): its samples come out at "
                      "unit size; `python -m backend record-sizes` adds them from its training data", loaded.name)
        with self._lock:
            self._loaded, self._sizes, self._directions = loaded, sizes, None
        return info

    def unload(self) -> bool:
        """Drop the loaded model and return its memory to the system; True if one was loaded."""
        with self._lock:
            had = self._loaded is not None
            self._loaded, self._sizes, self._directions = None, None, None
        gc.collect()
        if self._device.type == "cuda":
            torch.cuda.empty_cache()
        elif self._device.type == "mps" and hasattr(torch, "mps"):
            torch.mps.empty_cache()
        return had

    def check_output_size(self, count: int, resolution: int, surface: str = "patches",
                          face_budget: int = DEFAULT_FACE_BUDGET) -> int:
        """Refuse `count` meshes at `resolution` when their vertices exceed MAX_OUTPUT_VERTICES; else the total.

        The vertices are those the loaded model's template really produces (one sphere when none is loaded),
        or as many as a closed surface of `face_budget` faces can have when `surface` closes them.
        """
        with self._lock:
            cfg = self._loaded.config if self._loaded is not None else None
        template = cfg.template if cfg else "sphere"
        per_mesh = mesh_vertex_count(template, cfg.patches if cfg else 1, resolution)
        if resolve_surface(surface, template) == "closed":
            per_mesh = max(per_mesh, face_budget // 2 + 2)  # a closed triangle mesh: V = F / 2 + 2 - 2 x genus
        total = count * per_mesh
        if total > MAX_OUTPUT_VERTICES:
            raise ConfigError(f"{count} meshes x {per_mesh:,} vertices = {total:,} output vertices is more than the "
                              f"limit of {MAX_OUTPUT_VERTICES:,} (about {OUTPUT_MEMORY_BUDGET >> 20} MiB of memory); "
                              f"lower the count or the resolution")
        return total

    def _require(self) -> LoadedModel:
        if self._loaded is None:
            raise NoModelError("no model is loaded; load a model first")
        return self._loaded

    @staticmethod
    def _default_prior(lm: LoadedModel) -> str:
        if lm.prior is None:
            return "normal"
        return str(lm.meta.get("default_prior", "gmm"))

    def _decode(self, lm: LoadedModel, z: np.ndarray, resolution: int,
                decode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Latents (n, D) -> unit-ball vertices (n, V, 3) on the template mesh, and its faces.

        `decode` replaces the model's decoder (a full fit's per-request copy). Decoding runs over slices of
        latents and of template points so that the network's activations stay under DECODE_ACTIVATION_BYTES
        whatever the count and resolution (each point is decoded on its own in eval mode, so slicing changes
        nothing but memory); the result is written into one float64 array.
        """
        pts, faces = template_mesh(lm.config.template, lm.config.patches, resolution)
        template = torch.from_numpy(pts).to(self._device)
        decode = decode or lm.model.decode
        patches, per_patch = pts.shape[0], pts.shape[1]
        out = np.empty((len(z), patches, per_patch, 3), dtype=np.float64)
        width = max(lm.config.decoder_width, lm.config.latent_dim)
        rows = min(len(z), DECODE_BATCH)
        span = max(1, DECODE_ACTIVATION_BYTES // (ACTIVATION_COPIES * 4 * width * patches * rows))
        with torch.inference_mode():
            for start in range(0, len(z), DECODE_BATCH):
                zb = torch.as_tensor(z[start:start + DECODE_BATCH], dtype=torch.float32, device=self._device)
                for first in range(0, per_patch, span):
                    piece = decode(zb, template[:, first:first + span]).float().cpu().numpy()
                    out[start:start + len(zb), :, first:first + span] = piece.reshape(len(zb), patches, -1, 3)
        return out.reshape(len(z), patches * per_patch, 3), faces

    @staticmethod
    def _surface(lm: LoadedModel, surface: str, face_budget: int) -> tuple[str, int]:
        """The surface ("closed" or "patches") `surface` means for this model, and the face budget."""
        return resolve_surface(surface, lm.config.template), face_budget

    def _encode(self, lm: LoadedModel, meshes: list[Mesh]) -> tuple[np.ndarray, list[Normalisation],
                                                                    np.ndarray]:
        """Posterior means for meshes, their normalisations and their unit-ball surface samples."""
        norms = [normalisation_of(m.vertices, m.faces) for m in meshes]
        clouds = np.stack([
            sample_surface(Mesh(n.apply(m.vertices), m.faces), ENCODE_POINTS, np.random.default_rng(0))
            for m, n in zip(meshes, norms)])
        with torch.inference_mode():
            mu, _ = lm.model.encode(torch.as_tensor(clouds, dtype=torch.float32, device=self._device))
        return mu.float().cpu().numpy().astype(np.float64), norms, clouds

    def size_applied(self, size: str) -> str:
        """The size samples asked for with `size` really get: "unit" for a model that records no sizes."""
        with self._lock:
            return size if self._sizes is not None else "unit"

    def sample(self, count: int, seed: int = 0, temperature: float = 1.0, resolution: int = 2562,
               prior: str = "auto", label: str | None = None, size: str = DEFAULT_SIZE,
               surface: str = DEFAULT_SURFACE, face_budget: int = DEFAULT_FACE_BUDGET) -> list[ShapeMesh]:
        """`count` new shapes; the same seed gives the same shapes.

        `label` (e.g. "sword") samples from that label's own fitted prior instead of the whole model's.
        `size` "real" gives each shape its family's typical size in metres (the label's, else the label whose
        prior fits its code best, else the model's overall size), standing on z = 0; "unit", or a model that
        records no sizes, gives the unit ball the network works in.
        `surface` (limits.SURFACE_CHOICES) and `face_budget`: closed meshes or the decoded patches (see finish),
        closed in the unit ball before they are sized.
        """
        with self._lock:
            lm = self._require()
            kind, budget = self._surface(lm, surface, face_budget)
            z = sample_latents(count, seed, lm.config.latent_dim, kind=prior, temperature=temperature, prior=lm.prior,
                               label=label, label_priors=lm.label_priors, default=self._default_prior(lm),
                               model_name=lm.name)
            verts, faces = self._decode(lm, z, resolution)
            shapes = [dataclasses.replace(finish(v, faces, kind, budget), latent=code, label=label)
                      for v, code in zip(verts, z)]
            sizes = self._sizes if size == "real" else None
            if sizes is not None:
                families = [label] * count if label is not None else nearest_labels(z, lm.label_priors)
                shapes = [s.placed(*size_frame(s.vertices, sizes.of(family))) for s, family in zip(shapes, families)]
        return shapes

    def reconstruct(self, mesh: Mesh, resolution: int = 2562, fit: str = "encoder", steps: int | None = None,
                    progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                    schedule: FitSchedule | None = None, surface: str = DEFAULT_SURFACE,
                    face_budget: int = DEFAULT_FACE_BUDGET) -> tuple[ShapeMesh, float]:
        """The model's version of `mesh` in the mesh's own frame, and its Chamfer distance x1e-3.

        `fit` (see backend/fit.py): "encoder" one pass, "latent" optimises the code, "full" also adapts a
        per-request copy of the decoder; `steps` is the fit's step budget (None: the mode's default).
        `progress` gets one event per step; setting `cancel` stops the fit within a step (FitCancelled).
        """
        fit, steps = check_fit(fit, steps)
        with self._lock:
            lm = self._require()
            kind, budget = self._surface(lm, surface, face_budget)
            mu, norms, clouds = self._encode(lm, [mesh])
            (fitted,) = self._fit(lm, [mesh], norms, mu, fit, steps, progress, cancel, schedule)
            z = fitted.z.float().cpu().numpy()
            verts, faces = self._decode(lm, z, resolution, fitted.decode)
            dense = self._decode_random(lm, z, ENCODE_POINTS, fitted.decode)
        score = chamfer(dense[0], clouds[0]) * 1e3
        return _in_frame(finish(verts[0], faces, kind, budget), norms[0], z[0]), float(score)

    def _fit(self, lm: LoadedModel, meshes: list[Mesh], norms: list[Normalisation], mu: np.ndarray, mode: str,
             steps: int, progress: ProgressFn | None, cancel: threading.Event | None,
             schedule: FitSchedule | None) -> list[FitResult]:
        """One fit per mesh, starting from its encoder code; progress counts steps over all of them."""
        base = schedule or FitSchedule()
        plan = dataclasses.replace(base, steps=steps) if mode != "encoder" else base
        results = []
        for k, (m, norm) in enumerate(zip(meshes, norms)):
            def relay(event: dict[str, Any], k: int = k) -> None:
                if progress is not None:
                    progress({**event, "step": event["step"] + k * steps, "steps": len(meshes) * steps,
                              "shape": k})

            targets = (surface_pool(Mesh(norm.apply(m.vertices), m.faces), plan.pool, FIT_SEED)
                       if mode != "encoder" else np.zeros((0, 3), np.float32))
            z0 = torch.as_tensor(mu[k:k + 1], dtype=torch.float32, device=self._device)
            results.append(fit_code(lm.model, z0, targets, mode, plan, relay, cancel, seed=FIT_SEED))
        return results

    def _decode_random(self, lm: LoadedModel, z: np.ndarray, count: int,
                       decode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> np.ndarray:
        gen = torch.Generator().manual_seed(0)
        template = random_points(lm.config.template, lm.config.patches, count, gen, self._device)
        decode = decode or lm.model.decode
        with torch.inference_mode():
            out = decode(torch.as_tensor(z, dtype=torch.float32, device=self._device), template)
        return out.float().cpu().numpy()

    def _shared_fit(self, lm: LoadedModel, meshes: list[Mesh], fit: str, fit_steps: int | None,
                    progress: ProgressFn | None, cancel: threading.Event | None
                    ) -> tuple[np.ndarray, list[Normalisation]]:
        """Latent codes for meshes that keep the shared decoder: the encoder's, or latent-fitted ones."""
        if fit not in SHARED_DECODER_FITS:
            raise ConfigError(f"fit must be one of {', '.join(SHARED_DECODER_FITS)} here (the decoder is shared "
                              f"so in-between shapes stay the model's), got {fit!r}")
        fit, fit_steps = check_fit(fit, fit_steps, "fit_steps")
        mu, norms, _ = self._encode(lm, meshes)
        fitted = self._fit(lm, meshes, norms, mu, fit, fit_steps, progress, cancel, None)
        return np.concatenate([f.z.float().cpu().numpy() for f in fitted]).astype(np.float64), norms

    def interpolate(self, a: Mesh, b: Mesh, steps: int = 5, resolution: int = 2562, fit: str = "encoder",
                    fit_steps: int | None = None, progress: ProgressFn | None = None,
                    cancel: threading.Event | None = None, surface: str = DEFAULT_SURFACE,
                    face_budget: int = DEFAULT_FACE_BUDGET) -> list[ShapeMesh]:
        """`steps` shapes morphing from `a` to `b` (both ends included), placed between their frames.

        `fit` "latent" fits each end's code to its mesh first (the decoder stays the model's)."""
        with self._lock:
            lm = self._require()
            kind, budget = self._surface(lm, surface, face_budget)
            mu, norms = self._shared_fit(lm, [a, b], fit, fit_steps, progress, cancel)
            t = np.linspace(0.0, 1.0, steps)[:, None]
            codes = (1 - t) * mu[0] + t * mu[1]
            verts, faces = self._decode(lm, codes, resolution)
        out = []
        for ti, v, code in zip(t[:, 0], verts, codes):
            frame = Normalisation(center=(1 - ti) * norms[0].center + ti * norms[1].center,
                                  scale=float((1 - ti) * norms[0].scale + ti * norms[1].scale))
            out.append(_in_frame(finish(v, faces, kind, budget), frame, code))
        return out

    def variations(self, mesh: Mesh, count: int = 4, spread: float = 0.5, seed: int = 0,
                   resolution: int = 2562, fit: str = "encoder", fit_steps: int | None = None,
                   progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                   surface: str = DEFAULT_SURFACE, face_budget: int = DEFAULT_FACE_BUDGET) -> list[ShapeMesh]:
        """`count` shapes near `mesh` in latent space; `spread` scales the step (1 = one prior std).

        `fit` "latent" fits the centre's code to the mesh first (the decoder stays the model's)."""
        with self._lock:
            lm = self._require()
            kind, budget = self._surface(lm, surface, face_budget)
            mu, norms = self._shared_fit(lm, [mesh], fit, fit_steps, progress, cancel)
            scale = self._prior_std(lm)
            eps = np.random.default_rng(seed).standard_normal((count, mu.shape[1]))
            codes = mu[0] + spread * scale * eps
            verts, faces = self._decode(lm, codes, resolution)
        return [_in_frame(finish(v, faces, kind, budget), norms[0], code) for v, code in zip(verts, codes)]

    def latent_dim(self) -> int:
        """The loaded model's latent size (a NoModelError without one)."""
        with self._lock:
            return self._require().config.latent_dim

    def direction_set(self, label: str | None = None) -> tuple[str | None, DirectionSet, list[str]]:
        """The directions for `label` (the family's own set, else the model-wide one, whose family is None) and
        the families that have their own; read or computed on first use (backend/directions.py).

        A label the model does not know is a ConfigError naming the param and the model's labels."""
        with self._lock:
            lm = self._require()
            if label is not None and label not in lm.label_priors:
                known = ", ".join(sorted(lm.label_priors)) or "none"
                raise ConfigError(f"param 'label': {label!r} is not one of model {lm.name!r}'s labels ({known})")
            if self._directions is None:
                self._directions = directions_of(lm, self._device)
            family, chosen = self._directions.of(label)
            return family, chosen, sorted(self._directions.families)

    def explore(self, latent: np.ndarray, moves: Sequence[tuple[int, float]] = (), label: str | None = None,
                toward: np.ndarray | None = None, blend: float = 0.0, scale: float = 1.0,
                offset: Sequence[float] = (0.0, 0.0, 0.0), resolution: int = 2562, surface: str = DEFAULT_SURFACE,
                face_budget: int = DEFAULT_FACE_BUDGET) -> ShapeMesh:
        """The shape of `latent` moved `blend` of the way toward `toward`, then along directions by `moves`
        ((index, amount in sigmas) of `label`'s set), placed at unit-ball vertices * `scale` + `offset`.

        `latent` and `toward` must have the model's latent size, and every index name a direction of the set;
        otherwise a ConfigError naming the input."""
        with self._lock:  # one model throughout, whatever another thread loads meanwhile
            lm = self._require()
            dim = lm.config.latent_dim
            for name, code in (("latent", latent), ("toward", toward)):
                if code is not None and np.shape(code) != (dim,):
                    raise ConfigError(f"param '{name}' holds {np.size(code)} values but model {lm.name!r}'s "
                                      f"latent codes have {dim}")
            _family, chosen, _families = self.direction_set(label)
            for i, (index, _amount) in enumerate(moves):
                if not 0 <= index < len(chosen.sigma):
                    raise ConfigError(f"param 'moves[{i}].direction': {index} is not one of the "
                                      f"{len(chosen.sigma)} directions (0 to {len(chosen.sigma) - 1})")
            start = np.asarray(latent, dtype=np.float64)
            if toward is not None:
                start = start + blend * (np.asarray(toward, dtype=np.float64) - start)
            code = chosen.move(start, list(moves))
            kind, budget = self._surface(lm, surface, face_budget)
            verts, faces = self._decode(lm, code[None], resolution)
        shape = dataclasses.replace(finish(verts[0], faces, kind, budget), latent=code, label=label)
        return shape.placed(scale, offset)

    def encode_in_frame(self, mesh: Mesh, fit: str = "encoder", fit_steps: int | None = None,
                        progress: ProgressFn | None = None, cancel: threading.Event | None = None
                        ) -> tuple[np.ndarray, float, tuple[float, float, float]]:
        """The latent code of `mesh` (the encoder's, or latent-fitted: the decoder stays the model's) and the
        frame (scale, offset) that places its unit-ball shape where `mesh` is: what explore starts from."""
        with self._lock:
            lm = self._require()
            mu, norms = self._shared_fit(lm, [mesh], fit, fit_steps, progress, cancel)
        center = norms[0].center
        return mu[0], float(norms[0].scale), (float(center[0]), float(center[1]), float(center[2]))

    @staticmethod
    def _prior_std(lm: LoadedModel) -> np.ndarray:
        if lm.prior is None:
            return np.ones(lm.config.latent_dim)
        std: np.ndarray = np.sqrt(lm.prior.variance())  # numpy's ufunc calls are typed Any
        return std

    @staticmethod
    def list_models(roots: Sequence[str | Path]) -> list[dict[str, str]]:
        """Every model folder directly in, or one level below, each root (roots that are missing are skipped),
        named and ordered as the add-on's locate.find_models does: the recorded name (else the folder's),
        folders sorted case-insensitively, the first occurrence of a path kept."""
        found: dict[str, dict[str, str]] = {}
        for root in map(Path, roots):
            if not root.is_dir():
                continue
            children = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name.lower())
            for cand in (root, *children):
                if is_model_folder(cand):
                    found.setdefault(str(cand.resolve()), {"name": _model_name(cand), "path": str(cand.resolve())})
        return list(found.values())


def _in_frame(mesh: ShapeMesh, frame: Normalisation, latent: np.ndarray) -> ShapeMesh:
    """`mesh` (made in the unit ball from `latent`) moved into `frame`'s space."""
    return dataclasses.replace(mesh, latent=latent).placed(frame.scale, frame.center)


def _model_name(folder: Path) -> str:
    """The name recorded in a model folder's metadata, else the folder's name."""
    try:
        meta = read_model_config(folder).get("meta")
    except AtlasError:
        return folder.name
    name = meta.get("name") if isinstance(meta, dict) else None
    return str(name) if name else folder.name
