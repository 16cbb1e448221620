"""Data-parallel training under torchrun: this process's place, its device, and the collectives training needs.

Without torchrun (or with a single process) `join` yields a `Solo` group whose operations change nothing,
so the one-process training loop runs exactly as before. Under torchrun it yields a `DataParallel` group
(gloo on CPU, NCCL on CUDA): every rank draws the same global batch order and keeps its own slice of each
batch, batch-norm statistics span the whole global batch, and DistributedDataParallel averages gradients,
so N processes compute what one process would with the same --batch-size.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..device import resolve_device
from ..errors import AtlasError, ConfigError

T = TypeVar("T")

# How long a rank waits for the others at a collective. Rank 0 validates, writes checkpoints and fits
# the prior alone while the others wait, so this must cover the slowest of those steps.
WAIT_LIMIT = timedelta(minutes=30)
ECHO_ATTR = "atlasvae_echo_of_rank"


@dataclass(frozen=True)
class Placement:
    """Where this process sits: number of processes, its global rank, its rank on this machine."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0


def placement_from_env(env: Mapping[str, str] | None = None) -> Placement:
    """Read WORLD_SIZE, RANK and LOCAL_RANK as torchrun sets them; no WORLD_SIZE (or 1) means one process."""
    env = os.environ if env is None else env
    values: dict[str, int] = {}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        text = env.get(key)
        if text is None:
            if key == "WORLD_SIZE" or values["WORLD_SIZE"] == 1:
                return Placement()
            raise ConfigError(f"environment variable {key} is not set but WORLD_SIZE={values['WORLD_SIZE']} is; "
                              f"start distributed training with torchrun")
        try:
            values[key] = int(text)
        except ValueError:
            raise ConfigError(f"environment variable {key}={text!r} is not an integer") from None
    world, rank, local = values["WORLD_SIZE"], values["RANK"], values["LOCAL_RANK"]
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ConfigError(f"environment WORLD_SIZE={world}, RANK={rank}, LOCAL_RANK={local} is inconsistent: "
                          f"need WORLD_SIZE >= 1, 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0")
    return Placement(world, rank, local) if world > 1 else Placement()


def is_main_process() -> bool:
    """True outside torchrun and on rank 0 under it (never raises: used while reporting errors)."""
    return os.environ.get("RANK", "0").strip() in ("", "0")


def should_report(exc: BaseException) -> bool:
    """Print this error here? Every rank re-raises a failure of another rank; only rank 0 prints those."""
    return getattr(exc, ECHO_ATTR, None) is None or is_main_process()


def rank_device(name: str | torch.device, local_rank: int) -> torch.device:
    """The device of one data-parallel process: cuda:LOCAL_RANK with GPUs, else the CPU (never MPS)."""
    if str(name).strip().lower() == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        chosen = resolve_device(name)
        if chosen.type not in ("cpu", "cuda"):
            raise ConfigError(f"device {str(name)!r}: distributed training runs on the CPU (gloo) or on CUDA GPUs "
                              f"(NCCL), not on {chosen.type}")
        if chosen.type == "cuda" and chosen.index is not None:
            raise ConfigError(f"device {str(name)!r}: under torchrun each process takes the GPU numbered by its "
                              f"LOCAL_RANK; pass --device cuda (or auto)")
        kind = chosen.type
    if kind == "cpu":
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ConfigError(f"LOCAL_RANK {local_rank} has no GPU of its own: this machine has {count}; start at most "
                          f"{count} processes per machine (--nproc_per_node)")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


class Solo:
    """One process: every operation is the identity, so the training loop runs unchanged."""

    world_size = 1
    rank = 0
    local_rank = 0

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, plots and logs, validates and fits the prior."""
        return self.rank == 0

    def shard(self, length: int) -> slice:
        """This rank's rows of a global batch of `length` shapes."""
        return slice(None)

    def check_batch(self, size: int) -> None:
        """Refuse a global batch too small to give every rank a shape."""

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to run training steps through (the model itself, or its DDP wrapper)."""
        return model

    def scale_loss(self, loss: torch.Tensor, local: int, total: int) -> torch.Tensor:
        """The loss to back-propagate so that the applied gradient is that of the global-batch mean."""
        return loss

    def batch_means(self, values: torch.Tensor, local: int, total: int) -> np.ndarray:
        """Global-batch means of per-rank batch means (e.g. steps x (loss, Chamfer, KL)), as a float64 array of
        the same shape, the same on every rank; one copy to the host for the whole tensor."""
        return values.detach().to(torch.float64).cpu().numpy()

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on any (a cancel request, a non-finite output)."""
        return flag

    def private_rng(self, *key: int) -> AbstractContextManager[None]:
        """A block whose torch random draws (reparameterisation noise) are this rank's own."""
        return nullcontext()

    def barrier(self) -> None:
        """Wait until every rank gets here."""

    def from_main(self, fn: Callable[[], T]) -> T:
        """Run `fn` on rank 0 only and give its result (or its AtlasError) to every rank."""
        return fn()

    def in_turn(self, fn: Callable[[], T]) -> T:
        """Run `fn` on every rank, rank 0 first, so that caches it fills serve the others."""
        return fn()

    def share_optimizer(self, opt: torch.optim.Optimizer) -> None:
        """Copy rank 0's optimiser state (restored from a checkpoint) to every rank."""


class DataParallel(Solo):
    """One of several torchrun processes in an initialised default process group."""

    def __init__(self, placement: Placement, device: torch.device) -> None:
        super().__init__(device)
        self.world_size = placement.world_size
        self.rank = placement.rank
        self.local_rank = placement.local_rank

    def shard(self, length: int) -> slice:
        return slice(self.rank * length // self.world_size, (self.rank + 1) * length // self.world_size)

    def check_batch(self, size: int) -> None:
        if size < self.world_size:
            raise ConfigError(f"a global batch of {size} shapes cannot be split over {self.world_size} processes: "
                              f"--batch-size is the global batch (and the training set must hold that many shapes); "
                              f"raise it or start fewer processes")

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        sync_batch_norms(model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def scale_loss(self, loss: torch.Tensor, local: int, total: int) -> torch.Tensor:
        # DDP averages gradients over ranks; weighting each rank's mean by its share of the global batch
        # turns that average into the gradient of the global mean, even when shares differ by one shape.
        return loss * (local * self.world_size / total)

    def batch_means(self, values: torch.Tensor, local: int, total: int) -> np.ndarray:
        sums = values.detach().to(torch.float64) * local
        dist.all_reduce(sums)
        return (sums / total).cpu().numpy()

    def any(self, flag: bool) -> bool:
        votes = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(votes, op=dist.ReduceOp.MAX)
        return bool(votes.item() > 0)

    @contextmanager
    def private_rng(self, *key: int) -> Iterator[None]:
        seed = int(np.random.SeedSequence([*key, self.rank]).generate_state(1)[0])
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.default_generator.manual_seed(seed)
            if cuda:
                torch.cuda.manual_seed(seed)
            yield

    def barrier(self) -> None:
        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def from_main(self, fn: Callable[[], T]) -> T:
        box: list[Any] = [None]
        own: AtlasError | None = None
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except AtlasError as exc:
                own = exc
                box[0] = ("error", exc)
        dist.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            raise own if own is not None else _echo(value, 0)
        return cast(T, value)  # rank 0's fn() result, sent through broadcast_object_list (typed Any)

    def in_turn(self, fn: Callable[[], T]) -> T:
        # Rank 0 first, then the first process of every other machine (their cache if it is not shared),
        # then the rest, who find every file cached. A failure in one turn stops all ranks after it.
        mine = 0 if self.rank == 0 else 1 if self.local_rank == 0 else 2
        results: list[T] = []  # this rank's one fn() result, from its turn
        for turn in range(3):
            own: AtlasError | None = None
            if turn == mine:
                try:
                    results.append(fn())
                except AtlasError as exc:
                    own = exc
            self._raise_first(own)
        return results[0]

    def share_optimizer(self, opt: torch.optim.Optimizer) -> None:
        box: list[Any] = [None]
        if self.is_main:
            state = opt.state_dict()
            box[0] = {"state": {i: {k: v.cpu() if torch.is_tensor(v) else v for k, v in s.items()}
                                for i, s in state["state"].items()},
                      "param_groups": state["param_groups"]}
        dist.broadcast_object_list(box, src=0)
        if not self.is_main:
            opt.load_state_dict(box[0])

    def _raise_first(self, own: AtlasError | None) -> None:
        """If any rank failed, raise on every rank: its own error where it has one, else the lowest rank's."""
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, own)
        if own is not None:
            raise own
        for rank, error in enumerate(gathered):
            if error is not None:
                raise _echo(error, rank)


def _echo(error: AtlasError, rank: int) -> AtlasError:
    """A copy of another rank's error, naming that rank and marked so that only rank 0 prints it."""
    try:
        copy = type(error)(f"{error} (on rank {rank})")
    except TypeError:
        copy = AtlasError(f"{error} (on rank {rank})")
    setattr(copy, ECHO_ATTR, rank)
    return copy


@contextmanager
def join(device: str | torch.device = "auto") -> Iterator[Solo]:
    """The group this process trains in: Solo outside torchrun, else DataParallel over a process group.

    A process group made here is destroyed on exit; one the caller initialised is used and left alone.
    """
    placement = placement_from_env()
    if placement.world_size == 1:
        yield Solo(resolve_device(device))
        return
    where = rank_device(device, placement.local_rank)
    created = not dist.is_initialized()
    if created:
        try:
            dist.init_process_group("nccl" if where.type == "cuda" else "gloo", timeout=WAIT_LIMIT)
        except ValueError as exc:
            raise ConfigError(f"cannot start distributed training ({exc}); launch it with torchrun") from None
    elif (dist.get_world_size(), dist.get_rank()) != (placement.world_size, placement.rank):
        raise ConfigError(f"the initialised process group (size {dist.get_world_size()}, rank {dist.get_rank()}) "
                          f"does not match WORLD_SIZE={placement.world_size}, RANK={placement.rank}")
    group = DataParallel(placement, where)
    try:
        yield group
        if created:
            group.barrier()  # leave together: a peer closing its sockets mid-collective aborts gloo
    finally:
        if created:
            dist.destroy_process_group()


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) with autograd: every rank's input feeds every rank's output, so gradients sum too."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        total = grad.contiguous().clone()
        dist.all_reduce(total)
        return total


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics cover the samples of every rank, on any device and backend.

    torch's SyncBatchNorm needs a GPU; this one sums over ranks with autograd, so forward, gradients and
    running statistics are those of one process holding the whole global batch.
    """

    @classmethod
    def sharing(cls, bn: nn.BatchNorm1d) -> "GlobalBatchNorm1d":
        """A GlobalBatchNorm1d holding `bn`'s own parameter and buffer tensors (the optimiser keeps them)."""
        new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        if bn.affine:
            new.weight, new.bias = bn.weight, bn.bias
        if bn.track_running_stats:
            new.running_mean, new.running_var = bn.running_mean, bn.running_var
            new.num_batches_tracked = bn.num_batches_tracked
        return new.train(bn.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count_here = x.new_tensor([x.numel() // x.shape[1]], dtype=torch.float64)
        # autograd.Function.apply is typed Any; _SumOverRanks.forward returns a tensor
        sums: torch.Tensor = _SumOverRanks.apply(torch.cat([x.sum(dims).to(torch.float64), count_here]))
        count = float(sums[-1].detach())
        if count < 2:
            raise ValueError(f"Expected more than 1 value per channel when training, got {count:.0f} "
                             f"over all ranks")
        mean = sums[:-1] / count
        centered = x - mean.to(x.dtype).view(shape)
        var: torch.Tensor = _SumOverRanks.apply(centered.square().sum(dims).to(torch.float64)) / count
        tracked = self.num_batches_tracked
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None \
                and tracked is not None:
            with torch.no_grad():
                tracked.add_(1)
                factor = 1.0 / float(tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
                unbiased = var * (count / (count - 1))
                self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)
        out = centered * torch.rsqrt(var + self.eps).to(x.dtype).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def sync_batch_norms(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm1d inside `module` (in place) by a GlobalBatchNorm1d sharing its tensors."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm1d:
            setattr(module, name, GlobalBatchNorm1d.sharing(child))
        else:
            sync_batch_norms(child)
    return module
