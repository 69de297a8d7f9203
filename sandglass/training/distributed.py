"""Where training runs: the device and the ranks of a ``torchrun`` process group.

Under ``torchrun`` (environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) every process trains a
replica wrapped in DistributedDataParallel; all ranks build the same seeded batch list and rank ``r`` takes
batches ``r, r + W, r + 2W, …`` (the list cut to a multiple of ``W`` so every rank makes the same number of
steps). Decisions that must agree (stop, skip a step) are reduced over all ranks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from sandglass.config import ConfigError

Item = TypeVar("Item")


@dataclass(frozen=True)
class DistributedContext:
    """This process's place among ``world_size`` training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_environment(cls) -> DistributedContext:
        """The ranks ``torchrun`` set in the environment; one process when it did not."""
        try:
            rank = int(os.environ.get("RANK", "0"))
            world_size = int(os.environ.get("WORLD_SIZE", "1"))
            local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
        except ValueError as error:
            raise ConfigError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers ({error})") from None
        return cls(rank, world_size, local_rank)

    @classmethod
    def from_process_group(cls) -> DistributedContext:
        """The ranks of the already-initialized default process group."""
        if not dist.is_available() or not dist.is_initialized():
            return cls()
        rank = dist.get_rank()
        return cls(rank, dist.get_world_size(), int(os.environ.get("LOCAL_RANK", str(rank))))

    def shard(self, batches: Sequence[Item]) -> list[Item]:
        """This rank's share of ``batches``: every ``world_size``-th one, the same count on every rank."""
        usable = len(batches) - len(batches) % self.world_size
        return list(batches[self.rank : usable : self.world_size])

    def maximum(self, value: int, device: torch.device) -> int:
        """The largest of the ranks' ``value``, on every rank."""
        if not self.is_distributed:
            return value
        values = torch.tensor([value], dtype=torch.int64, device=device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return int(values.item())

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is true on any rank."""
        return self.maximum(int(flag), device) > 0

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if not self.is_distributed:
            return value
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        if not self.is_distributed:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered


def resolve_device(name: str, context: DistributedContext) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; a CUDA device without an index → ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for but CUDA is not available; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", context.local_rank)
        torch.cuda.set_device(device)
    return device


def init_process_group(context: DistributedContext, device: torch.device) -> bool:
    """Join the ``torchrun`` process group (nccl on CUDA, gloo on CPU); False when there is none to join or
    it is already initialized (the caller then does not destroy it)."""
    if not context.is_distributed or dist.is_initialized():
        return False
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return True


@contextmanager
def leaving_process_group() -> Iterator[None]:
    """Destroy the default process group when the block ends. After a normal end, first wait for every rank,
    so that none closes its connections while a peer is still sending the last collective's messages (gloo
    aborts the process that loses a peer mid-message); after a failure, leave at once, since a peer may never
    arrive."""
    try:
        yield
    except BaseException:
        dist.destroy_process_group()
        raise
    try:
        dist.barrier()
    finally:
        dist.destroy_process_group()
