"""``python -m pyhbnode.solving.backends.julia {install,status,selftest,paths}``.

``install`` resolves the Julia environment (juliapkg: downloads Julia if none is found,
installs the packages of every ``juliapkg.json`` on ``sys.path``, including
``pyhbnode/juliapkg.json`` which develops the bundled ``PyHBNODEBridge``), precompiles,
loads the bridge and runs its self-test, in a fresh interpreter that never imports torch
(juliacall should start before torch).  It is the only pyhbnode command that downloads.
Run it once before training and before launching several processes (concurrent first
resolves wait on juliapkg's lock).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from . import BRIDGE_DIR, JULIAPKG_JSON
from ._detect import available, bridge_declarations, julia_candidates, julia_environment, mode, reset

# CUDA.jl for CUDA tensors (the bridge's weak dependency; its extension loads with it).
# The version bound is the bridge's [compat] entry: julia/README.md, "GPU", says why.
CUDA_PACKAGE = ("CUDA", "052768ef-5323-5732-b1bb-66c8b64840ba", "~5.9.7")

INSTALL_SCRIPT = r"""
import sys, time
assert "torch" not in sys.modules
t0 = time.time()
import juliapkg
if len(sys.argv) > 1:   # install --cuda: name, uuid, version of CUDA.jl, into juliapkg's own deps file
    name, uuid, version = sys.argv[1:4]
    juliapkg.add(name, uuid, version=version)
print("[pyhbnode] resolving the Julia environment (first time: downloads and precompiles, "
      "often 5-30 min)...", flush=True)
juliapkg.resolve()
print(f"[pyhbnode] resolved in {time.time() - t0:.0f} s; Julia at {juliapkg.executable()}, "
      f"project {juliapkg.project()}", flush=True)
t1 = time.time()
import juliacall
jl = juliacall.newmodule("PyHBNODEInstall")
jl.seval("using PyHBNODEBridge")
print(f"[pyhbnode] bridge loaded in {time.time() - t1:.0f} s", flush=True)
t2 = time.time()
ok = bool(jl.seval("PyHBNODEBridge.selftest()"))
print(f"[pyhbnode] selftest {'passed' if ok else 'FAILED'} in {time.time() - t2:.0f} s", flush=True)
sys.exit(0 if ok else 1)
"""


def _install(args: argparse.Namespace) -> int:
    argv = [sys.executable, "-c", INSTALL_SCRIPT, *(CUDA_PACKAGE if args.cuda else ())]
    env = julia_environment(os.environ, offline=args.offline)
    env.pop("PYHBNODE_JULIA", None)
    try:
        import importlib.util

        if importlib.util.find_spec("juliacall") is None or importlib.util.find_spec("juliapkg") is None:
            print("juliacall/juliapkg are not installed: pip install 'pyhbnode[julia]'", file=sys.stderr)
            return 2
        rc = subprocess.call(argv, env=env)
    except KeyboardInterrupt:
        return 130
    reset()
    return rc


def _status(args: argparse.Namespace) -> int:
    print(f"PYHBNODE_JULIA mode: {mode()}")
    print(f"juliapkg.json:       {JULIAPKG_JSON} ({'found' if JULIAPKG_JSON.is_file() else 'MISSING'})")
    print(f"Julia package:       {BRIDGE_DIR} ({'found' if (BRIDGE_DIR / 'Project.toml').is_file() else 'MISSING'})")
    declared = bridge_declarations()
    print("declared by:         " + (", ".join(declared) if declared else "no juliapkg.json on sys.path"))
    exes = julia_candidates()
    print("Julia executables:   " + (", ".join(exes) if exes else "none found"))
    if args.probe:
        ok, reason = available(raise_if_required=False)
        print(f"available:           {ok} ({reason})")
    return 0


def _selftest(args: argparse.Namespace) -> int:
    ok, reason = available(raise_if_required=False)
    print(f"available: {ok} ({reason})")
    return 0 if ok else 1


def _paths(args: argparse.Namespace) -> int:
    print(BRIDGE_DIR)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pyhbnode.solving.backends.julia", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("install", help="resolve, install and precompile the Julia side, then self-test")
    p.add_argument("--offline", action="store_true", help="do not download (PYTHON_JULIAPKG_OFFLINE=yes)")
    p.add_argument(
        "--cuda", action="store_true", help="also add CUDA.jl to the Julia project, for CUDA tensors (dense fields)"
    )
    p.set_defaults(func=_install)
    p = sub.add_parser("status", help="where things are; --probe also runs the availability probe")
    p.add_argument("--probe", action="store_true")
    p.set_defaults(func=_status)
    p = sub.add_parser("selftest", help="run the offline availability probe (subprocess, time-limited)")
    p.set_defaults(func=_selftest)
    p = sub.add_parser("paths", help="print the directory of the bundled Julia package")
    p.set_defaults(func=_paths)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
