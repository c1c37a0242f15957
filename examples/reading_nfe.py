"""Count function evaluations (NFE): ``with pyhbnode.record() as rec`` sums every solve
started inside the block, forward and backward.

    python examples/reading_nfe.py

Forward NFE counts every field evaluation of the forward solves, the solver's start-up
evaluations included; backward NFE counts one per vector-Jacobian product of the field
and is filled in when ``backward()`` runs.  Layers and models keep no counters of their own.
"""
import torch

import pyhbnode
from pyhbnode import HBNODE, odeint, zoo
from pyhbnode.fields import mlp


def main() -> None:
    torch.manual_seed(0)

    # 1. One solve: its Solution carries the statistics of that solve.
    field = HBNODE(mlp([2, 14, 2], "tanh"))
    y0 = torch.randn(16, 2, 2)
    sol = odeint(field, y0, torch.tensor([0.0, 1.0]), tol=1e-6)
    print("after forward: ", sol.stats.nfe_forward, "forward,", sol.stats.nfe_backward, "backward,",
          sol.stats.accepted, "accepted and", sol.stats.rejected, "rejected steps")
    sol.y_final.sum().backward()
    print("after backward:", sol.stats.nfe_forward, "forward,", sol.stats.nfe_backward, "backward")

    # 2. A whole model: record() sums all of its solves, wherever they happen.
    model = zoo.build("pointcloud", "ghbnode", tol=1e-5)
    x = torch.randn(50, 2)
    with pyhbnode.record() as rec:
        model(x).pow(2).mean().backward()
    print(f"model: {rec.stats.solves} solve(s), NFE {rec.stats.nfe_forward} forward, "
          f"{rec.stats.nfe_backward} backward")

    # 3. Blocks nest: an outer record sees what inner ones saw.
    with pyhbnode.record() as outer:
        for _ in range(3):
            with pyhbnode.record() as inner:
                model(x)
        print(f"last inner block {inner.stats.nfe_forward}, outer block {outer.stats.nfe_forward} forward NFE")

    # 4. fit() logs the same counts per batch and per epoch in its History.
    history = pyhbnode.fit(model, (x, torch.sign(x[:, :1])), epochs=1, batch_size=25, progress=False)
    for record in history.batches:
        print(f"batch {record['batch']}: NFE {record['nfe_forward']} forward, {record['nfe_backward']} backward")


if __name__ == "__main__":
    main()
