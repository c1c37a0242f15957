"""Train one of the paper's architectures on your own tensors with ``pyhbnode.fit``.

    python examples/fit_your_data.py            # a few seconds on one CPU core
    python examples/fit_your_data.py --epochs 40

The data are plain tensors: 2-D points labelled +1 inside a ring and -1 outside
(any ``(inputs..., target)`` tuple, ``Dataset`` or ``DataLoader`` works the same way).
"""
import argparse

import torch

import pyhbnode
from pyhbnode import zoo


def ring_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g) * 2 - 1                      # points in [-1, 1]^2
    r = x.norm(dim=1, keepdim=True)
    y = torch.where((r > 0.4) & (r < 0.8), 1.0, -1.0)              # (n, 1) targets in {-1, +1}
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n", type=int, default=256, help="training points")
    args = parser.parse_args()

    torch.manual_seed(0)                                           # fit never re-seeds your weights
    train, val = ring_data(args.n, seed=1), ring_data(128, seed=2)

    # The point-cloud HBNODE of the paper: (B, 2) points -> (B, 1) in [-1, 1].
    model = zoo.build("pointcloud", "hbnode")

    history = pyhbnode.fit(
        model, train, val_data=val,
        loss="mse", metrics=["mse"],
        epochs=args.epochs, lr=0.01, batch_size=64,
        solver={"tol": 1e-5},        # every solving layer: rtol = atol = 1e-5 while training
        progress=False, seed=0,
    )
    for epoch in history.epochs:
        print(f"epoch {epoch['epoch']}: train loss {epoch['train_loss']:.4f}  "
              f"val loss {epoch['val_loss']:.4f}  "
              f"NFE forward/backward per batch {epoch['nfe_forward']:.0f}/{epoch['nfe_backward']:.0f}")
    print(history.summary())


if __name__ == "__main__":
    main()
