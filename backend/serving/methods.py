"""The RPC methods the server answers: each one's params (types, defaults, limits from backend/limits.py),
and which of them run on the model thread. Torch-free, so requests are checked before the model loads."""

from __future__ import annotations

from ..limits import (
    DEFAULT_FACE_BUDGET, DEFAULT_SIZE, DEFAULT_SURFACE, FIT_MODES, MAX_COUNT, MAX_FACE_BUDGET, MAX_FIT_STEPS,
    MAX_RESOLUTION, MAX_SEED, MAX_STEPS, MIN_FACE_BUDGET, MIN_FIT_STEPS, MIN_RESOLUTION, MIN_STEPS, PRIOR_KINDS,
    SHARED_DECODER_FITS, SIZE_MODES, SURFACE_CHOICES,
)
from .protocol import Param

_RESOLUTION = Param("resolution", "int", default=2562, minimum=MIN_RESOLUTION, maximum=MAX_RESOLUTION)
_SEED = Param("seed", "int", default=0, minimum=0, maximum=MAX_SEED)
# What comes back (backend/surface.py): auto closes a patch model's shapes into one mesh of at most face_budget faces.
_SURFACE = [Param("surface", "str", default=DEFAULT_SURFACE, choices=SURFACE_CHOICES),
            Param("face_budget", "int", default=DEFAULT_FACE_BUDGET, minimum=MIN_FACE_BUDGET, maximum=MAX_FACE_BUDGET)]
# Wire default "encoder": clients that do not ask for a fit get the one-pass answer they always got.
_SHARED_FIT = [Param("fit", "str", default="encoder", choices=SHARED_DECODER_FITS),
               Param("fit_steps", "int", minimum=MIN_FIT_STEPS, maximum=MAX_FIT_STEPS)]

SPECS: dict[str, list[Param]] = {
    "handshake": [],
    "list_models": [],
    "load_model": [Param("path", "str", required=True)],
    "sample": [Param("count", "int", default=1, minimum=1, maximum=MAX_COUNT), _SEED,
               Param("temperature", "float", default=1.0, minimum=0.0, maximum=10.0), _RESOLUTION,
               Param("prior", "str", default="auto", choices=PRIOR_KINDS), Param("label", "str"),
               Param("size", "str", default=DEFAULT_SIZE, choices=SIZE_MODES), *_SURFACE],
    "reconstruct": [Param("mesh", "mesh", required=True), _RESOLUTION,
                    Param("fit", "str", default="encoder", choices=FIT_MODES),
                    Param("steps", "int", minimum=MIN_FIT_STEPS, maximum=MAX_FIT_STEPS), *_SURFACE],
    "interpolate": [Param("mesh_a", "mesh", required=True), Param("mesh_b", "mesh", required=True),
                    Param("steps", "int", default=5, minimum=MIN_STEPS, maximum=MAX_STEPS), _RESOLUTION, *_SHARED_FIT,
                    *_SURFACE],
    "variations": [Param("mesh", "mesh", required=True), Param("count", "int", default=4, minimum=1, maximum=MAX_COUNT),
                   Param("spread", "float", default=0.5, minimum=0.0, maximum=10.0), _SEED, _RESOLUTION,
                   *_SHARED_FIT, *_SURFACE],
    "finetune": [Param("data", "str", required=True), Param("out", "str", required=True),
                 Param("epochs", "int", required=True, minimum=1, maximum=100_000), Param("init", "str"),
                 Param("name", "str"), Param("load", "bool", default=True),
                 Param("freeze", "str")],
    "template_uvs": [Param("template", "str", required=True, choices=("sphere", "squares")),
                     Param("patches", "int", default=1, minimum=1, maximum=1024), _RESOLUTION],
    "job_status": [Param("job_id", "str", required=True)],
    "cancel": [Param("job_id", "str", required=True)],
    "release": [],
    "shutdown": [],
}
MODEL_METHODS = frozenset({"load_model", "sample", "reconstruct", "interpolate", "variations", "release"})
