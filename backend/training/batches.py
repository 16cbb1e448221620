"""Each training step's batch, made on the training device, and the step's losses read back in windows.

A GPU runs the steps queued for it while the host queues the next ones; anything that needs a value on the
host (a loss as a float, a copy from pageable memory) makes the host wait until the queue is empty. So:

- `PointPacks` keeps every training shape's cached surface points on the device, uploaded once, and
  picks each step's points there. The random keys are drawn by the epoch's numpy generator exactly as
  `inference.pick_points` draws them, so a run picks the same points as the numpy path for the same seed
  (and data-parallel ranks draw alike); only the keys travel, pinned and without waiting.
- `LossWindow` keeps each step's loss, Chamfer and KL on the device and reads them back
  LOSS_READ_EVERY steps at a time (and whenever the loop needs them: an epoch's end, a stop), raising
  on a non-finite loss before the loop writes any checkpoint.
- `Every` limits a redraw (the loss-curve PNG) to once per PLOT_EVERY_S seconds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch

from ..errors import DataError
from .distributed import Solo

LOSS_READ_EVERY = 16  # steps whose losses are read back to the host at once
PLOT_EVERY_S = 30.0  # least time between two redraws of the loss curve (the last epoch is always drawn)
LOSS_NAMES = ("loss", "chamfer", "kl")


def batches(count: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Shuffled index batches; the last short batch is dropped unless it is the only one."""
    order = rng.permutation(count)
    full = max(1, count // batch_size)
    for b in range(full):
        yield order[b * batch_size:(b + 1) * batch_size]


def upload(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array as a tensor on `device`; to a GPU through pinned memory, so the host does not wait."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


class PointPacks:
    """Every training shape's cached points (S, N, 3), on the training device, and each step's picks."""

    def __init__(self, points: np.ndarray, device: torch.device) -> None:
        self.device = device
        self.clouds = torch.as_tensor(points, device=device)

    def pick(self, idx: np.ndarray, count: int, rng: np.random.Generator,
             rows: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` random points of each shape idx[rows] (B, count, 3) and those shapes' whole clouds.

        The same points `inference.pick_points(points[idx], count, rng, rows)` gives, with `rng` advanced
        alike: keys for all of idx are drawn whatever `rows` is, and a shape's picks are its `count`
        smallest keys in ascending order (distinct float64 keys leave no tie to break differently).
        """
        n = self.clouds.shape[1]
        clouds = self.clouds.index_select(0, upload(np.asarray(idx[rows], dtype=np.int64), self.device))
        if count <= n:
            keys = rng.random((len(idx), n))[rows]
            if self.device.type == "mps":  # no float64 there: sort the keys on the host
                order = upload(keys.argsort(axis=1)[:, :count], self.device)
            else:
                order = torch.topk(upload(keys, self.device), count, dim=1, largest=False, sorted=True).indices
        else:
            order = upload(rng.integers(0, n, (len(idx), count))[rows], self.device)
        return torch.gather(clouds, 1, order[..., None].expand(-1, -1, clouds.shape[-1])), clouds


@dataclass
class Read:
    """One step's losses as read back: the means over the global batch."""

    epoch: int
    step: int
    values: dict[str, float]


@dataclass
class LossWindow:
    """Steps' losses kept on the device until `read` brings them back together (one wait, not one a step)."""

    group: Solo
    pending: list[tuple[int, int, torch.Tensor, int, int]] = field(default_factory=list)

    def add(self, epoch: int, step: int, losses: tuple[torch.Tensor, ...], local: int, total: int) -> None:
        """Keep one step's (loss, Chamfer, KL), from `local` of the global batch's `total` shapes."""
        self.pending.append((epoch, step, torch.stack([v.detach() for v in losses]), local, total))

    def due(self, steps_done: int) -> bool:
        """Whether to read after the run's `steps_done`-th step: its first step, then every LOSS_READ_EVERY."""
        return (steps_done - 1) % LOSS_READ_EVERY == 0

    def read(self) -> list[Read]:
        """Every pending step's global-batch means, oldest first; DataError at the first non-finite loss.

        Each batch in a window has the same share of shapes on this rank unless the shares differ, so the
        window's rows are reduced together when they can be and step by step otherwise.
        """
        pending, self.pending = self.pending, []
        if not pending:
            return []
        shares = {(local, total) for *_, local, total in pending}
        if len(shares) == 1:
            local, total = shares.pop()
            means = self.group.batch_means(torch.stack([v for _, _, v, _, _ in pending]), local, total)
        else:
            means = np.stack([self.group.batch_means(v, local, total) for _, _, v, local, total in pending])
        reads = []
        for (epoch, step, *_), row in zip(pending, means):
            values = dict(zip(LOSS_NAMES, (float(v) for v in row)))
            if not math.isfinite(values["loss"]):
                raise DataError(f"training diverged at epoch {epoch + 1} step {step + 1} (loss {values['loss']}); "
                                f"try a lower --lr")
            reads.append(Read(epoch, step, values))
        return reads


class Every:
    """True at most once per `seconds` (and the first time asked): a limit on how often to redraw."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock, self.last = seconds, clock, -math.inf

    def due(self, force: bool = False) -> bool:
        """Whether to act now; `force` acts whatever the time (and restarts the wait)."""
        now = self.clock()
        if force or now - self.last >= self.seconds:
            self.last = now
            return True
        return False
