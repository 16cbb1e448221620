"""The training loop: train or fine-tune into a model folder, with progress events, cancel and resume.

The output folder is a model folder from the first epoch on (config.json + model.safetensors), plus
the optimiser state for resuming, a history, a loss-curve PNG and sample sheets (see output.py). One run
holds a lock on it; a second run pointed at the same folder is refused. Under torchrun the same loop is
one rank of a data-parallel run (distributed.py).
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoints import is_model_folder, load_model, read_json, save_model
from ..directions import refresh_directions
from ..data.datasets import PointSets
from ..errors import Cancelled, ConfigError, DataError
from ..inference import choose_default_prior, fit_priors, val_chamfer
from ..losses import chamfer_per_shape, kl_divergence
from ..model import AtlasVAE
from ..sizes import SIZES_KEY, typical_sizes
from ..templates import random_points
from . import distributed
from .augment import apply_factors, augment_rng, draw_factors
from .batches import LOSS_NAMES, PLOT_EVERY_S, Every, LossWindow, PointPacks, Read, batches, upload
from .config import TrainConfig
from .data import load_data
from .events import ProgressFn, emit, quiet
from .finetune import convert_mode, freeze, hold_frozen_in_eval
from .output import (HISTORY_FILE, LOSS_CURVE_FILE, OutputLock, mark_finished, prepare_output, restore_state,
                     save_state, write_run_marker)


def build_model(cfg: TrainConfig, device: torch.device) -> tuple[AtlasVAE, dict[str, Any]]:
    """A fresh model, or the --init model's architecture and weights for fine-tuning."""
    if cfg.init is not None:
        base = load_model(cfg.init, device)
        model = convert_mode(base.model, cfg.model.mode)
        freeze(model, cfg.freeze)
        model.train()
        return model, {"init": str(Path(cfg.init).resolve()), "init_name": base.name, "init_mode": base.config.mode}
    return AtlasVAE(cfg.model).to(device), {}


def kl_weight(cfg: TrainConfig, progress_epochs: float) -> float:
    """Linear KL warm-up from 0 to beta over the first warmup_epochs."""
    if cfg.warmup_epochs <= 0:
        return cfg.beta
    return cfg.beta * min(1.0, progress_epochs / cfg.warmup_epochs)


def run(cfg: TrainConfig, progress: ProgressFn | None = None,
        cancel: threading.Event | None = None) -> dict[str, Any]:
    """Train (or fine-tune with cfg.init) into cfg.out; returns a summary dict.

    Progress events go to `progress`; with none, a tqdm bar goes to stderr. Setting `cancel` stops the
    run after the current step with a usable checkpoint written. Losses are read back from the device
    every LOSS_READ_EVERY steps (batches.py), so a step event carries the latest losses read, at most that
    many steps old; an epoch's figures cover every step. Under torchrun (WORLD_SIZE > 1) this
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
            progress = quiet

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
            emit(progress, {"event": "done", **summary})
            return summary
        return _train(cfg, out, group, data, state, progress, stop, held)



def _train(cfg: TrainConfig, out: Path, group: distributed.Solo, data: dict[str, PointSets],
           state: dict[str, Any] | None, progress: ProgressFn | None, cancel: threading.Event,
           held: ExitStack | None = None) -> dict[str, Any]:
    from ..reports import plot_history, sample_sheet

    device = group.device
    torch.manual_seed(cfg.seed)
    model, meta = build_model(cfg, device)
    train_pts = data["train"].points
    meta.update({"name": cfg.name or out.name, "train_shapes": len(train_pts),
                 "val_shapes": len(data["val"].points), "labels": sorted(set(data["train"].labels)),
                 "train_config": cfg.to_flat()})
    sizes = typical_sizes(data["train"].extents, data["train"].labels)
    if sizes is not None:
        meta[SIZES_KEY] = sizes  # what samples are scaled to (backend/sizes.py); a fine-tune records its own
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if state is not None and int(state.get("epoch", 0)) == 0 and not is_model_folder(out):
        state = None  # only the run marker landed: nothing to restore, start this same run afresh
    if state is None and group.is_main:
        write_run_marker(out, cfg, meta)
    if state is not None:
        if group.is_main:
            restore_state(out, model, opt, state)
            history = read_json(out / HISTORY_FILE) if (out / HISTORY_FILE).is_file() else []
        group.share_optimizer(opt)
        start_epoch = int(state["epoch"])
        history = history[:start_epoch]  # a kill between the history and state writes leaves one extra entry
        emit(progress, {"event": "log", "message": f"resuming from epoch {start_epoch}"})
    group.check_batch(min(cfg.batch_size, len(train_pts)))
    net = group.wrap(model)
    steps_per_epoch = max(1, len(train_pts) // cfg.batch_size)
    total_epochs = max(cfg.epochs, start_epoch)
    bar = _bar(progress, (total_epochs - start_epoch) * steps_per_epoch)
    if bar is not None and held is not None:
        held.callback(bar.close)  # an error then starts on a line of its own, not after the bar
    packs = PointPacks(train_pts, device)
    window = LossWindow(group)
    plot_due = Every(PLOT_EVERY_S)
    latest = dict.fromkeys(LOSS_NAMES, math.nan)
    t0 = time.perf_counter()
    done_steps = 0
    cancelled = False
    epoch = start_epoch
    for epoch in range(start_epoch, total_epochs):
        _set_lr(opt, cfg.lr * _lr_factor(epoch, total_epochs))
        rng = np.random.default_rng([cfg.seed, epoch])
        aug_rng = augment_rng(cfg.seed, epoch)
        model.train()
        hold_frozen_in_eval(model, cfg.freeze)
        sums = dict.fromkeys(LOSS_NAMES, 0.0)
        n = 0

        def take(reads: list[Read]) -> None:
            for read in reads:
                for k, v in read.values.items():
                    sums[k] += v
                latest.update(read.values)

        for step, idx in enumerate(batches(len(train_pts), cfg.batch_size, rng)):
            rows = group.shard(len(idx))
            x, clouds = packs.pick(idx, cfg.points, rng, rows)
            factors = draw_factors(len(idx), cfg.augment_mirror, cfg.augment_scale, aug_rng)
            if factors is not None:
                x = apply_factors(x, clouds, upload(factors[rows], device))
            template = random_points(model.cfg.template, model.cfg.patches, cfg.points, device=device)
            with group.private_rng(cfg.seed, epoch, step):
                pred, mu, logvar = net(x, template)
            # On the CPU the Chamfer search reads the output on the host anyway, so checking it costs no wait
            # (and spares the KD-tree non-finite points); elsewhere a non-finite output shows in the loss read.
            if device.type == "cpu" and group.any(not torch.isfinite(pred).all()):
                raise DataError(f"training diverged at epoch {epoch + 1} step {step + 1} (non-finite output); "
                                f"try a lower --lr")
            cd = chamfer_per_shape(pred, x).mean()
            kl = kl_divergence(mu, logvar, cfg.free_bits) if logvar is not None else torch.zeros((), device=device)
            loss = cd + kl_weight(cfg, epoch + step / steps_per_epoch) * kl
            opt.zero_grad(set_to_none=True)
            group.scale_loss(loss, len(x), len(idx)).backward()
            opt.step()
            window.add(epoch, step, (loss, cd, kl), len(x), len(idx))
            n += 1
            done_steps += 1
            if window.due(done_steps) or step + 1 == steps_per_epoch:
                take(window.read())
            elapsed = time.perf_counter() - t0
            eta = elapsed / done_steps * ((total_epochs - start_epoch) * steps_per_epoch - done_steps)
            event = {"event": "step", "epoch": epoch + 1, "epochs": total_epochs, "step": step + 1,
                     "steps": steps_per_epoch, "loss": latest["loss"],
                     "chamfer": latest["chamfer"] * 1e3, "kl": latest["kl"], "eta_s": eta}
            emit(progress, event)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, cd=f"{event['chamfer']:.3f}", kl=f"{event['kl']:.1f}")
            if group.any(cancel.is_set()):
                cancelled = True
                break
        take(window.read())  # a loss not read yet must be finite before any checkpoint is written
        if cancelled:
            if group.is_main:
                save_state(out, model, opt, cfg, epoch, history, meta, finished=False)
                plot_history(history, out / LOSS_CURVE_FILE)
            group.barrier()
            break
        if group.is_main:
            record = {"epoch": epoch + 1, **{k: v / max(n, 1) for k, v in sums.items()},
                      "val_chamfer": val_chamfer(model, data["val"].points, device),
                      "time_s": time.perf_counter() - t0}
            record["chamfer"] *= 1e3
            history.append(record)
            save_state(out, model, opt, cfg, epoch + 1, history, meta, finished=False)
            if plot_due.due(force=epoch + 1 == total_epochs):
                plot_history(history, out / LOSS_CURVE_FILE)
            if cfg.sheet_every > 0 and ((epoch + 1) % cfg.sheet_every == 0 or epoch + 1 == total_epochs):
                sample_sheet(model, device, out / f"samples_epoch{epoch + 1:03d}.png", seed=cfg.seed)
            emit(progress, {"event": "epoch", **record, "epochs": total_epochs,
                             "eta_s": (time.perf_counter() - t0) / done_steps *
                             ((total_epochs - start_epoch) * steps_per_epoch - done_steps)})
        group.barrier()
    if bar is not None:
        bar.close()
    if cancelled:
        summary = {"state": "cancelled", "out": str(out), "epoch": epoch, "history": history[-1:] or []}
        emit(progress, {"event": "done", **summary})
        return summary
    summary = group.from_main(lambda: finish(cfg, out, model, device, data, history, meta, opt, progress))
    emit(progress, {"event": "done", **summary})
    return summary


def finish(cfg: TrainConfig, out: Path, model: AtlasVAE, device: torch.device, data: dict[str, PointSets],
           history: list[dict[str, Any]], meta: dict[str, Any], opt: torch.optim.Optimizer,
           progress: ProgressFn | None) -> dict[str, Any]:
    """Fit the latent prior, pick the default prior by validation 1-NNA, write the final model."""
    emit(progress, {"event": "log", "message": "fitting the latent priors and comparing them on the validation set"})
    prior, label_priors = fit_priors(model, data["train"], cfg, device)
    choice = choose_default_prior(model, prior, data["val"].points, cfg.seed, device)
    meta = {**meta, **choice, "metrics": {"val_chamfer_x1e3": history[-1]["val_chamfer"] if history else None,
                                         **{k: v for k, v in choice.items() if k != "default_prior"}}}
    trained_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())  # the model card's date (not a file's)
    save_model(out, model, prior=prior, meta={**meta, "epoch": len(history), "finished": True,
                                              "trained_at": trained_at}, label_priors=label_priors)
    emit(progress, {"event": "log", "message": "finding the main directions of the latent space (Shape Explorer)"})
    refresh_directions(out, device)
    mark_finished(out, cfg, len(history), meta)
    return {"state": "finished", "out": str(out), "epochs": len(history), "default_prior": choice["default_prior"],
            "val_chamfer_x1e3": meta["metrics"]["val_chamfer_x1e3"]}


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

