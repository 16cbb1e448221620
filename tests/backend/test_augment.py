"""Augmentation (backend/training/augment.py): mirror and per-axis stretch, their bounds, the CLI, a run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from backend.cli import build_parser
from backend.errors import ConfigError
from backend.training.augment import apply_factors, augment_rng, draw_factors
from backend.training.config import config_from_args
from backend.training.loop import run


def test_off_by_default_draws_nothing() -> None:
    assert draw_factors(8, 0.0, 0.0, np.random.default_rng(0)) is None
    args = build_parser().parse_args(["train", "--procedural", "sword:4", "--out", "x"])
    cfg = config_from_args(vars(args))
    assert (cfg.augment_mirror, cfg.augment_scale) == (0.0, 0.0)


def test_mirror_probability_and_stretch_range() -> None:
    always = draw_factors(500, 1.0, 0.0, np.random.default_rng(1))
    assert np.array_equal(always, np.tile([-1.0, 1.0, 1.0], (500, 1)))
    half = draw_factors(4000, 0.5, 0.2, np.random.default_rng(2))
    assert 0.45 < np.mean(half[:, 0] < 0) < 0.55
    sizes = np.abs(half)
    assert sizes.min() >= 0.8 and sizes.max() <= 1.2 and sizes.min() < 0.81 and sizes.max() > 1.19
    assert np.all(half[:, 1:] > 0)


def test_mirror_negates_x_and_keeps_the_rest() -> None:
    cloud = torch.randn(3, 50, 3)
    picked = cloud[:, :10]
    out = apply_factors(picked, cloud, np.array([[-1.0, 1.0, 1.0]] * 3))
    assert torch.equal(out[..., 0], -picked[..., 0]) and torch.equal(out[..., 1:], picked[..., 1:])


def test_stretch_keeps_the_farthest_point_and_changes_the_proportions() -> None:
    cloud = torch.randn(2, 200, 3)
    cloud = cloud / cloud.norm(dim=2).amax(dim=1)[:, None, None]  # farthest point on the unit sphere
    factors = np.array([[1.3, 0.8, 1.0], [0.9, 0.9, 1.2]])
    out = apply_factors(cloud, cloud, factors)
    assert torch.allclose(out.norm(dim=2).amax(dim=1), torch.ones(2))
    spread_in, spread_out = cloud.std(dim=1), out.std(dim=1)
    ratios = (spread_out / spread_in) / (spread_out / spread_in)[:, 2:3]  # relative to z, free of the rescale
    assert torch.allclose(ratios, torch.as_tensor(factors / factors[:, 2:3], dtype=torch.float32), rtol=1e-4)


@pytest.mark.parametrize("name,value", [("augment_mirror", -0.1), ("augment_mirror", 1.5),
                                        ("augment_scale", 1.0), ("augment_scale", float("nan")),
                                        ("augment_scale", -0.2)])
def test_out_of_bounds_values_are_refused_by_name(tmp_path: Path, make_train_config, name: str,
                                                   value: float) -> None:
    with pytest.raises(ConfigError, match=name):
        run(make_train_config(tmp_path / "out", **{name: value}))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_both_commands_take_the_options(command: str) -> None:
    args = build_parser().parse_args([command, "--procedural", "sword:4", "--out", "x",
                                      "--augment-mirror", "0.5", "--augment-scale", "0.15"])
    cfg = config_from_args(vars(args))
    assert (cfg.augment_mirror, cfg.augment_scale) == (0.5, 0.15)


def test_a_run_sees_mirrored_shapes_at_the_same_picks(tmp_path: Path, make_train_config,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import backend.training.loop as loop

    seen: list[torch.Tensor] = []
    real = loop.chamfer_per_shape

    def spy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        seen.append(target.detach().clone())
        return real(pred, target)

    monkeypatch.setattr(loop, "chamfer_per_shape", spy)
    run(make_train_config(tmp_path / "plain", epochs=1))
    plain, seen[:] = list(seen), []
    run(make_train_config(tmp_path / "mirrored", epochs=1, augment_mirror=1.0))
    assert len(seen) == len(plain) > 0
    for a, b in zip(plain, seen):
        assert torch.equal(b[..., 0], -a[..., 0]) and torch.equal(b[..., 1:], a[..., 1:])


def test_resuming_with_other_augmentation_is_allowed(tmp_path: Path, make_train_config) -> None:
    import threading

    out = tmp_path / "run"
    cancel = threading.Event()
    cancel.set()  # stop after the first step, with a checkpoint
    assert run(make_train_config(out), cancel=cancel)["state"] == "cancelled"
    summary = run(make_train_config(out, augment_mirror=0.5, augment_scale=0.1, resume=True))
    assert summary["state"] == "finished"


def test_each_epoch_draws_anew() -> None:
    first = draw_factors(16, 0.5, 0.3, augment_rng(0, 0))
    again = draw_factors(16, 0.5, 0.3, augment_rng(0, 0))
    other = draw_factors(16, 0.5, 0.3, augment_rng(0, 1))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
