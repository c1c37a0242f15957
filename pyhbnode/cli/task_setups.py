"""What ``pyhbnode train`` feeds ``fit`` for each zoo task: the data, and the loss and metrics
its :class:`~pyhbnode.zoo.TaskSpec` names.  Data comes from :mod:`pyhbnode.data`, imported on use."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset

from ..zoo import task_spec

__all__ = ["TaskSetup", "task_setup", "silverbox_mse"]


@dataclass
class TaskSetup:
    """Data, loss and metrics of one task.

    Attributes:
        train, val: what ``fit`` takes as ``train_data``/``val_data``.
        loss, metrics: as ``fit`` takes them.
    """

    train: Any
    val: Any
    loss: str | Callable
    metrics: Sequence[str | Callable]


def _setup(task: str, train: Any, val: Any) -> TaskSetup:
    spec = task_spec(task)
    return TaskSetup(train, val, _TASK_LOSSES.get(spec.loss, spec.loss), spec.metrics)


def first_items(data: Any, limit: int | None) -> Any:
    """The first ``limit`` items of a ``Dataset`` or of a tuple of tensors sharing their first axis."""
    if isinstance(data, tuple):
        return tuple(x[:limit] for x in data)
    if limit is None or limit >= len(data):
        return data
    return Subset(data, range(limit))


def _pointcloud(data_dir: str, seed: int, limit: int | None) -> TaskSetup:
    from ..data import make_pointcloud

    def tensors(s: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = make_pointcloud(seed=s)
        return torch.from_numpy(x[:limit]), torch.from_numpy(y[:limit])

    # A second cloud from the next seed measures generalisation.
    return _setup("pointcloud", tensors(seed), tensors(seed + 1))


def _images(task: str, data_dir: str, limit: int | None) -> TaskSetup:
    from .. import data

    cls = data.MNISTDataset if task == "mnist" else data.CIFAR10Dataset
    train, test = cls(data_dir, "train", limit=limit), cls(data_dir, "test", limit=limit)
    return _setup(task, train, test)


def _sequences(task: str, data_dir: str, limit: int | None) -> TaskSetup:
    from .. import data

    splits = data.load_plane_vibration(data_dir) if task == "plane_vibration" else data.load_walker(data_dir)
    # (x, dt, y) only: the model takes (x, dt) and the last element is the target.
    train, valid = (first_items(data.SequenceDataset(s.x, s.dt, s.y), limit) for s in (splits.train, splits.valid))
    return _setup(task, train, valid)


class _SilverboxSeries(Dataset):
    """One item: ``(v1 (S,), v2_0 (1,), ts (S,), v2 (S, 1))`` for the driven model."""

    def __init__(self, v1: Any, v2: Any, t: Any) -> None:
        self.v1, self.v2, self.t = (torch.as_tensor(a) for a in (v1, v2, t))

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return self.v1, self.v2[:1], self.t, self.v2[:, None]

    @staticmethod
    def collate(items: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
        """``v1 (B, S)``, ``v2_0 (B, 1)``, the shared ``ts (S,)`` and the target ``(S, B, 1)``
        (time-first, as the model returns its trajectory)."""
        v1, v2_0, ts, v2 = zip(*items, strict=True)
        return torch.stack(v1), torch.stack(v2_0), ts[0], torch.stack(v2, dim=1)


def silverbox_mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE of the first hidden coordinate (the V2 prediction) against V2: ``out (S, B, n)``,
    ``target (S, B, 1)``."""
    return F.mse_loss(out[..., :1], target.to(out.dtype))


# Losses the app defines for its tasks, by the name a TaskSpec gives them; other names are fit's.
_TASK_LOSSES: dict[str, Callable] = {"silverbox_mse": silverbox_mse}


def _silverbox(data_dir: str, limit: int | None) -> TaskSetup:
    from ..data import load_silverbox

    splits = load_silverbox(data_dir, n_train=limit) if limit else load_silverbox(data_dir)
    train, test = (_SilverboxSeries(*s) for s in splits)
    return _setup("silverbox", train, test)


def task_setup(task: str, data_dir: str | os.PathLike, *, seed: int = 0, limit: int | None = None) -> TaskSetup:
    """The data and settings of ``task`` (a zoo task name).

    Args:
        data_dir: the folder with the data sets (not needed for ``pointcloud``, which is generated).
        seed: the point cloud's generator seed (validation uses ``seed + 1``).
        limit: keep only the first ``limit`` training and validation items.

    Raises ``ValueError`` for an unknown task and
    :class:`~pyhbnode.data.DataNotFoundError` (a ``FileNotFoundError``) for missing files."""
    task_spec(task)  # refuses an unknown task, naming the known ones
    data_dir = str(data_dir)
    if task == "pointcloud":
        return _pointcloud(data_dir, seed, limit)
    if task in ("mnist", "cifar10"):
        return _images(task, data_dir, limit)
    if task in ("plane_vibration", "walker2d"):
        return _sequences(task, data_dir, limit)
    if task == "silverbox":
        return _silverbox(data_dir, limit)
    raise ValueError(f"pyhbnode train has no data set-up for task {task!r} yet; train it with pyhbnode.fit")
