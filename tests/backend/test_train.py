"""Training runs on tiny procedural sets: outputs, progress events, resume/force/refusal, cancel, lock, fine-tune."""

from __future__ import annotations

import json
import re
import shutil
import threading
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import trimesh

from backend.checkpoints import load_model
from backend.data.meshio import Mesh, save_mesh
from backend.errors import BusyError, ConfigError, DataError
from backend.inference import encode_posteriors, fit_priors
from backend.training.config import TrainConfig, parse_procedural
from backend.training.data import load_data
from backend.training.loop import kl_weight, run
from backend.training.output import HISTORY_FILE, STATE_JSON, OutputLock, prepare_output

STEP_KEYS = {"event", "epoch", "epochs", "step", "steps", "loss", "chamfer", "kl", "eta_s"}
EPOCH_KEYS = {"event", "epoch", "epochs", "loss", "chamfer", "kl", "val_chamfer", "eta_s"}


@pytest.fixture()
def cfg(make_train_config):
    """Build a tiny TrainConfig: cfg(out, **overrides)."""
    return make_train_config


def _cancel_at(step_number: int) -> tuple[list[dict], threading.Event, Callable[[dict], None]]:
    """Progress callback that sets a cancel event at the `step_number`-th step event."""
    events: list[dict] = []
    cancel = threading.Event()

    def progress(event: dict) -> None:
        events.append(event)
        if event["event"] == "step" and sum(e["event"] == "step" for e in events) == step_number:
            cancel.set()

    return events, cancel, progress


def test_finished_run_writes_a_loadable_model_folder(trained_run: dict) -> None:
    out, summary = trained_run["out"], trained_run["summary"]
    assert summary["state"] == "finished" and summary["epochs"] == 2 and summary["out"] == str(out)
    lm = load_model(out)
    assert lm.prior is not None and lm.config.latent_dim == 16
    assert lm.meta["finished"] is True and lm.meta["epoch"] == 2 and lm.name == "tiny_run"
    assert lm.meta["default_prior"] in ("gmm", "normal")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", lm.meta["trained_at"]), "the card's training date"
    history = json.loads((out / HISTORY_FILE).read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(np.isfinite(h["loss"]) and h["chamfer"] > 0 for h in history)
    assert (out / "loss_curve.png").stat().st_size > 0
    assert (out / "samples_epoch001.png").is_file() and (out / "samples_epoch002.png").is_file()
    assert json.loads((out / STATE_JSON).read_text())["finished"] is True
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name]
    assert leftovers == []


def test_progress_events_have_the_documented_keys(trained_run: dict) -> None:
    events = trained_run["events"]
    steps = [e for e in events if e["event"] == "step"]
    epochs = [e for e in events if e["event"] == "epoch"]
    assert steps and len(epochs) == 2
    for e in steps:
        assert STEP_KEYS <= set(e), STEP_KEYS - set(e)
        assert e["epochs"] == 2 and 1 <= e["step"] <= e["steps"] and e["eta_s"] >= 0
    assert len(steps) == 2 * steps[0]["steps"]
    for e in epochs:
        assert EPOCH_KEYS <= set(e), EPOCH_KEYS - set(e)
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert events[-1]["event"] == "done" and events[-1]["state"] == "finished"
    assert all(isinstance(e.get("message", ""), str) for e in events)


def test_loss_falls_on_a_tiny_set(tmp_path: Path, cfg) -> None:
    events: list[dict] = []
    run(cfg(tmp_path / "fall", procedural="sword:6", epochs=6, batch_size=3, lr=3e-3, val_fraction=0.0,
             mode="ae"), progress=events.append)
    history = json.loads((tmp_path / "fall" / HISTORY_FILE).read_text())
    assert len(history) == 6
    assert history[-1]["chamfer"] < history[0]["chamfer"], [h["chamfer"] for h in history]


def test_refuses_to_overwrite_a_finished_run(trained_run: dict, cfg) -> None:
    out = trained_run["out"]
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="--resume") as err:
        run(cfg(out))
    assert str(out) in str(err.value)
    assert (out / "model.safetensors").read_bytes() == before


def test_refuses_a_non_empty_foreign_folder(tmp_path: Path, cfg) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(ConfigError, match="not empty"):
        run(cfg(tmp_path))
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_out_that_is_a_file_is_refused(tmp_path: Path, cfg) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a folder") as err:
        run(cfg(tmp_path / "file"))
    assert str(tmp_path / "file") in str(err.value)


def test_unreadable_state_needs_force_and_force_works(tmp_path: Path, cfg) -> None:
    out = tmp_path / "broken"
    out.mkdir()
    (out / STATE_JSON).write_text("{")
    with pytest.raises(ConfigError, match="--force") as err:
        run(cfg(out))
    assert str(out / STATE_JSON) in str(err.value)
    assert run(cfg(out, epochs=1, force=True))["state"] == "finished"


def test_state_that_is_not_a_json_object_needs_force(tmp_path: Path, cfg) -> None:
    out = tmp_path / "odd"
    out.mkdir()
    (out / STATE_JSON).write_text("[]")
    with pytest.raises(ConfigError, match="not a JSON object.*--force") as err:
        run(cfg(out))
    assert str(out / STATE_JSON) in str(err.value)


def test_resume_of_nothing_is_refused(tmp_path: Path, cfg) -> None:
    with pytest.raises(ConfigError, match="nothing to resume"):
        run(cfg(tmp_path / "empty", resume=True))


def test_cancel_stops_within_a_step_and_a_rerun_resumes(tmp_path: Path, cfg) -> None:
    out = tmp_path / "run"
    events, cancel, progress = _cancel_at(1)
    summary = run(cfg(out), progress=progress, cancel=cancel)
    assert summary["state"] == "cancelled"
    assert sum(e["event"] == "step" for e in events) == 1
    assert events[-1]["event"] == "done" and events[-1]["state"] == "cancelled"
    lm = load_model(out)
    assert lm.meta["finished"] is False and lm.prior is None and "trained_at" not in lm.meta
    # A plain rerun with the same settings picks the unfinished run up.
    events2: list[dict] = []
    summary2 = run(cfg(out), progress=events2.append)
    assert summary2["state"] == "finished" and summary2["epochs"] == 2
    assert any(e["event"] == "log" and "resuming from epoch 0" in e["message"] for e in events2)
    assert len(json.loads((out / HISTORY_FILE).read_text())) == 2


def test_unfinished_run_resumes_from_the_last_finished_epoch(tmp_path: Path, cfg) -> None:
    out = tmp_path / "run"
    cancel = threading.Event()

    def stop_in_epoch_two(event: dict) -> None:
        if event["event"] == "step" and event["epoch"] == 2:
            cancel.set()

    assert run(cfg(out), progress=stop_in_epoch_two, cancel=cancel)["state"] == "cancelled"
    assert len(json.loads((out / HISTORY_FILE).read_text())) == 1
    events2: list[dict] = []
    summary = run(cfg(out), progress=events2.append)
    assert summary["state"] == "finished"
    assert any(e["event"] == "log" and "resuming from epoch 1" in e["message"] for e in events2)
    assert {e["epoch"] for e in events2 if e["event"] == "step"} == {2}
    assert [h["epoch"] for h in json.loads((out / HISTORY_FILE).read_text())] == [1, 2]


def test_resume_a_finished_run_with_more_epochs(trained_run: dict, tmp_path: Path, cfg) -> None:
    out = shutil.copytree(trained_run["out"], tmp_path / "more")
    events: list[dict] = []
    summary = run(cfg(out, epochs=3, resume=True), progress=events.append)
    assert summary["state"] == "finished" and summary["epochs"] == 3
    assert {e["epoch"] for e in events if e["event"] == "step"} == {3}
    assert [h["epoch"] for h in json.loads((out / HISTORY_FILE).read_text())] == [1, 2, 3]
    lm = load_model(out)
    assert lm.meta["epoch"] == 3 and lm.prior is not None


def test_force_starts_over(trained_run: dict, tmp_path: Path, cfg) -> None:
    out = shutil.copytree(trained_run["out"], tmp_path / "forced")
    summary = run(cfg(out, epochs=1, force=True))
    assert summary["state"] == "finished" and summary["epochs"] == 1
    assert len(json.loads((out / HISTORY_FILE).read_text())) == 1


def test_resume_with_other_settings_is_refused(tmp_path: Path, cfg) -> None:
    out = tmp_path / "run"
    _, cancel, progress = _cancel_at(1)
    run(cfg(out), progress=progress, cancel=cancel)
    for flags in ({}, {"resume": True}):
        with pytest.raises(ConfigError, match=r"other settings \(latent_dim\)") as err:
            run(cfg(out, latent_dim=8, **flags))
        assert str(out) in str(err.value)
    # Settings outside the run's identity (epochs, lr) may change on resume.
    assert run(cfg(out, epochs=1, lr=5e-4, resume=True))["state"] == "finished"


def test_divergence_is_a_clear_data_error(tmp_path: Path, cfg, monkeypatch: pytest.MonkeyPatch) -> None:
    import backend.training.loop as train_module

    real = train_module.random_points

    def nan_template(*args, **kwargs):
        return real(*args, **kwargs) * float("nan")

    monkeypatch.setattr(train_module, "random_points", nan_template)
    with pytest.raises(DataError, match="diverged at epoch 1 step 1"):
        run(cfg(tmp_path / "nan"))


def test_second_run_on_a_locked_folder_is_busy(tmp_path: Path, cfg) -> None:
    out = tmp_path / "locked"
    with OutputLock(out):
        with pytest.raises(BusyError, match="another training run") as err:
            run(cfg(out))
        assert str(out) in str(err.value)
    # Released: the folder is usable again (and the lock file does not count as content).
    assert prepare_output(cfg(out)) is None


def test_too_few_usable_meshes_is_a_data_error(tmp_path: Path, cfg) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i, extents in enumerate([(1, 2, 3), (2, 1, 1)]):
        tm = trimesh.creation.box(extents=extents)
        save_mesh(data / f"box{i}.obj", Mesh(np.asarray(tm.vertices), np.asarray(tm.faces)))
    (data / "broken.obj").write_text("this is not a mesh\n")
    out = tmp_path / "out"
    events: list[dict] = []
    with pytest.raises(DataError) as err:
        run(cfg(out, procedural=None, data=str(data), cache_dir=str(tmp_path / "cache")),
            progress=events.append)
    assert str(data) in str(err.value)
    assert not any(e["event"] in ("step", "epoch") for e in events)
    assert not out.exists()  # the folder this run created is gone again, lock file and all


def test_a_failed_run_keeps_a_folder_it_did_not_create(tmp_path: Path, cfg) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "broken.obj").write_text("this is not a mesh\n")
    out = tmp_path / "mine"
    out.mkdir()
    with pytest.raises(DataError):
        run(cfg(out, procedural=None, data=str(data), cache_dir=str(tmp_path / "cache")))
    assert out.is_dir()


def test_finetune_from_a_trained_model(trained_run: dict, tmp_path: Path) -> None:
    out = tmp_path / "ft"
    # The architecture comes from --init, whatever the (default) TrainConfig architecture says.
    cfg = TrainConfig(out=str(out), init=str(trained_run["out"]), procedural="mug:5", epochs=1, batch_size=4,
                      points=128, sheet_every=0, device="cpu", prior_components=2, name="my mugs")
    summary = run(cfg)
    assert summary["state"] == "finished"
    lm = load_model(out)
    base = load_model(trained_run["out"])
    assert lm.config == base.config
    assert lm.name == "my mugs"
    assert lm.meta["init"] == str(Path(trained_run["out"]).resolve())
    changed = [k for k, v in lm.model.state_dict().items() if not v.equal(base.model.state_dict()[k])]
    assert changed, "fine-tuning did not change any weight"


@pytest.mark.parametrize("overrides,match", [
    (dict(procedural=None), "exactly one"),
    (dict(data="somewhere"), "exactly one"),
    (dict(epochs=0), "epochs"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=1), "batch_size"),
    (dict(lr=0.0), "lr"),
    (dict(val_fraction=1.0), "val_fraction"),
    (dict(procedural="dragon:3"), "dragon"),
    (dict(procedural="sword:x"), "count"),
    (dict(procedural="sword:0"), "positive"),
    (dict(init="/no/such/model"), "--init"),
    (dict(latent_dim=0), "latent_dim"),
    (dict(prior_spread=0.0), "prior_spread"),
    (dict(prior_spread=float("inf")), "prior_spread"),
])
def test_bad_settings_are_refused_before_any_work(tmp_path: Path, overrides: dict, match: str, cfg) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=match):
        run(cfg(out, **overrides))
    assert not (out / "model.safetensors").exists()


def test_data_folder_must_exist(tmp_path: Path, cfg) -> None:
    with pytest.raises(ConfigError, match="not a folder") as err:
        run(cfg(tmp_path / "out", procedural=None, data=str(tmp_path / "missing")))
    assert str(tmp_path / "missing") in str(err.value)


def test_parse_procedural() -> None:
    from backend.data.procedural import FAMILIES

    assert parse_procedural("sword,plane:7") == (["sword", "plane"], 7)
    assert parse_procedural("all:3") == (list(FAMILIES), 3)
    assert parse_procedural("mug") == (["mug"], 100)


def test_kl_warmup_is_linear_to_beta() -> None:
    cfg = TrainConfig(out="x", procedural="sword:4", beta=1e-3, warmup_epochs=4)
    assert kl_weight(cfg, 0.0) == 0.0
    assert kl_weight(cfg, 2.0) == pytest.approx(5e-4)
    assert kl_weight(cfg, 9.0) == pytest.approx(1e-3)
    cfg.warmup_epochs = 0
    assert kl_weight(cfg, 0.0) == pytest.approx(1e-3)


def test_decode_latents_draws_fresh_template_points_per_shape(make_tiny_model) -> None:
    from backend.inference import decode_latents

    model = make_tiny_model(0, template="squares", patches=3)
    z = np.zeros((2, model.cfg.latent_dim), dtype=np.float32)
    clouds = decode_latents(model, z, "cpu", count=100, seed=4)
    assert clouds.shape == (2, 100, 3)  # 3 patches of 33 points, topped up to exactly 100
    assert not np.allclose(clouds[0], clouds[1])  # same latent, independent points: no point-for-point twins
    np.testing.assert_array_equal(clouds, decode_latents(model, z, "cpu", count=100, seed=4))
    assert not np.array_equal(clouds, decode_latents(model, z, "cpu", count=100, seed=5))


def test_a_vae_run_stores_its_aggregate_posterior_as_the_prior(trained_run: dict, make_train_config) -> None:
    out = trained_run["out"]
    lm = load_model(out)
    cfg = make_train_config(out, sheet_every=1)
    train = load_data(cfg)["train"]
    mu, logvar = encode_posteriors(lm.model, train.points, "cpu")
    assert lm.prior.diagonal and lm.prior.components == len(train.points)
    np.testing.assert_allclose(lm.prior.means, mu, atol=1e-5)
    np.testing.assert_allclose(lm.prior.chol, cfg.prior_spread * np.exp(0.5 * logvar), rtol=1e-4)


def test_an_autoencoder_gets_an_em_mixture(tmp_path: Path, make_tiny_model, make_train_config) -> None:
    cfg = make_train_config(tmp_path / "ae", mode="ae", procedural="sword:12")
    model = make_tiny_model(mode="ae")
    train = load_data(cfg)["train"]
    prior, label_priors = fit_priors(model, train, cfg, "cpu")
    assert not prior.diagonal and prior.chol.shape == (prior.components, 16, 16)
    assert 1 <= prior.components <= cfg.prior_components and label_priors == {}
