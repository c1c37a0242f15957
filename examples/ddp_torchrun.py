"""Data-parallel training with ``torchrun``: one process per CPU core or GPU, each solving
its shard of every batch; gradients are averaged and every rank ends with the same weights.

    torchrun --standalone --nproc_per_node=2 examples/ddp_torchrun.py
    python examples/ddp_torchrun.py             # no torchrun: spawns 2 local processes itself

``fit(..., strategy="ddp")`` joins the process group torchrun describes in its environment
(gloo on the CPU, NCCL with ``--device cuda``, one GPU per rank).  ``batch_size`` is the
global batch, split evenly across ranks; only rank 0 prints, draws progress bars and writes
checkpoints.
"""
import argparse
import os

import torch

import pyhbnode
from pyhbnode import zoo
from pyhbnode.data import make_pointcloud
from pyhbnode.training import is_main_process, launch_ddp


def train(epochs: int, device: str) -> dict:
    torch.set_num_threads(1)                       # one core per rank
    torch.manual_seed(0)                           # every rank builds the same initial weights
    model = zoo.build("pointcloud", "ghbnode", tol=1e-5)
    x, y = map(torch.from_numpy, make_pointcloud())
    history = pyhbnode.fit(model, (x, y), loss="mse", epochs=epochs, lr=0.01, batch_size=40,
                           strategy="ddp", device=device, progress=False)
    if is_main_process():
        world = os.environ.get("WORLD_SIZE", "?")
        for epoch in history.epochs:
            print(f"[{world} ranks] epoch {epoch['epoch']}: loss {epoch['train_loss']:.4f}, "
                  f"NFE per batch {epoch['nfe_forward']:.1f} forward, {epoch['nfe_backward']:.1f} backward (mean over ranks)")
    return history.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if "RANK" in os.environ:                       # started by torchrun: this process is one rank
        train(args.epochs, args.device)
    else:                                          # started by python: spawn the ranks here
        launch_ddp(train, nprocs=2, args=(args.epochs, args.device),
                   backend="nccl" if args.device.startswith("cuda") else "gloo")


if __name__ == "__main__":
    main()
