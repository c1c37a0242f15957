"""Use ``ODEBlock`` as one layer of your own ``nn.Module``, trained with a plain PyTorch loop.

    python examples/odeblock_module.py          # a few seconds
    python examples/odeblock_module.py --steps 200

A GHBNODE block between an encoder and a linear head.  The heavy-ball state is
``(batch, 2, width)``: ``y[:, 0]`` is the position h, ``y[:, 1]`` the momentum m.
"""
import argparse

import torch
from torch import nn

import pyhbnode
from pyhbnode import GHBNODE, InitialState, ODEBlock
from pyhbnode.fields import mlp


class ODEClassifier(nn.Module):
    def __init__(self, features: int, width: int, classes: int) -> None:
        super().__init__()
        self.encoder = nn.Linear(features, width)
        # h(0) = the encoding, m(0) = a learned initial momentum (order 2, C == width).
        self.initial = InitialState(order=2, width=width, net=mlp([width, width], "tanh"))
        self.ode = ODEBlock(GHBNODE(mlp([width, 32, width], "tanh")), t0=0.0, t1=1.0, tol=1e-5)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0 = self.initial(self.encoder(x))       # (B, 2, width)
        y1 = self.ode(y0)                        # the state at t1, same shape
        return self.head(y1[:, 0])               # read the position h


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    torch.manual_seed(0)
    x = torch.randn(512, 4)
    labels = (x[:, 0] * x[:, 1] > 0).long() + 2 * (x[:, 2] > 0).long()   # 4 classes
    model = ODEClassifier(features=4, width=8, classes=4)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    for step in range(1, args.steps + 1):
        idx = torch.randint(0, len(x), (64,))
        with pyhbnode.record() as rec:           # counts every solve inside, forward and backward
            loss = nn.functional.cross_entropy(model(x[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
        opt.step()
        if step % 5 == 0 or step == args.steps:
            print(f"step {step}: loss {loss.item():.3f}  "
                  f"NFE forward {rec.stats.nfe_forward}  backward {rec.stats.nfe_backward}")

    with torch.no_grad():
        accuracy = (model(x).argmax(1) == labels).float().mean().item()
    print(f"training accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
