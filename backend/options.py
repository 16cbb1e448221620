"""Every request option, declared once: name, kind, bounds or choices, and default per layer.

The wire's param checks (each method's `rpc` declaration in serving/dispatcher.py), the CLI's arguments
(cli.py) and the docs' option table (serving/methods.py) are built from these; the add-on keeps its own copies (it never imports the backend) and
tests/addon/test_option_pins.py pins each of them here. A default that differs by layer on purpose is
declared here as `cli` / `addon` with the reason in `why`. Torch-free, like limits.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .limits import (
    DEFAULT_FACE_BUDGET, DEFAULT_SIZE, DEFAULT_SURFACE, FIT_MODES, MAX_AMOUNT, MAX_COUNT, MAX_EPOCHS, MAX_FACE_BUDGET,
    MAX_FIT_STEPS, MAX_RESOLUTION, MAX_SEED, MAX_SPREAD, MAX_STEPS, MAX_TEMPERATURE, MIN_EPOCHS, MIN_FACE_BUDGET,
    MIN_FIT_STEPS, MIN_RESOLUTION, MIN_STEPS, PRIOR_KINDS, SHARED_DECODER_FITS, SIZE_MODES, SURFACE_CHOICES,
)

SAME = object()  # a layer's default is the wire's
ABSENT = object()  # the layer does not offer the option (its requests leave it to the wire's default)


@dataclass(frozen=True)
class Option:
    """One request option. `default` is the wire's (None: not sent means "the backend decides", e.g. a fit
    mode's own step count); `cli` and `addon` are those layers' defaults when they differ on purpose."""

    name: str
    kind: str  # "int", "float" or "str"
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    required: bool = False  # on the wire
    cli: Any = SAME
    addon: Any = SAME
    why: str = ""

    @property
    def cli_default(self) -> Any:
        return self.default if self.cli is SAME else self.cli

    @property
    def addon_default(self) -> Any:
        return self.default if self.addon is SAME else self.addon

    def describe(self) -> str:
        """The accepted values in words, as every layer's error message states them."""
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        noun = "an integer" if self.kind == "int" else "a number" if self.kind == "float" else "a string"
        if self.minimum is not None and self.maximum is not None:
            return f"{noun} between {_fmt(self.minimum)} and {_fmt(self.maximum)}"
        return noun


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


# The wire's defaults are what clients that send nothing always got; the CLI writes files, so it makes a batch,
# and fits by default (a person at a terminal waits for a faithful result); the add-on makes a small batch.
COUNT = Option("count", "int", 1, 1, MAX_COUNT, cli=8, addon=4,
               why="wire: one shape unless asked; CLI: a batch of files; add-on: a small grid in the scene")
SEED = Option("seed", "int", 0, 0, MAX_SEED)
TEMPERATURE = Option("temperature", "float", 1.0, 0.0, MAX_TEMPERATURE)
RESOLUTION = Option("resolution", "int", 2562, MIN_RESOLUTION, MAX_RESOLUTION)
PRIOR = Option("prior", "str", "auto", choices=PRIOR_KINDS, addon=ABSENT)
LABEL = Option("label", "str", addon="ANY", why="the add-on's family menu names the whole prior 'Any'")
SIZE = Option("size", "str", DEFAULT_SIZE, choices=SIZE_MODES)
SURFACE = Option("surface", "str", DEFAULT_SURFACE, choices=SURFACE_CHOICES)
FACE_BUDGET = Option("face_budget", "int", DEFAULT_FACE_BUDGET, MIN_FACE_BUDGET, MAX_FACE_BUDGET)
FIT = Option("fit", "str", "encoder", choices=FIT_MODES, cli="full", addon="full",
             why="wire: the one-pass answer clients always got; CLI and add-on: a faithful reconstruction")
FIT_STEPS = Option("steps", "int", None, MIN_FIT_STEPS, MAX_FIT_STEPS, addon=0,
                   why="not sent: the fit mode's default (limits.DEFAULT_FIT_STEPS); the add-on's 0 means that")
SHARED_FIT = Option("fit", "str", "encoder", choices=SHARED_DECODER_FITS, cli="latent", addon="latent",
                    why="as `fit`; only the modes that keep the model's decoder, so in-between shapes stay its own")
SHARED_FIT_STEPS = Option("fit_steps", "int", None, MIN_FIT_STEPS, MAX_FIT_STEPS, addon=ABSENT)
STEPS = Option("steps", "int", 5, MIN_STEPS, MAX_STEPS)
VARIATION_COUNT = Option("count", "int", 4, 1, MAX_COUNT, cli=ABSENT)  # the CLI has no variations command
SPREAD = Option("spread", "float", 0.5, 0.0, MAX_SPREAD, cli=ABSENT)
EPOCHS = Option("epochs", "int", None, MIN_EPOCHS, MAX_EPOCHS, required=True, cli=20, addon=10,
                why="the wire needs it said; CLI `finetune` and the add-on pick a short fine-tune")
# The Shape Explorer: how far one move goes along a direction, in the training codes' standard deviations, and
# how far toward another result's code. The CLI offers no "toward".
AMOUNT = Option("amount", "float", None, -MAX_AMOUNT, MAX_AMOUNT, required=True, addon=0.0,
                why="the wire needs each move's amount said; the add-on's Explorer sliders rest at 0 (no move)")
BLEND = Option("blend", "float", 0.0, 0.0, 1.0, cli=ABSENT)


def cell(value: Any) -> str:
    """A default as the docs' tables show it."""
    if value is ABSENT:
        return "not offered"
    return "-" if value is None else f"`{value!r}`" if isinstance(value, str) else f"`{value}`"
