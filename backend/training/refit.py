"""Refit a trained model's latent priors with the current prior code, keeping its weights bit for bit.

VAEs trained before the posterior-mixture prior carry an EM mixture fitted to their codes; this gives
them the better prior without retraining, and lets a user try another prior spread on any model.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..checkpoints import CONFIG_FILE, is_model_folder, load_model, save_model
from ..directions import refresh_directions
from ..data.packs import is_pack
from ..device import resolve_device
from ..errors import ConfigError
from ..inference import choose_default_prior, fit_priors
from .config import config_from_args
from .data import load_data
from .events import ProgressFn, emit
from .output import OutputLock


def refit_prior(model_dir: str | Path, out: str | Path | None = None, spread: float | None = None,
                data: str | None = None, procedural: str | None = None, device: str = "auto",
                force: bool = False, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Write `model_dir`'s weights with freshly fitted priors to `out` (default: in place, needs `force`).

    The training shapes come from the model's recorded training config, or from `data` / `procedural`
    when the original folder has moved; the split is the recorded one (same seed and fractions).
    """
    model_dir = Path(model_dir)
    target = Path(out) if out is not None else model_dir
    dev = resolve_device(device)
    lm = load_model(model_dir, dev)
    recorded = lm.meta.get("train_config")
    if not isinstance(recorded, dict):
        raise ConfigError(f"{model_dir}: its config.json does not record how it was trained, so its training "
                          f"shapes are unknown; this model cannot be refitted")
    try:
        config_from_args(recorded).check_bounds()
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"{model_dir / CONFIG_FILE}: its recorded training settings are invalid ({exc}); "
                          f"this model cannot be refitted") from None
    # Only the data and split matter here: no --init (the weights are this model's) and nothing to freeze.
    # Paths in the metadata are not covered by the checksum: never write where they point (the cache goes
    # to the user's own cache folder, the output to `target`).
    cfg = replace(config_from_args(recorded), out=str(target), init=None, freeze=(), resume=False, device=device,
                  force=force, cache_dir=None)
    if spread is not None:
        cfg = replace(cfg, prior_spread=spread)
    if data is not None or procedural is not None:
        cfg = replace(cfg, data=data, procedural=procedural)
    if cfg.data is not None and not Path(cfg.data).is_dir() and not (is_pack(cfg.data) and Path(cfg.data).is_file()):
        raise ConfigError(f"{model_dir}: was trained on {cfg.data}, which is not a folder or point pack here; pass "
                          f"--data DIR (or --procedural FAMILIES:COUNT) with its training shapes")
    cfg.check()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"--out {target}: exists and is not a folder")
    vae = lm.config.mode == "vae"
    _refuse_overwrite(model_dir, target, force)  # before the lock, which would leave its file in a foreign folder
    with OutputLock(target):
        _refuse_overwrite(model_dir, target, force)  # again under the lock: another refit may have written there
        emit(progress, {"event": "log", "message": f"reading the training shapes ({cfg.data or cfg.procedural})"})
        sets = load_data(cfg, progress)
        emit(progress, {"event": "log", "message": f"encoding {len(sets['train'].points)} training shapes and "
                                                    f"fitting the priors"})
        prior, label_priors = fit_priors(lm.model, sets["train"], cfg, dev)
        emit(progress, {"event": "log", "message": "comparing the priors on the validation shapes"})
        choice = choose_default_prior(lm.model, prior, sets["val"].points, cfg.seed, dev)
        fit = {"data": cfg.data, "procedural": cfg.procedural, "shapes": len(sets["train"].points),
               "labels": sorted(label_priors), **({"spread": cfg.prior_spread} if vae else {})}
        meta = {k: v for k, v in lm.meta.items() if k not in ("default_prior", "prior_fit")}
        metrics = {k: v for k, v in meta.get("metrics", {}).items() if not k.startswith("val_nna_")}
        meta.update(choice, prior_fit=fit, metrics={**metrics, **{k: v for k, v in choice.items()
                                                                  if k != "default_prior"}})
        if vae:
            meta["train_config"] = {**recorded, "prior_spread": cfg.prior_spread}
        if not _same_folder(target, model_dir):
            meta["name"] = target.name
        save_model(target, lm.model, prior=prior, meta=meta, label_priors=label_priors)
        refresh_directions(target, dev)  # they are the new prior's main directions
    summary = {"out": str(target), "prior_components": prior.components, **fit, **choice}
    emit(progress, {"event": "done", **summary})
    return summary


def _same_folder(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and os.path.samefile(a, b)


def _refuse_overwrite(model_dir: Path, target: Path, force: bool) -> None:
    """Replacing a prior (in place, or another model at --out) needs --force; a folder of other files is never used."""
    visible = [p for p in target.iterdir() if not p.name.startswith(".")] if target.is_dir() else []
    if _same_folder(target, model_dir):
        if not force:
            raise ConfigError(f"{model_dir}: refitting in place replaces its current prior; pass --force to do so, "
                              f"or --out NEW_FOLDER to keep it")
    elif is_model_folder(target):
        if not force:
            raise ConfigError(f"--out {target}: already holds a model; pass --force to overwrite it")
    elif visible:
        raise ConfigError(f"--out {target}: folder exists and is not empty (and is not a model folder); "
                          f"choose another folder")
