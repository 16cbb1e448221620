"""A disk that fills up during training: a clear refusal naming the path, and a rerun of the same command
that resumes whatever step the run died in (also when it was killed before any one of its writes).

The full disk is real: a tiny tmpfs (needs root to mount; skipped otherwise) filled to leave a few pages
free, so the out-of-space error comes from the kernel wherever the run happens to be writing. Freeing the
space and running the same command again must finish the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from backend.checkpoints import load_model
from backend.training.loop import run

from tests.faults import fill, mounted_tmpfs

REPO = Path(__file__).resolve().parents[2]
SAFETY_TIMEOUT_S = 900.0  # only guards against a hung run; never a speed requirement
DISK_BYTES = 4 << 20
PAGE = 4096
CRASHED = 86
TRAIN = ["train", "--procedural", "sword,mug:3", "--epochs", "2", "--latent-dim", "16", "--decoder-width", "32",
         "--decoder-layers", "1", "--points", "128", "--batch-size", "4", "--sheet-every", "1",
         "--prior-components", "2", "--device", "cpu"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A freshly mounted 4 MiB tmpfs, unmounted afterwards."""
    yield from mounted_tmpfs(tmp_path / "disk", DISK_BYTES)


def _cli(args: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ATLASVAE_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "backend", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=SAFETY_TIMEOUT_S)


@pytest.mark.parametrize("free_pages", [0, 10, 32])  # dies creating the folder, at epoch 1, at epoch 2
def test_full_disk_is_refused_by_name_and_a_rerun_resumes(small_disk: Path, tmp_path: Path,
                                                          free_pages: int) -> None:
    out = small_disk / "run"
    filler = fill(small_disk, free_pages * PAGE)
    failed = _cli([*TRAIN, "--out", str(out)], tmp_path / "cache")
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    error = [line for line in failed.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and str(small_disk) in error[0], failed.stderr[-2000:]
    assert "No space left on device" in error[0] and "run the same command again" in error[0]

    filler.unlink()
    again = _cli([*TRAIN, "--out", str(out)], tmp_path / "cache")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["state"] == "finished"
    loaded = load_model(out)
    assert loaded.prior is not None and loaded.meta["finished"] is True and loaded.meta["epoch"] == 2
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]


CHILD = """
import os, sys
from backend.training.config import config_from_args
from backend.training.loop import run
cfg = config_from_args(json.loads(sys.argv[1]))
number, seen, real = int(sys.argv[2]), [0], os.replace


def replace(src, dst, *args, **kwargs):
    if cfg.out in os.fspath(dst):
        seen[0] += 1
        if seen[0] == number:
            os._exit(CRASHED)
    real(src, dst, *args, **kwargs)


os.replace = replace
run(cfg, progress=lambda event: None)
""".replace("CRASHED", str(CRASHED))


def _train_killed_before_rename(cfg: Any, number: int) -> int:
    """Train in a fresh process that exits just before its `number`-th rename into cfg.out; its exit status."""
    settings = cfg.to_flat()
    return subprocess.run([sys.executable, "-c", "import json\n" + CHILD, json.dumps(settings), str(number)],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
                          timeout=SAFETY_TIMEOUT_S).returncode


def test_a_run_killed_before_any_of_its_writes_resumes_when_rerun(tmp_path: Path, make_train_config) -> None:
    """Every durable change a run makes to its folder is a rename; die before each one in turn, then rerun."""
    number = 0
    while True:
        number += 1
        cfg = make_train_config(tmp_path / f"run{number}", epochs=1, procedural="sword,mug:2")
        status = _train_killed_before_rename(cfg, number)
        if status == 0:
            break
        assert status == CRASHED
        summary = run(replace(cfg), progress=lambda event: None)
        assert summary["state"] == "finished", (number, summary)
        loaded = load_model(cfg.out)
        assert loaded.prior is not None and loaded.meta["finished"] is True and loaded.meta["epoch"] == 1
        assert [h["epoch"] for h in json.loads((Path(cfg.out) / "history.json").read_text())] == [1]
    assert number > 10  # the run really has that many steps, and each one was a crash point above
