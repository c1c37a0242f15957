"""``TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) python -m benchmarks.peers.compile_variants VARIANT [TASK]``:
one cold compile of a task's compiled pyhbnode runner under an inductor setting, the trials
behind the speed targets' "measured, not adopted" (``results/compile-variants.txt``).

Prints one JSON line: the wall time of iteration 0 (the cold compile plus one step, with the
empty cache the command gives it), the median CPU time of iterations 1..``N`` (env ``N``,
default 40) and each program's compile time; then dynamo's/inductor's phase seconds.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import statistics
import time

import torch

from pyhbnode.solving.backends.native import compiled

from . import tasks
from .targets import PHASES
from .torch_runners import PyHBNODE

_DECOMPOSE = {"post_grad_fusion_options": {"decompose_mm_pass": {}}}
VARIANTS = {
    "current": lambda: None,
    "nowrapper": lambda: setattr(compiled, "CPU_OPTIONS", dict(_DECOMPOSE)),  # Python wrapper, not C++
    "novec": lambda: setattr(compiled, "CPU_OPTIONS", {**compiled.CPU_OPTIONS, "cpp.vec_isa_ok": False}),  # scalar
    "nodecomp": lambda: setattr(compiled, "CPU_OPTIONS", {"cpp_wrapper": True}),  # extern GEMMs for small matmuls
    "threads1": lambda: setattr(importlib.import_module("torch._inductor.config"), "compile_threads", 1),  # no compile worker pool
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in VARIANTS:
        print(__doc__, f"variants: {sorted(VARIANTS)}", sep="\n")
        return 2
    torch.set_num_threads(1)
    VARIANTS[args[0]]()
    runner = PyHBNODE(tasks.TASKS[args[1] if len(args) > 1 else "pointcloud/hbnode"](), "c", compile=True)
    t0 = time.perf_counter()
    runner.step(0)
    first = time.perf_counter() - t0
    times = []
    for i in range(1, int(os.environ.get("N", 41))):
        t0 = time.process_time()
        runner.step(i)
        times.append(time.process_time() - t0)
    print(json.dumps(dict(variant=args[0], first_s=round(first, 2), later_ms=round(statistics.median(times) * 1e3, 2),
                          programs=[(p, round(s, 1)) for _, p, s in compiled.compile_times()])))
    metrics = torch._dynamo.utils.compilation_time_metrics
    print({k: round(sum(metrics[k]), 1) for _, k in PHASES if k in metrics})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
