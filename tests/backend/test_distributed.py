"""Data-parallel training: two CPU processes under torchrun (gloo) against one process.

Each launch runs tests/backend/ddp_worker.py (or the CLI) under `python -m torch.distributed.run --standalone`
with OMP_NUM_THREADS=1, so two processes share two cores. Runs use the tiny architecture and 12 shapes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from backend.checkpoints import load_model
from backend.cli import build_parser
from backend.data.procedural import write_dataset
from backend.training.distributed import DataParallel, Placement, placement_from_env, rank_device
from backend.errors import ConfigError
from backend.training.config import TrainConfig, config_from_args
from backend.training.loop import run
from backend.training.output import HISTORY_FILE, STATE_JSON

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ddp_worker.py")
FLAGS = ["--epochs", "4", "--batch-size", "4", "--points", "128", "--sheet-every", "0", "--device", "cpu",
         "--latent-dim", "16", "--decoder-width", "32", "--decoder-layers", "1", "--mode", "ae", "--lr", "1e-3"]
PROCEDURAL = ["--procedural", "sword,mug:6", *FLAGS]


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))}


def run_worker(report: Path, flags: list[str], *options: str) -> list[dict[str, Any]]:
    """Train with two processes through the worker; returns the two ranks' reports."""
    report.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(_torchrun(str(WORKER), str(report), *options, "--", *flags), cwd=ROOT, env=_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-6000:]
    return [json.loads((report / f"rank{rank}.json").read_text()) for rank in range(2)]


def config(*flags: str) -> TrainConfig:
    """The TrainConfig that `python -m backend train FLAGS` runs."""
    args = build_parser().parse_args(["train", *flags])
    return config_from_args({k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()})


def step_losses(events: list[dict[str, Any]]) -> list[float]:
    return [e["loss"] for e in events if e["event"] == "step"]


def history(out: Path) -> list[dict[str, Any]]:
    return json.loads((out / HISTORY_FILE).read_text())


@pytest.fixture(scope="module")
def two_procs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A finished four-epoch run on two processes, with the one-step gradient check."""
    root = tmp_path_factory.mktemp("two_procs")
    ranks = run_worker(root / "report", [*PROCEDURAL, "--out", str(root / "out")], "--check-gradients")
    return {"out": root / "out", "ranks": ranks}


@pytest.fixture(scope="module")
def one_proc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same run on one process (in this one)."""
    out = tmp_path_factory.mktemp("one_proc") / "out"
    events: list[dict[str, Any]] = []
    summary = run(config(*PROCEDURAL, "--out", str(out)), progress=events.append)
    return {"out": out, "events": events, "summary": summary}


def test_ranks_end_with_identical_weights_and_rank0_saves_them(two_procs: dict[str, Any]) -> None:
    rank0, rank1 = two_procs["ranks"]
    assert rank0["hash"] == rank1["hash"] == rank0["saved_hash"]
    assert rank0["summary"] == rank1["summary"]
    assert rank0["summary"]["state"] == "finished" and rank0["summary"]["epochs"] == 4
    # Only rank 0 reports progress.
    assert rank1["events"] == []
    assert len(step_losses(rank0["events"])) == 4 * 2 and rank0["events"][-1]["event"] == "done"
    assert load_model(two_procs["out"]).meta["finished"] is True


def test_loss_falls_with_two_processes(two_procs: dict[str, Any]) -> None:
    chamfer = [h["chamfer"] for h in history(two_procs["out"])]
    assert len(chamfer) == 4 and chamfer[-1] < chamfer[0], chamfer


def test_one_step_equals_one_process_holding_the_whole_batch(two_procs: dict[str, Any]) -> None:
    # 5 shapes split 2 + 3, in float64: batch norm spans both ranks and the loss weighting makes DDP's
    # average the gradient of the global mean, so what is left is rounding. Measured: 2e-14 of the
    # gradient's norm (float64 unit roundoff 1.1e-16, so rounding is amplified ~200x by the cancellations
    # in batch norm's backward pass). The same amplification measured in float32 (1.5e-3 / 6e-8 = 2.5e4 on
    # an AMD EPYC) would give 3e-12 in float64; the bound 1e-9 leaves 300x on top of that, and a wrong
    # weighting of the two ranks moves the gradient by a third of its norm.
    for rank in two_procs["ranks"]:
        right, wrong = rank["gradients"]["global"], rank["gradients"]["local"]
        assert right["grad"] < 1e-9 and right["buffers"] < 1e-9 and right["loss"] < 1e-9, right
        assert wrong["grad"] > 1e-2, wrong


def test_two_processes_compute_what_one_process_computes(two_procs: dict[str, Any],
                                                         one_proc: dict[str, Any]) -> None:
    two, one = step_losses(two_procs["ranks"][0]["events"]), step_losses(one_proc["events"])
    assert len(two) == len(one) == 8
    # Same batches, points and templates. The first loss is a float32 forward pass summed in another
    # order (2.6e-7 apart in the float32 one-step check on an AMD EPYC), so 1e-5. The second follows one
    # Adam step, which moves each weight by about lr * sign(gradient): rounding (up to ~1e-3 of the
    # largest gradient in float32, see the float64 check above) can flip only gradients that small, and
    # each flip changes the loss by about 2 * lr * |gradient|, so 1e-3 holds with a wide margin. Later
    # steps drift apart as much as a 1e-5 gradient perturbation makes one process drift: not compared.
    assert two[0] == pytest.approx(one[0], rel=1e-5)
    assert two[1] == pytest.approx(one[1], rel=1e-3)


def test_resume_on_one_process_after_two(two_procs: dict[str, Any], tmp_path: Path) -> None:
    out = Path(shutil.copytree(two_procs["out"], tmp_path / "out"))
    events: list[dict[str, Any]] = []
    summary = run(config(*PROCEDURAL, "--out", str(out), "--epochs", "5", "--resume"), progress=events.append)
    assert summary["state"] == "finished" and summary["epochs"] == 5
    assert any(e["event"] == "log" and "resuming from epoch 4" in e["message"] for e in events)
    chamfer = [h["chamfer"] for h in history(out)]
    assert len(chamfer) == 5 and chamfer[4] < chamfer[0], chamfer


def test_resume_on_two_processes_after_one(one_proc: dict[str, Any], tmp_path: Path) -> None:
    out = Path(shutil.copytree(one_proc["out"], tmp_path / "out"))
    rank0, rank1 = run_worker(tmp_path / "report", [*PROCEDURAL, "--out", str(out), "--epochs", "5", "--resume"])
    # Rank 1 got rank 0's restored weights and optimiser state, so both took the same fifth epoch.
    assert rank0["hash"] == rank1["hash"] == rank0["saved_hash"]
    assert rank0["summary"]["state"] == "finished" and rank0["summary"]["epochs"] == 5
    assert any(e["event"] == "log" and "resuming from epoch 4" in e["message"] for e in rank0["events"])
    chamfer = [h["chamfer"] for h in history(out)]
    assert len(chamfer) == 5 and chamfer[4] < chamfer[0], chamfer


def test_a_cancel_on_rank0_stops_every_rank_and_rank0_alone_fills_the_cache(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_dataset(data, ["sword", "mug"], per_family=3, seed=0)
    flags = ["--data", str(data), "--cache-dir", str(tmp_path / "cache"), *FLAGS, "--out", str(tmp_path / "out")]
    rank0, rank1 = run_worker(tmp_path / "report", flags, "--cancel-at-step", "2")
    # Rank 0 sampled every mesh into the cache; rank 1 only read it.
    assert len(rank0["sampled"]) == 6 and rank1["sampled"] == []
    assert len(list((tmp_path / "cache").glob("*.extents.npy"))) == 6
    # 5 training shapes, batch 4: one step an epoch, so the cancel came in epoch 2 and both ranks stopped there.
    assert rank0["summary"]["state"] == rank1["summary"]["state"] == "cancelled"
    assert rank0["summary"]["epoch"] == rank1["summary"]["epoch"] == 1
    assert rank0["hash"] == rank1["hash"] == rank0["saved_hash"]
    assert json.loads((tmp_path / "out" / STATE_JSON).read_text())["finished"] is False


def test_ctrl_c_under_torchrun_saves_a_checkpoint_and_reports_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = _torchrun("-m", "backend", "train", *PROCEDURAL, "--epochs", "1000", "--out", str(out))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    while proc.poll() is None and not (out / HISTORY_FILE).is_file():
        time.sleep(0.1)
    assert proc.poll() is None, "training ended before the first epoch was written"
    # As a terminal does: SIGINT to torchrun and its workers, which torchrun then forwards again.
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate()
    assert stdout.count('"state": "cancelled"') == 1, stdout + stderr[-4000:]
    assert stderr.count("stopping after this step") == 1
    state = json.loads((out / STATE_JSON).read_text())
    assert state["finished"] is False and 1 <= state["epoch"] < 1000
    assert len(history(out)) == state["epoch"]
    assert load_model(out).meta["finished"] is False


def test_placement_comes_from_torchrun_variables() -> None:
    assert placement_from_env({}) == Placement()
    assert placement_from_env({"WORLD_SIZE": "1"}) == Placement()
    assert placement_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == Placement(4, 3, 1)


@pytest.mark.parametrize("env,match", [
    ({"WORLD_SIZE": "2"}, "RANK is not set"),
    ({"WORLD_SIZE": "2", "RANK": "0"}, "LOCAL_RANK is not set"),
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two'"),
    ({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"}, "RANK=2"),
])
def test_inconsistent_torchrun_variables_are_named(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        placement_from_env(env)


def test_each_rank_takes_its_own_slice_of_every_global_batch() -> None:
    for world in (2, 3, 4):
        for length in range(world, 3 * world + 2):
            slices = [DataParallel(Placement(world, r, r), torch.device("cpu")).shard(length) for r in range(world)]
            rows = [i for s in slices for i in range(length)[s]]
            sizes = [len(range(length)[s]) for s in slices]
            assert rows == list(range(length)) and max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_a_global_batch_smaller_than_the_process_count_is_refused() -> None:
    group = DataParallel(Placement(4, 0, 0), torch.device("cpu"))
    group.check_batch(4)
    with pytest.raises(ConfigError, match="global batch of 3 shapes cannot be split over 4 processes"):
        group.check_batch(3)


def test_distributed_device_choices_are_the_cpu_or_a_gpu_per_local_rank() -> None:
    assert rank_device("cpu", 3) == torch.device("cpu")
    for name in ("mps", "cuda:1"):
        with pytest.raises(ConfigError, match=repr(name)):
            rank_device(name, 0)
