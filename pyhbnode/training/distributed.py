"""Data-parallel training with ``torch.distributed``: joining a process group, wrapping the model,
reducing numbers across ranks, and ``launch_ddp`` to start workers without ``torchrun``.

Semantics (see :func:`pyhbnode.training.fit`): ``batch_size`` is the *global* batch, split
evenly across ranks; gradients are averaged by DistributedDataParallel, so with equal per-rank
batches a step equals one single-process step on the whole global batch.  Logged losses and
metrics are sample-weighted means over all ranks, NFE the mean over ranks of each rank's solves.
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..fields import dormant_names

__all__ = [
    "DistContext",
    "setup_distributed",
    "teardown_distributed",
    "wrap_model",
    "launch_ddp",
    "is_main_process",
    "STRATEGIES",
]

STRATEGIES = (None, "ddp")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job.

    Attributes:
        rank, world_size, local_rank: as ``torch.distributed`` numbers them (0, 1, 0 alone).
        owns_group: ``fit`` created the process group and must destroy it.
        enabled: a process group is in use (``strategy="ddp"``).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over all ranks (``values`` itself in one process)."""
        if not self.enabled:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu().tolist()

    def broadcast(self, value: int) -> int:
        """Rank 0's ``value`` on every rank."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.int64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.broadcast(t, src=0)
        return int(t.item())


def setup_distributed(strategy: str | None, device: torch.device) -> DistContext:
    """Join (or reuse) the process group for ``strategy``.

    ``None``: one process.  ``"ddp"``: an existing process group (``launch_ddp`` or the user's),
    else one created from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
    ``MASTER_PORT``) with gloo on the CPU and NCCL on CUDA.  Raises ``ValueError`` otherwise."""
    if strategy is None:
        return DistContext()
    if strategy != "ddp":
        raise ValueError(f"unknown strategy {strategy!r}; choose None (one process) or 'ddp'")
    if not dist.is_available():
        raise ValueError("strategy='ddp' needs torch.distributed, which this torch build lacks")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=False, enabled=True)
    if all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")):
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=True, enabled=True)
    raise ValueError(
        "strategy='ddp' needs a process group: run under torchrun (it sets RANK, WORLD_SIZE, "
        "MASTER_ADDR and MASTER_PORT) or start the workers with pyhbnode.training.launch_ddp"
    )


def teardown_distributed(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel when a process group is in use.

    Parameters in :class:`~pyhbnode.fields.Dormant` modules (registered, never read, as the
    zoo's authors preset carries) are left out of DDP's gradient reduction, which would
    otherwise wait for their gradients forever."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    dormant = dormant_names(model)
    if dormant:
        # The only hook DDP offers for parameters without gradients short of
        # find_unused_parameters=True, which walks the autograd graph every iteration.
        ignored = list(getattr(model, "_ddp_params_and_buffers_to_ignore", ()))
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, ignored + sorted(dormant))
    device_ids = [device.index if device.index is not None else ctx.local_rank] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def is_main_process() -> bool:
    """Rank 0 of a running process group (or torchrun's ``RANK``), or a lone process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", 0)) == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(
    rank: int,
    fn: Callable[..., Any],
    args: tuple,
    nprocs: int,
    port: int,
    backend: str,
    timeout_s: float | None,
    result_dir: str,
) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(nprocs), LOCAL_RANK=str(rank)
    )
    kwargs: dict[str, Any] = {"timeout": timedelta(seconds=timeout_s)} if timeout_s else {}
    dist.init_process_group(backend, rank=rank, world_size=nprocs, **kwargs)
    try:
        result = fn(*args)
        if rank == 0:
            # A file, not a queue: a large result in a pipe would block the worker while the
            # parent waits for it to exit.
            with open(Path(result_dir) / "result.pkl", "wb") as fh:
                pickle.dump(result, fh)
    finally:
        dist.destroy_process_group()


def launch_ddp(
    fn: Callable[..., Any], nprocs: int = 2, args: tuple = (), *, backend: str = "gloo", timeout_s: float | None = None
) -> Any:
    """Run ``fn(*args)`` in ``nprocs`` fresh processes joined in a process group on this machine,
    and return rank 0's return value.

    ``fn`` must be importable by name (a module-level function) because the workers are
    spawned, not forked; inside it, ``fit(..., strategy="ddp")`` uses the group.  ``backend``:
    ``"gloo"`` (CPU) or ``"nccl"`` (one GPU per rank).  ``timeout_s`` bounds each collective
    (torch's default otherwise).  A worker's exception is re-raised here with its traceback.
    """
    if nprocs < 1:
        raise ValueError(f"nprocs must be >= 1, got {nprocs}")
    result_dir = tempfile.mkdtemp(prefix="pyhbnode-ddp-")
    try:
        torch.multiprocessing.start_processes(
            _worker,
            args=(fn, args, nprocs, _free_port(), backend, timeout_s, result_dir),
            nprocs=nprocs,
            join=True,
            start_method="spawn",
        )
        path = Path(result_dir) / "result.pkl"
        if not path.exists():
            return None
        with path.open("rb") as fh:
            # Written a moment ago by our own worker process, never by a third party.
            return pickle.load(fh)
    finally:
        shutil.rmtree(result_dir, ignore_errors=True)
