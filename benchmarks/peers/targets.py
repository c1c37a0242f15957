"""``python -m benchmarks.peers.targets [--iters N] [--long 3000] [--out DIR]``: the speed
targets, each printed MET or MISSED, and for each one missed the ratio and a profile of where
the time goes.

1. **In the loop** (:data:`~benchmarks.peers.__main__.TARGETS`): the interleaved peers table
   (CPU time per training iteration, one thread) for the point cloud (compiled pyhbnode
   against diffrax and torchdiffeq), plane vibration and MNIST (against torchdiffeq, ``--iters
   2``: their iterations take seconds).  Missed: the profile of a compiled iteration by part
   (:func:`benchmarks.peers.profile.breakdown`).
2. **First iteration with default options**: a fresh process (``pyhbnode`` and torch already
   imported, as in any script), the point-cloud HBNODE with no solver option given; wall
   time of iteration 0 minus the median of iterations 1..20.  Missed: the modules the first
   iteration imported.
3. **Cold and warm compile per model**: a fresh process with an empty inductor cache
   (``TORCHINDUCTOR_CACHE_DIR`` a new folder), ``compile=True``; wall time of iteration 0
   minus a later one; then a second fresh process on the same cache (warm).  Missed:
   dynamo's and inductor's phase times (``torch._dynamo.utils.compilation_time_metrics``).
4. **A long run with default options**: ``--long`` training iterations of the point-cloud
   HBNODE in a fresh process with an empty inductor cache, ``compile`` decided as ``fit``
   decides it (:func:`~pyhbnode.solving.backends.native.decide.decide_compile` with the run's
   iteration count), against diffrax's ``--long`` iterations including its ``jax.jit``, wall
   clock.  Missed: each side split into its start (compile/jit: iteration 0) and the rest.

Wall-clock parts (2-4) see the machine's load, which the header prints; each child process
uses one torch thread.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

# the in-loop limits live with the peers table, which prints them too
from .__main__ import TARGETS, print_task, run_task

FIRST_ITERATION_MAX_S = 0.3
COLD_COMPILE_MAX_S = 10.0
LONG_RUN_MAX_RATIO = 1.0
PHASES = (
    ("all of it (dynamo's compile of the frames)", "_compile.compile_inner"),
    ("  inductor, per graph (after tracing, AOT)", "compile_fx_inner"),
    # the rows below nest (the C++ compiler runs inside code generation and loading): they
    # do not add up to inductor's total
    ("  inductor lowering", "GraphLowering.run"),
    ("  inductor code generation", "GraphLowering.codegen"),
    ("  C++ compiler (kernels, wrapper)", "compile_file"),
    ("  loading the built modules", "PyCodeCache.load_by_key_path"),
)


def _child(kind: str, task_name: str, iters: int, cache: str | None) -> dict:
    """Run ``python -m benchmarks.peers.targets --child kind`` in a fresh process; its JSON."""
    env = dict(os.environ)
    if cache is not None:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache
    cmd = [sys.executable, "-m", "benchmarks.peers.targets", "--child", kind, "--task", task_name, "--iters", str(iters)]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=root)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed (rc {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def child_main(kind: str, task_name: str, iters: int) -> dict:
    """One measurement in this (fresh) process; see the module docstring."""
    from pyhbnode.layers import solver_layers
    from pyhbnode.solving.backends.native import compiled
    from pyhbnode.solving.backends.native.decide import decide_compile

    from . import tasks as task_defs
    from .torch_runners import PyHBNODE

    torch.set_num_threads(1)
    if backend := os.environ.get("PYHBNODE_BENCH_COMPILE_BACKEND"):
        compiled.BACKEND = backend  # the tests: dynamo's "eager" backend traces without building C++
    task = task_defs.TASKS[task_name]()
    if kind == "diffrax":
        from .jax_runners import Diffrax

        runner = Diffrax(task)
        compile_on = None
    elif kind == "first":
        runner = PyHBNODE(task, "pyhbnode defaults")
        compile_on = None
    elif kind == "compile":
        runner = PyHBNODE(task, "pyhbnode compiled", compile=True)
        compile_on = True
    elif kind == "long":
        inputs, _ = task.batch(0)
        compile_on = decide_compile(task.model, inputs, "cpu", iters)
        runner = PyHBNODE(task, "pyhbnode defaults", compile=compile_on)
    else:
        raise ValueError(f"unknown child {kind!r}")
    before = set(sys.modules)
    times = []
    t_start = time.perf_counter()
    for i in range(iters if kind in ("long", "diffrax") else 1 + 20):
        t0 = time.perf_counter()
        runner.step(i)
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - t_start
    imported = sorted({m.split(".")[0] + "." + m.split(".")[1] if "." in m else m for m in set(sys.modules) - before})
    if compile_on is None and kind != "diffrax":  # what the layers were left with
        compile_on = ",".join(sorted({str(layer.options.compile) for layer in solver_layers(runner.model)}))
    phases = {k: sum(v) for k, v in torch._dynamo.utils.compilation_time_metrics.items()} if "torch._dynamo" in sys.modules else {}
    return dict(
        kind=kind, compile=compile_on, first_s=times[0], later_s=statistics.median(times[1:]), total_s=total,
        iters=len(times), imported=imported[:40], phases=phases,
        programs=[(p, round(s, 2)) for _, p, s in compiled.compile_times()],
    )


def _seconds(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _verdict(name: str, value: float, limit: float, unit: str, detail: str) -> tuple[str, bool]:
    ok = value <= limit
    return f"target {name}: {value:.2f}{unit} (<= {limit}{unit}) {'MET' if ok else 'MISSED'}; {detail}", ok


def in_loop(iters: int, tasks: list[str]) -> list[tuple[str, bool]]:
    from . import tasks as task_defs
    from .profile import breakdown
    from .torch_runners import PyHBNODE

    out = []
    for name in tasks:
        task = task_defs.TASKS[name]()
        n = iters if task.name == "pointcloud" else min(iters, 2)
        peers = [peer for peer, _ in TARGETS.get(task.name, [])]
        res = run_task(task, n, {"pyhbnode compiled", *peers})
        lines = print_task(res)
        out += lines
        missed = not all(ok for _, ok in lines)
        if missed and task.name != "pointcloud":
            # these fields' own arithmetic dominates: the lower-bound columns are the profile
            for row in res["rows"]:
                print(f"  profile {name}: {row['runner']} at {_seconds(row['x_lb'])} x its lower bound "
                      f"NFE f x t_f + NFE b x t_vjp = {_seconds(row['lb_ms'])} ms (the eager field's own cost)")
        if missed and task.name == "pointcloud":
            parts = breakdown(PyHBNODE(task, "pyhbnode compiled", compile=True), 20)
            print(f"  profile {name}, compiled, CPU ms per iteration (mean of 20):")
            for part, ms in parts.items():
                print(f"    {part:26s} {ms:7.2f}")
    return out


def first_iteration() -> tuple[str, bool]:
    r = _child("first", "pointcloud/hbnode", 21, None)
    extra = r["first_s"] - r["later_s"]
    line, ok = _verdict(
        "first iteration above a later one, default options outside fit (a model's own solves), point-cloud HBNODE",
        extra, FIRST_ITERATION_MAX_S, " s",
        f"first {r['first_s']:.3f} s, later {r['later_s'] * 1e3:.1f} ms (median of 20), compile={r['compile']}, "
        f"programs compiled in them: {len(r['programs'])} (torch.optim's constructor imports torch._dynamo and "
        "torch._inductor itself, before the first iteration)",
    )
    print("  " + line)
    if not ok:
        print("  modules the first iteration imported (first 40): " + ", ".join(r["imported"]))
    return line, ok


def compile_times_per_model(models: list[str]) -> list[tuple[str, bool]]:
    out = []
    for name in models:
        with tempfile.TemporaryDirectory(prefix="inductor-cold-") as cache:
            cold = _child("compile", name, 21, cache)
            warm = _child("compile", name, 21, cache)
        cold_s = cold["first_s"] - cold["later_s"]
        warm_s = warm["first_s"] - warm["later_s"]
        line, ok = _verdict(
            f"cold compile {name}", cold_s, COLD_COMPILE_MAX_S, " s",
            f"warm (inductor's FX-graph and AOT caches) {warm_s:.1f} s; programs cold {cold['programs']}, "
            f"warm {warm['programs']}",
        )
        print("  " + line)
        if not ok:
            print(f"  profile of the cold compile of {name} (seconds, summed over its programs; cold | warm):")
            for label, key in PHASES:
                c, w = (_seconds(r["phases"].get(key)) for r in (cold, warm))
                print(f"    {label:44s} {c:>7s} | {w:>6s}")
        out.append((line, ok))
    return out


def long_run(n: int) -> tuple[str, bool] | None:
    try:
        import diffrax  # noqa: F401
    except ImportError:
        print("  long run skipped: diffrax not installed (pip install 'pyhbnode[bench]')")
        return None
    with tempfile.TemporaryDirectory(prefix="inductor-cold-") as cache:
        ours = _child("long", "pointcloud/hbnode", n, cache)
    peer = _child("diffrax", "pointcloud/hbnode", n, None)
    ratio = ours["total_s"] / peer["total_s"]
    line, ok = _verdict(
        f"{n} iterations with default options, point-cloud HBNODE / diffrax (jit included)", ratio, LONG_RUN_MAX_RATIO,
        "x", f"pyhbnode {ours['total_s']:.1f} s (compile={ours['compile']}), diffrax {peer['total_s']:.1f} s",
    )
    print("  " + line)
    if not ok:
        for label, r in (("pyhbnode", ours), ("diffrax", peer)):
            rest = r["total_s"] - r["first_s"]
            print(f"    {label:9s} iteration 0 (compile/jit + one step) {r['first_s']:6.1f} s; "
                  f"the other {r['iters'] - 1}: {rest:6.1f} s ({rest / (r['iters'] - 1) * 1e3:.2f} ms each, wall)")
    return line, ok


def _guarded(name: str, measure) -> list[tuple[str, bool]]:
    """``measure()``'s verdicts, or one failed verdict where a child process failed (the
    other targets are still measured)."""
    try:
        return measure()
    except RuntimeError as err:
        line = f"target {name}: FAILED, {str(err).splitlines()[0]}"
        print("  " + line)
        return [(line, False)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=30, help="timed iterations per runner in the in-loop tables")
    ap.add_argument("--tasks", default="pointcloud/hbnode,pointcloud/ghbnode,plane_vibration/hbnode,mnist/hbnode",
                    help="the in-loop tables' tasks (benchmarks.peers --tasks names)")
    ap.add_argument("--long", type=int, default=3000, help="iterations of the long run (0: skip it)")
    ap.add_argument("--compile-models", default="pointcloud/hbnode,pointcloud/ghbnode",
                    help="tasks whose cold and warm compile is timed ('' skips)")
    ap.add_argument("--out", default="benchmarks/peers/results", help="folder for targets.json")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--task", default="pointcloud/hbnode", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child_main(args.child, args.task, args.iters)))
        return 0
    torch.set_num_threads(1)
    print(f"speed targets: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; one torch thread per process; "
          f"seed 0; torch {torch.__version__}")
    split = [s.strip() for s in args.tasks.split(",") if s.strip()]
    verdicts = in_loop(args.iters, split)
    print("\n== start-up and compile (wall clock, fresh processes) " + "=" * 20)
    verdicts += _guarded("first iteration", lambda: [first_iteration()])
    models = [s.strip() for s in args.compile_models.split(",") if s.strip()]
    verdicts += _guarded("cold compile", lambda: compile_times_per_model(models))
    if args.long:
        print(f"\n== {args.long} iterations, default options (wall clock, load {os.getloadavg()[0]:.1f}) " + "=" * 20)
        verdicts += _guarded("long run", lambda: [v] if (v := long_run(args.long)) is not None else [])
    print(f"\n{sum(ok for _, ok in verdicts)} of {len(verdicts)} targets met (load {os.getloadavg()[0]:.1f} at the end)")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "targets.json"), "w") as f:
        json.dump([dict(line=line, met=ok) for line, ok in verdicts], f, indent=1)
    return 0 if all(ok for _, ok in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
