"""Runs that start from an --init model: an autoencoder becoming a VAE, refused architecture flags, --freeze."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from backend.checkpoints import load_model, read_model_config, save_model
from backend.cli import main
from backend.errors import ConfigError
from backend.training.finetune import LAYER_GROUPS, convert_mode
from backend.model import INITIAL_LOGVAR
from backend.training.config import TrainConfig
from backend.training.loop import build_model, run

RUN = dict(procedural="sword,mug:4", epochs=2, batch_size=4, points=64, sheet_every=0, device="cpu",
           prior_components=2, warmup_epochs=0)
CLI_RUN = ["--procedural", "sword,mug:4", "--epochs", "1", "--batch-size", "4", "--points", "64",
           "--sheet-every", "0", "--device", "cpu", "--prior-components", "2"]


@pytest.fixture(scope="module")
def ae_dir(tmp_path_factory: pytest.TempPathFactory, make_tiny_model) -> Path:
    """A tiny plain-autoencoder model folder (random weights, trained batch-norm statistics)."""
    return save_model(tmp_path_factory.mktemp("models") / "tiny_ae", make_tiny_model(3, mode="ae"),
                      meta={"name": "tiny_ae"})


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_an_autoencoder_becomes_a_vae_keeping_its_weights_with_a_narrow_variance_head(ae_dir: Path) -> None:
    base = load_model(ae_dir)
    assert base.config.mode == "ae" and base.model.encoder.logvar is None
    cfg = TrainConfig.from_flat(dict(out="unused", init=str(ae_dir), mode="vae", **RUN)).resolved()
    model, meta = build_model(cfg, torch.device("cpu"))
    assert model.cfg.mode == "vae" and meta["init_mode"] == "ae"
    before, after = base.model.state_dict(), model.state_dict()
    assert set(after) - set(before) == {"encoder.logvar.weight", "encoder.logvar.bias"}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.count_nonzero(after["encoder.logvar.weight"]) == 0
    assert torch.all(after["encoder.logvar.bias"] == INITIAL_LOGVAR)
    model.eval()
    mu, logvar = model.encode(torch.rand(2, 64, 3) * 2 - 1)
    assert logvar is not None and torch.all(logvar == INITIAL_LOGVAR)


def test_finetune_init_ae_mode_vae_trains_a_vae_from_the_command_line(
        ae_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "vae_from_ae"
    assert main(["finetune", "--init", str(ae_dir), "--mode", "vae", "--out", str(out), *CLI_RUN]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "finished"
    lm = load_model(out)
    assert lm.config.mode == "vae" and lm.model.encoder.logvar is not None
    assert lm.config == load_model(ae_dir).config.__class__(**{**load_model(ae_dir).config.to_dict(), "mode": "vae"})
    assert read_model_config(out)["meta"]["init_mode"] == "ae"


def test_without_mode_the_init_models_mode_is_kept(ae_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "still_ae"
    assert run(TrainConfig.from_flat(dict(out=str(out), init=str(ae_dir), **{**RUN, "epochs": 1})))["state"] == "finished"
    assert load_model(out).config.mode == "ae"


def test_a_vae_becomes_an_autoencoder_by_dropping_its_variance_head(make_tiny_model) -> None:
    vae = make_tiny_model(4)
    ae = convert_mode(vae, "ae")
    assert ae.cfg.mode == "ae" and ae.encoder.logvar is None
    kept = ae.state_dict()
    assert all(torch.equal(v, vae.state_dict()[k]) for k, v in kept.items())
    assert set(vae.state_dict()) - set(kept) == {"encoder.logvar.weight", "encoder.logvar.bias"}


@pytest.mark.parametrize("field,value,flag", [
    ("latent_dim", 32, "--latent-dim"),
    ("decoder_width", 64, "--decoder-width"),
    ("decoder_layers", 2, "--decoder-layers"),
    ("patches", 4, "--patches"),
    ("template", "squares", "--template"),
])
def test_an_architecture_flag_that_disagrees_with_init_is_refused_by_name(
        ae_dir: Path, tmp_path: Path, field: str, value: object, flag: str) -> None:
    out = tmp_path / "refused"
    with pytest.raises(ConfigError, match=flag) as err:
        run(TrainConfig.from_flat(dict(out=str(out), init=str(ae_dir), **{**RUN, field: value})))
    assert str(value) in str(err.value) and str(ae_dir) in str(err.value)
    assert not out.exists()


def test_an_architecture_flag_equal_to_the_init_models_is_accepted(ae_dir: Path, tmp_path: Path) -> None:
    cfg = TrainConfig.from_flat(dict(out=str(tmp_path / "same"), init=str(ae_dir), latent_dim=16, decoder_width=32,
                                     **RUN))
    assert cfg.resolved().model.latent_dim == 16


def test_the_command_line_names_the_refused_flag(ae_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "refused_cli"
    argv = ["finetune", "--init", str(ae_dir), "--mode", "vae", "--latent-dim", "64", "--out", str(out), *CLI_RUN]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: --latent-dim 64 cannot apply with --init")
    assert not out.exists()


def test_freeze_encoder_keeps_every_encoder_weight_and_statistic(ae_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "frozen"
    run(TrainConfig(out=str(out), init=str(ae_dir), freeze=("encoder",), **RUN))
    before, after = load_model(ae_dir).model.state_dict(), load_model(out).model.state_dict()
    encoder = [k for k in before if k.startswith("encoder.")]
    decoder = [k for k in before if k.startswith("decoders.")]
    assert any("running_mean" in k for k in encoder)
    assert all(torch.equal(before[k], after[k]) for k in encoder)
    assert any(not torch.equal(before[k], after[k]) for k in decoder if k.endswith("weight"))


def test_freeze_decoder_from_the_command_line_trains_only_the_encoder(
        ae_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "frozen_decoder"
    assert main(["finetune", "--init", str(ae_dir), "--freeze", "decoder", "--out", str(out), *CLI_RUN]) == 0
    before, after = load_model(ae_dir).model.state_dict(), load_model(out).model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("decoders."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("encoder.point_layers"))
    assert read_model_config(out)["meta"]["train_config"]["freeze"] == ["decoder"]


def test_freeze_heads_with_a_new_variance_head_keeps_it_narrow(ae_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "frozen_heads"
    run(TrainConfig.from_flat(dict(out=str(out), init=str(ae_dir), mode="vae", freeze=("heads",), **RUN)))
    after = load_model(out).model.state_dict()
    assert torch.all(after["encoder.logvar.bias"] == INITIAL_LOGVAR)
    assert torch.equal(after["encoder.mu.weight"], load_model(ae_dir).model.state_dict()["encoder.mu.weight"])


@pytest.mark.parametrize("freeze,init,match", [
    (("wings",), True, "wings"),
    (("encoder",), False, "without --init"),
    (("encoder", "decoder"), True, "nothing would train"),
    (("features", "heads", "decoder"), True, "nothing would train"),
])
def test_freeze_that_cannot_apply_is_refused(ae_dir: Path, tmp_path: Path, freeze: tuple[str, ...], init: bool,
                                             match: str) -> None:
    out = tmp_path / "bad_freeze"
    with pytest.raises(ConfigError, match=match) as err:
        run(TrainConfig(out=str(out), init=str(ae_dir) if init else None, freeze=freeze, **RUN))
    assert "--freeze" in str(err.value)
    assert not out.exists()


def test_every_layer_group_names_some_parameters(make_tiny_model) -> None:
    from backend.training.finetune import freeze

    for group in LAYER_GROUPS:
        model = make_tiny_model(5)
        assert freeze(model, (group,)) > 0, group


def test_a_model_fine_tuned_with_freeze_can_have_its_prior_refitted(ae_dir: Path, tmp_path: Path) -> None:
    from backend.training.refit import refit_prior

    tuned = tmp_path / "frozen_then_refit"
    run(TrainConfig(out=str(tuned), init=str(ae_dir), freeze=("encoder",), **RUN))
    summary = refit_prior(tuned, tmp_path / "refitted", None, None, None, "cpu", False)
    assert summary and (tmp_path / "refitted" / "model.safetensors").is_file()
