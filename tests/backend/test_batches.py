"""Steps' batches on the device and their losses read back in windows (backend/training/batches.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from backend.errors import DataError
from backend.inference import pick_points
from backend.training import distributed
from backend.training.batches import LOSS_READ_EVERY, Every, LossWindow, PointPacks
from backend.training.data import load_data
from backend.training.loop import run
from backend.training.output import HISTORY_FILE, STATE_JSON


@pytest.mark.parametrize("count", [20, 50, 80])  # fewer, as many and more points than each cloud holds
@pytest.mark.parametrize("rows", [slice(None), slice(1, 3)])
def test_device_picks_are_the_numpy_picks(count: int, rows: slice) -> None:
    points = np.random.default_rng(5).standard_normal((7, 50, 3)).astype(np.float32)
    idx = np.array([3, 1, 5, 0])
    host, device = np.random.default_rng([9, 2]), np.random.default_rng([9, 2])
    for _ in range(3):  # successive steps draw from the advanced generator alike
        expected = pick_points(points[idx], count, host, rows)
        picked, clouds = PointPacks(points, torch.device("cpu")).pick(idx, count, device, rows)
        assert picked.dtype == torch.float32 and np.array_equal(picked.numpy(), expected)
        assert np.array_equal(clouds.numpy(), points[idx[rows]])
    assert host.random() == device.random()


def test_windows_read_the_first_step_then_every_16() -> None:
    window = LossWindow(distributed.Solo(torch.device("cpu")))
    due = [s for s in range(1, 60) if window.due(s)]
    assert due == [1, 1 + LOSS_READ_EVERY, 1 + 2 * LOSS_READ_EVERY, 1 + 3 * LOSS_READ_EVERY]


def test_a_window_raises_at_its_first_non_finite_loss() -> None:
    window = LossWindow(distributed.Solo(torch.device("cpu")))
    for step, loss in enumerate([1.0, 2.0, float("nan"), float("inf")]):
        window.add(4, step, (torch.tensor(loss), torch.tensor(0.5), torch.tensor(3.0)), 2, 2)
    with pytest.raises(DataError, match=r"diverged at epoch 5 step 3 \(loss nan\)"):
        window.read()
    window.add(0, 0, (torch.tensor(1.5), torch.tensor(0.5), torch.tensor(3.0)), 2, 2)
    (read,) = window.read()
    assert read.values == {"loss": 1.5, "chamfer": 0.5, "kl": 3.0} and window.read() == []


def test_every_limits_to_once_per_interval() -> None:
    now = [100.0]
    every = Every(30.0, clock=lambda: now[0])
    seen = []
    for t in (100.0, 110.0, 129.0, 130.0, 140.0):
        now[0] = t
        seen.append(every.due())
    assert seen == [True, False, False, True, False]
    assert every.due(force=True) and not every.due()


def test_a_run_reads_losses_in_windows_and_its_epochs_cover_every_step(
        tmp_path: Path, make_train_config, monkeypatch: pytest.MonkeyPatch) -> None:
    windows: list[np.ndarray] = []
    real = distributed.Solo.batch_means

    def spy(self: distributed.Solo, values: torch.Tensor, local: int, total: int) -> np.ndarray:
        windows.append(real(self, values, local, total))
        return windows[-1]

    monkeypatch.setattr(distributed.Solo, "batch_means", spy)
    cfg = make_train_config(tmp_path / "run", procedural="sword:44", batch_size=2, epochs=2, val_fraction=0.05)
    steps = len(load_data(cfg)["train"].points) // 2
    assert steps > LOSS_READ_EVERY + 1
    events: list[dict] = []
    run(cfg, progress=events.append)
    assert sum(e["event"] == "step" for e in events) == 2 * steps  # an event every step, as before
    sizes = [len(w) for w in windows]
    assert sum(sizes) == 2 * steps and max(sizes) == LOSS_READ_EVERY and len(sizes) < steps
    rows = np.concatenate(windows)
    history = json.loads((tmp_path / "run" / HISTORY_FILE).read_text())
    for epoch, record in enumerate(history):
        mine = rows[epoch * steps:(epoch + 1) * steps]
        assert record["loss"] == pytest.approx(mine[:, 0].mean()) and \
            record["chamfer"] == pytest.approx(1e3 * mine[:, 1].mean())


def test_a_nan_loss_between_reads_raises_before_the_epoch_is_saved(
        tmp_path: Path, make_train_config, monkeypatch: pytest.MonkeyPatch) -> None:
    import backend.training.loop as loop

    cfg = make_train_config(tmp_path / "run", epochs=3)
    steps = len(load_data(cfg)["train"].points) // cfg.batch_size
    calls = [0]
    real = loop.kl_divergence

    def nan_at_the_end_of_epoch_two(*args, **kwargs) -> torch.Tensor:
        calls[0] += 1
        kl = real(*args, **kwargs)
        return kl * float("nan") if calls[0] == 2 * steps else kl

    monkeypatch.setattr(loop, "kl_divergence", nan_at_the_end_of_epoch_two)
    with pytest.raises(DataError, match=f"diverged at epoch 2 step {steps} \\(loss nan\\)"):
        run(cfg)
    out = tmp_path / "run"
    assert json.loads((out / STATE_JSON).read_text())["epoch"] == 1
    assert len(json.loads((out / HISTORY_FILE).read_text())) == 1
    assert all(torch.isfinite(t).all() for t in load_file(str(out / "model.safetensors")).values()
               if t.is_floating_point())


@pytest.mark.parametrize("interval,drawn", [(1e9, [1, 3]), (0.0, [1, 2, 3])])
def test_the_loss_curve_is_redrawn_at_most_once_an_interval_and_at_the_end(
        tmp_path: Path, make_train_config, monkeypatch: pytest.MonkeyPatch, interval: float,
        drawn: list[int]) -> None:
    import backend.reports as reports
    import backend.training.loop as loop

    plotted: list[int] = []
    monkeypatch.setattr(loop, "PLOT_EVERY_S", interval)
    monkeypatch.setattr(reports, "plot_history", lambda history, path: plotted.append(len(history)))
    run(make_train_config(tmp_path / "run", epochs=3))
    assert plotted == drawn
