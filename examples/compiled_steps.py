"""Run the native solver's steps as compiled programs (``compile=True``) and compare with
eager steps: the same solution and gradient up to rounding (the compiled kernels sum in
another order; 1e-12 apart in float64), in less time per solve.

    python examples/compiled_steps.py            # first run: compiling takes tens of seconds
    python examples/compiled_steps.py --iters 200

``compile=True`` compiles the Dormand-Prince step attempt and the checkpointed backward's
per-step VJP with ``torch.compile`` (inductor; a C++ compiler on the CPU), once per field
classes, state shape, dtype and device; ``compile=False`` steps eagerly; the default
``compile="auto"`` steps a single solve eagerly, and ``fit`` compiles a whole run from its
first step when it is long enough (on the CPU, for small states) to pay for the compile.  Inductor caches programs on disk, so a second
run of this script starts much faster.
"""
import argparse
import time

import torch

import pyhbnode
from pyhbnode import HBNODE, odeint
from pyhbnode.fields import mlp


def train_step(field, y0, t, compile: bool) -> float:
    field.zero_grad()
    sol = odeint(field, y0, t, rtol=1e-7, atol=1e-7, compile=compile)
    sol.y_final.pow(2).mean().backward()
    return sol.y_final.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()

    torch.set_num_threads(1)           # these small solves run fastest on one thread
    torch.manual_seed(0)
    field = HBNODE(mlp([2, 14, 14, 2], "elu"))
    y0 = torch.randn(50, 2, 2)
    t = torch.tensor([0.0, 1.0])

    start = time.perf_counter()
    y_compiled = train_step(field, y0, t, compile=True)          # first call compiles
    print(f"first compiled solve (compiling included): {time.perf_counter() - start:.1f} s")
    grad_compiled = [p.grad.clone() for p in field.parameters()]
    y_eager = train_step(field, y0, t, compile=False)
    grad_eager = [p.grad.clone() for p in field.parameters()]
    print(f"max |y1 compiled - y1 eager|     {(y_compiled - y_eager).abs().max():.1e}")
    print(f"max |grad compiled - grad eager| {max((a - b).abs().max() for a, b in zip(grad_compiled, grad_eager)):.1e}")

    for compile in (False, True):
        with pyhbnode.record() as rec:
            start = time.perf_counter()
            for _ in range(args.iters):
                train_step(field, y0, t, compile=compile)
            ms = 1000 * (time.perf_counter() - start) / args.iters
        print(f"compile={compile!s:5}: {ms:6.1f} ms per forward+backward, "
              f"NFE {rec.stats.nfe_forward // args.iters} forward, {rec.stats.nfe_backward // args.iters} backward")


if __name__ == "__main__":
    main()
