"""The built wheel carries ``pyhbnode/juliapkg.json`` and what users run of the Julia
package (``Project.toml``, ``src/``, ``ext/``), so that juliacall finds and develops
``PyHBNODEBridge`` after ``pip install pyhbnode[julia]``; not its ``test/`` folder and
fixtures (``Pkg.test`` runs from a checkout), nor the Python test helpers."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BRIDGE = REPO / "pyhbnode" / "solving" / "backends" / "julia" / "PyHBNODEBridge"
PREFIX = "pyhbnode/solving/backends/julia/PyHBNODEBridge"


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> set[str]:
    # Build from a copy so that setuptools' build/ and *.egg-info stay out of the work tree.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "MANIFEST.in", "setup.py", "setup.cfg", "LICENSE"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "pyhbnode", src / "pyhbnode", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        cwd=str(src), capture_output=True, text=True, timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    wheels = list(out.glob("pyhbnode-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as zf:
        names = set(zf.namelist())
        juliapkg = json.loads(zf.read("pyhbnode/juliapkg.json"))
    assert juliapkg["packages"]["PyHBNODEBridge"]["path"] == "solving/backends/julia/PyHBNODEBridge"
    return names


def test_wheel_ships_what_users_run_of_the_julia_package(wheel_names):
    shipped = {"pyhbnode/juliapkg.json", f"{PREFIX}/Project.toml"}
    for folder in ("src", "ext"):
        shipped |= {f"{PREFIX}/{folder}/{p.name}" for p in (BRIDGE / folder).glob("*.jl")}
    assert f"{PREFIX}/src/PyHBNODEBridge.jl" in shipped and f"{PREFIX}/ext/PyHBNODEBridgeCUDAExt.jl" in shipped
    missing = sorted(shipped - wheel_names)
    assert not missing, f"missing from the wheel: {missing}"
    extra = sorted(n for n in wheel_names if n.startswith(PREFIX + "/") and n not in shipped)
    assert not extra, f"in the wheel but not run by users (test/, fixtures, ...): {extra}"
    assert (BRIDGE / "test" / "runtests.jl").is_file()  # it exists, and stays in the checkout


def test_wheel_contains_the_python_bridge_and_no_test_helpers(wheel_names):
    for module in ("__init__", "__main__", "errors", "_backend", "_detect", "_env", "_maps", "_runtime", "_spec"):
        assert f"pyhbnode/solving/backends/julia/{module}.py" in wheel_names
    assert not any("pyhbnode/julia/" in n for n in wheel_names)
    assert not any(n.endswith(("cases.py", "emulate.py")) for n in wheel_names)
