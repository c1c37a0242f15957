"""Is the Julia backend usable here?  Decided without importing juliacall.  Torch-free.

``import juliacall`` may download Julia and packages (juliapkg resolves on import), and a
first ``using`` may precompile for many minutes; so :func:`available` stops at the first
failing step, cheapest first:

1. ``PYHBNODE_JULIA``: ``0``/``off`` -> off (nothing else runs); ``auto`` (default) ->
   continue; ``1``/``require`` -> continue, and a failure raises instead of returning
   ``False`` (a Julia CI job must not silently skip).
2. ``importlib.util.find_spec`` of ``juliacall`` and ``juliapkg``: nothing is imported.
3. A Julia executable: ``PYTHON_JULIACALL_EXE``, ``PYTHON_JULIACALL_BINDIR``,
   ``PYTHON_JULIAPKG_EXE``, ``julia``/``juliaup`` on ``PATH``, or juliapkg's own install
   and recorded executable under its project (``PYTHON_JULIAPKG_PROJECT``,
   ``{venv}/julia_env``, ``$CONDA_PREFIX/julia_env``, ``~/.julia/environments/pyjuliapkg``).
4. Exactly one ``pyhbnode/juliapkg.json`` declares ``PyHBNODEBridge`` where juliapkg
   looks: ``sys.path`` entries, their subdirectories and the directories of setuptools'
   editable finders (two installations, e.g. a wheel and an editable checkout, make
   juliapkg fail with "'path' entries are not unique").
5. Once per process: a subprocess with a time limit (``PYHBNODE_JULIA_PROBE_TIMEOUT``,
   default 300 s) and offline switches imports juliacall and asks Julia whether
   ``PyHBNODEBridge`` is installed and precompiled (``Base.isprecompiled``) without loading
   it.  That costs one bare Julia start (PythonCall only), not the SciML stack twice: the
   bridge itself loads once, in this process, at the first julia solve.  The self-test
   runs in ``install`` and ``Pkg.test``, not here.

If juliacall is already imported in this process, steps 2-5 are replaced by loading the
bridge in-process.

The switches juliacall is started with live in :mod:`._env`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

from ._env import AUTO, INSTALL_ADVICE, INSTALL_COMMAND, OFF, REQUIRE, julia_environment, mode
from .errors import JuliaBackendUnavailable

__all__ = [
    "mode",
    "available",
    "reset",
    "julia_candidates",
    "bridge_declarations",
    "julia_environment",
    "probe",
    "OFF",
    "AUTO",
    "REQUIRE",
    "INSTALL_ADVICE",
    "INSTALL_COMMAND",
]

PROBE_MARK = "PYHBNODE-JULIA-PROBE-OK"
PROBE_SCRIPT = f"""
import sys, time
assert "torch" not in sys.modules
t0 = time.time()
import juliacall
jl = juliacall.newmodule("PyHBNODEProbe")
problem = str(jl.seval('''
    let id = Base.identify_package("PyHBNODEBridge")
        id === nothing ? "PyHBNODEBridge is not in the Julia project" :
        Base.isprecompiled(id) ? "" : "PyHBNODEBridge is installed but not precompiled"
    end'''))
if problem:
    sys.exit(problem)
print("{PROBE_MARK}", round(time.time() - t0, 1), flush=True)
"""

_cache: dict[str, tuple[bool, str]] = {}


def reset() -> None:
    """Forget the cached probe result (tests; after an install in the same process)."""
    _cache.clear()


def _juliapkg_projects() -> list[str]:
    """Where juliapkg keeps its Julia project (pyjuliapkg state.py), most specific first."""
    out = []
    project = os.environ.get("PYTHON_JULIAPKG_PROJECT")
    if project:
        out.append(project)
    if sys.prefix != sys.base_prefix:
        out.append(os.path.join(sys.prefix, "julia_env"))
    conda = os.environ.get("CONDA_PREFIX")
    if conda:
        out.append(os.path.join(conda, "julia_env"))
    depot = os.environ.get("JULIA_DEPOT_PATH", "").split(os.pathsep)[0] or os.path.join(
        os.path.expanduser("~"), ".julia"
    )
    out.append(os.path.join(depot, "environments", "pyjuliapkg"))
    return out


def julia_candidates() -> list[str]:
    """Existing Julia executables (or launchers) this process could use, best first."""
    found: list[str] = []

    def add(path: str | None) -> None:
        if path and os.path.isfile(path) and os.access(path, os.X_OK) and path not in found:
            found.append(path)

    exe_name = "julia.exe" if os.name == "nt" else "julia"
    for var in ("PYTHON_JULIACALL_EXE", "PYTHON_JULIAPKG_EXE"):
        value = os.environ.get(var)
        if value:
            add(shutil.which(value) or value)
    bindir = os.environ.get("PYTHON_JULIACALL_BINDIR")
    if bindir:
        add(os.path.join(bindir, exe_name))
    add(shutil.which("julia"))
    add(shutil.which("juliaup"))
    for project in _juliapkg_projects():
        prefix = os.path.join(project, "pyjuliapkg")
        add(os.path.join(prefix, "install", "bin", exe_name))
        try:
            with open(os.path.join(prefix, "meta.json")) as fp:
                add(json.load(fp).get("executable"))
        except (OSError, ValueError, AttributeError):
            pass
    return found


def _editable_roots() -> list[str]:
    """The directories setuptools' editable finders map packages to (the modules
    ``__editable___*_finder`` on ``sys.meta_path``, their ``MAPPING``): juliapkg searches
    them like ``sys.path`` entries (pyjuliapkg v0.1.23 ``deps.py``, ``editable_deps_files``)."""
    roots: list[str] = []
    for finder in sys.meta_path:
        name = getattr(finder, "__module__", "") or ""
        if not (name.startswith("__editable___") and name.endswith("_finder")):
            continue
        mapping = getattr(sys.modules.get(name), "MAPPING", None)
        if isinstance(mapping, dict):
            roots.extend(str(p) for p in mapping.values())
    return roots


def bridge_declarations() -> list[str]:
    """The ``juliapkg.json`` files that declare ``PyHBNODEBridge`` where juliapkg looks:
    each ``sys.path`` entry, each editable finder's package directory, and their
    immediate subdirectories."""
    found: list[str] = []
    for entry in [*sys.path, *_editable_roots()]:
        path = entry or os.getcwd()
        try:
            names = os.listdir(path)
        except OSError:
            continue
        for sub in [""] + names:
            fn = os.path.normcase(os.path.realpath(os.path.join(path, sub, "juliapkg.json")))
            if fn in found or not os.path.isfile(fn):
                continue
            try:
                with open(fn) as fp:
                    packages = json.load(fp).get("packages", {})
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(packages, dict) and "PyHBNODEBridge" in packages:
                found.append(fn)
    return found


def probe(timeout: float | None = None) -> tuple[bool, str]:
    """Run the subprocess probe (step 5) now; ``(ok, reason)``."""
    if timeout is None:
        timeout = float(os.environ.get("PYHBNODE_JULIA_PROBE_TIMEOUT", "300"))
    env = julia_environment(os.environ)
    env["PYTHON_JULIACALL_AUTOLOAD_IPYTHON_EXTENSION"] = "no"
    env.pop("PYHBNODE_JULIA", None)
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", PROBE_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return False, (
            f"the Julia probe did not finish within {timeout:g} s (first-time precompilation "
            f"can take many minutes: run `{INSTALL_COMMAND}` once, or raise "
            "PYHBNODE_JULIA_PROBE_TIMEOUT)"
        )
    except OSError as err:
        return False, f"could not start the Julia probe: {err}"
    if proc.returncode == 0 and PROBE_MARK in proc.stdout:
        return True, f"Julia found PyHBNODEBridge installed and precompiled in {time.monotonic() - start:.1f} s"
    tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-12:]
    return False, (
        f"the Julia probe failed (exit {proc.returncode}): "
        + " | ".join(tail)
        + f" -- hint: run `{INSTALL_COMMAND}` (it works online; the probe is offline)"
    )


def _in_process() -> tuple[bool, str]:
    """juliacall is already imported: load the bridge here instead of probing."""
    try:
        from ._runtime import get_runtime

        get_runtime()
    except Exception as err:  # noqa: BLE001 - any failure means "not usable", with the reason
        return False, f"juliacall is imported but the bridge does not load: {err}"
    return True, "juliacall already running in this process; bridge loaded"


def _decide() -> tuple[bool, str]:
    if "juliacall" in sys.modules:
        return _in_process()
    missing = [name for name in ("juliacall", "juliapkg") if importlib.util.find_spec(name) is None]
    if missing:
        return False, f"{' and '.join(missing)} not installed. " + INSTALL_ADVICE
    if not julia_candidates():
        return False, (
            "no Julia executable found (looked at PYTHON_JULIACALL_EXE, PYTHON_JULIACALL_BINDIR, "
            "PYTHON_JULIAPKG_EXE, julia/juliaup on PATH and juliapkg's project); importing "
            "juliacall would download one. " + INSTALL_ADVICE
        )
    declared = bridge_declarations()
    if len(declared) > 1:
        return False, (
            "PyHBNODEBridge is declared by more than one juliapkg.json ("
            + ", ".join(declared)
            + "): two pyhbnode installations (e.g. a wheel and an editable "
            "install or a checkout on sys.path) make juliapkg fail with \"'path' entries are not "
            'unique". Keep one of them (pip uninstall the other, or drop it from sys.path).'
        )
    return probe()


def available(*, raise_if_required: bool = True) -> tuple[bool, str]:
    """``(ok, reason)``: whether ``backend="julia"`` can be used in this process.

    Never imports juliacall (unless it is already imported), never downloads; the
    subprocess probe runs at most once per process (see :func:`reset`).  With
    ``PYHBNODE_JULIA=require`` a failure raises :class:`~pyhbnode.JuliaBackendUnavailable`
    instead (unless ``raise_if_required=False``), so a Julia CI job cannot silently skip."""
    try:
        m = mode()
    except ValueError as err:
        return False, str(err)
    if m == OFF:
        return False, "disabled by PYHBNODE_JULIA=0"
    if "result" not in _cache:
        _cache["result"] = _decide()
    result = _cache["result"]
    if not result[0] and raise_if_required and m == REQUIRE:
        raise JuliaBackendUnavailable(f"PYHBNODE_JULIA=require but the julia backend is unusable: {result[1]}")
    return result
