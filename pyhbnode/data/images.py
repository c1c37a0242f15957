"""The torch ``Dataset`` shared by the image tasks (MNIST, CIFAR-10)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["NormalizedImageDataset"]


class NormalizedImageDataset(Dataset):
    """uint8 images served as per-channel normalised float32 tensors.

    Items are ``(image float32 (C, H, W), label int64 scalar tensor)`` with
    ``image = (pixels / 255 - mean[c]) / std[c]``. The images stay uint8 in memory (4x smaller
    than float32) and are converted per item.

    Args:
        images: uint8 ``(N, C, H, W)``.
        labels: integer ``(N,)``.
        mean, std: per-channel statistics on the 0-1 scale, length ``C``.
        limit: keep only the first ``limit`` items (a deterministic subset for quick runs).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        mean: Sequence[float],
        std: Sequence[float],
        limit: int | None = None,
    ) -> None:
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {images.shape}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if not len(mean) == len(std) == images.shape[1]:
            raise ValueError(f"mean/std need one value per channel ({images.shape[1]}), got {len(mean)}/{len(std)}")
        self.images = torch.from_numpy(np.ascontiguousarray(images[:limit]))
        self.labels = torch.from_numpy(np.asarray(labels[:limit], dtype=np.int64))
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.images[i].float() / 255.0 - self.mean) / self.std, self.labels[i]
