"""Resume an interrupted training run from its checkpoints, exactly.

    python examples/resume_run.py               # a few seconds; uses a temporary directory
    python examples/resume_run.py --dir runs/ckpt

``fit(..., checkpoint_dir=DIR)`` writes checkpoints (model, optimiser, scheduler, random
states, history, position in the epoch) atomically, with a checksum; calling ``fit`` again
with the same settings and directory continues from the newest good one.  Here a run is
stopped after 2 of 4 epochs (as a crash would stop it), resumed, and compared with a run
that was never interrupted: the final weights are the same, bit for bit.
"""
import argparse
import tempfile
from pathlib import Path

import torch

import pyhbnode
from pyhbnode import zoo
from pyhbnode.data import make_pointcloud


def train(directory: Path, epochs: int):
    torch.manual_seed(0)                           # the same initial weights every time
    model = zoo.build("pointcloud", "hbnode", tol=1e-5)
    x, y = map(torch.from_numpy, make_pointcloud())
    history = pyhbnode.fit(model, (x, y), loss="mse", epochs=epochs, lr=0.01, batch_size=40,
                           checkpoint_dir=directory, checkpoint_every=2, progress=False)
    return model, history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="checkpoint directory (default: a temporary one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp)
        train(root / "interrupted", epochs=2)                       # "crashes" after epoch 2
        resumed, history = train(root / "interrupted", epochs=4)    # same call, more epochs: resumes
        print(f"resumed run: {len(history.epochs)} epochs in its history, "
              f"final train loss {history.epochs[-1]['train_loss']:.5f}")
        print("checkpoints kept:", sorted(p.name for p in (root / "interrupted").iterdir()))

        straight, _ = train(root / "straight", epochs=4)
        same = all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), straight.state_dict().values()))
        print("same weights as an uninterrupted run:", same)


if __name__ == "__main__":
    main()
