"""Starting a run from an --init model: inherited architecture, autoencoder <-> VAE, and frozen layer groups.

The --init model fixes the architecture, so an architecture flag that disagrees with it is an error that
names the flag (never silently ignored). Its mode can change: an autoencoder becomes a VAE by keeping the
encoder and decoder weights and adding a variance head that starts narrow (as a fresh VAE's does), and a
VAE becomes an autoencoder by dropping that head. Freezing keeps whole layer groups fixed while the rest
trains; frozen batch-norm layers also keep their running statistics.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import fields, replace
from typing import Any

from torch import nn

from ..errors import ConfigError
from ..model import AtlasVAE, ModelConfig

# Architecture fields that no command-line flag sets (Python callers only): errors name them as fields.
FLAGLESS = ("encoder_widths", "norm")

# Named layer groups (prefixes of parameter and module names) that --freeze accepts.
LAYER_GROUPS: dict[str, tuple[str, ...]] = {
    "features": ("encoder.point_layers", "encoder.point_norms", "encoder.fc", "encoder.fc_norm"),
    "heads": ("encoder.mu", "encoder.logvar"),
    "encoder": ("encoder.",),
    "decoder": ("decoders.",),
}
GROUP_HELP = ("features (PointNet layers), heads (posterior mean and variance), encoder (features + heads), "
              "decoder (all patch decoders)")


def inherit_architecture(model: ModelConfig, given: Set[str], init: ModelConfig, init_path: str) -> ModelConfig:
    """The architecture of a run from `init`: the fields not in `given` are init's, a given one that disagrees
    is refused by its flag, and the mode is `model`'s when given (a conversion), else init's."""
    for f in fields(ModelConfig):
        name, own, mine = f.name, getattr(init, f.name), getattr(model, f.name)
        if name != "mode" and name in given and mine != own:
            flag = name if name in FLAGLESS else "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} {_show(mine)} cannot apply with --init {init_path}: that model's "
                              f"architecture is fixed ({flag} {_show(own)}); drop {flag}, or train from "
                              f"scratch without --init")
    return replace(init, mode=model.mode if "mode" in given else init.mode)


def _show(value: Any) -> str:
    return ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def convert_mode(model: AtlasVAE, mode: str) -> AtlasVAE:
    """The same network in another mode: weights kept, the variance head added (starting narrow) or dropped."""
    if mode == model.cfg.mode:
        return model
    device = next(model.parameters()).device
    converted = AtlasVAE(replace(model.cfg, mode=mode)).to(device)
    missing, unexpected = converted.load_state_dict(model.state_dict(), strict=False)
    stray = [k for k in [*missing, *unexpected] if not k.startswith("encoder.logvar.")]
    if stray:
        raise ConfigError(f"cannot turn the {model.cfg.mode} model into a {mode} model: weights "
                          f"{', '.join(stray[:5])} do not carry over")
    converted.train(model.training)
    return converted


def parse_freeze(spec: str | None) -> tuple[str, ...]:
    """'encoder' or 'features,decoder' -> a tuple of group names (checked later by check_freeze)."""
    if not spec:
        return ()
    return tuple(dict.fromkeys(part.strip() for part in spec.split(",") if part.strip()))


def check_freeze(groups: tuple[str, ...] | list[str], has_init: bool) -> None:
    """Refuse unknown groups, freezing without pretrained weights, and freezing everything."""
    unknown = [g for g in groups if g not in LAYER_GROUPS]
    if unknown:
        raise ConfigError(f"--freeze {','.join(unknown)}: unknown layer group(s); choose from {GROUP_HELP}")
    if groups and not has_init:
        raise ConfigError(f"--freeze {','.join(groups)} cannot apply without --init: there are no trained "
                          f"weights to keep fixed")
    if {"decoder"} <= set(groups) and ({"encoder"} <= set(groups) or {"features", "heads"} <= set(groups)):
        raise ConfigError(f"--freeze {','.join(groups)}: that freezes every weight, so nothing would train")


def _in_groups(name: str, groups: tuple[str, ...] | list[str]) -> bool:
    prefixes = tuple(p for g in groups for p in LAYER_GROUPS[g])
    return any(name == p.rstrip(".") or name.startswith(p if p.endswith(".") else p + ".") for p in prefixes)


def freeze(model: nn.Module, groups: tuple[str, ...] | list[str]) -> int:
    """Stop gradients to every parameter in `groups`; returns how many parameter values are frozen."""
    count = 0
    for name, param in model.named_parameters():
        if _in_groups(name, groups):
            param.requires_grad_(False)
            count += param.numel()
    return count


def hold_frozen_in_eval(model: nn.Module, groups: tuple[str, ...] | list[str]) -> None:
    """Put frozen batch-norm layers in eval mode so training does not move their running statistics."""
    if not groups:
        return
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and _in_groups(name, groups):
            module.eval()
