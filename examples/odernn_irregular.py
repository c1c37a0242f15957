"""An HBNODE-RNN on irregularly sampled series: the ODE evolves the hidden state across each
gap, an RNN cell reads each observation.

    python examples/odernn_irregular.py         # a few seconds
    python examples/odernn_irregular.py --epochs 30 --series 512

Task: denoise damped oscillations observed at random times.  Batches are time-first
(``x (T, B, 1)``, elapsed times ``dt (T, B)``, targets ``(T, B, 1)``), the layout
``ODERNN`` takes; ``pyhbnode.data.SequenceDataset`` stores them and batches them that way.
"""
import argparse

import torch
from torch import nn

import pyhbnode
from pyhbnode import HBNODE, ODERNN
from pyhbnode.data import SequenceDataset
from pyhbnode.fields import mlp


def irregular_series(series: int, stamps: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(stamps, series, generator=g).mul(10).sort(dim=0).values   # (T, B) random times
    dt = torch.diff(t, dim=0, prepend=torch.zeros(1, series))                # gap before each stamp
    freq = 1 + torch.rand(series, generator=g)                               # one frequency per series
    clean = torch.exp(-0.1 * t) * torch.sin(freq * t)
    noisy = clean + 0.1 * torch.randn(stamps, series, generator=g)
    return noisy.unsqueeze(-1), dt, clean.unsqueeze(-1)                      # (T, B, 1), (T, B), (T, B, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--series", type=int, default=64)
    args = parser.parse_args()

    torch.manual_seed(0)
    n = 16                                                    # width of h (and of m)
    model = ODERNN(
        field=HBNODE(mlp([n, 32, n], "tanh")),                # state (B, 2, n)
        cell=nn.Sequential(nn.Linear(2 * n + 1, 2 * n), nn.Tanh()),   # [flattened state, x] -> state
        readout=nn.Linear(n, 1),                              # h -> output
        width=n,
        tol=1e-4,
    )
    train = SequenceDataset(*irregular_series(args.series, stamps=20, seed=1))
    val = SequenceDataset(*irregular_series(32, stamps=20, seed=2))

    # Each batch is (x, dt, y): fit calls model(x, dt) and compares with y.
    history = pyhbnode.fit(model, train, val_data=val, loss="mse", epochs=args.epochs,
                           lr=0.01, batch_size=16, progress=False)
    for epoch in history.epochs:
        print(f"epoch {epoch['epoch']}: train MSE {epoch['train_loss']:.4f}  val MSE {epoch['val_loss']:.4f}  "
              f"NFE per batch {epoch['nfe_forward']:.0f} forward, {epoch['nfe_backward']:.0f} backward")


if __name__ == "__main__":
    main()
