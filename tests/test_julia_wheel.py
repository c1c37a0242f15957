"""The built wheel carries ``pyhbnode/juliapkg.json`` and what users run of the Julia
package (``Project.toml``, ``src/``, ``ext/``), so that juliacall finds and develops
``PyHBNODEBridge`` after ``pip install pyhbnode[julia]``; not its ``test/`` folder and
fixtures (``Pkg.test`` runs from a checkout), nor the Python test helpers."""
from __future__ import annotations

import json
import re
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
def built_wheel(tmp_path_factory) -> Path:
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
    return wheels[0]


@pytest.fixture(scope="module")
def wheel_names(built_wheel) -> set[str]:
    with zipfile.ZipFile(built_wheel) as zf:
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


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_wheel_holds_what_users_need_and_nothing_else(built_wheel, wheel_names):
    """The whole listing: every module of the package and its data files, the metadata,
    and nothing else (no tests, examples, docs, benchmarks, experiments or build debris)."""
    version = _pyproject()["project"]["version"]
    dist_info = f"pyhbnode-{version}.dist-info/"
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "pyhbnode").rglob("*.py")
               if "__pycache__" not in p.parts}
    bridge = {p.relative_to(REPO).as_posix() for folder in ("src", "ext") for p in (BRIDGE / folder).glob("*.jl")}
    data = {"pyhbnode/py.typed", "pyhbnode/juliapkg.json", f"{PREFIX}/Project.toml"} | bridge
    package = {n for n in wheel_names if not n.startswith(dist_info)}
    assert not modules - package, f"modules missing from the wheel: {sorted(modules - package)}"
    assert not data - package, f"data files missing from the wheel: {sorted(data - package)}"
    assert not package - modules - data, f"in the wheel but not part of the package: {sorted(package - modules - data)}"

    metadata = {n[len(dist_info):] for n in wheel_names if n.startswith(dist_info)}
    required = {"METADATA", "WHEEL", "RECORD", "entry_points.txt", "top_level.txt"}
    licences = {n for n in metadata if n.rsplit("/", 1)[-1] == "LICENSE"}
    assert required <= metadata and len(licences) == 1, sorted(metadata)
    assert metadata - required - licences == set(), f"unexpected metadata files: {sorted(metadata - required - licences)}"

    with zipfile.ZipFile(built_wheel) as zf:
        meta = zf.read(dist_info + "METADATA").decode()
        entry_points = zf.read(dist_info + "entry_points.txt").decode()
    assert f"Version: {version}" in meta.splitlines()
    # the command users run, pointing at a module that ships
    script = next(line for line in entry_points.splitlines() if line.replace(" ", "").startswith("pyhbnode="))
    module = script.split("=", 1)[1].strip().split(":")[0].replace(".", "/")
    assert f"{module}.py" in package or f"{module}/__init__.py" in package, script
    # the README is the package index's long description; build and docs tools stay in extras
    assert "# pyhbnode" in meta
    requires = re.findall(r"^Requires-Dist: ([A-Za-z0-9_.-]+)(.*)$", meta, flags=re.M)
    for name, rest in requires:
        if name.lower() in ("mkdocs", "mkdocs-material", "mkdocstrings-python", "build", "twine", "pytest"):
            assert "extra ==" in rest, f"{name} must only be an extra's requirement: {name}{rest}"
    assert any(name == "torch" and "extra" not in rest for name, rest in requires)
