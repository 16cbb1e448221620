"""The command line, driven in process through cli.main: help texts, sample, reconstruct, train, user errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backend import __version__
from backend.checkpoints import load_model
from backend.cli import main
from backend.data.meshio import load_mesh, save_mesh
from backend.data.procedural import generate

COMMANDS = ("train", "finetune", "sample", "reconstruct", "interpolate", "evaluate", "serve")


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0)


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def test_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out
    assert _exit_code(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_subcommand_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code([command, "--help"]) == 0
    assert "usage:" in capsys.readouterr().out


def test_missing_or_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code([]) == 2
    assert _exit_code(["paint"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_sample_writes_n_files_and_refuses_to_overwrite(tiny_model_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "samples"
    argv = ["sample", "--model", str(tiny_model_dir), "--n", "3", "--out", str(out), "--resolution", "162",
            "--device", "cpu", "--seed", "4"]
    assert main(argv) == 0
    files = sorted(out.iterdir())
    assert [p.name for p in files] == ["sample_000.obj", "sample_001.obj", "sample_002.obj"]
    first = load_mesh(files[0])
    assert len(first.vertices) == 162
    before = [p.read_bytes() for p in files]
    capsys.readouterr()
    assert main(argv[:-2] + ["--seed", "5"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "sample_000.obj" in line and "--force" in line
    assert [p.read_bytes() for p in files] == before
    assert main(argv[:-2] + ["--seed", "5", "--force"]) == 0
    assert [p.read_bytes() for p in files] != before


def test_sample_other_format_and_sheet(tiny_prior_model_dir: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.png"
    assert main(["sample", "--model", str(tiny_prior_model_dir), "--n", "2", "--out", str(tmp_path / "s"),
                 "--format", "ply", "--resolution", "42", "--device", "cpu", "--prior", "gmm",
                 "--sheet", str(sheet)]) == 0
    for ply in (tmp_path / "s" / "sample_000.ply", tmp_path / "s" / "sample_001.ply"):
        header = ply.read_bytes().split(b"end_header")[0]  # the untrained tiny model may give a flat shape,
        assert b"element vertex 42" in header, header       # which load_mesh rightly refuses: read the header
    assert sheet.stat().st_size > 0


def test_reconstruct_a_procedural_mesh_file(tiny_model_dir: Path, mug_file: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rec" / "mug_vae.obj"
    assert main(["reconstruct", str(mug_file), "--model", str(tiny_model_dir), "--out", str(out),
                 "--resolution", "642", "--device", "cpu"]) == 0
    assert "Chamfer" in capsys.readouterr().out
    result, source = load_mesh(out), load_mesh(mug_file)
    assert len(result.vertices) == 642
    centre = source.vertices.mean(axis=0)
    radius = np.linalg.norm(source.vertices - centre, axis=1).max()
    assert np.linalg.norm(result.vertices.mean(axis=0) - centre) < radius
    assert main(["reconstruct", str(mug_file), "--model", str(tiny_model_dir), "--out", str(out),
                 "--device", "cpu"]) == 2
    assert "--force" in _one_error_line(capsys.readouterr().err)


def test_interpolate_writes_steps(tiny_model_dir: Path, mug_file: Path, tmp_path: Path) -> None:
    sword = tmp_path / "sword.stl"
    save_mesh(sword, generate("sword", 1))
    out = tmp_path / "morph"
    assert main(["interpolate", str(mug_file), str(sword), "--model", str(tiny_model_dir), "--steps", "3",
                 "--out", str(out), "--resolution", "42", "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["step_000.obj", "step_001.obj", "step_002.obj"]


@pytest.mark.parametrize("argv,named", [
    (["reconstruct", "{tmp}/missing.obj", "--out", "{tmp}/o.obj"], "{tmp}/missing.obj"),
    (["reconstruct", "{tmp}/notes.txt", "--out", "{tmp}/o.obj"], "{tmp}/notes.txt"),
    (["reconstruct", "{mug}", "--out", "{tmp}/o.obj", "--model", "{tmp}/no_model"], "{tmp}/no_model"),
    (["sample", "--model", "{tmp}/no_model", "--out", "{tmp}/s"], "{tmp}/no_model"),
    (["sample", "--out", "{tmp}/notes.txt"], "{tmp}/notes.txt"),
    (["interpolate", "{mug}", "{mug}", "--out", "{tmp}/notes.txt"], "{tmp}/notes.txt"),
    (["interpolate", "{mug}", "{tmp}/missing.obj", "--out", "{tmp}/i"], "{tmp}/missing.obj"),
    (["evaluate", "--procedural", "dragon:2"], "dragon"),
    (["evaluate", "--procedural", "sword:2", "--max-per-label", "-1"], "max_per_label"),
    (["train", "--procedural", "sword:4", "--out", "{tmp}/t", "--epochs", "0"], "epochs"),
    (["finetune", "--procedural", "sword:4", "--out", "{tmp}/t", "--init", "{tmp}/no_model"], "{tmp}/no_model"),
])
def test_user_errors_exit_2_with_one_line(argv: list[str], named: str, tiny_model_dir: Path, mug_file: Path,
                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    fill = {"tmp": str(tmp_path), "mug": str(mug_file)}
    argv = [a.format(**fill) for a in argv]
    if "--model" not in argv and argv[0] in ("sample", "reconstruct", "interpolate", "evaluate"):
        argv += ["--model", str(tiny_model_dir)]
    assert main(argv + ["--device", "cpu"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert named.format(**fill) in line


@pytest.mark.parametrize("argv,named", [
    (["sample", "--n", "0"], "argument --n: must be an integer between 1 and 256"),
    (["sample", "--resolution", "3"], "argument --resolution: must be an integer between 12 and"),
    (["sample", "--temperature", "nan"], "argument --temperature: must be a number between 0 and 10"),
    (["interpolate", "a.obj", "b.obj", "--steps", "1"], "argument --steps: must be an integer between 2 and"),
    (["reconstruct", "a.obj", "--out", "o.obj", "--steps", "0"], "argument --steps: must be an integer between 1"),
])
def test_out_of_bounds_options_exit_2_at_the_argument(argv: list[str], named: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Bounds are checked once, where the argument is read (backend/options.py's), before any model loads."""
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2 and named in capsys.readouterr().err


def test_train_and_evaluate_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli_run"
    argv = ["train", "--procedural", "sword,mug:3", "--out", str(out), "--epochs", "1", "--batch-size", "4",
            "--points", "64", "--latent-dim", "16", "--decoder-width", "32", "--decoder-layers", "1",
            "--sheet-every", "0", "--device", "cpu", "--name", "cli model"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["state"] == "finished" and summary["out"] == str(out)
    lm = load_model(out)
    assert lm.name == "cli model" and lm.config.latent_dim == 16 and lm.config.decoder_layers == 1
    assert main(argv) == 2
    assert "--resume" in _one_error_line(capsys.readouterr().err)
    report_path = tmp_path / "report.json"
    assert main(["evaluate", "--model", str(out), "--procedural", "sword,mug:2", "--seed", "3",
                 "--out", str(report_path), "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(report_path.read_text())
    assert set(printed["groups"]) == {"sword", "mug"}
