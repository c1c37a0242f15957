"""Turning what the user passes to ``fit`` into DataLoaders, and batches into (inputs, target).

Batch convention: a batch is a tuple (or list); every element but the last is an input of the
model and the last is the target: ``out = model(*batch[:-1])``, ``loss(out, batch[-1])``.

Shuffling: a ``Dataset`` (or tensors) is shuffled by a :class:`DistributedSampler` whose
permutation depends only on ``(seed, epoch)``; a single process is the case
``num_replicas = 1``.  Hence one process and ``W`` DDP ranks see the same global batches: rank
``r`` takes every ``W``-th index of the permutation, and the union over ranks of their ``k``-th
batches is the ``k``-th contiguous chunk of ``batch_size`` indices, the single process's
``k``-th batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, TensorDataset
from torch.utils.data.distributed import DistributedSampler

__all__ = ["TrainData", "make_loader", "split_batch", "to_device"]

TrainData = Dataset | DataLoader | Sequence[torch.Tensor | np.ndarray]


class _RankSlice(Sampler[int]):
    """Indices ``rank, rank + W, rank + 2W, ...`` in order: an exact, unpadded split of an
    evaluation set across ranks (``DistributedSampler`` would pad with repeats)."""

    def __init__(self, n: int, rank: int, num_replicas: int) -> None:
        self.indices = range(rank, n, num_replicas)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


_ARGUMENT = {"training": "train_data", "validation": "val_data"}  # fit's argument names, for messages


def _as_dataset(data: Any, where: str) -> Dataset:
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (tuple, list)) and data and all(isinstance(t, (torch.Tensor, np.ndarray)) for t in data):
        tensors = [torch.as_tensor(t) for t in data]
        arg = _ARGUMENT.get(where, where)
        lengths = {len(t) if t.dim() else -1 for t in tensors}
        if len(lengths) != 1 or -1 in lengths:
            raise ValueError(
                f"the {where} tensors ({arg}) must share their first (batch) dimension, got shapes "
                f"{[tuple(t.shape) for t in tensors]}; time-first (T, B, ...) data goes in a Dataset "
                "of batch-first items with a collate method (see fit's docstring)"
            )
        if len(tensors) < 2:
            raise ValueError(f"the {where} data ({arg}) needs inputs and a target: a tuple (x, ..., y) of tensors")
        for i, t in enumerate(tensors):
            if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
                bad = int((~torch.isfinite(t)).sum())
                raise ValueError(
                    f"{arg}[{i}] (shape {tuple(t.shape)}) contains NaN or Inf in {bad} entries; "
                    "clean or mask the data before training"
                )
        return TensorDataset(*tensors)
    raise ValueError(
        f"the {where} data ({_ARGUMENT.get(where, where)}) must be a torch Dataset, a DataLoader or "
        f"a tuple of tensors (inputs..., target), got {type(data).__name__}"
    )


def _length(dataset: Dataset, where: str) -> int:
    try:
        n = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(
            f"the {where} dataset has no length; pass a map-style Dataset (or a DataLoader "
            "over an iterable one, without strategy='ddp')"
        ) from None
    if n == 0:
        raise ValueError(f"the {where} data is empty")
    return n


def _collate_of(dataset: Dataset) -> Callable | None:
    """The dataset's own ``collate`` (seen through a ``Subset``), if it has one."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return getattr(dataset, "collate", None)


def make_loader(
    data: TrainData,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_replicas: int,
    rank: int,
    where: str,
) -> tuple[DataLoader, int]:
    """A DataLoader over this rank's share of ``data`` and its number of samples over all ranks.

    Args:
        batch_size: the *global* batch; each of the ``num_replicas`` ranks loads
            ``batch_size // num_replicas`` samples (``ValueError`` unless it divides).
        shuffle: training order (a new permutation each epoch, from ``seed`` and the epoch set
            with ``loader.sampler.set_epoch``) or the dataset's order (evaluation).
        where: ``"training"`` or ``"validation"``, for messages.

    Items become a batch by the dataset's own ``collate`` method where it has one (e.g.
    :class:`pyhbnode.data.SequenceDataset`'s time-first stacking), else by stacking on a new
    first axis.  A DataLoader is used as given in one process (its own batch size, sampler and collate);
    under DDP it is rebuilt from its dataset, collate function and workers, with its batch
    size as the global batch.
    """
    given = data if isinstance(data, DataLoader) else None
    if given is not None and num_replicas == 1:
        try:
            n = len(given.dataset)  # type: ignore[arg-type]
        except TypeError:
            return given, -1  # an iterable dataset: its length is unknown until exhausted
        if n == 0:
            raise ValueError(f"the {where} data is empty")
        return given, n
    collate_fn: Callable[..., Any] | None
    if given is not None:
        if given.batch_size is None:
            raise ValueError(
                f"the {where} DataLoader uses a custom batch_sampler, which strategy='ddp' "
                "cannot split across ranks; pass its Dataset instead"
            )
        batch_size, collate_fn = given.batch_size, given.collate_fn
        num_workers, dataset = given.num_workers, given.dataset
    else:
        num_workers, dataset = 0, _as_dataset(data, where)
        collate_fn = _collate_of(dataset)
    n = _length(dataset, where)
    if batch_size % num_replicas:
        raise ValueError(f"the global batch size {batch_size} does not divide among {num_replicas} ranks")
    per_rank = batch_size // num_replicas
    sampler: Sampler[int]
    if shuffle:
        sampler = DistributedSampler(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False
        )
    else:
        sampler = _RankSlice(n, rank, num_replicas)
    kwargs: dict[str, Any] = {"collate_fn": collate_fn} if collate_fn is not None else {}
    return DataLoader(dataset, batch_size=per_rank, sampler=sampler, num_workers=num_workers, **kwargs), n


def split_batch(batch: Any, where: str) -> tuple[tuple[Any, ...], Any]:
    """``(inputs, target)`` of one batch: all elements but the last, and the last."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        kind = f"a {type(batch).__name__}" if not isinstance(batch, (tuple, list)) else f"{len(batch)} element(s)"
        raise ValueError(f"each {where} batch must be a tuple (inputs..., target), got {kind}")
    return tuple(batch[:-1]), batch[-1]


def to_device(obj: Any, device: torch.device) -> Any:
    """Move tensors (also inside tuples and lists) to ``device``; other values pass through."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(o, device) for o in obj)
    return obj
