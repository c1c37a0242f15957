"""``python -m benchmarks.peers.profile [--task pointcloud/hbnode] [--iters 40]``: where a
pyhbnode training iteration's time goes, eager and compiled.

CPU time (``time.process_time``, one thread) per iteration, split into: the forward solve
(``Problem.solve``) and, inside it, the compiled attempts; the checkpointed backward and,
inside it, the compiled step VJPs; Adam's step; the rest (the model's other layers, loss,
autograd outside the solver).  Then ``torch.profiler``'s top operators of a few compiled
iterations.
"""
from __future__ import annotations

import argparse
import time

import torch

from pyhbnode.solving.backends.native import backend as backend_module
from pyhbnode.solving.backends.native import compiled, problem

from . import tasks as task_defs
from .torch_runners import PyHBNODE

_PARTS = (("forward solve", problem.Problem, "solve"), ("  compiled attempts", compiled.Programs, "attempt"),
          ("checkpointed backward", backend_module, "checkpointed_backward"),
          ("  compiled step VJPs", compiled.Programs, "step_vjp"), ("Adam step", torch.optim.Adam, "step"))


def _timed(spent: dict, label: str, fn):
    def wrapper(*args, **kwargs):
        t0 = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + time.process_time() - t0
    return wrapper


def breakdown(runner: PyHBNODE, iters: int) -> dict:
    """Milliseconds per iteration by part (see the module docstring)."""
    spent: dict = {}
    saved = [(owner, name, getattr(owner, name)) for _, owner, name in _PARTS]
    for (label, owner, name), (_, _, fn) in zip(_PARTS, saved):
        setattr(owner, name, _timed(spent, label, fn))
    try:
        for i in range(3):
            runner.step(i)
        spent.clear()
        t0 = time.process_time()
        for i in range(iters):
            runner.step(3 + i)
        total = time.process_time() - t0
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)
    out = {"iteration": total}
    out.update(spent)
    out["rest"] = total - sum(v for k, v in spent.items() if not k.startswith("  "))
    return {k: v / iters * 1e3 for k, v in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="pointcloud/hbnode", choices=list(task_defs.TASKS))
    ap.add_argument("--iters", type=int, default=40)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    task = task_defs.TASKS[args.task]()
    rows = {}
    for label, on in (("eager", False), ("compiled", True)):
        runner = PyHBNODE(task, label, backend="torch", compile=on)
        rows[label] = breakdown(runner, args.iters)
    print(f"{args.task}: CPU ms per training iteration (mean over {args.iters}), 1 thread")
    print(f"{'part':26s} {'eager':>8s} {'compiled':>9s}")
    parts = ["iteration"] + [label for label, _, _ in _PARTS] + ["rest"]
    for part in parts:
        print(f"{part:26s} {rows['eager'].get(part, 0.0):8.2f} {rows['compiled'].get(part, 0.0):9.2f}")
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(5):
            runner.step(100 + i)
    print("\ntorch.profiler, 5 compiled iterations (the profiler's own overhead inflates the times):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
