"""bench.bench_base_v2 end to end on a tiny corpus layout and a tiny model: every table row, sheet and
JSON figure it promises, and the four transfer command lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.checkpoints import save_model
from backend.data.procedural import write_dataset
from backend.model import ModelConfig
from bench.bench_base_v2 import architecture_flags, main, transfer_commands
from tests.addon.make_tiny_model import identity_sphere_model, random_label_priors


def _corpus(root: Path) -> Path:
    write_dataset(root / "split" / "base" / "test", ["sword", "mug"], 3, seed=5)
    write_dataset(root / "split" / "transfer" / "train", ["plane"], 2, seed=6)
    return root


def test_report_has_a_row_per_category_and_writes_sheets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model"
    save_model(model, identity_sphere_model(), meta={"name": "tiny"}, label_priors=random_label_priors(["sword"], 6))
    work = tmp_path / "work"
    assert main(["--model", str(model), "--corpus", str(_corpus(tmp_path / "corpus")), "--held-out", "plane",
                 "--transfer-epochs", "0", "--cache-dir", str(tmp_path / "cache"), "--workdir", str(work),
                 "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    for row in ("| mug | 3 |", "| sword | 3 |", "| all | 6 |", "| mean over categories | 6 |"):
        assert row in text
    report = json.loads((work / "report.json").read_text())
    assert len(report["per_shape"]["encoder"]) == len(report["per_shape"]["ellipsoid"]) == 6
    assert report["generation"]["rows"]["sword"]["label_prior"] and not report["generation"]["rows"]["mug"]["label_prior"]
    rows = report["reconstruction"]
    assert rows["all"]["ratio"] == pytest.approx(rows["all"]["encoder_median"] / rows["all"]["ellipsoid_median"])
    assert (work / "reconstructions.png").stat().st_size > 0 and (work / "samples_by_category_1.png").stat().st_size > 0


def test_missing_corpus_is_an_error_naming_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--model", str(tmp_path), "--corpus", str(tmp_path / "nowhere"), "--workdir", str(tmp_path / "w")])
    assert str(tmp_path / "nowhere" / "split" / "base" / "test") in capsys.readouterr().err


def test_transfer_runs_differ_only_in_their_starting_point(tmp_path: Path) -> None:
    arch = architecture_flags(ModelConfig(template="squares", patches=8))
    cmds = transfer_commands(Path("new"), Path("old"), Path("helmets"), 30, tmp_path, None, arch)
    assert set(cmds) == {"new_base", "new_base_frozen_encoder", "scratch", "old_base"}
    assert cmds["new_base"][3:6] == ["finetune", "--init", "new"]
    assert "--freeze" not in cmds["new_base"]
    assert cmds["new_base_frozen_encoder"][3:8] == ["finetune", "--init", "new", "--freeze", "encoder"]
    assert cmds["scratch"][3] == "train" and "--init" not in cmds["scratch"]
    scratch = cmds["scratch"]
    assert scratch[scratch.index("--template") + 1] == "squares" and scratch[scratch.index("--patches") + 1] == "8"
    assert cmds["old_base"][3:6] == ["finetune", "--init", "old"]
    for cmd in cmds.values():
        assert cmd[cmd.index("--epochs") + 1] == "30" and cmd[cmd.index("--data") + 1] == "helmets"


def test_every_category_gets_samples_in_sheets_of_twelve(tmp_path: Path) -> None:
    labels = [f"cat{i:02d}" for i in range(13)]
    model = tmp_path / "model"
    save_model(model, identity_sphere_model(), meta={"name": "tiny"}, label_priors=random_label_priors(labels, 6))
    work = tmp_path / "work"
    assert main(["--model", str(model), "--corpus", str(_corpus(tmp_path / "corpus")), "--held-out", "plane",
                 "--transfer-epochs", "0", "--cache-dir", str(tmp_path / "cache"), "--workdir", str(work),
                 "--device", "cpu"]) == 0
    assert sorted(p.name for p in work.glob("samples_by_category_*.png")) == [
        "samples_by_category_1.png", "samples_by_category_2.png"]
