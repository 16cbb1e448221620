"""The model-folder save protocol under crashes: a process exit injected before every OS call that changes
the folder, in one save and then again in the next, must always leave a folder that loads.

The exit is real (os._exit in a forked child, at the boundary between our code and the OS), so whatever
Python would have done next never happens, exactly as with kill -9 or a power cut between two calls.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from backend.checkpoints import load_model, save_model

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork to crash a real process")

MUTATING_CALLS = ("open", "replace", "rename", "unlink", "fsync", "chmod", "mkdir", "rmdir", "ftruncate")
CRASHED, COMPLETED = 86, 0


def _arm(crash_at: int) -> None:
    """In this (child) process, exit just before the `crash_at`-th folder-changing OS call (1-based)."""
    calls = [0]
    for name in MUTATING_CALLS:
        real = getattr(os, name)

        def wrapper(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] == crash_at:
                os._exit(CRASHED)
            return _real(*args, **kwargs)

        setattr(os, name, wrapper)


def _in_child(action: Any, crash_at: int) -> int:
    """Run `action` in a forked child that exits before OS call `crash_at`; its exit status."""
    pid = os.fork()
    if pid == 0:
        try:
            _arm(crash_at)
            action()
            os._exit(COMPLETED)
        except BaseException:  # noqa: BLE001 - a child must never return into pytest
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _calls_in(action: Any, tmp: Path) -> int:
    """How many folder-changing OS calls `action` makes when nothing goes wrong."""
    counter = tmp / "calls"
    pid = os.fork()
    if pid == 0:
        calls = [0]
        for name in MUTATING_CALLS:
            real = getattr(os, name)

            def wrapper(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
                calls[0] += 1
                return _real(*args, **kwargs)

            setattr(os, name, wrapper)
        action()
        counter.write_text(str(calls[0]))
        os._exit(COMPLETED)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == COMPLETED
    return int(counter.read_text())


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _which(folder: Path, versions: dict[str, dict[str, torch.Tensor]]) -> str:
    loaded = load_model(folder).model.state_dict()
    matches = [name for name, w in versions.items() if all(torch.equal(loaded[k], w[k]) for k in w)]
    assert len(matches) == 1, f"{folder} loads weights that are none of {list(versions)}"
    return matches[0]


def test_two_crashes_in_a_row_at_every_step_leave_a_loadable_folder(tmp_path: Path, make_tiny_model) -> None:
    models = {name: make_tiny_model(seed) for name, seed in (("a", 1), ("b", 2), ("c", 3), ("d", 4))}
    versions = {name: _weights(m) for name, m in models.items()}
    base = save_model(tmp_path / "base", models["a"], meta={"v": "a"})
    probe = tmp_path / "probe"
    shutil.copytree(base, probe)
    steps = _calls_in(lambda: save_model(probe, models["b"], meta={"v": "b"}), tmp_path)
    assert steps >= 3
    seen: set[tuple[str, str]] = set()
    for first in range(1, steps + 2):
        folder = tmp_path / f"run{first}"
        shutil.copytree(base, folder)
        status = _in_child(lambda: save_model(folder, models["b"], meta={"v": "b"}), first)
        assert status == (CRASHED if first <= steps else COMPLETED)
        after_first = _which(folder, versions)
        snapshot = tmp_path / f"snap{first}"
        shutil.copytree(folder, snapshot)
        for second in range(1, steps + 4):
            shutil.rmtree(folder)
            shutil.copytree(snapshot, folder)
            completed = _in_child(lambda: save_model(folder, models["c"], meta={"v": "c"}), second) == COMPLETED
            after_second = _which(folder, versions)
            assert after_second == "c" if completed else after_second in ("a", "b", "c")
            seen.add((after_first, after_second))
            save_model(folder, models["d"], meta={"v": "d"})
            assert _which(folder, versions) == "d"
            assert load_model(folder).meta["v"] == "d"
    assert {("a", "a"), ("b", "b"), ("b", "c"), ("a", "c")} <= seen
