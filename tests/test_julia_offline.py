"""The Julia backend's machinery that runs without Julia: availability detection (never
imports juliacall, never starts a subprocess when switched off, never hangs), the
``backend="julia"``/``"auto"`` fallbacks, import hygiene, the name tables and their Julia
twins, and the Julia package checked by a parser (tree-sitter-julia): syntax, imports,
the functions and fields Python uses, UUIDs, fixtures.

Every test here is correct in both worlds: here (no Julia) and, unchanged, under
``PYHBNODE_JULIA=require`` where Julia works; the fixtures below isolate
``sys.modules['juliacall']`` and the backend registry's cache so that a running Julia
cannot leak into the tests of the no-Julia paths.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
import warnings
from pathlib import Path

import pytest
import torch

import pyhbnode
from pyhbnode import (
    JuliaBackendUnavailable, MaxStepsExceeded, NonFiniteState, SolverFailure, StepSizeUnderflow, odeint,
)
from pyhbnode.solving.backends import registry
from pyhbnode.solving.backends import julia as julia_backend
from pyhbnode.solving.backends.julia import BRIDGE_DIR, JULIAPKG_JSON
from pyhbnode.solving.backends.julia import _detect as detect
from pyhbnode.solving.backends.julia import _maps as maps
from pyhbnode.solving.backends.julia._backend import solver_error

REPO = Path(__file__).resolve().parents[1]
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
JULIA_ENV_VARS = ("PYTHON_JULIACALL_EXE", "PYTHON_JULIACALL_BINDIR", "PYTHON_JULIAPKG_EXE",
                  "PYTHON_JULIAPKG_PROJECT", "CONDA_PREFIX", "JULIA_DEPOT_PATH")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """Fresh detection, no juliacall in sys.modules and no cached julia backend, whatever
    ran before (a real Julia included); all restored afterwards."""
    detect.reset()
    monkeypatch.delitem(sys.modules, "juliacall", raising=False)
    monkeypatch.delitem(registry._LOADED, "julia", raising=False)
    yield
    detect.reset()


@pytest.fixture
def no_julia(monkeypatch, tmp_path):
    """A machine with no Julia anywhere: env cleared, PATH empty, HOME empty."""
    for var in JULIA_ENV_VARS + ("PYHBNODE_JULIA",):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(detect.shutil, "which", lambda name: None)
    monkeypatch.setattr(detect.sys, "prefix", detect.sys.base_prefix)
    return tmp_path


def _forbid(monkeypatch, *what):
    def boom(*args, **kwargs):
        raise AssertionError(f"must not be called: {what}")

    if "subprocess" in what:
        monkeypatch.setattr(detect.subprocess, "run", boom)
    if "find_spec" in what:
        monkeypatch.setattr(detect.importlib.util, "find_spec", boom)
    if "candidates" in what:
        monkeypatch.setattr(detect, "julia_candidates", boom)


def _fake_find_spec(found: set[str]):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name in ("juliacall", "juliapkg"):
            return object() if name in found else None
        return real(name, *args, **kwargs)

    return find_spec


# --- detection -----------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "off", "no", "false"])
def test_switched_off_decides_without_lookups_or_subprocess(monkeypatch, value):
    monkeypatch.setenv("PYHBNODE_JULIA", value)
    _forbid(monkeypatch, "subprocess", "find_spec", "candidates")
    assert detect.available() == (False, "disabled by PYHBNODE_JULIA=0")
    assert "juliacall" not in sys.modules


def test_missing_juliacall_is_reported_without_subprocess(monkeypatch, no_julia):
    monkeypatch.setattr(detect.importlib.util, "find_spec", _fake_find_spec(set()))
    _forbid(monkeypatch, "subprocess")
    ok, reason = detect.available()
    assert not ok and "juliacall and juliapkg not installed" in reason
    assert "pip install 'pyhbnode[julia]'" in reason and detect.INSTALL_COMMAND in reason


def test_missing_julia_binary_is_reported_without_subprocess(monkeypatch, no_julia):
    monkeypatch.setattr(detect.importlib.util, "find_spec", _fake_find_spec({"juliacall", "juliapkg"}))
    _forbid(monkeypatch, "subprocess")
    ok, reason = detect.available()
    assert not ok and "no Julia executable found" in reason and "would download one" in reason


def _exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_julia_candidates_follow_juliacall_and_juliapkg(monkeypatch, no_julia):
    tmp = no_julia
    exe = _exe(tmp / "custom" / "julia")
    monkeypatch.setenv("PYTHON_JULIACALL_EXE", str(exe))
    assert detect.julia_candidates() == [str(exe)]
    monkeypatch.delenv("PYTHON_JULIACALL_EXE")
    bindir = _exe(tmp / "bindir" / "julia")
    monkeypatch.setenv("PYTHON_JULIACALL_BINDIR", str(bindir.parent))
    assert detect.julia_candidates() == [str(bindir)]
    monkeypatch.delenv("PYTHON_JULIACALL_BINDIR")
    # juliapkg's own install, and the executable recorded in its meta.json
    project = tmp / "proj"
    installed = _exe(project / "pyjuliapkg" / "install" / "bin" / "julia")
    recorded = _exe(tmp / "elsewhere" / "julia")
    (project / "pyjuliapkg" / "meta.json").write_text(json.dumps({"executable": str(recorded)}))
    monkeypatch.setenv("PYTHON_JULIAPKG_PROJECT", str(project))
    assert detect.julia_candidates() == [str(installed), str(recorded)]
    monkeypatch.delenv("PYTHON_JULIAPKG_PROJECT")
    # the default project under the depot (~/.julia/environments/pyjuliapkg)
    default = _exe(tmp / ".julia" / "environments" / "pyjuliapkg" / "pyjuliapkg" / "install" / "bin" / "julia")
    assert detect.julia_candidates() == [str(default)]
    monkeypatch.setattr(detect.shutil, "which", lambda name: str(exe) if name == "julia" else None)
    assert detect.julia_candidates()[0] == str(exe)


class _Completed:
    def __init__(self, returncode, stdout="", stderr=""):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _with_julia(monkeypatch, run):
    monkeypatch.delenv("PYHBNODE_JULIA", raising=False)
    monkeypatch.setattr(detect.importlib.util, "find_spec", _fake_find_spec({"juliacall", "juliapkg"}))
    monkeypatch.setattr(detect, "julia_candidates", lambda: ["/opt/julia/bin/julia"])
    monkeypatch.setattr(detect, "bridge_declarations", lambda: ["/site/pyhbnode/juliapkg.json"])
    monkeypatch.setattr(detect.subprocess, "run", run)


def test_probe_runs_once_offline_with_a_time_limit(monkeypatch):
    seen = []

    def run(argv, env, timeout, **kwargs):
        seen.append((argv, env, timeout))
        return _Completed(0, stdout=f"{detect.PROBE_MARK} 12.3\n")

    _with_julia(monkeypatch, run)
    monkeypatch.setenv("PYHBNODE_JULIA_PROBE_TIMEOUT", "42")
    assert detect.available()[0]
    assert detect.available()[0]
    assert len(seen) == 1
    argv, env, timeout = seen[0]
    # cheap: asks whether the bridge is installed and precompiled, loads nothing of it
    assert argv[0] == sys.executable and "Base.isprecompiled" in argv[-1]
    assert "using PyHBNODEBridge" not in argv[-1] and "selftest()" not in argv[-1]
    assert timeout == 42.0
    assert env["PYTHON_JULIAPKG_OFFLINE"] == "yes" and env["JULIA_PKG_OFFLINE"] == "true"
    assert env["PYTHON_JULIACALL_AUTOLOAD_IPYTHON_EXTENSION"] == "no"
    assert env["PYTHON_JULIACALL_THREADS"] == "1" and "PYHBNODE_JULIA" not in env


def test_two_bridge_declarations_are_a_reason_not_a_juliapkg_crash(monkeypatch, tmp_path):
    """A wheel plus a checkout on sys.path: juliapkg would raise "'path' entries are not
    unique"; detection says what to do instead (issue 9, item 7)."""
    for root in ("site", "checkout"):
        pkg = tmp_path / root / "pyhbnode"
        pkg.mkdir(parents=True)
        (pkg / "juliapkg.json").write_text(JULIAPKG_JSON.read_text())
    monkeypatch.setattr(detect.sys, "path", [str(tmp_path / "site"), str(tmp_path / "checkout")])
    monkeypatch.setattr(detect, "_editable_roots", lambda: [])   # this machine's own editable install
    assert len(detect.bridge_declarations()) == 2
    _forbid(monkeypatch, "subprocess")
    monkeypatch.delenv("PYHBNODE_JULIA", raising=False)
    monkeypatch.setattr(detect.importlib.util, "find_spec", _fake_find_spec({"juliacall", "juliapkg"}))
    monkeypatch.setattr(detect, "julia_candidates", lambda: ["/opt/julia/bin/julia"])
    ok, reason = detect.available()
    assert not ok and "more than one juliapkg.json" in reason and "not unique" in reason


def test_editable_installs_count_as_declarations(monkeypatch, tmp_path):
    """A wheel in site-packages plus a setuptools editable install (whose package directory is
    on no sys.path entry, only in its ``__editable___*_finder`` MAPPING, which juliapkg reads
    too): two declarations, the friendly reason instead of juliapkg's "not unique"."""
    import types

    site, checkout = tmp_path / "site", tmp_path / "checkout"
    for root in (site, checkout):
        (root / "pyhbnode").mkdir(parents=True)
        (root / "pyhbnode" / "juliapkg.json").write_text(JULIAPKG_JSON.read_text())
    name = "__editable___pyhbnode_0_1_0_finder"
    module = types.ModuleType(name)
    module.MAPPING = {"pyhbnode": str(checkout / "pyhbnode")}
    finder = type("_EditableFinder", (), {"__module__": name, "find_spec": staticmethod(lambda *a, **k: None)})()
    monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(detect.sys, "path", [str(site)])
    real = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable___")]
    monkeypatch.setattr(detect.sys, "meta_path", real)
    assert detect.bridge_declarations() == [os.path.realpath(site / "pyhbnode" / "juliapkg.json")]
    monkeypatch.setattr(detect.sys, "meta_path", [*real, finder])
    assert detect.bridge_declarations() == [os.path.realpath(p / "pyhbnode" / "juliapkg.json") for p in (site, checkout)]
    _forbid(monkeypatch, "subprocess")
    monkeypatch.delenv("PYHBNODE_JULIA", raising=False)
    monkeypatch.setattr(detect.importlib.util, "find_spec", _fake_find_spec({"juliacall", "juliapkg"}))
    monkeypatch.setattr(detect, "julia_candidates", lambda: ["/opt/julia/bin/julia"])
    ok, reason = detect.available()
    assert not ok and "editable" in reason and str(checkout) in reason


def test_julia_package_has_no_import_cycles_and_never_imports_odeint():
    """Issue 20 (a): within the julia backend package no module imports another that imports
    it back, counting function-level imports, and nothing imports ``pyhbnode.solving.odeint``
    (which imports the backends)."""
    import ast

    pkg = "pyhbnode.solving.backends.julia"
    graph: dict[str, set[str]] = {}
    for path in sorted(PY_DIR.glob("*.py")):
        name = pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"
        here = pkg.split(".")
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                edges.add(target)
                edges |= {f"{target}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
        assert "pyhbnode.solving.odeint" not in edges, f"{name} imports pyhbnode.solving.odeint"
        graph[name] = edges
    modules = set(graph)
    for start in modules:
        seen, stack = set(), [start]
        while stack:
            for nxt in graph[stack.pop()] & modules:
                if nxt == start and start != pkg:
                    raise AssertionError(f"import cycle through {start}")
                if nxt not in seen and nxt != pkg:
                    seen.add(nxt)
                    stack.append(nxt)


@pytest.mark.parametrize("given,threads,signals", [
    ({}, "1", None),
    ({"JULIA_NUM_THREADS": "auto"}, "1", None),
    ({"PYTHON_JULIACALL_THREADS": "4"}, "4", "yes"),
    ({"PYTHON_JULIACALL_THREADS": "auto", "PYTHON_JULIACALL_HANDLE_SIGNALS": "no"}, "auto", "no"),
])
def test_julia_environment_threads_and_signals(given, threads, signals):
    env = detect.julia_environment(given)
    assert env["PYTHON_JULIACALL_THREADS"] == threads
    assert env.get("PYTHON_JULIACALL_HANDLE_SIGNALS") == signals
    assert env["PYTHON_JULIAPKG_OFFLINE"] == "yes" and env["JULIA_PKG_OFFLINE"] == "true"
    assert "PYTHON_JULIAPKG_OFFLINE" not in detect.julia_environment(given, offline=False)
    assert "PYTHON_JULIAPKG_OFFLINE" not in given


def test_probe_failure_and_timeout_give_reasons(monkeypatch):
    _with_julia(monkeypatch, lambda *a, **k: _Completed(1, stderr="ERROR: LoadError\nPackage PyHBNODEBridge not found\n"))
    ok, reason = detect.available()
    assert not ok and "Package PyHBNODEBridge not found" in reason and detect.INSTALL_COMMAND in reason
    detect.reset()

    def hang(argv, timeout, **kwargs):
        raise subprocess.TimeoutExpired(argv, timeout)

    _with_julia(monkeypatch, hang)
    ok, reason = detect.available()
    assert not ok and "did not finish within" in reason


def test_require_mode_raises_instead_of_skipping(monkeypatch, no_julia):
    monkeypatch.setenv("PYHBNODE_JULIA", "require")
    monkeypatch.setattr(detect.importlib.util, "find_spec", _fake_find_spec(set()))
    with pytest.raises(JuliaBackendUnavailable, match="PYHBNODE_JULIA=require"):
        detect.available()
    assert detect.available(raise_if_required=False)[0] is False


def test_invalid_switch_value_is_a_reason(monkeypatch):
    monkeypatch.setenv("PYHBNODE_JULIA", "maybe")
    ok, reason = detect.available()
    assert not ok and "PYHBNODE_JULIA must be one of" in reason


def test_already_imported_juliacall_loads_in_process(monkeypatch):
    from pyhbnode.solving.backends.julia import _runtime as runtime

    monkeypatch.delenv("PYHBNODE_JULIA", raising=False)
    monkeypatch.setitem(sys.modules, "juliacall", object())
    _forbid(monkeypatch, "subprocess")

    def broken():
        raise RuntimeError("no PyHBNODEBridge in this environment")

    monkeypatch.setattr(runtime, "get_runtime", broken)
    ok, reason = detect.available()
    assert not ok and "no PyHBNODEBridge" in reason


# --- fallbacks and import hygiene ------------------------------------------------------------

def _field_and_state():
    from julia_cases import build_case

    case = build_case("hbnode", "mlp")
    return case.field, case.y0, case.ts


def test_backend_julia_without_julia_raises_quickly_with_advice(monkeypatch, no_julia):
    monkeypatch.setattr(detect.importlib.util, "find_spec", _fake_find_spec(set()))
    field, y0, ts = _field_and_state()
    start = time.monotonic()
    with pytest.raises(JuliaBackendUnavailable) as info:
        odeint(field, y0, ts, backend="julia", adjoint="backsolve")
    assert time.monotonic() - start < 5
    assert isinstance(info.value, ImportError)
    assert "pip install 'pyhbnode[julia]'" in str(info.value) and "backend='torchdiffeq'" in str(info.value)


def test_backend_auto_falls_back_with_exactly_one_warning(monkeypatch):
    monkeypatch.setattr(julia_backend, "available", lambda **kw: (False, "no Julia here"))
    monkeypatch.setattr(registry, "_warned_auto", False)
    field, y0, ts = _field_and_state()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = odeint(field, y0, ts, backend="auto")
        odeint(field, y0, ts, backend="auto")
    relevant = [w for w in caught if "Julia is not usable" in str(w.message)]
    assert len(relevant) == 1 and "no Julia here" in str(relevant[0].message)
    assert first.stats.nfe_forward > 0


def _run_python(code: str, env_extra: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYHBNODE_JULIA"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=str(REPO))


def test_import_pyhbnode_never_imports_juliacall():
    code = (
        "import sys, torch\n"
        "import pyhbnode\n"
        "from pyhbnode import odeint\n"
        "from pyhbnode.solving.backends.julia import available\n"
        "assert 'juliacall' not in sys.modules and 'juliapkg' not in sys.modules\n"
        "y0 = torch.zeros(2, 2, 3, dtype=torch.float64)\n"
        "field = pyhbnode.HBNODE(torch.nn.Linear(3, 3)).double()\n"
        "odeint(field, y0, [0.0, 1.0], backend='torchdiffeq')\n"
        "try:\n"
        "    odeint(field, y0, [0.0, 1.0], backend='julia', adjoint='backsolve')\n"
        "except pyhbnode.JuliaBackendUnavailable:\n"
        "    pass\n"
        "assert 'juliacall' not in sys.modules, 'julia fallback imported juliacall'\n"
        "print('CLEAN')\n"
    )
    proc = _run_python(code, {"PYHBNODE_JULIA": "0"})
    assert proc.returncode == 0 and "CLEAN" in proc.stdout, proc.stderr[-2000:]


@pytest.mark.parametrize("value", ["1", "require", "auto"])
def test_import_pyhbnode_imports_no_juliacall_whatever_the_switch(value):
    """Issue 9, item 6: ``import pyhbnode`` never imports juliacall (whose import may
    download Julia); Julia starts at the first julia solve, or ``install`` downloads."""
    code = (
        "import sys\n"
        "import pyhbnode\n"
        "bad = [m for m in ('juliacall', 'juliapkg') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('CLEAN')\n"
    )
    proc = _run_python(code, {"PYHBNODE_JULIA": value})
    assert proc.returncode == 0 and "CLEAN" in proc.stdout, proc.stderr[-2000:]


def test_import_solving_imports_nothing_of_julia_or_training():
    code = (
        "import sys\n"
        "import pyhbnode.solving\n"
        "bad = [m for m in sys.modules if 'julia' in m or m.startswith('pyhbnode.training')]\n"
        "assert not bad, bad\n"
        "from pyhbnode import JuliaBackendUnavailable, NotTranslatableError\n"
        "assert issubclass(JuliaBackendUnavailable, ImportError)\n"
        "print('CLEAN')\n"
    )
    proc = _run_python(code, {"PYHBNODE_JULIA": "0"})
    assert proc.returncode == 0 and "CLEAN" in proc.stdout, proc.stderr[-2000:]


def test_detection_imports_neither_torch_nor_juliacall():
    """The julia package's ``__init__``, ``_detect``, ``_maps`` and ``errors`` are torch-free
    (the probe and the CLI's decisions never need torch)."""
    code = (
        "import sys, types\n"
        f"root = {str(REPO / 'pyhbnode')!r}\n"
        "for name, path in (('pyhbnode', root), ('pyhbnode.solving', root + '/solving'),\n"
        "                   ('pyhbnode.solving.backends', root + '/solving/backends')):\n"
        "    pkg = types.ModuleType(name); pkg.__path__ = [path]; sys.modules[name] = pkg\n"
        "import pyhbnode.solving.backends.julia as j\n"
        "import pyhbnode.solving.backends.julia._maps, pyhbnode.solving.backends.julia.errors\n"
        "ok, reason = j.available()\n"
        "bad = [m for m in ('torch', 'juliacall', 'juliapkg') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('CLEAN', ok)\n"
    )
    proc = _run_python(code, {"PYHBNODE_JULIA": "0"})
    assert proc.returncode == 0 and "CLEAN False" in proc.stdout, proc.stderr[-2000:]


# --- name tables -----------------------------------------------------------------------------

def test_adjoint_names():
    assert list(maps.ADJOINTS) == ["backsolve", "interpolating"]
    assert maps.adjoint_name("backsolve") == "backsolve"

    class Interpolating:  # an Adjoint object of the solving redesign
        name = "interpolating"

    assert maps.adjoint_name(Interpolating()) == "interpolating"
    for bad in ("direct", "checkpointed", "gauss", "interpolating:zygote", "", None):
        with pytest.raises(ValueError, match=r"backend 'julia' has no gradient mode.*\['backsolve', 'interpolating'\]"):
            maps.adjoint_name(bad)


@pytest.mark.parametrize("retcode,cls", [
    ("MaxIters", MaxStepsExceeded), ("DtLessThanMin", StepSizeUnderflow), ("Unstable", NonFiniteState),
    ("DtNaN", NonFiniteState), ("Failure", SolverFailure), ("ConvergenceFailure", SolverFailure),
])
def test_retcode_table(retcode, cls):
    err = solver_error(retcode, phase="forward", t=0.25, dt=1e-9, nfe_forward=42)
    assert type(err) is cls and isinstance(err, RuntimeError)
    assert err.t == 0.25 and err.nfe_forward == 42 and err.status is cls.status
    assert retcode in str(err) and "t = 0.25" in str(err)


def test_exception_table():
    assert maps.exception_error("MethodError")[0] == "TypeError"
    assert maps.exception_error("DimensionMismatch") == ("ValueError", "")
    assert maps.exception_error("OutOfMemoryError")[0] == "MemoryError"
    assert maps.exception_error("InterruptException")[0] == "KeyboardInterrupt"
    assert maps.exception_error("LoadError")[0] == "JuliaBackendError"


# --- the Julia package, read by a parser -------------------------------------------------------

def _project() -> dict:
    return tomllib.loads((BRIDGE_DIR / "Project.toml").read_text())


def _julia_files() -> list[Path]:
    files = sorted(BRIDGE_DIR.rglob("*.jl"))
    assert len(files) >= 6, files
    return files


@pytest.fixture(scope="module")
def julia_trees():
    """Every .jl file of PyHBNODEBridge parsed by tree-sitter-julia (in the test extra)."""
    import tree_sitter_julia
    from tree_sitter import Language, Parser

    parser = Parser(Language(tree_sitter_julia.language()))
    return {path: parser.parse(path.read_bytes()) for path in _julia_files()}


def _walk(node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def test_every_julia_file_parses_without_errors(julia_trees):
    for path, tree in julia_trees.items():
        bad = [n.start_point[0] + 1 for n in _walk(tree.root_node) if n.type == "ERROR" or n.is_missing]
        assert not bad, f"{path.relative_to(BRIDGE_DIR)}: syntax errors at lines {sorted(set(bad))}"
        assert not tree.root_node.has_error, path


def _imported_packages(tree) -> set[str]:
    """Top-level package names of every ``using``/``import`` statement."""
    names = set()
    for node in _walk(tree.root_node):
        if node.type not in ("using_statement", "import_statement"):
            continue
        for child in node.named_children:
            target = child.named_children[0] if child.type == "selected_import" else child
            if target.type == "identifier":
                names.add(target.text.decode())
            elif target.type in ("scoped_identifier", "field_expression", "import_path"):
                first = next(n for n in _walk(target) if n.type == "identifier")
                names.add(first.text.decode())
            else:
                raise AssertionError(f"unexpected import form {target.type}: {target.text!r}")
    return names


def test_every_import_is_a_declared_dependency(julia_trees):
    project = _project()
    deps, extras = set(project["deps"]), set(project.get("extras", {}))
    weak = set(project.get("weakdeps", {}))
    seen = set()
    for path, tree in julia_trees.items():
        used = _imported_packages(tree)
        seen |= used
        allowed = deps | weak | {"PyHBNODEBridge"}
        if "test" in path.relative_to(BRIDGE_DIR).parts:
            allowed |= extras
        assert used <= allowed, f"{path.name} imports undeclared {sorted(used - allowed)}"
    # and nothing declared goes unused
    assert deps | weak | extras <= seen, f"declared but never imported: {sorted((deps | weak | extras) - seen)}"


def _defined_functions(tree) -> set[str]:
    """Names of functions defined in a file (long and short form, callable structs excluded)."""
    def call_name(node):
        while node.type in ("where_expression", "typed_expression", "signature"):
            node = node.named_children[0]
        if node.type == "call_expression" and node.named_children[0].type == "identifier":
            return node.named_children[0].text.decode()
        return None

    names = set()
    for node in _walk(tree.root_node):
        if node.type == "function_definition":
            sig = next(c for c in node.named_children if c.type == "signature")
            name = call_name(sig)
        elif node.type == "assignment":
            name = call_name(node.named_children[0])
        else:
            continue
        if name:
            names.add(name)
    return names


def _struct_fields(tree) -> dict[str, set[str]]:
    out = {}
    for node in _walk(tree.root_node):
        if node.type != "struct_definition":
            continue
        head = node.named_children[0]
        while head.type != "identifier":
            head = head.named_children[0]
        fields = set()
        for child in node.named_children[1:]:
            if child.type == "typed_expression":
                fields.add(child.named_children[0].text.decode())
            elif child.type == "identifier":
                fields.add(child.text.decode())
        out[head.text.decode()] = fields
    return out


PY_DIR = BRIDGE_DIR.parent


def test_every_julia_name_python_uses_is_defined(julia_trees):
    src = {p: t for p, t in julia_trees.items() if "src" in p.relative_to(BRIDGE_DIR).parts}
    defined = set().union(*(_defined_functions(t) for t in src.values()))
    python = "\n".join(p.read_text() for p in PY_DIR.glob("*.py"))
    called = set(re.findall(r'\.call\(\s*"(\w+)"', python))
    called |= set(re.findall(r"self\.bridge\.(\w+)\(", python))
    called |= set(re.findall(r"PyHBNODEBridge\.(\w+)\(", python))
    assert {"build", "forward", "backward", "rhs", "exception_name", "selftest"} <= called
    assert called <= defined, f"called from Python but not defined in Julia: {sorted(called - defined)}"
    # the fields Python reads from the Forward and Backward results
    fields = {}
    for t in src.values():
        fields.update(_struct_fields(t))
    backend = (PY_DIR / "_backend.py").read_text()
    for var, struct in (("res", "Forward"), ("back", "Backward")):
        read = set(re.findall(rf"\b{var}\.(\w+)", backend))
        assert read and read <= fields[struct], f"{struct} lacks {sorted(read - fields[struct])}"
    # DLPack's functions: the external calls the README table lists
    assert set(re.findall(r"self\.dlpack\.(\w+)\b", python)) == {"from_dlpack", "share"}


def test_spec_format_agrees():
    from pyhbnode.solving.backends.julia._spec import SPEC_FORMAT

    main = (BRIDGE_DIR / "src" / "PyHBNODEBridge.jl").read_text()
    assert re.search(rf"const SPEC_FORMAT = {SPEC_FORMAT}\b", main)


def test_python_and_julia_adjoint_tables_agree():
    solve = (BRIDGE_DIR / "src" / "solve.jl").read_text()
    pairs = dict(re.findall(r'name == "(\w+)" && return (\w+)\(', solve))
    assert pairs == maps.ADJOINTS
    assert re.search(r"BacksolveAdjoint\(; autojacvec = vjp, checkpointing = true\)", solve)
    assert re.search(r"InterpolatingAdjoint\(; autojacvec = vjp, checkpointing = false\)", solve)
    assert 'dense_forward(name::AbstractString) = name == "interpolating"' in solve


KNOWN_UUIDS = {  # from each package's own Project.toml at the version in julia/README.md
    "ChainRulesCore": "d360d2e6-b24c-11e9-a2a3-2a2ae2dbcce4",
    "DLPack": "53c2dc0f-f7d5-43fd-8906-6c0220547083",
    "JSON": "682c06a0-de6a-54ab-a142-c8b1cf79cde6",
    "Logging": "56ddb016-857b-54e1-b83d-db4d58db5568",
    "NNlib": "872c559c-99b0-510c-b3b7-b6c96a88d5cd",
    "OrdinaryDiffEqLowOrderRK": "1344f307-1e59-4825-a18e-ace9aa3fa4c6",
    "PrecompileTools": "aea7be01-6a6a-4083-8856-8a6e6704d82a",
    "SciMLBase": "0bca4576-84f4-4d90-8ffe-ffa030f20462",
    "SciMLSensitivity": "1ed8b502-d754-442c-8d5d-10ac956f44a1",
    "LinearAlgebra": "37e2e46d-f89d-539d-b4ee-838fcccc9c8e",
    "Test": "8dfed614-e22c-5e08-85e1-65c5234f0b40",
    "Zygote": "e88e6eb3-aa80-5325-afca-941959d7151f",
    "CUDA": "052768ef-5323-5732-b1bb-66c8b64840ba",
}


def test_project_toml():
    project = _project()
    deps, extras, compat = project["deps"], project["extras"], project["compat"]
    for name, uuid in {**deps, **extras}.items():
        assert KNOWN_UUIDS[name] == uuid, name
    # CUDA only as a weak dependency with its extension: CPU users never install or load it
    assert project["weakdeps"] == {"CUDA": KNOWN_UUIDS["CUDA"]}
    assert project["extensions"] == {"PyHBNODEBridgeCUDAExt": "CUDA"}
    assert sorted(p.name for p in (BRIDGE_DIR / "ext").iterdir()) == ["PyHBNODEBridgeCUDAExt.jl"]
    assert compat["CUDA"] == "~5.9.7"   # [5.9.7, 5.10): the reviewed release, see julia/README.md, "GPU"
    assert "CUDA" in extras and "CUDA" in project["targets"]["test"]   # runtests.jl's GPU testset
    assert set(deps) | set(extras) | {"julia"} == set(compat)
    assert compat["julia"] == "1.10"
    assert set(project["targets"]["test"]) == set(extras)


def test_juliapkg_json_matches_the_project():
    data = json.loads(JULIAPKG_JSON.read_text())
    assert JULIAPKG_JSON.parent == Path(pyhbnode.__file__).resolve().parent  # where juliapkg looks
    assert data["julia"] == _project()["compat"]["julia"]
    (name, pkg), = data["packages"].items()
    project = _project()
    assert name == project["name"] == "PyHBNODEBridge"
    assert UUID_RE.match(pkg["uuid"]) and pkg["uuid"] == project["uuid"] and pkg["dev"] is True
    assert (JULIAPKG_JSON.parent / pkg["path"]).resolve() == BRIDGE_DIR
    # juliapkg re-resolves only when a juliapkg.json changes: the bridge's version ties them
    assert pkg["version"] == "=" + project["version"]


# Digest of the bridge's [deps]/[weakdeps]/[extensions]/[compat]/[extras] at the version in Project.toml. When this
# fails: bump `version` in Project.toml AND in pyhbnode/juliapkg.json (so that installed
# environments re-resolve), then update both values here.
DEPS_DIGEST = ("0.3.1", "4ec071df0da681c1")


def test_dependency_changes_bump_the_bridge_version():
    import hashlib

    project = _project()
    text = json.dumps({k: project.get(k) for k in ("deps", "weakdeps", "extensions", "compat", "extras")},
                      sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    assert (project["version"], digest) == DEPS_DIGEST, (
        "PyHBNODEBridge's dependencies changed: bump its version in Project.toml and "
        "pyhbnode/juliapkg.json, then set DEPS_DIGEST = " + repr((project["version"], digest))
    )


def test_runtests_covers_every_fixture_and_both_adjoints():
    text = (BRIDGE_DIR / "test" / "runtests.jl").read_text()
    for needle in ('FIXTURES["zoo"]', 'FIXTURES["cases"]', "Zygote.pullback", "(L(u, p .+ e) - L(u, p .- e)) / 2h",
                   '"backsolve"', '"interpolating"', "seminorm = true", "hit_maxiters", "naive_xcorr",
                   "selftest", "Float32", "p_formula", "u_formula"):
        assert needle in text, needle


def test_selftest_spec_is_what_python_writes():
    import math

    from torch import nn

    import julia_emulate as emulate
    from pyhbnode import GHBNODE, TimeSequential, TPad
    from pyhbnode.solving.backends.julia._spec import describe, unpack_parameters

    field = GHBNODE(TimeSequential(nn.Linear(2, 3), nn.Tanh(), TPad(), nn.Linear(4, 2))).double()
    text = (BRIDGE_DIR / "src" / "selftest.jl").read_text()
    julia_spec = json.loads(re.search(r'const SELFTEST_SPEC = """(.*?)"""', text, re.S).group(1))
    spec = describe(field)
    assert spec.data == julia_spec
    # selftest_params/selftest_state, evaluated by torch and by the emulation, agree
    p = torch.tensor([0.1 * math.sin(3.0 * i) for i in range(1, 22)], dtype=torch.float64)
    u = torch.tensor([0.5 * math.cos(2.0 * i) for i in range(1, 13)], dtype=torch.float64)
    du = emulate.build(spec.json).evaluate(u.numpy().reshape((2, 2, 3), order="F"), p.numpy(), 0.3)
    unpack_parameters(spec, field, p)
    with torch.no_grad():
        want = field(torch.tensor(0.3, dtype=torch.float64), u.reshape(3, 2, 2))
    assert float((torch.from_numpy(emulate.to_torch_layout(du).copy()) - want).abs().max()) <= 1e-14


def test_fixtures_are_current():
    """``PyHBNODEBridge/test/fixtures/cases.json`` = what ``tests/julia_cases.py`` computes
    now (regenerate with ``PYTHONPATH=. python tests/julia_cases.py``)."""
    from julia_cases import P_FORMULA, U_FORMULA, fixture_cases, load_fixtures, zoo_cases

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fresh, fresh_zoo = fixture_cases(), zoo_cases()
    finally:
        torch.set_num_threads(before)
    stored = load_fixtures()
    assert (stored["p_formula"], stored["u_formula"]) == (list(P_FORMULA), list(U_FORMULA))
    for group, now, keys, values in (
        ("cases", fresh, ("spec", "usize", "p", "u", "t", "ts", "cotangent", "reference_tol"), ("du", "ys", "du0", "dp")),
        ("zoo", fresh_zoo, ("spec", "usize", "t"), ("du",)),
    ):
        assert [c["name"] for c in stored[group]] == [c["name"] for c in now], group
        for s, f in zip(stored[group], now):
            for key in keys:
                assert s[key] == f[key], f"{s['name']}: {key} changed; regenerate the fixtures"
            for key in values:
                a, b = torch.tensor(s[key]), torch.tensor(f[key])
                assert float((a - b).abs().max()) <= 1e-9 * max(1.0, float(b.abs().max())), f"{s['name']}: {key}"
    assert JULIA_FIXTURE_BYTES_MAX >= (BRIDGE_DIR / "test" / "fixtures" / "cases.json").stat().st_size


JULIA_FIXTURE_BYTES_MAX = 400_000


# --- command line and docs -------------------------------------------------------------------

def test_subprocess_scripts_compile():
    from pyhbnode.solving.backends.julia.__main__ import INSTALL_SCRIPT

    compile(INSTALL_SCRIPT, "install", "exec")
    compile(detect.PROBE_SCRIPT, "probe", "exec")
    assert "juliapkg.resolve()" in INSTALL_SCRIPT and "selftest()" in INSTALL_SCRIPT


def test_install_cuda_adds_the_weak_dependency_at_its_compat():
    from pyhbnode.solving.backends.julia.__main__ import CUDA_PACKAGE, INSTALL_SCRIPT

    project = _project()
    name, uuid, version = CUDA_PACKAGE
    assert project["weakdeps"][name] == uuid and project["compat"][name] == version
    assert "juliapkg.add(name, uuid, version=version)" in INSTALL_SCRIPT
    assert INSTALL_SCRIPT.index("juliapkg.add(") < INSTALL_SCRIPT.index("juliapkg.resolve()")
    for script in (INSTALL_SCRIPT, detect.PROBE_SCRIPT):
        assert "import torch" not in script and 'assert "torch" not in sys.modules' in script


def test_cli_status_and_install_without_juliacall():
    cli = [sys.executable, "-m", "pyhbnode.solving.backends.julia"]
    proc = subprocess.run(cli + ["status"], capture_output=True, text=True, timeout=120, cwd=str(REPO),
                          env={**os.environ, "PYHBNODE_JULIA": "0"})
    assert proc.returncode == 0, proc.stderr
    assert "PyHBNODEBridge" in proc.stdout and "found" in proc.stdout and "declared by" in proc.stdout
    if importlib.util.find_spec("juliacall") is None:
        proc = subprocess.run(cli + ["install"], capture_output=True, text=True, timeout=120, cwd=str(REPO))
        assert proc.returncode == 2 and "pip install 'pyhbnode[julia]'" in proc.stderr


def test_readme_section():
    readme = (REPO / "julia" / "README.md").read_text()
    for needle in (detect.INSTALL_COMMAND, "precompil", "diffeqpy", "SciMLSensitivity",
                   "set_multithreading_enabled(False)", "spawn", "fork", "PYHBNODE_JULIA",
                   "pyhbnode/solving/backends/julia/PyHBNODEBridge", "Pkg.test",
                   "PYTHON_JULIACALL_THREADS", "PYTHON_JULIACALL_HANDLE_SIGNALS", "import juliacall",
                   "External calls", "v7.112.1", "flipped = true"):
        assert needle in readme, needle
    # every external function in the Julia sources appears in the table
    for name in ("adjoint_sensitivities", "BacksolveAdjoint", "InterpolatingAdjoint", "ZygoteVJP", "DP5",
                 "ODEProblem", "solve", "successful_retcode", "NNlib.conv", "JSON.parse",
                 "@non_differentiable", "from_dlpack", "share", "@compile_workload"):
        assert re.search(r"[`.]" + re.escape(name), readme), name


def test_julia_ci_workflow_runs_what_the_readme_promises():
    """`.github/workflows/julia.yml` (it cannot run here): Julia 1.10 and 1.11, CPU torch,
    the `julia` extra, `install`, the Python tests under PYHBNODE_JULIA=require, Pkg.test."""
    text = (REPO / ".github" / "workflows" / "julia.yml").read_text()
    for needle in ('julia: ["1.10", "1.11"]', "julia-actions/setup-julia@v2", "julia-actions/cache@v2",
                   "actions/checkout@v4", "actions/setup-python@v5",
                   "--index-url https://download.pytorch.org/whl/cpu", '".[julia,test]"',
                   detect.INSTALL_COMMAND, "PYHBNODE_JULIA: require", "pytest -q -rs tests/test_julia_*.py",
                   "--project=pyhbnode/solving/backends/julia/PyHBNODEBridge", "Pkg.test()"):
        assert needle in text, needle
    assert (REPO / "pyhbnode" / "solving" / "backends" / "julia" / "PyHBNODEBridge" / "Project.toml").is_file()
    assert text.index(detect.INSTALL_COMMAND) < text.index("PYHBNODE_JULIA: require")
