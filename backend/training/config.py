"""A run's settings (TrainConfig): defaults, bounds, the --init model's architecture, and their flat JSON form.

TrainConfig holds the architecture as a ModelConfig plus the names of the architecture fields set explicitly
(command-line flags). Without --init the model is used as it is; with --init the fields not set explicitly
are that model's, and an explicitly set field that disagrees with it is refused by name.

On disk (train_state.json's "config" and "run", a model's "train_config" metadata) the settings are one
flat dict with the architecture fields beside the others, as every earlier version wrote them, so older
runs resume and older models refit with this code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..checkpoints import is_model_folder, read_model_config
from ..data.packs import PACK_SUFFIX, is_pack
from ..data.procedural import FAMILIES
from ..errors import ConfigError
from ..limits import DEVICE_CHOICES, MAX_EPOCHS, MAX_SEED, MIN_EPOCHS
from ..model import ModelConfig
from .finetune import check_freeze, inherit_architecture, parse_freeze

# Sane ranges for integer settings; they also bound values read back from a model's metadata (refit-prior),
# which the weights' checksum does not cover.
INT_BOUNDS = {"epochs": (MIN_EPOCHS, MAX_EPOCHS), "batch_size": (2, 4096), "points": (1, 100_000),
              "prior_components": (1, 4096), "warmup_epochs": (0, 100_000), "sheet_every": (0, 100_000),
              "max_faces": (1, 2_000_000), "seed": (0, MAX_SEED)}
FINETUNE_LR = 5e-4  # fine-tuning's learning rate, for the CLI and the server alike (half of training's)
# Number settings: finite, between the bounds; a bracket says whether the bound itself is allowed.
NUMBER_BOUNDS = {"lr": ("(", 0.0, math.inf, ")"), "beta": ("[", 0.0, math.inf, ")"),
                 "free_bits": ("[", 0.0, math.inf, ")"), "prior_spread": ("(", 0.0, math.inf, ")"),
                 "val_fraction": ("[", 0.0, 1.0, ")"), "test_fraction": ("[", 0.0, 1.0, ")"),
                 "augment_mirror": ("[", 0.0, 1.0, "]"), "augment_scale": ("[", 0.0, 1.0, ")")}
NUMBER_SETTINGS = tuple(NUMBER_BOUNDS)
TEXT_SETTINGS = ("data", "procedural", "init", "name", "cache_dir")  # a string, or None
FLAG_SETTINGS = ("resume", "force")
MODEL_FIELDS = tuple(f.name for f in fields(ModelConfig))
# The settings that make two runs the same run (resuming needs them equal). Augmentation (augment_mirror,
# augment_scale) is not one of them: it changes what each step sees, not what is being trained, so a run
# may be resumed with it turned on, off or changed. `norm` is not one of them: no
# flag sets it (it is the --init model's or the default, both fixed by the keys here), and run records
# written before TrainConfig held a ModelConfig lack it.
RUN_KEYS = ("data", "procedural", "init", "batch_size", "points", "beta",
            *(name for name in MODEL_FIELDS if name != "norm"), "seed")


@dataclass
class TrainConfig:
    """Everything a run needs; stored in the output folder so a rerun can resume it."""

    out: str
    data: str | None = None
    procedural: str | None = None
    init: str | None = None
    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-3
    points: int = 1024
    beta: float = 1e-5
    warmup_epochs: int = 5
    free_bits: float = 0.0
    augment_mirror: float = 0.0  # probability of mirroring a shape across x = 0 each step (augment.py)
    augment_scale: float = 0.0  # per-axis stretch in [1 - s, 1 + s] each step, renormalised (augment.py)
    # The architecture; with --init only the fields named in model_given are the user's (see resolved()).
    model: ModelConfig = field(default_factory=ModelConfig)
    model_given: frozenset[str] = frozenset()
    freeze: tuple[str, ...] = ()
    val_fraction: float = 0.1
    test_fraction: float = 0.0
    prior_components: int = 32
    prior_spread: float = 1.5
    sheet_every: int = 5
    device: str = "auto"
    seed: int = 0
    name: str | None = None
    resume: bool = False
    force: bool = False
    cache_dir: str | None = None
    max_faces: int = 2_000_000
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """Settings from the flat layout (command-line options, saved JSON); architecture fields given a
        value other than None count as set explicitly. Unknown names raise TypeError, as the constructor does.

        A bad architecture value is reported after a bad integer or number setting, the order check() uses.
        """
        nested = sorted({"model", "model_given"} & set(values))
        if nested:
            raise TypeError(f"from_flat takes the flat layout (architecture fields at the top level), not {nested}")
        arch = {k: v for k, v in values.items() if k in MODEL_FIELDS and v is not None}
        cfg = cls(**{k: v for k, v in values.items() if k not in MODEL_FIELDS})
        try:
            model = ModelConfig(**arch)
        except ConfigError:
            cfg.check_bounds()
            raise
        return replace(cfg, model=model, model_given=frozenset(arch))

    def to_flat(self) -> dict[str, Any]:
        """The flat layout written to train_state.json and a model's metadata (from_flat reads it back)."""
        flat = asdict(self)
        del flat["model"], flat["model_given"]
        return {**flat, **self.model.to_dict()}

    def resolved(self) -> "TrainConfig":
        """A copy whose model is the one to build: with --init, that model's architecture (and mode unless set)."""
        if self.init is None:
            return replace(self)
        try:
            init_cfg = ModelConfig.from_dict(read_model_config(self.init).get("model", {}))
        except (ConfigError, TypeError) as exc:
            raise ConfigError(f"--init {self.init}: invalid model config ({exc})") from None
        return replace(self, model=inherit_architecture(self.model, self.model_given, init_cfg, self.init))

    def check(self) -> None:
        """Refuse impossible settings before any data is read."""
        if (self.data is None) == (self.procedural is None):
            raise ConfigError("give exactly one of --data DIR or --procedural FAMILIES:COUNT")
        self.check_bounds()
        for name in ("epochs", "batch_size", "points", "prior_components"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.batch_size < 2:
            raise ConfigError(f"batch_size must be at least 2 (batch norm needs two shapes per step), "
                              f"got {self.batch_size}")
        if self.data is not None and not Path(self.data).is_dir() and not is_pack(self.data):
            raise ConfigError(f"--data {self.data}: not a folder (nor a point pack ending in {PACK_SUFFIX})")
        if self.data is not None and Path(self.out).resolve().is_relative_to(Path(self.data).resolve()):
            raise ConfigError(f"--out {self.out}: is inside --data {self.data}, which is never written to; "
                              f"choose an output folder outside it")
        if self.init is not None and not is_model_folder(self.init):
            raise ConfigError(f"--init {self.init}: not a model folder (needs config.json and model.safetensors)")
        self.freeze = parse_freeze(self.freeze) if isinstance(self.freeze, str) else tuple(self.freeze)
        check_freeze(self.freeze, self.init is not None)
        self.resolved()

    def check_bounds(self) -> None:
        """The whole schema of the settings in one place: each setting's type, and its range (INT_BOUNDS,
        NUMBER_BOUNDS: numbers must be finite, so NaN never reaches the optimiser or the JSON written).

        The architecture needs no check here: a ModelConfig refuses impossible values when it is built.
        """
        for name, (low, high) in INT_BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"{name} must be an integer between {low} and {high}, got {value!r}")
        for name, (opening, lowest, highest, closing) in NUMBER_BOUNDS.items():
            value = getattr(self, name)
            number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            if not number or not (lowest < value if opening == "(" else lowest <= value) or \
                    not (value < highest if closing == ")" else value <= highest):
                raise ConfigError(f"{name} must be a finite number in {opening}{lowest:g}, {highest:g}{closing}, "
                                  f"got {value!r}")
        for name in TEXT_SETTINGS:
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string, got {getattr(self, name)!r}")
        for name in FLAG_SETTINGS:
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.out, str):
            raise ConfigError(f"out must be a string, got {self.out!r}")
        if self.device not in DEVICE_CHOICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICE_CHOICES)}, got {self.device!r}")
        if not isinstance(self.freeze, (str, tuple, list)) or \
                not all(isinstance(g, str) for g in ([self.freeze] if isinstance(self.freeze, str) else self.freeze)):
            raise ConfigError(f"freeze must be a list of layer group names, got {self.freeze!r}")

    def run_identity(self) -> dict[str, Any]:
        """The RUN_KEYS settings in the flat layout, as train_state.json records them under "run"."""
        flat = self.to_flat()
        return {k: flat[k] for k in RUN_KEYS}


def parse_procedural(spec: str) -> tuple[list[str], int]:
    """'sword,plane:200' -> (['sword', 'plane'], 200); 'all:100' means every family."""
    names, _, count = spec.partition(":")
    families = list(FAMILIES) if names in ("", "all") else [n.strip() for n in names.split(",") if n.strip()]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ConfigError(f"--procedural: unknown families {unknown}; known: {', '.join(FAMILIES)}")
    try:
        per_family = int(count) if count else 100
    except ValueError:
        raise ConfigError(f"--procedural: count must be an integer, got {count!r}") from None
    if per_family < 1:
        raise ConfigError(f"--procedural: count must be positive, got {per_family}")
    return families, per_family


def config_from_args(values: Mapping[str, Any]) -> TrainConfig:
    """Build a TrainConfig from a flat dict of option values, ignoring keys it does not know and None values."""
    known = ({f.name for f in fields(TrainConfig)} - {"model", "model_given"}) | set(MODEL_FIELDS)
    return TrainConfig.from_flat({k: v for k, v in values.items() if k in known and v is not None})
