"""``python -m benchmarks.peers [--tasks ...] [--iters N] [--out DIR]``: issue 11's table.

For each task every runner trains its own copy of the same initial model on the same
batches; iterations are interleaved (one iteration of each runner in turn, the order
reversed every iteration) so that the shared machine's load falls on all alike.  Times are
CPU times of this process (``time.process_time``) per training iteration, one thread for
torch and for XLA.  Iteration 0 is a warm-up for all runners and is reported separately
(``first s``: the CPU time of this process in it, which holds ``jax.jit``'s and
``torch.compile``'s tracing but not inductor's C++ compiler subprocesses; the notes give
each compiled program's wall-clock compile time); the table's
``ms/iter`` is the median over iterations ``1..N``, ``ms first10`` over ``1..10``, and
``x ref`` the median over iterations of (runner's time / the reference pyhbnode runner's
time in the same iteration).

``LB ms`` is the iteration's lower bound for that runner: mean NFE f x ``t_f`` + mean NFE b
x ``t_vjp``, where ``t_f`` (one field evaluation) and ``t_vjp`` (one evaluation under
autograd and its VJP w.r.t. the state and the parameters: one backward NFE) are CPU-time
medians measured after the runner's last iteration, on its own copy of the field and its
last batch (:func:`benchmarks.common.field_costs`); ``x LB`` = ``ms/iter`` / ``LB ms``, the
overhead over the field's own work.  For an ODE-RNN the state probed is the last stamp's;
for diffrax (no field-evaluation counts, no torch field) both are ``-``.  The bound is the
eager field's: a compiled runner, whose programs fuse the evaluations of a step, can go
below it (``x LB`` < 1).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import torch  # noqa: E402

from ..common import field_costs  # noqa: E402
from . import tasks as task_defs  # noqa: E402
from .torch_runners import PyHBNODE, TorchDiffEq, TorchODE, TorchRunner  # noqa: E402

try:
    from pyhbnode.solving.backends.native.compiled import compile_times
except ImportError:  # a checkout without the compiled step
    def compile_times() -> list:
        return []

# the in-loop speed targets: (task, peer label, max of pyhbnode compiled time / peer time);
# plane vibration and MNIST: the ratios the targets were set from (0.10x, 0.47x, each measured once at
# load 12 with 2-3 iterations; the same-sitting comparison with the code before them is
# benchmarks/peers/results/speed-large-tasks-before-after.txt)
TARGETS = {
    "pointcloud": [("diffrax (jax.jit)", 0.6), ("torchdiffeq odeint_adjoint", 0.12)],
    "plane_vibration": [("torchdiffeq odeint_adjoint", 0.10)],
    "mnist": [("torchdiffeq odeint_adjoint", 0.47)],
}


def pyhbnode_runners(task) -> list:
    """pyhbnode eager, and compiled where this checkout has the compiled step."""
    from pyhbnode.solving import SolverOptions

    if "compile" not in SolverOptions.__dataclass_fields__:  # no compiled step in this checkout
        return [PyHBNODE(task, "pyhbnode eager", backend="torch")]
    return [PyHBNODE(task, "pyhbnode compiled", backend="torch", compile=True),
            PyHBNODE(task, "pyhbnode eager", backend="torch", compile=False)]


def peer_runners(task, notes: list) -> list:
    out = [TorchDiffEq(task)]
    if task.name == "mnist":
        notes.append("mnist: torchode and diffrax left out (torchode passes per-sample times, the conv "
                     "field's tpad takes one scalar t; no JAX port of the conv model)")
        return out
    try:
        import torchode  # noqa: F401

        out += [TorchODE(task, "autodiff"), TorchODE(task, "joint_backsolve")]
    except ImportError:
        notes.append("torchode not installed (pip install 'pyhbnode[bench]')")
    try:
        from .jax_runners import Diffrax, supports

        if supports(task):
            out.append(Diffrax(task))
    except ImportError:
        notes.append("diffrax/jax not installed (pip install 'pyhbnode[bench]')")
    return out


def lower_bound(runner, i: int, nfe_f: float | None, nfe_b: float | None) -> dict:
    """``t_f``, ``t_vjp`` and ``nfe_f·t_f + nfe_b·t_vjp`` in ms for a torch runner's field
    on batch ``i``; ``None`` each where the runner has no torch field or no NFE counts."""
    if not isinstance(runner, TorchRunner) or nfe_f is None or nfe_b is None:
        return dict(t_f_ms=None, t_vjp_ms=None, lb_ms=None)
    field, y = runner.probe(i)
    t_f, t_vjp = field_costs(field, y)
    return dict(t_f_ms=t_f * 1e3, t_vjp_ms=t_vjp * 1e3, lb_ms=(nfe_f * t_f + nfe_b * t_vjp) * 1e3)


def run_task(task, iters: int, only: set | None) -> dict:
    notes: list[str] = [f"{task.label}: {task.note}"] if task.note else []
    runners = pyhbnode_runners(task) + peer_runners(task, notes)
    if only:
        runners = [r for r in runners if any(o in r.label for o in only)]
    per_iter = {r.label: [] for r in runners}
    n_compiled = len(compile_times())
    first = {}
    for i in range(iters + 1):
        order = runners if i % 2 == 0 else runners[::-1]
        for r in order:
            t0 = time.process_time()
            rec = r.step(i)
            dt = time.process_time() - t0
            if i == 0:
                first[r.label] = dt
            else:
                per_iter[r.label].append((dt, rec))
    for what, program, seconds in compile_times()[n_compiled:]:
        notes.append(f"compiled {program} for {what} in {seconds:.1f} s (wall clock)")
    ref = runners[0].label
    ref_times = [dt for dt, _ in per_iter[ref]]
    rows = []
    for r in runners:
        recs = per_iter[r.label]
        times = [dt for dt, _ in recs]

        def mean(attr):
            xs = [getattr(rec, attr) for _, rec in recs if getattr(rec, attr) is not None]
            return statistics.fmean(xs) if xs else None

        ms_iter = statistics.median(times) * 1e3
        nfe_f, nfe_b = mean("nfe_f"), mean("nfe_b")
        bound = lower_bound(r, iters, nfe_f, nfe_b)
        rows.append(dict(
            task=task.name, model=task.model_name, runner=r.label,
            ms_iter=ms_iter,
            ms_first10=statistics.median(times[:10]) * 1e3,
            first_s=first[r.label],
            x_ref=statistics.median(t / t_ref for t, t_ref in zip(times, ref_times)),
            nfe_f=nfe_f, nfe_b=nfe_b, steps=mean("steps"),
            **bound, x_lb=ms_iter / bound["lb_ms"] if bound["lb_ms"] else None,
            loss_last=recs[-1][1].loss,
            per_iter=[dict(iter=k + 1, ms=dt * 1e3, **vars(rec)) for k, (dt, rec) in enumerate(recs)],
        ))
    return dict(task=task.label, reference=ref, rows=rows, notes=notes)


def _fmt(x, spec):
    return format(x, spec) if x is not None else format("-", ">" + spec.split(".")[0])


def print_task(res: dict) -> list[tuple[str, bool]]:
    """Print the task's table, notes and target lines; the target lines and whether each was met."""
    print(f"\n== {res['task']} (reference: {res['reference']}) " + "=" * 20)
    print(f"{'runner':30s} {'ms/iter':>8s} {'ms first10':>10s} {'first s':>8s} {'x ref':>6s} "
          f"{'NFE f':>7s} {'NFE b':>7s} {'steps':>7s} {'LB ms':>8s} {'x LB':>6s} {'loss':>9s}")
    for r in res["rows"]:
        print(f"{r['runner']:30s} {r['ms_iter']:8.1f} {r['ms_first10']:10.1f} {r['first_s']:8.1f} {r['x_ref']:6.2f} "
              f"{_fmt(r['nfe_f'], '7.1f')} {_fmt(r['nfe_b'], '7.1f')} {_fmt(r['steps'], '7.1f')} "
              f"{_fmt(r['lb_ms'], '8.2f')} {_fmt(r['x_lb'], '6.2f')} {r['loss_last']:9.4f}")
    for n in res["notes"]:
        print(f"  note: {n}")
    verdicts = []
    by = {r["runner"]: r for r in res["rows"]}
    ref = by[res["reference"]]
    task = res["rows"][0]["task"]
    for peer, limit in TARGETS.get(task, []):
        if peer not in by:
            line, ok = f"target {res['task']}: {res['reference']} / {peer} NOT MEASURED ({peer} did not run)", False
        else:
            ratio = 1.0 / by[peer]["x_ref"]
            ok = ratio <= limit
            line = (f"target {res['task']}: {res['reference']} / {peer} = {ratio:.2f} "
                    f"(<= {limit}) {'MET' if ok else 'MISSED'}; NFE f {_fmt(ref['nfe_f'], '.1f')} vs "
                    f"{_fmt(by[peer]['nfe_f'], '.1f')}, steps {_fmt(ref['steps'], '.1f')} vs {_fmt(by[peer]['steps'], '.1f')}")
        print("  " + line)
        verdicts.append((line, ok))
    return verdicts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(task_defs.TASKS), help=f"comma-separated subset of {list(task_defs.TASKS)}")
    ap.add_argument("--iters", type=int, default=40, help="timed iterations per runner (after one warm-up)")
    ap.add_argument("--only", default="", help="comma-separated substrings of runner labels to keep")
    ap.add_argument("--out", default="benchmarks/peers/results", help="folder for peers.json and peers.csv")
    args = ap.parse_args(argv)
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(names) - set(task_defs.TASKS))
    if unknown:
        ap.error(f"unknown tasks {unknown}; choose from {list(task_defs.TASKS)}")
    torch.set_num_threads(1)
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for mod in ("torchdiffeq", "torchode", "diffrax", "jax", "jaxlib", "equinox"):
        try:
            versions[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):
            pass
    machine = f"{platform.machine()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    print(f"peers benchmark: {machine}; threads=1 (torch, XLA); seed 0; {args.iters} iterations after 1 warm-up; "
          + ", ".join(f"{k} {v}" for k, v in versions.items()))
    only = {o.strip() for o in args.only.split(",") if o.strip()} or None
    results, verdicts = [], []
    for name in names:
        res = run_task(task_defs.TASKS[name](), args.iters, only)
        verdicts += [line for line, _ in print_task(res)]
        results.append(res)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "peers.json"), "w") as f:
        json.dump(dict(machine=machine, versions=versions, iters=args.iters, verdicts=verdicts,
                       results=[{**r, "rows": [{k: v for k, v in row.items() if k != "per_iter"} for row in r["rows"]]}
                                for r in results]), f, indent=1)
    with open(os.path.join(args.out, "peers.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["task", "model", "runner", "iter", "ms", "loss", "nfe_f", "nfe_b", "steps"])
        for res in results:
            for row in res["rows"]:
                for it in row["per_iter"]:
                    w.writerow([row["task"], row["model"], row["runner"], it["iter"], f"{it['ms']:.3f}",
                                it["loss"], it["nfe_f"], it["nfe_b"], it["steps"]])
    print("\nwrote", os.path.join(args.out, "peers.json"), "and peers.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
