"""``python -m benchmarks.gpu [--device cuda] [--out DIR] [--quick]``: pyhbnode on a GPU.

1. **Checks**: the point-cloud HBNODE (``zoo.build("pointcloud", "hbnode")``, tol 1e-7) solved
   on the device by the native backend, eager and compiled (``compile=True``: on CUDA, inductor
   programs run as CUDA graphs), against the same weights solved eagerly on the CPU in float64.
   Compared: the solution ``h(1)`` (``model.features``) and the gradient of ``<w, h(1)>``
   (random ``w``) w.r.t. all parameters, as max |device - reference| / max |reference|.  In
   float64 the device must agree to rounding; in float32 to float32's accuracy of the solve.
2. **Timings**: one training iteration (forward, loss, backward, Adam step) of the point-cloud
   HBNODE at batch 50 and 4,096 and the MNIST HBNODE on random 1x28x28 images at batch 64,
   each for pyhbnode eager, pyhbnode compiled and torchdiffeq ``odeint_adjoint`` (the runners
   of :mod:`benchmarks.peers`, on the device).  Wall time between ``torch.cuda.synchronize()``
   calls, median over the timed iterations after the warm-up ones (which hold the compiles and
   the CUDA-graph recordings); runners interleaved, order reversed every iteration.
3. **Report**: ``gpu.json`` and ``gpu.txt`` in ``--out`` with the device, torch and CUDA
   versions and the date.

Without CUDA (or with ``--device cpu``) it says so and runs everything on the CPU at a tiny
size with the compiled programs traced by dynamo's ``eager`` backend (the wiring, not the
speed: inductor's CPU compile takes minutes on a loaded machine), then exits 0: a smoke run
of this script, not a measurement.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from pyhbnode import zoo
from pyhbnode.layers import set_solver_options
from pyhbnode.solving.backends.native import compiled

from .peers import tasks as task_defs
from .peers.torch_runners import PyHBNODE, TorchDiffEq, TorchRunner

# (solution, gradient) tolerances on the max relative error vs the CPU float64 reference.
# float64: the same steps up to rounding (the compiled step matches eager to 1e-12 on the
# CPU; the device's kernels sum in other orders, amplified by a step-size controller that
# can accept or reject differently near its threshold).  float32: a solve at tol 1e-7 is at
# float32's unit roundoff, so the error is float32's own (measured ~1e-6 on the CPU).
TOLERANCES = {torch.float64: (1e-9, 1e-8), torch.float32: (1e-4, 1e-3)}
REFERENCE = "torchdiffeq odeint_adjoint"


@dataclass(frozen=True)
class Sizes:
    """How big a run is: the checks' batch, the timed cases (label, task factory), iterations."""

    check_batch: int
    cases: tuple[tuple[str, Callable[[], task_defs.Task]], ...]
    warmup: int
    iters: int


def sizes(tiny: bool, quick: bool) -> Sizes:
    if tiny:
        return Sizes(4, (("pointcloud/hbnode batch 8", lambda: task_defs.pointcloud("hbnode", batch_size=8)),
                         # torchdiffeq's adjoint at tol 1e-5 takes ~15 s an iteration here
                         ("mnist/hbnode batch 1 tol 1e-3",
                          lambda: task_defs.mnist(batch_size=1, n_batches=2, synthetic=True, tol=1e-3))),
                     warmup=1, iters=1)
    return Sizes(50, (("pointcloud/hbnode batch 50", lambda: task_defs.pointcloud("hbnode", batch_size=50)),
                      ("pointcloud/hbnode batch 4096",
                       lambda: task_defs.pointcloud("hbnode", batch_size=4096, n_points=4096)),
                      ("mnist/hbnode batch 64", lambda: task_defs.mnist(batch_size=64, n_batches=4, synthetic=True))),
                 # reduce-overhead records its CUDA graphs on the first calls after the compile
                 warmup=3, iters=5 if quick else 20)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- 1. checks ---------------------------------------------------------------------------

def _solution_and_gradient(model: nn.Module, x: torch.Tensor, w: torch.Tensor, compile: bool) -> torch.Tensor:
    """``h(1)`` and d<w, h(1)>/dθ, flattened into one float64 CPU vector each."""
    m = copy.deepcopy(model)
    set_solver_options(m, backend="torch", compile=compile)
    h = m.features(x)
    params = [p for p in m.parameters() if p.requires_grad]
    grads = torch.autograd.grad((h * w).sum(), params, allow_unused=True)
    grad = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])
    return h.detach().double().cpu().reshape(-1), grad.double().cpu()


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a - ref).abs().max() / ref.abs().max().clamp_min(1e-300)).item()


def checks(device: torch.device, batch: int, say: Callable[[str], None]) -> list[dict]:
    torch.manual_seed(0)
    model = zoo.build("pointcloud", "hbnode", tol=1e-7).double()
    x = torch.randn(batch, 2, dtype=torch.float64)
    w = torch.randn(batch, 2, dtype=torch.float64)
    ref_h, ref_g = _solution_and_gradient(model, x, w, compile=False)
    say(f"checks: point-cloud HBNODE, batch {batch}, tol 1e-7, vs CPU float64 eager "
        "(max |err| / max |ref|; solution h(1), gradient of <w, h(1)> w.r.t. all parameters)")
    say(f"{'dtype':8s} {'runner':10s} {'sol err':>9s} {'tol':>7s} {'grad err':>9s} {'tol':>7s}  verdict")
    rows = []
    for dtype in (torch.float64, torch.float32):
        m = copy.deepcopy(model).to(device=device, dtype=dtype)
        for label, on in (("eager", False), ("compiled", True)):
            h, g = _solution_and_gradient(m, x.to(device, dtype), w.to(device, dtype), compile=on)
            sol_tol, grad_tol = TOLERANCES[dtype]
            row = dict(dtype=str(dtype).removeprefix("torch."), runner=label, sol_rel_err=_rel(h, ref_h),
                       sol_tol=sol_tol, grad_rel_err=_rel(g, ref_g), grad_tol=grad_tol)
            row["passed"] = row["sol_rel_err"] <= sol_tol and row["grad_rel_err"] <= grad_tol
            rows.append(row)
            say(f"{row['dtype']:8s} {label:10s} {row['sol_rel_err']:9.2e} {sol_tol:7.0e} {row['grad_rel_err']:9.2e} "
                f"{grad_tol:7.0e}  {'PASS' if row['passed'] else 'FAIL'}")
    failed = [p.failed for p in compiled._CACHE.values() if p.failed]
    if failed:  # a failed compile steps eagerly, and would then match trivially
        say(f"FAIL: compiled programs fell back to eager steps: {failed}")
        rows.append(dict(dtype="-", runner="compiled", passed=False, error=str(failed)))
    return rows


# -- 2. timings --------------------------------------------------------------------------

def on_device(task: task_defs.Task, device: torch.device) -> task_defs.Task:
    """``task`` with its model and batches on ``device`` (the runners copy the model)."""
    def batch(i: int) -> tuple:
        inputs, target = task.batch(i)
        return tuple(a.to(device) for a in inputs), target.to(device)

    return dataclasses.replace(task, model=copy.deepcopy(task.model).to(device), batch=batch)


def time_case(label: str, task: task_defs.Task, device: torch.device, warmup: int, iters: int) -> list[dict]:
    task = on_device(task, device)
    runners: list[TorchRunner] = [PyHBNODE(task, "pyhbnode eager", backend="torch", compile=False),
                                  PyHBNODE(task, "pyhbnode compiled", backend="torch", compile=True),
                                  TorchDiffEq(task)]
    first = {r.label: 0.0 for r in runners}
    recs: dict[str, list] = {r.label: [] for r in runners}
    for i in range(warmup + iters):
        for r in runners if i % 2 == 0 else runners[::-1]:
            synchronize(device)
            t0 = time.perf_counter()
            rec = r.step(i)
            synchronize(device)
            dt = time.perf_counter() - t0
            if i < warmup:
                first[r.label] += dt
            else:
                recs[r.label].append((dt, rec))
    ref_ms = statistics.median(dt for dt, _ in recs[REFERENCE]) * 1e3
    rows = []
    for r in runners:
        ms = statistics.median(dt for dt, _ in recs[r.label]) * 1e3
        nfe = {k: statistics.fmean(getattr(rec, k) for _, rec in recs[r.label]) for k in ("nfe_f", "nfe_b")}
        rows.append(dict(case=label, runner=r.label, ms_iter=ms, x_torchdiffeq=ms / ref_ms, warmup_s=first[r.label],
                         loss_last=recs[r.label][-1][1].loss, **nfe))
    return rows


# -- 3. report ---------------------------------------------------------------------------

def environment(device: torch.device, tiny: bool) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()})"
    try:
        import torchdiffeq
        tde = torchdiffeq.__version__
    except (ImportError, AttributeError):
        tde = None
    return dict(device=str(device), device_name=name, torch=torch.__version__, cuda=torch.version.cuda,
                cudnn=torch.backends.cudnn.version() if device.type == "cuda" else None, torchdiffeq=tde,
                python=platform.python_version(), date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                mode="tiny CPU smoke run (not a measurement)" if tiny else "full",
                compile_backend=compiled.BACKEND + (" (CUDA graphs, reduce-overhead)" if device.type == "cuda" else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    ap.add_argument("--out", default="benchmarks/gpu-results", help="folder for gpu.json and gpu.txt")
    ap.add_argument("--quick", action="store_true", help="5 timed iterations instead of 20")
    ap.add_argument("--only", default="", help="comma-separated substrings of the timed cases to keep")
    args = ap.parse_args(argv)
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    device = torch.device(args.device)
    notes = []
    if device.type == "cuda" and not torch.cuda.is_available():
        notes.append(f"CUDA IS NOT AVAILABLE (torch {torch.__version__}, built with CUDA {torch.version.cuda}): "
                     "nothing was measured on a GPU; ran the tiny CPU smoke mode instead")
        device = torch.device("cpu")
    tiny = device.type == "cpu"
    if tiny:
        # as the other CPU benchmarks; and this machine's cores are usually shared
        torch.set_num_threads(1)
        # inductor's CPU compile costs minutes here; dynamo-eager traces the same graphs in seconds
        compiled.BACKEND = "eager"
        compiled.clear_cache()
        notes.append("CPU: tiny sizes, 'compiled' traced by dynamo's eager backend (wiring only); "
                     "times are not comparable to anything")
    size = sizes(tiny, args.quick)
    only = [o.strip() for o in args.only.split(",") if o.strip()]
    if only:
        size = dataclasses.replace(size, cases=tuple(c for c in size.cases if any(o in c[0] for o in only)))
    env = environment(device, tiny)
    say(f"pyhbnode GPU benchmark: {env['device_name']} ({env['device']}); torch {env['torch']}, CUDA {env['cuda']}, "
        f"torchdiffeq {env['torchdiffeq']}; {env['date']}; {env['mode']}")
    for n in notes:
        say(f"NOTE: {n}")
    t_start = time.perf_counter()
    say()
    check_rows = checks(device, size.check_batch, say)
    say()
    say(f"timings: wall ms per training iteration (forward, loss, backward, Adam), synchronised, median of "
        f"{size.iters} after {size.warmup} warm-up; x tde = / torchdiffeq odeint_adjoint")
    say(f"{'case':30s} {'runner':28s} {'ms/iter':>9s} {'x tde':>6s} {'NFE f':>7s} {'NFE b':>7s} {'warm-up s':>9s}")
    timing_rows = []
    for label, make in size.cases:
        rows = time_case(label, make(), device, size.warmup, size.iters)
        for r in rows:
            say(f"{label:30s} {r['runner']:28s} {r['ms_iter']:9.2f} {r['x_torchdiffeq']:6.2f} {r['nfe_f']:7.1f} "
                f"{r['nfe_b']:7.1f} {r['warmup_s']:9.1f}")
        timing_rows += rows
    compiles = [dict(what=w, program=p, seconds=s) for w, p, s in compiled.compile_times()]
    for c in compiles:
        say(f"  compiled {c['program']} for {c['what']} in {c['seconds']:.1f} s")
    passed = all(r["passed"] for r in check_rows)
    say(f"\nchecks {'PASSED' if passed else 'FAILED'}; {time.perf_counter() - t_start:.0f} s in all")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "gpu.json"), "w") as f:
        json.dump(dict(environment=env, notes=notes, checks=check_rows, checks_passed=passed, timings=timing_rows,
                       compiles=compiles, warmup=size.warmup, iters=size.iters), f, indent=1)
    with open(os.path.join(args.out, "gpu.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", os.path.join(args.out, "gpu.json"), "and gpu.txt")
    return 0 if passed or tiny else 1


if __name__ == "__main__":
    raise SystemExit(main())
