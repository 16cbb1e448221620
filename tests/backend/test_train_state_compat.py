"""Runs and models written before TrainConfig held a ModelConfig: their flat train_state.json resumes, and
their flat "train_config" metadata still refits. The old layout is written out literally here."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

from backend.checkpoints import CONFIG_FILE, load_model
from backend.training.config import config_from_args
from backend.training.loop import run
from backend.training.output import HISTORY_FILE, STATE_JSON
from backend.training.refit import refit_prior

# What the earlier code recorded for the tiny run of conftest's TINY_TRAIN: "run" (the identity a resume
# must match) and "config" (every setting, the architecture fields at the top level, no "norm").
OLD_RUN = {"data": None, "procedural": "sword,mug:6", "init": None, "batch_size": 4, "points": 128, "beta": 1e-05,
           "mode": "vae", "template": "sphere", "patches": 1, "latent_dim": 16, "decoder_width": 32,
           "decoder_layers": 1, "encoder_widths": [16, 32], "seed": 0}


def old_config(out: Path) -> dict:
    """The flat "config" / "train_config" dict the earlier code wrote for the tiny run into `out`."""
    return {**OLD_RUN, "out": str(out), "epochs": 2, "lr": 0.001, "warmup_epochs": 5, "free_bits": 0.0,
            "freeze": [], "val_fraction": 0.1, "test_fraction": 0.0, "prior_components": 2, "prior_spread": 1.5,
            "sheet_every": 0, "device": "cpu", "name": None, "resume": False, "force": False, "cache_dir": None,
            "max_faces": 2000000, "extra": {}}


def test_an_unfinished_run_with_a_state_file_in_the_old_flat_layout_resumes(tmp_path: Path,
                                                                           make_train_config) -> None:
    out = tmp_path / "run"
    cancel = threading.Event()

    def stop_in_epoch_two(event: dict) -> None:
        if event["event"] == "step" and event["epoch"] == 2:
            cancel.set()

    assert run(make_train_config(out), progress=stop_in_epoch_two, cancel=cancel)["state"] == "cancelled"
    written = json.loads((out / STATE_JSON).read_text())
    assert written["epoch"] == 1 and written["run"] == OLD_RUN  # the identity's meaning is unchanged
    old = {"epoch": 1, "finished": False, "run": dict(OLD_RUN), "opt_scalars": written["opt_scalars"],
           "config": old_config(out), "meta": written["meta"]}
    (out / STATE_JSON).write_text(json.dumps(old, indent=2, sort_keys=True))

    events: list[dict] = []
    summary = run(make_train_config(out), progress=events.append)
    assert summary["state"] == "finished" and summary["epochs"] == 2
    assert any(e["event"] == "log" and e["message"] == "resuming from epoch 1" for e in events)
    assert {e["epoch"] for e in events if e["event"] == "step"} == {2}
    assert [h["epoch"] for h in json.loads((out / HISTORY_FILE).read_text())] == [1, 2]


def test_an_old_flat_train_config_reads_as_the_model_it_describes(tmp_path: Path) -> None:
    cfg = config_from_args(old_config(tmp_path / "m"))
    assert (cfg.model.latent_dim, cfg.model.encoder_widths, cfg.model.decoder_width) == (16, (16, 32), 32)
    assert cfg.model.norm == "batch" and cfg.prior_components == 2
    flat = json.loads(json.dumps(cfg.to_flat()))
    # Settings added since then come back at their defaults (augmentation: off).
    assert flat == {**old_config(tmp_path / "m"), "norm": "batch", "augment_mirror": 0.0, "augment_scale": 0.0}


def test_a_model_whose_metadata_has_the_old_flat_train_config_refits(trained_run: dict, tmp_path: Path) -> None:
    model = shutil.copytree(trained_run["out"], tmp_path / "old_model")
    config = json.loads((model / CONFIG_FILE).read_text())
    config["meta"]["train_config"] = old_config(Path(trained_run["out"]))
    (model / CONFIG_FILE).write_text(json.dumps(config))
    summary = refit_prior(model, out=tmp_path / "refitted", device="cpu")
    assert summary["shapes"] == load_model(trained_run["out"]).meta["train_shapes"]
    refitted = load_model(tmp_path / "refitted")
    assert refitted.meta["train_config"] == {**old_config(Path(trained_run["out"])), "prior_spread": 1.5}
