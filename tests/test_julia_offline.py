"""The Julia backend's machinery that runs without Julia: availability detection (never
imports juliacall, never starts a subprocess when switched off, never hangs), the
``backend="julia"``/``"auto"`` fallbacks, import hygiene, the name tables (sensealgs, VJPs,
retcodes, exceptions) and their Julia twins, the Julia package's files and fixtures.
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
from pyhbnode.julia import BRIDGE_DIR, JULIAPKG_JSON, detect, maps
from pyhbnode.julia.bridge import solver_error
from pyhbnode.solving import backends as registry

REPO = Path(__file__).resolve().parents[1]
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
JULIA_ENV_VARS = ("PYTHON_JULIACALL_EXE", "PYTHON_JULIACALL_BINDIR", "PYTHON_JULIAPKG_EXE",
                  "PYTHON_JULIAPKG_PROJECT", "CONDA_PREFIX", "JULIA_DEPOT_PATH")


@pytest.fixture(autouse=True)
def _fresh_detection():
    detect.reset()
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
    assert "pip install 'pyhbnode[julia]'" in reason and "python -m pyhbnode.julia install" in reason


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
    assert argv[0] == sys.executable and "using PyHBNODEBridge" in argv[-1] and "selftest()" in argv[-1]
    assert timeout == 42.0
    assert env["PYTHON_JULIAPKG_OFFLINE"] == "yes" and env["JULIA_PKG_OFFLINE"] == "true"
    assert env["PYTHON_JULIACALL_AUTOLOAD_IPYTHON_EXTENSION"] == "no"


def test_probe_failure_and_timeout_give_reasons(monkeypatch):
    _with_julia(monkeypatch, lambda *a, **k: _Completed(1, stderr="ERROR: LoadError\nPackage PyHBNODEBridge not found\n"))
    ok, reason = detect.available()
    assert not ok and "Package PyHBNODEBridge not found" in reason and "pyhbnode.julia install" in reason
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
    import pyhbnode.julia.runtime as runtime

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
    from pyhbnode.julia.cases import build_case

    case = build_case("hbnode", "mlp")
    return case.field, case.y0, case.ts


def test_backend_julia_without_julia_raises_quickly_with_advice(monkeypatch, no_julia):
    monkeypatch.setattr(detect.importlib.util, "find_spec", _fake_find_spec(set()))
    field, y0, ts = _field_and_state()
    start = time.monotonic()
    with pytest.raises(JuliaBackendUnavailable) as info:
        odeint(field, y0, ts, backend="julia")
    assert time.monotonic() - start < 5
    assert isinstance(info.value, ImportError)
    assert "pip install 'pyhbnode[julia]'" in str(info.value) and "backend='torchdiffeq'" in str(info.value)


def test_backend_auto_falls_back_with_exactly_one_warning(monkeypatch):
    monkeypatch.setattr(pyhbnode.julia, "available", lambda **kw: (False, "no Julia here"))
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
        "from pyhbnode.julia import available\n"
        "assert 'juliacall' not in sys.modules and 'juliapkg' not in sys.modules\n"
        "assert 'diffeqpy' not in sys.modules\n"
        "y0 = torch.zeros(2, 2, 3, dtype=torch.float64)\n"
        "field = pyhbnode.HBNODE(torch.nn.Linear(3, 3)).double()\n"
        "odeint(field, y0, [0.0, 1.0], backend='torchdiffeq')\n"
        "try:\n"
        "    odeint(field, y0, [0.0, 1.0], backend='julia')\n"
        "except pyhbnode.JuliaBackendUnavailable:\n"
        "    pass\n"
        "assert 'juliacall' not in sys.modules, 'julia fallback imported juliacall'\n"
        "print('CLEAN')\n"
    )
    proc = _run_python(code, {"PYHBNODE_JULIA": "0"})
    assert proc.returncode == 0 and "CLEAN" in proc.stdout, proc.stderr[-2000:]


def test_julia_subpackage_imports_neither_torch_nor_juliacall():
    """``pyhbnode/__init__`` can run ``pyhbnode.julia._preload`` before importing torch."""
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('pyhbnode'); pkg.__path__ = [{str(REPO / 'pyhbnode')!r}]\n"
        "sys.modules['pyhbnode'] = pkg\n"
        "import pyhbnode.julia, pyhbnode.julia._preload, pyhbnode.julia.detect, pyhbnode.julia.maps\n"
        "assert pyhbnode.julia._preload.run() is False\n"
        "ok, reason = pyhbnode.julia.available()\n"
        "bad = [m for m in ('torch', 'juliacall', 'juliapkg') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('CLEAN', ok)\n"
    )
    proc = _run_python(code, {"PYHBNODE_JULIA": "0"})
    assert proc.returncode == 0 and "CLEAN False" in proc.stdout, proc.stderr[-2000:]


def test_preload_with_switch_on_and_no_juliacall_gives_advice():
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('pyhbnode'); pkg.__path__ = [{str(REPO / 'pyhbnode')!r}]\n"
        "sys.modules['pyhbnode'] = pkg\n"
        "import builtins\n"
        "real = builtins.__import__\n"
        "def no_juliacall(name, *a, **k):\n"
        "    if name == 'juliacall':\n"
        "        raise ImportError('No module named juliacall')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = no_juliacall\n"
        "from pyhbnode.julia import _preload\n"
        "try:\n"
        "    _preload.run()\n"
        "except ImportError as err:\n"
        "    print('ADVICE', err)\n"
    )
    proc = _run_python(code, {"PYHBNODE_JULIA": "1"})
    assert "ADVICE" in proc.stdout and "pip install 'pyhbnode[julia]'" in proc.stdout, proc.stderr[-2000:]


# --- name tables -----------------------------------------------------------------------------

def test_parse_adjoint():
    assert str(maps.parse_adjoint("interpolating")) == "interpolating:zygote"
    a = maps.parse_adjoint("Gauss+Checkpointing:Enzyme")
    assert (a.sensealg, a.vjp, a.checkpointing, a.dense_forward) == ("gauss+checkpointing", "enzyme", True, False)
    assert maps.parse_adjoint("backsolve").checkpointing is True
    assert maps.parse_adjoint("quadrature:reversediff-compiled").dense_forward
    for bad in ("direct", "adjoint", "interpolating:auto", ""):
        with pytest.raises(ValueError, match="choose one of"):
            maps.parse_adjoint(bad)
    with pytest.raises(TypeError):
        maps.parse_adjoint(None)
    assert maps.DEFAULT_SENSEALG == "interpolating"


@pytest.mark.parametrize("retcode,cls", [
    ("MaxIters", MaxStepsExceeded), ("DtLessThanMin", StepSizeUnderflow), ("Unstable", NonFiniteState),
    ("DtNaN", NonFiniteState), ("Failure", SolverFailure), ("ConvergenceFailure", SolverFailure),
])
def test_retcode_table(retcode, cls):
    err = solver_error(retcode, phase="forward", t=0.25, dt=1e-9, nfe_forward=42)
    assert type(err) is cls and isinstance(err, RuntimeError)
    assert err.t == 0.25 and err.nfe_forward == 42 and err.status is cls.status
    assert retcode in str(err) and "t = 0.25" in str(err)
    assert retcode not in maps.SUCCESS_RETCODES


def test_exception_table():
    assert maps.exception_error("MethodError")[0] == "TypeError"
    assert maps.exception_error("DimensionMismatch") == ("ValueError", "")
    assert maps.exception_error("OutOfGPUMemoryError")[0] == "MemoryError"
    assert maps.exception_error("InterruptException")[0] == "KeyboardInterrupt"
    assert maps.exception_error("LoadError")[0] == "JuliaBackendError"


def _julia_source(name: str) -> str:
    return (BRIDGE_DIR / "src" / name).read_text()


def test_python_and_julia_tables_agree():
    src = _julia_source("solve.jl")
    rows = re.findall(r'"([a-z+]+)" => \(:(\w+), (true|false), (true|false)\)', src)
    table = {n: (k, c == "true", d == "true") for n, k, c, d in rows}
    assert set(table) == set(maps.SENSEALGS)
    for name, (kind, ckpt, dense) in table.items():
        assert ckpt == maps.SENSEALGS[name][1], name
        assert dense == (name in maps.DENSE_SENSEALGS), name
        assert kind.lower() in maps.SENSEALGS[name][0].lower()
    vjps = set(re.findall(r'name == "([a-z-]+)" && return', src))
    assert vjps == set(maps.VJPS)
    retcodes_used = {"MaxIters", "DtLessThanMin", "Unstable", "DtNaN"}
    assert all(maps.retcode_error(r) != "SolverFailure" for r in retcodes_used)


# --- the Julia package -----------------------------------------------------------------------

DESIGN_UUIDS = {
    "SciMLSensitivity": "1ed8b502-d754-442c-8d5d-10ac956f44a1",
    "Zygote": "e88e6eb3-aa80-5325-afca-941959d7151f",
    "Lux": "b2108857-7c20-44ae-9111-449ecde12c47",
    "ComponentArrays": "b0b7db55-cfe3-40fc-9ded-d10e2dbeff66",
    "DLPack": "53c2dc0f-f7d5-43fd-8906-6c0220547083",
}


def test_juliapkg_json_is_valid():
    data = json.loads(JULIAPKG_JSON.read_text())
    assert JULIAPKG_JSON.parent == Path(pyhbnode.__file__).resolve().parent
    assert re.fullmatch(r"\^?\d+\.\d+(\.\d+)?", data["julia"]) and data["julia"].lstrip("^") >= "1.10"
    (name, pkg), = data["packages"].items()
    assert name == "PyHBNODEBridge"
    assert UUID_RE.match(pkg["uuid"]) and pkg["dev"] is True
    target = (JULIAPKG_JSON.parent / pkg["path"]).resolve()
    assert target == BRIDGE_DIR and (target / "Project.toml").is_file()
    project = tomllib.loads((target / "Project.toml").read_text())
    assert project["name"] == name and project["uuid"] == pkg["uuid"]


def test_project_toml():
    project = tomllib.loads((BRIDGE_DIR / "Project.toml").read_text())
    deps, weak, compat = project["deps"], project["weakdeps"], project["compat"]
    for name, uuid in DESIGN_UUIDS.items():
        assert deps[name] == uuid
    assert weak == {"CUDA": "052768ef-5323-5732-b1bb-66c8b64840ba", "cuDNN": "02a925ec-e4fe-4b08-9a7e-0d78e3d38ccd"}
    assert project["extensions"] == {"PyHBNODEBridgeCUDAExt": ["CUDA", "cuDNN"]}
    assert (BRIDGE_DIR / "ext" / "PyHBNODEBridgeCUDAExt.jl").is_file()
    for uuid in list(deps.values()) + list(weak.values()) + [project["uuid"]]:
        assert UUID_RE.match(uuid)
    assert set(deps) | set(weak) | {"julia", "Test"} == set(compat)
    assert compat["julia"] == "1.10"
    assert "OrdinaryDiffEqLowOrderRK" in deps and "PrecompileTools" in deps
    # every `using X` in the sources is a dependency
    used = set()
    for path in (BRIDGE_DIR / "src").glob("*.jl"):
        used |= set(re.findall(r"^using (\w+)", path.read_text(), re.M))
    assert used <= set(deps) | {"PyHBNODEBridge"}


def test_julia_sources_are_complete():
    main = _julia_source("PyHBNODEBridge.jl")
    for part in ("layers.jl", "fields.jl", "solve.jl", "selftest.jl", "workload.jl"):
        assert f'include("{part}")' in main and (BRIDGE_DIR / "src" / part).is_file()
    solve = _julia_source("solve.jl")
    for needle in ("adjoint_sensitivities", "DP5()", "InterpolatingAdjoint", "BacksolveAdjoint",
                   "QuadratureAdjoint", "GaussAdjoint", "ZygoteVJP(", "EnzymeVJP()", "dgdu_discrete",
                   "successful_retcode", "sol.stats", "internalnorm", "saveat = ts"):
        assert needle in solve, needle
    fields = _julia_source("fields.jl")
    assert "ComponentArray(p, r.axes)" in fields and "@non_differentiable count!" in fields
    layers = _julia_source("layers.jl")
    assert "cross_correlation = true" in layers and "Lux.Dense" in layers
    assert "@compile_workload" in _julia_source("workload.jl")


def test_runtests_covers_zygote_and_finite_differences():
    text = (BRIDGE_DIR / "test" / "runtests.jl").read_text()
    assert "Zygote.pullback" in text
    assert "finite differences" in text and "(L(u, p .+ e) - L(u, p .- e)) / 2h" in text
    assert "fixtures" in text and "cases.json" in text
    assert "selftest" in text and "naive_xcorr" in text
    assert (BRIDGE_DIR / "test" / "cuda.jl").is_file()


def test_julia_sources_parse_if_tree_sitter_is_available():
    """Syntax check of every .jl file where tree-sitter-julia is installed (dev tool)."""
    if importlib.util.find_spec("tree_sitter_julia") is None or importlib.util.find_spec("tree_sitter") is None:
        pytest.skip("tree-sitter-julia not installed (pip install tree-sitter tree-sitter-julia)")
    import tree_sitter_julia
    from tree_sitter import Language, Parser

    parser = Parser(Language(tree_sitter_julia.language()))
    for path in BRIDGE_DIR.rglob("*.jl"):
        tree = parser.parse(path.read_bytes())
        stack, bad = [tree.root_node], []
        while stack:
            node = stack.pop()
            if node.type == "ERROR" or node.is_missing:
                bad.append(node.start_point[0] + 1)
            stack.extend(node.children)
        assert not bad, f"{path.name}: syntax errors at lines {sorted(bad)}"


def test_selftest_spec_is_what_python_writes():
    from torch import nn

    from pyhbnode import GHBNODE, TimeSequential, TPad
    from pyhbnode.julia import emulate
    from pyhbnode.julia.spec import describe

    field = GHBNODE(TimeSequential(nn.Linear(2, 3), nn.Tanh(), TPad(), nn.Linear(4, 2))).double()
    text = _julia_source("selftest.jl")
    julia_spec = json.loads(re.search(r'const SELFTEST_SPEC = """(.*?)"""', text, re.S).group(1))
    assert describe(field).data == julia_spec
    # selftest_params/selftest_state, evaluated by torch and by the emulation, agree
    import math

    p = torch.tensor([0.1 * math.sin(3.0 * i) for i in range(1, 22)], dtype=torch.float64)
    u = torch.tensor([0.5 * math.cos(2.0 * i) for i in range(1, 13)], dtype=torch.float64)
    em = emulate.build(describe(field).json)
    du = em.evaluate(u.numpy().reshape((2, 2, 3), order="F"), p.numpy(), 0.3)
    with torch.no_grad():
        offset = 0
        for entry, piece_param in zip(julia_spec["params"], [field.f.layers[0].weight, field.f.layers[0].bias,
                                                           field.f.layers[3].weight, field.f.layers[3].bias,
                                                           field.damping.omega, field.restoring.chi]):
            n = math.prod(entry["size"])
            block = p[offset:offset + n].numpy().reshape(entry["size"], order="F")
            piece_param.copy_(torch.from_numpy(block.copy()).reshape(piece_param.shape))
            offset += n
        want = field(torch.tensor(0.3, dtype=torch.float64), u.reshape(3, 2, 2))
    assert float((torch.from_numpy(emulate.to_torch_layout(du).copy()) - want).abs().max()) <= 1e-14


def test_fixtures_are_current():
    """``PyHBNODEBridge/test/fixtures/cases.json`` = what ``pyhbnode.julia.cases`` computes now
    (regenerate with ``python -m pyhbnode.julia.cases``)."""
    from pyhbnode.julia.cases import fixture_cases, load_fixtures

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fresh = fixture_cases()
    finally:
        torch.set_num_threads(before)
    stored = load_fixtures()
    assert [c["name"] for c in stored] == [c["name"] for c in fresh]
    for s, f in zip(stored, fresh):
        for key in ("spec", "usize", "p", "u", "t", "ts", "cotangent", "reference_tol"):
            assert s[key] == f[key], f"{s['name']}: {key} changed; regenerate the fixtures"
        for key in ("du", "ys", "du0", "dp"):
            a, b = torch.tensor(s[key]), torch.tensor(f[key])
            assert float((a - b).abs().max()) <= 1e-9 * max(1.0, float(b.abs().max())), f"{s['name']}: {key}"


# --- command line and docs -------------------------------------------------------------------

def test_subprocess_scripts_compile():
    from pyhbnode.julia.__main__ import CUDA_PACKAGES, INSTALL_SCRIPT

    script = INSTALL_SCRIPT.format(cuda_packages=CUDA_PACKAGES)
    compile(script, "install", "exec")
    compile(detect.PROBE_SCRIPT, "probe", "exec")
    assert "juliapkg.resolve()" in script and "selftest()" in script and "import torch" not in script
    assert "import torch" not in detect.PROBE_SCRIPT


def test_cli_status_and_install_without_juliacall():
    proc = subprocess.run([sys.executable, "-m", "pyhbnode.julia", "status"], capture_output=True,
                          text=True, timeout=120, cwd=str(REPO), env={**os.environ, "PYHBNODE_JULIA": "0"})
    assert proc.returncode == 0, proc.stderr
    assert "PyHBNODEBridge" in proc.stdout and "found" in proc.stdout
    if importlib.util.find_spec("juliacall") is None:
        proc = subprocess.run([sys.executable, "-m", "pyhbnode.julia", "install"], capture_output=True,
                              text=True, timeout=120, cwd=str(REPO))
        assert proc.returncode == 2 and "pip install 'pyhbnode[julia]'" in proc.stderr


def test_readme_section():
    readme = (REPO / "julia" / "README.md").read_text()
    for needle in ("python -m pyhbnode.julia install", "precompil", "--cuda", "diffeqpy",
                   "SciMLSensitivity", "set_multithreading_enabled(False)", "spawn", "fork",
                   "PYHBNODE_JULIA", "pyhbnode/julia/PyHBNODEBridge", "Pkg.test", "VERIFY"):
        assert needle in readme, needle
