"""Small builders shared by the test files."""
from __future__ import annotations

import torch
from torch import nn

from pyhbnode import ANODE, GHBNODE, HBNODE, NODE, SONODE
from pyhbnode.fields import mlp

MODEL_NAMES = ["node", "anode", "sonode", "hbnode", "ghbnode"]


def small_field(model: str, n: int = 3, hidden: int = 8, dtype=torch.float64) -> nn.Module:
    """A tanh MLP field of width ``n`` for ``model``; heavy-ball coefficients learnable."""
    f = mlp([2 * n if model == "sonode" else n, hidden, n], "tanh")
    field = {
        "node": lambda: NODE(f),
        "anode": lambda: ANODE(f, augment=1),
        "sonode": lambda: SONODE(f),
        "hbnode": lambda: HBNODE(f, omega=-1.0),
        "ghbnode": lambda: GHBNODE(f, omega=-1.0, chi=0.3),
    }[model]()
    return field.to(dtype)


def initial_state(field: nn.Module, batch: int = 4, n: int = 3, dtype=torch.float64) -> torch.Tensor:
    shape = (batch, n) if field.order == 1 else (batch, 2, n)
    return torch.randn(shape, dtype=dtype)


def cloud(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The built-in point cloud as tensors: ``x`` ``(120, 2)``, labels ``(120, 1)`` in {-1, +1}."""
    from pyhbnode.data import make_pointcloud

    x, y = make_pointcloud(seed=seed)
    return torch.from_numpy(x), torch.from_numpy(y)


def backward_in_thread(loss: torch.Tensor) -> list[BaseException]:
    """Run ``loss.backward()`` on a new thread; return what it raised (empty if nothing)."""
    import threading

    errors: list[BaseException] = []

    def worker():
        try:
            loss.backward()
        except BaseException as err:  # noqa: BLE001 - the test inspects whatever was raised
            errors.append(err)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    return errors
