"""TrainConfig's architecture: a ModelConfig plus the fields set explicitly, resolved against an --init model."""

from __future__ import annotations

import pytest

from backend.errors import ConfigError
from backend.model import ModelConfig
from backend.training.config import RUN_KEYS, TrainConfig, config_from_args
from backend.training.finetune import inherit_architecture

INIT = ModelConfig(mode="ae", latent_dim=16, encoder_widths=(8, 16), decoder_width=32, decoder_layers=1, norm="none")


def test_fields_not_given_come_from_the_init_model_norm_included() -> None:
    assert inherit_architecture(ModelConfig(), frozenset(), INIT, "/m") == INIT


def test_a_given_mode_converts_and_the_rest_is_still_the_init_models() -> None:
    assert inherit_architecture(ModelConfig(mode="vae"), {"mode"}, INIT, "/m") == ModelConfig(
        **{**INIT.to_dict(), "mode": "vae"})


@pytest.mark.parametrize("name,value,shown", [
    ("latent_dim", 64, "--latent-dim 64"),
    ("decoder_layers", 3, "--decoder-layers 3"),
    ("encoder_widths", (8, 32), "encoder_widths 8,32"),
    ("norm", "batch", "norm batch"),
])
def test_a_given_field_that_disagrees_with_init_is_refused_by_its_flag(name: str, value: object,
                                                                      shown: str) -> None:
    with pytest.raises(ConfigError) as err:
        inherit_architecture(ModelConfig(**{**INIT.to_dict(), name: value}), {name}, INIT, "/m")
    assert str(err.value).startswith(f"{shown} cannot apply with --init /m")


def test_a_given_field_equal_to_the_default_still_counts_as_given() -> None:
    cfg = config_from_args({"out": "x", "procedural": "mug:4", "latent_dim": 128, "mode": None})
    assert cfg.model_given == {"latent_dim"} and cfg.model == ModelConfig()
    with pytest.raises(ConfigError, match="--latent-dim 128 cannot apply"):
        inherit_architecture(cfg.model, cfg.model_given, INIT, "/m")


def test_a_bad_integer_setting_is_reported_before_a_bad_architecture_value() -> None:
    with pytest.raises(ConfigError, match="epochs must be an integer"):
        TrainConfig.from_flat({"out": "x", "epochs": 0, "latent_dim": 0})
    with pytest.raises(ConfigError, match="latent_dim must be a positive integer"):
        TrainConfig.from_flat({"out": "x", "latent_dim": 0})


def test_from_flat_takes_only_the_flat_layout() -> None:
    with pytest.raises(TypeError, match="flat layout"):
        TrainConfig.from_flat({"out": "x", "model": ModelConfig().to_dict()})
    with pytest.raises(TypeError):
        TrainConfig.from_flat({"out": "x", "latent_dims": 8})


def test_the_run_identity_keys_are_those_earlier_runs_recorded() -> None:
    """A key added here would make every run recorded without it refuse to resume."""
    assert set(RUN_KEYS) == {"data", "procedural", "init", "batch_size", "points", "beta", "mode", "template",
                             "patches", "latent_dim", "decoder_width", "decoder_layers", "encoder_widths", "seed"}
