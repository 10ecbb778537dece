"""One process or several: which process this is, its device, its share of the data.

`torchrun --nproc-per-node N -m training train ...` starts N processes and sets RANK, WORLD_SIZE
and LOCAL_RANK; without them every helper here is the single-process case and does nothing.
CPU processes talk over gloo, GPU processes over NCCL (one GPU per process).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Session:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Process 0 writes the run folder and prints progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_threads(threads: int | None = None, processes: int = 1) -> None:
    """All cores by default, shared out between the processes; fewer when several runs share the machine."""
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // processes))


def start(threads: int | None = None) -> Session:
    """Join the process group torchrun set up, or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    set_threads(threads, world_size)
    if world_size == 1:
        return Session(device=pick_device())
    rank = int(os.environ["RANK"])
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Session(rank, world_size, device)


def finish(session: Session) -> None:
    if session.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(session: Session) -> None:
    if session.distributed:
        dist.barrier()


@contextmanager
def main_process_first(session: Session) -> Iterator[None]:
    """Process 0 runs the block first (e.g. decodes and caches a folder); the others then reuse its work."""
    if not session.is_main:
        barrier(session)
    yield
    if session.is_main:
        barrier(session)


def shard(order: torch.Tensor, session: Session) -> torch.Tensor:
    """This process's share of a shuffled index, as DistributedSampler deals it.

    The order is padded by repeating its start so every process gets the same number of
    indices: DDP needs every process to take the same number of steps.
    """
    if not session.distributed:
        return order
    per_process = -(-len(order) // session.world_size)
    padded = torch.cat([order, order[: per_process * session.world_size - len(order)]])
    return padded[session.rank :: session.world_size]


def sum_over_processes(values: dict[str, float], session: Session) -> dict[str, float]:
    if not session.distributed:
        return values
    tensor = torch.tensor(list(values.values()), dtype=torch.float64, device=session.device)
    dist.all_reduce(tensor)
    return dict(zip(values, tensor.tolist(), strict=True))


def gather(value: object, session: Session) -> list:
    """Every process's value, in rank order (on every process)."""
    if not session.distributed:
        return [value]
    gathered: list = [None] * session.world_size
    dist.all_gather_object(gathered, value)
    return gathered
