"""``python -m benchmarks.run [--quick] [--only a,b] [--json FILE]``: every target of issue 5.

Targets (each against torchdiffeq 0.2.5 ``odeint_adjoint`` dopri5 in the same run):
  1 overhead   t_iteration / (nfe_fwd·t_f + nfe_bwd·t_vjp) <= 1.3, point cloud (all models)
               and plane-vibration ODE-RNN
  2 pointcloud iteration time <= 0.4x torchdiffeq for HBNODE/GHBNODE at tol 1e-7, batch 50,
               with forward and backward NFE no higher
  3 mnist      zoo.build("mnist", "hbnode"), batch 64, tol 1e-5: iteration time <= 0.8x
  4 memory     adjoint peak memory flat (<= 1.2x) from ~10 to ~1000 steps; direct linear
  5 accuracy   gradient error vs direct (float64) at tol 1e-5 and 1e-7, backward NFE

One torch thread (``torch.set_num_threads(1)``), seed 0.  Times are CPU times of this
process (``time.process_time``), medians over interleaved iterations: the machine is
shared, and CPU time is far less disturbed by other processes than wall time.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import torch

from . import accuracy, memory, speed
from .common import CANDIDATE, NATIVE_BACKSOLVE_SEMINORM, REFERENCE

PARTS = ("pointcloud", "plane", "mnist", "memory", "accuracy")


def _hr(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 76 - len(title)))


def _speed_table(rows) -> None:
    print(f"{'task':16s} {'model':8s} {'variant':30s} {'t_iter ms':>10s} {'NFE f':>7s} {'NFE b':>7s} {'overhead':>9s}  ratio vs ref")
    for r in rows:
        for label, v in r["variants"].items():
            ratio = f"{r['time_ratio']:.2f}" if label == CANDIDATE.label else ""
            print(f"{r['task']:16s} {r['model']:8s} {label:30s} {v['t_iter_ms']:10.1f} {v['nfe_f']:7.1f} "
                  f"{v['nfe_b']:7.1f} {v['overhead']:9.2f}  {ratio}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short run (about 3 minutes here)")
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {PARTS}")
    ap.add_argument("--json", default=None, help="also write all measurements to this file")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown parts {unknown}; choose from {PARTS}")
    torch.set_num_threads(1)
    q = args.quick
    print(f"pyhbnode benchmarks ({'quick' if q else 'full'}): torch {torch.__version__}, "
          f"python {platform.python_version()}, {platform.machine()}, threads=1, seed 0")
    out: dict = {"quick": q, "torch": torch.__version__}
    verdicts = []
    t_start = time.time()

    if "pointcloud" in parts:
        _hr("point cloud: targets 1 and 2 (tol 1e-7, batch 50)")
        hb = ["hbnode", "ghbnode"]
        others = ["node", "anode", "sonode"]
        if q:
            rows = speed.pointcloud(hb, iters=12, pretrain=150, variants=[REFERENCE, NATIVE_BACKSOLVE_SEMINORM, CANDIDATE])
            rows += speed.pointcloud(others, iters=6, pretrain=150)
        else:
            rows = speed.pointcloud(hb, iters=300, pretrain=0, variants=[REFERENCE, NATIVE_BACKSOLVE_SEMINORM, CANDIDATE])
            rows += speed.pointcloud(others, iters=100, pretrain=0)
        _speed_table(rows)
        out["pointcloud"] = rows
        worst = max(r["variants"][CANDIDATE.label]["overhead"] for r in rows)
        verdicts.append(("1 overhead <= 1.3, point cloud (worst model)", worst, worst <= 1.3))
        for r in rows:
            if r["model"] in hb:
                c, ref = r["variants"][CANDIDATE.label], r["variants"][REFERENCE.label]
                ok = r["time_ratio"] <= 0.4 and c["nfe_f"] <= ref["nfe_f"] * 1.01 and c["nfe_b"] <= ref["nfe_b"]
                verdicts.append((f"2 point cloud {r['model']}: time <= 0.4x, NFE f/b {c['nfe_f']:.0f}/{c['nfe_b']:.0f}"
                                 f" vs {ref['nfe_f']:.0f}/{ref['nfe_b']:.0f}", r["time_ratio"], ok))

    if "plane" in parts:
        _hr("plane-vibration ODE-RNN: target 1 (tol 1e-7, batch 64, 64 stamps)")
        models = ["node", "hbnode"] if q else ["node", "anode", "sonode", "hbnode", "ghbnode"]
        rows = speed.plane_vibration(models, iters=2 if q else 6, pretrain=0)
        _speed_table(rows)
        out["plane_vibration"] = rows
        worst = max(r["variants"][CANDIDATE.label]["overhead"] for r in rows)
        verdicts.append(("1 overhead <= 1.3, plane-vibration ODE-RNN (worst model)", worst, worst <= 1.3))

    if "mnist" in parts:
        _hr("MNIST-size conv HBNODE: target 3 (tol 1e-5, batch 64)")
        rows = speed.mnist(iters=2 if q else 5)
        _speed_table(rows)
        out["mnist"] = rows
        verdicts.append(("3 MNIST hbnode time <= 0.8x", rows[0]["time_ratio"], rows[0]["time_ratio"] <= 0.8))

    if "memory" in parts:
        _hr("memory: target 4 (peak tensor memory of one forward+backward)")
        rows = memory.run(q)
        print(f"{'adjoint':17s} {'T':>6s} {'steps':>6s} {'NFE f/b':>12s} {'peak MB':>9s}")
        for r in rows:
            print(f"{r['adjoint']:17s} {r['T']:6.1f} {r['steps']:6d} {r['nfe_f']:5d}/{r['nfe_b']:<6d} {r['peak_mb']:9.2f}")
        out["memory"] = rows
        for mode in ("backsolve", "checkpointed", "checkpointed:8", "direct"):
            mine = [r for r in rows if r["adjoint"] == mode]
            growth = mine[-1]["peak_mb"] / mine[0]["peak_mb"]
            steps = f"{mine[0]['steps']}->{mine[-1]['steps']} steps"
            if mode == "direct":
                verdicts.append((f"4 direct grows ({steps}): peak x", growth, growth > 2))
            else:
                verdicts.append((f"4 {mode} flat <= 1.2x ({steps}): peak x", growth, growth <= 1.2))

    if "accuracy" in parts:
        _hr("accuracy: target 5 (float64, gradient error vs adjoint='direct')")
        rows = accuracy.run(q)
        print(f"{'model':8s} {'gamma':>6s} {'tol':>6s} {'variant':30s} {'rel err':>9s} {'NFE b':>6s} (NFE f)")
        for r in rows:
            print(f"{r['model']:8s} {r['gamma']:6.3f} {r['tol']:6.0e} {r['variant']:30s} {r['rel_err']:9.2e} "
                  f"{r['nfe_b']:6d} ({r['nfe_f']})")
        out["accuracy"] = rows
        for name in ("hbnode", "ghbnode"):
            for tol in (1e-5, 1e-7):
                sel = {r["variant"]: r for r in rows if r["model"] == name and r["tol"] == tol}
                bs = sel["torch backsolve"]
                for label in ("torch checkpointed",):
                    mine = sel[label]
                    ok = mine["rel_err"] <= bs["rel_err"] and mine["nfe_b"] <= bs["nfe_b"]
                    verdicts.append((f"5 {name} tol {tol:.0e} {label.split()[1]}: err {mine['rel_err']:.1e} vs "
                                     f"backsolve {bs['rel_err']:.1e}, NFE b {mine['nfe_b']} vs {bs['nfe_b']}",
                                     mine["rel_err"] / max(bs["rel_err"], 1e-300), ok))

    _hr(f"targets (candidate: {CANDIDATE.label}; reference: {REFERENCE.label})")
    for what, value, ok in verdicts:
        print(f"{'MET   ' if ok else 'MISSED'} {value:8.3f}  {what}")
    print(f"\n{len([v for v in verdicts if v[2]])}/{len(verdicts)} met; {time.time() - t_start:.0f} s")
    out["verdicts"] = [dict(what=w, value=v, met=m) for w, v, m in verdicts]
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
