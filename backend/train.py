"""Training and fine-tuning: a resumable loop that checkpoints every epoch and can be cancelled.

The output folder is a model folder from the first epoch on (config.json + model.safetensors), plus
the optimiser state for resuming, a history, a loss-curve PNG and sample sheets. One run holds a lock
on it; a second run pointed at the same folder is refused.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from . import distributed
from .checkpoints import (atomic_write_bytes, atomic_write_json, bytes_to_tensors, is_model_folder,
                          load_model, read_config, save_model, tensors_to_bytes)
from .data.datasets import PointSets, load_folder, procedural_point_sets, split_files
from .data.procedural import FAMILIES
from .errors import BusyError, Cancelled, ConfigError, DataError, cannot_write
from .finetune import (ARCHITECTURE_FLAGS, check_freeze, convert_mode, freeze, hold_frozen_in_eval,
                       inherit_architecture, parse_freeze)
from .inference import choose_default_prior, fit_priors, pick_points, val_chamfer
from .losses import chamfer_per_shape, kl_divergence
from .model import AtlasVAE, ModelConfig
from .templates import random_points

STATE_FILE = "train_state.safetensors"
STATE_JSON = "train_state.json"
HISTORY_FILE = "history.json"
LOCK_FILE = ".atlasvae.lock"
MIN_SHAPES = 4
# Sane ranges for integer settings; they also bound values read back from a model's metadata (refit-prior),
# which the weights' checksum does not cover.
INT_BOUNDS = {"epochs": (1, 100_000), "batch_size": (2, 4096), "points": (1, 100_000),
              "prior_components": (1, 4096), "warmup_epochs": (0, 100_000), "sheet_every": (0, 100_000),
              "max_faces": (1, 2_000_000), "seed": (0, 2**32 - 1)}

ProgressFn = Callable[[dict[str, Any]], None]


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
    # Architecture: None means the --init model's (fine-tuning), else ModelConfig's default; see resolved().
    mode: str | None = None
    template: str | None = None
    patches: int | None = None
    latent_dim: int | None = None
    decoder_width: int | None = None
    decoder_layers: int | None = None
    encoder_widths: tuple[int, ...] | None = None
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

    RUN_KEYS = ("data", "procedural", "init", "batch_size", "points", "beta", "mode", "template", "patches",
                "latent_dim", "decoder_width", "decoder_layers", "encoder_widths", "seed")

    def model_config(self) -> ModelConfig:
        """The architecture to build; unset fields take ModelConfig's defaults."""
        given = {f.name: getattr(self, f.name) for f in fields(ModelConfig)
                 if getattr(self, f.name, None) is not None}
        return ModelConfig(**given)

    def resolved(self) -> "TrainConfig":
        """A copy with every architecture field set: from the --init model when there is one, else defaults."""
        names = ("mode", *ARCHITECTURE_FLAGS)
        values = {name: getattr(self, name) for name in names}
        if self.init is not None:
            try:
                init_cfg = ModelConfig.from_dict(read_config(self.init).get("model", {}))
            except (ConfigError, TypeError) as exc:
                raise ConfigError(f"--init {self.init}: invalid model config ({exc})") from None
            values = inherit_architecture(values, init_cfg, self.init)
        else:
            defaults = ModelConfig()
            values = {k: getattr(defaults, k) if v is None else v for k, v in values.items()}
        values["encoder_widths"] = tuple(values["encoder_widths"])
        return replace(self, **values)

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
        if self.lr <= 0 or self.beta < 0 or self.free_bits < 0:
            raise ConfigError("lr must be > 0, beta and free_bits >= 0")
        if not 0 < self.prior_spread < math.inf:
            raise ConfigError(f"prior_spread must be a finite number > 0, got {self.prior_spread!r}")
        if not 0 <= self.val_fraction < 1 or not 0 <= self.test_fraction < 1:
            raise ConfigError("val_fraction and test_fraction must be in [0, 1)")
        if self.data is not None and not Path(self.data).is_dir():
            raise ConfigError(f"--data {self.data}: not a folder")
        if self.init is not None and not is_model_folder(self.init):
            raise ConfigError(f"--init {self.init}: not a model folder (needs config.json and model.safetensors)")
        self.freeze = parse_freeze(self.freeze) if isinstance(self.freeze, str) else tuple(self.freeze)
        check_freeze(self.freeze, self.init is not None)
        self.resolved().model_config()

    def check_bounds(self) -> None:
        """Refuse integer settings of the wrong type or outside INT_BOUNDS, and impossible architectures."""
        for name, (low, high) in INT_BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"{name} must be an integer between {low} and {high}, got {value!r}")
        for name in ("lr", "beta", "free_bits", "prior_spread", "val_fraction", "test_fraction"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), (int, float)):
                raise ConfigError(f"{name} must be a number, got {getattr(self, name)!r}")
        self.model_config()

    def run_identity(self) -> dict[str, Any]:
        d = asdict(self)
        d["encoder_widths"] = None if self.encoder_widths is None else list(self.encoder_widths)
        return {k: d[k] for k in self.RUN_KEYS}


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


def load_data(cfg: TrainConfig, progress: ProgressFn | None = None,
              cancel: threading.Event | None = None) -> dict[str, PointSets]:
    """Read the dataset once and split it into train / val / test point sets (deterministic)."""
    if cfg.procedural is not None:
        families, per_family = parse_procedural(cfg.procedural)
        sets = procedural_point_sets(families, per_family, cfg.seed)
    elif cfg.data is None:
        raise ConfigError("give exactly one of --data DIR or --procedural FAMILIES:COUNT")
    else:
        sets = load_folder(cfg.data, cache_dir=cfg.cache_dir, max_faces=cfg.max_faces,
                           progress=progress is None, cancel=cancel)
        for name, reason in sets.skipped:
            _emit(progress, {"event": "skip", "message": f"skipped {name}: {reason}"})
        for warning in sets.warnings:
            _emit(progress, {"event": "log", "message": f"warning: {warning}"})
        if sets.skipped:
            _emit(progress, {"event": "log", "message": f"using {len(sets.names)} mesh files under {cfg.data}; "
                                                        f"skipped {len(sets.skipped)} (listed above)"})
    if len(sets.names) < MIN_SHAPES:
        where = cfg.data or cfg.procedural
        raise DataError(f"{where}: only {len(sets.names)} usable meshes (need at least {MIN_SHAPES}); "
                        f"{len(sets.skipped)} skipped")
    root = Path(cfg.data) if cfg.data else Path("procedural")
    splits = split_files([root / n for n in sets.names], root, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    index = {str(root / n): i for i, n in enumerate(sets.names)}
    return {split: subset(sets, [index[str(p)] for p in paths]) for split, paths in splits.items()}


def subset(sets: PointSets, idx: list[int]) -> PointSets:
    """The shapes of `sets` at positions `idx`."""
    return PointSets(points=sets.points[idx], names=[sets.names[i] for i in idx],
                     labels=[sets.labels[i] for i in idx], skipped=[])


def _emit(progress: ProgressFn | None, event: dict[str, Any]) -> None:
    """Send an event to the caller; with no caller (a terminal run), print its message to stderr."""
    if progress is not None:
        progress(event)
    elif event.get("message"):
        print(event["message"], file=sys.stderr, flush=True)


class OutputLock:
    """An exclusive advisory lock on the output folder, released on exit (and by the OS on a crash).

    A folder the lock itself created and that holds nothing else on exit (a run that failed before
    writing anything, e.g. on bad data) is removed again, so no empty leftover confuses the next run.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self._fh: Any = None
        self._created = False

    def __enter__(self) -> "OutputLock":
        self._created = not self.path.parent.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a+")
        except OSError as exc:
            raise cannot_write(self.path.parent, exc) from None
        try:
            if sys.platform == "win32":
                import msvcrt
                msvcrt.locking(self._fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.close()
            raise BusyError(f"{self.path.parent}: another training run is writing to this folder") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()
        folder = self.path.parent
        if self._created and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
            self.path.unlink(missing_ok=True)
            with suppress(OSError):
                folder.rmdir()


def prepare_output(cfg: TrainConfig) -> dict[str, Any] | None:
    """Decide between a fresh start and a resume; returns the saved state JSON when resuming.

    A folder with an unfinished run of the same settings resumes; anything else that exists needs
    --resume (finished or not) or --force (start over).
    """
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    if cfg.force:
        return None
    state_path = out / STATE_JSON
    state = None
    if state_path.is_file():
        try:
            state = json.loads(state_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{state_path}: unreadable training state ({exc}); use --force to start over") from None
    if state is not None:
        identity, saved = cfg.run_identity(), state.get("run") or {}
        differ = [k for k in identity if saved.get(k) != identity[k]]
        if differ:
            raise ConfigError(f"--out {out}: holds a run with other settings ({', '.join(differ)}); "
                              f"use the same settings or --force to start over")
        if cfg.resume or not state.get("finished"):
            return state
        raise ConfigError(f"--out {out}: already holds a finished model; pass --resume to train it further "
                          f"or --force to overwrite it")
    visible = [p for p in out.iterdir() if not p.name.startswith(".")] if out.is_dir() else []
    if visible:
        raise ConfigError(f"--out {out}: folder exists and is not empty; choose another folder or pass --force")
    if cfg.resume:
        raise ConfigError(f"--out {out}: nothing to resume there")
    return None


def build_model(cfg: TrainConfig, device: torch.device) -> tuple[AtlasVAE, dict[str, Any]]:
    """A fresh model, or the --init model's architecture and weights for fine-tuning."""
    if cfg.init is not None:
        base = load_model(cfg.init, device)
        model = convert_mode(base.model, cfg.model_config().mode)
        freeze(model, cfg.freeze)
        model.train()
        return model, {"init": str(Path(cfg.init).resolve()), "init_name": base.name, "init_mode": base.config.mode}
    return AtlasVAE(cfg.model_config()).to(device), {}


def kl_weight(cfg: TrainConfig, progress_epochs: float) -> float:
    """Linear KL warm-up from 0 to beta over the first warmup_epochs."""
    if cfg.warmup_epochs <= 0:
        return cfg.beta
    return cfg.beta * min(1.0, progress_epochs / cfg.warmup_epochs)


def batches(count: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Shuffled index batches; the last short batch is dropped unless it is the only one."""
    order = rng.permutation(count)
    full = max(1, count // batch_size)
    for b in range(full):
        yield order[b * batch_size:(b + 1) * batch_size]


def _save_state(out: Path, model: AtlasVAE, opt: torch.optim.Optimizer, cfg: TrainConfig, epoch: int,
                history: list[dict[str, Any]], meta: dict[str, Any], finished: bool) -> None:
    """Checkpoint: model folder first, then optimiser state, then the JSON that points at both."""
    save_model(out, model, meta={**meta, "epoch": epoch, "finished": finished})
    tensors = {f"opt.{i}.{k}": v for i, st in opt.state_dict()["state"].items() for k, v in st.items()
               if torch.is_tensor(v)}
    scalars = {f"{i}.{k}": v for i, st in opt.state_dict()["state"].items() for k, v in st.items()
               if not torch.is_tensor(v)}
    atomic_write_bytes(out / STATE_FILE, tensors_to_bytes(tensors or {"empty": torch.zeros(0)}))
    atomic_write_json(out / HISTORY_FILE, history)
    atomic_write_json(out / STATE_JSON, {"epoch": epoch, "finished": finished, "run": cfg.run_identity(),
                                         "opt_scalars": scalars, "config": _cfg_json(cfg), "meta": meta})


def _write_run_marker(out: Path, cfg: TrainConfig, meta: dict[str, Any]) -> None:
    """Mark the folder as holding this unfinished run before anything else is written to it.

    A run that dies at any later step (a full disk, a kill) then leaves a folder that a rerun of the same
    command recognises and resumes, instead of a "folder is not empty" refusal.
    """
    atomic_write_json(out / STATE_JSON, {"epoch": 0, "finished": False, "run": cfg.run_identity(),
                                         "opt_scalars": {}, "config": _cfg_json(cfg), "meta": meta})


def _cfg_json(cfg: TrainConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["encoder_widths"] = None if cfg.encoder_widths is None else list(cfg.encoder_widths)
    return d


def _restore_state(out: Path, model: AtlasVAE, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    loaded = load_model(out, next(model.parameters()).device)
    model.load_state_dict(loaded.model.state_dict())
    if not (out / STATE_FILE).is_file():
        return  # the optimiser state never landed: Adam restarts its moments, the weights carry on
    tensors = bytes_to_tensors((out / STATE_FILE).read_bytes(), out / STATE_FILE)
    opt_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value
    for key, value in state.get("opt_scalars", {}).items():
        idx, name = key.split(".", 1)
        opt_state.setdefault(int(idx), {})[name] = value
    sd = opt.state_dict()
    sd["state"] = opt_state
    opt.load_state_dict(sd)


def run(cfg: TrainConfig, progress: ProgressFn | None = None,
        cancel: threading.Event | None = None) -> dict[str, Any]:
    """Train (or fine-tune with cfg.init) into cfg.out; returns a summary dict.

    Progress events go to `progress`; with none, a tqdm bar goes to stderr. Setting `cancel` stops the
    run after the current step with a usable checkpoint written. Under torchrun (WORLD_SIZE > 1) this
    is one rank of a data-parallel run: only rank 0 locks and writes the output folder and reports
    progress, and a cancel on any rank stops every rank at the same step (see docs/distributed.md).
    """
    cfg.check()
    cfg = cfg.resolved()
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    with distributed.join(cfg.device) as group, ExitStack() as held:
        if not group.is_main:
            progress = _quiet

        def claim_output() -> dict[str, Any] | None:
            held.enter_context(OutputLock(out))
            return prepare_output(cfg)

        state = group.from_main(claim_output)
        stop = cancel or threading.Event()
        try:
            data = group.in_turn(lambda: load_data(cfg, progress, stop))
        except Cancelled as exc:
            summary = {"state": "cancelled", "out": str(out), "epoch": int((state or {}).get("epoch", 0)),
                       "history": [], "message": str(exc)}
            _emit(progress, {"event": "done", **summary})
            return summary
        return _train(cfg, out, group, data, state, progress, stop, held)


def _quiet(event: dict[str, Any]) -> None:
    """The progress sink of ranks other than 0: they neither print nor draw a progress bar."""


def _train(cfg: TrainConfig, out: Path, group: distributed.Solo, data: dict[str, PointSets],
           state: dict[str, Any] | None, progress: ProgressFn | None, cancel: threading.Event,
           held: ExitStack | None = None) -> dict[str, Any]:
    from .reports import plot_history, sample_sheet

    device = group.device
    torch.manual_seed(cfg.seed)
    model, meta = build_model(cfg, device)
    train_pts = data["train"].points
    meta.update({"name": cfg.name or out.name, "train_shapes": len(train_pts),
                 "val_shapes": len(data["val"].points), "labels": sorted(set(data["train"].labels)),
                 "train_config": _cfg_json(cfg)})
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if state is not None and int(state.get("epoch", 0)) == 0 and not is_model_folder(out):
        state = None  # only the run marker landed: nothing to restore, start this same run afresh
    if state is None and group.is_main:
        _write_run_marker(out, cfg, meta)
    if state is not None:
        if group.is_main:
            _restore_state(out, model, opt, state)
            history = json.loads((out / HISTORY_FILE).read_text()) if (out / HISTORY_FILE).is_file() else []
        group.share_optimizer(opt)
        start_epoch = int(state["epoch"])
        history = history[:start_epoch]  # a kill between the history and state writes leaves one extra entry
        _emit(progress, {"event": "log", "message": f"resuming from epoch {start_epoch}"})
    group.check_batch(min(cfg.batch_size, len(train_pts)))
    net = group.wrap(model)
    steps_per_epoch = max(1, len(train_pts) // cfg.batch_size)
    total_epochs = max(cfg.epochs, start_epoch)
    bar = _bar(progress, (total_epochs - start_epoch) * steps_per_epoch)
    if bar is not None and held is not None:
        held.callback(bar.close)  # an error then starts on a line of its own, not after the bar
    t0 = time.perf_counter()
    done_steps = 0
    cancelled = False
    epoch = start_epoch
    for epoch in range(start_epoch, total_epochs):
        _set_lr(opt, cfg.lr * _lr_factor(epoch, total_epochs))
        rng = np.random.default_rng([cfg.seed, epoch])
        model.train()
        hold_frozen_in_eval(model, cfg.freeze)
        sums = {"loss": 0.0, "chamfer": 0.0, "kl": 0.0}
        n = 0
        for step, idx in enumerate(batches(len(train_pts), cfg.batch_size, rng)):
            x = torch.as_tensor(pick_points(train_pts[idx], cfg.points, rng, group.shard(len(idx))), device=device)
            template = random_points(model.cfg.template, model.cfg.patches, cfg.points, device=device)
            with group.private_rng(cfg.seed, epoch, step):
                pred, mu, logvar = net(x, template)
            if group.any(not torch.isfinite(pred).all()):
                raise DataError(f"training diverged at epoch {epoch + 1} step {step + 1} (non-finite output); "
                                f"try a lower --lr")
            cd = chamfer_per_shape(pred, x).mean()
            kl = kl_divergence(mu, logvar, cfg.free_bits) if logvar is not None else torch.zeros((), device=device)
            loss = cd + kl_weight(cfg, epoch + step / steps_per_epoch) * kl
            values = dict(zip(("loss", "chamfer", "kl"), group.batch_means((loss, cd, kl), len(x), len(idx))))
            if not math.isfinite(values["loss"]):
                raise DataError(f"training diverged at epoch {epoch + 1} step {step + 1} (loss {values['loss']}); "
                                f"try a lower --lr")
            opt.zero_grad(set_to_none=True)
            group.scale_loss(loss, len(x), len(idx)).backward()
            opt.step()
            for k, v in values.items():
                sums[k] += v
            n += 1
            done_steps += 1
            elapsed = time.perf_counter() - t0
            eta = elapsed / done_steps * ((total_epochs - start_epoch) * steps_per_epoch - done_steps)
            event = {"event": "step", "epoch": epoch + 1, "epochs": total_epochs, "step": step + 1,
                     "steps": steps_per_epoch, "loss": values["loss"],
                     "chamfer": values["chamfer"] * 1e3, "kl": values["kl"], "eta_s": eta}
            _emit(progress, event)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, cd=f"{event['chamfer']:.3f}", kl=f"{event['kl']:.1f}")
            if group.any(cancel.is_set()):
                cancelled = True
                break
        if cancelled:
            if group.is_main:
                _save_state(out, model, opt, cfg, epoch, history, meta, finished=False)
            group.barrier()
            break
        if group.is_main:
            record = {"epoch": epoch + 1, **{k: v / max(n, 1) for k, v in sums.items()},
                      "val_chamfer": val_chamfer(model, data["val"].points, device),
                      "time_s": time.perf_counter() - t0}
            record["chamfer"] *= 1e3
            history.append(record)
            _save_state(out, model, opt, cfg, epoch + 1, history, meta, finished=False)
            plot_history(history, out / "loss_curve.png")
            if cfg.sheet_every > 0 and ((epoch + 1) % cfg.sheet_every == 0 or epoch + 1 == total_epochs):
                sample_sheet(model, device, out / f"samples_epoch{epoch + 1:03d}.png", seed=cfg.seed)
            _emit(progress, {"event": "epoch", **record, "epochs": total_epochs,
                             "eta_s": (time.perf_counter() - t0) / done_steps *
                             ((total_epochs - start_epoch) * steps_per_epoch - done_steps)})
        group.barrier()
    if bar is not None:
        bar.close()
    if cancelled:
        summary = {"state": "cancelled", "out": str(out), "epoch": epoch, "history": history[-1:] or []}
        _emit(progress, {"event": "done", **summary})
        return summary
    summary = group.from_main(lambda: finish(cfg, out, model, device, data, history, meta, opt, progress))
    _emit(progress, {"event": "done", **summary})
    return summary


def finish(cfg: TrainConfig, out: Path, model: AtlasVAE, device: torch.device, data: dict[str, PointSets],
           history: list[dict[str, Any]], meta: dict[str, Any], opt: torch.optim.Optimizer,
           progress: ProgressFn | None) -> dict[str, Any]:
    """Fit the latent prior, pick the default prior by validation 1-NNA, write the final model."""
    _emit(progress, {"event": "log", "message": "fitting the latent priors and comparing them on the validation set"})
    prior, label_priors = fit_priors(model, data["train"], cfg, device)
    choice = choose_default_prior(model, prior, data["val"].points, cfg.seed, device)
    meta = {**meta, **choice, "metrics": {"val_chamfer_x1e3": history[-1]["val_chamfer"] if history else None,
                                         **{k: v for k, v in choice.items() if k != "default_prior"}}}
    save_model(out, model, prior=prior, meta={**meta, "epoch": len(history), "finished": True},
               label_priors=label_priors)
    _save_state_json_finished(out, cfg, len(history), meta)
    return {"state": "finished", "out": str(out), "epochs": len(history), "default_prior": choice["default_prior"],
            "val_chamfer_x1e3": meta["metrics"]["val_chamfer_x1e3"]}


def _save_state_json_finished(out: Path, cfg: TrainConfig, epoch: int, meta: dict[str, Any]) -> None:
    path = out / STATE_JSON
    state = json.loads(path.read_text()) if path.is_file() else {}
    state.update({"epoch": epoch, "finished": True, "run": cfg.run_identity(), "meta": meta})
    atomic_write_json(path, state)


def _lr_factor(epoch: int, total: int) -> float:
    """AtlasNet's step schedule scaled to the run length: /10 at 80 %, 93 % and 97 % of the epochs."""
    return 0.1 ** sum(epoch >= math.floor(total * f) for f in (0.8, 0.93, 0.97) if total >= 10)


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def _bar(progress: ProgressFn | None, total: int) -> Any:
    if progress is not None:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="step", desc="training", dynamic_ncols=True)


def config_from_args(values: dict[str, Any]) -> TrainConfig:
    """Build a TrainConfig from a dict of option values, ignoring keys it does not know."""
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in values.items() if k in known and v is not None})
