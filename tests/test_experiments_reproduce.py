"""Every ``pyhbnode reproduce`` experiment end to end on tiny data written here in the real
formats (IDX, CIFAR-10 binary batches, the benchmark CSVs, Walker2D ``.npy`` rollouts), at the
``--tiny`` scale; then the figures, ``--redraw``, resuming, and ``pyhbnode report`` over the runs.

The nine runs happen once per module (about half a minute on two cores together)."""
from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from pyhbnode import zoo
from pyhbnode.cli import main
from pyhbnode.experiments import registry
from pyhbnode.experiments.records import read_csv

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- tiny data in the real formats ------------------------------------------------------------

def _idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, n_train: int = 16, n_test: int = 8) -> None:
    rng = np.random.default_rng(0)
    d = root / "mnist"
    d.mkdir(parents=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        _idx(d / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), 2051)
        _idx(d / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10, 2049)


def write_cifar10(root: Path, n_train: int = 16, n_test: int = 8) -> None:
    rng = np.random.default_rng(1)
    d = root / "cifar10"
    d.mkdir(parents=True)
    for name, n in (("data_batch_1_first16.bin.gz", n_train), ("test_batch_first8.bin.gz", n_test)):
        records = np.concatenate([(np.arange(n) % 10)[:, None], rng.integers(0, 256, (n, 3072))], axis=1)
        with gzip.open(d / name, "wb") as fh:
            fh.write(records.astype(np.uint8).tobytes())


def write_silverbox(root: Path, n: int = 200) -> None:
    t = np.arange(n)
    v1 = 0.02 * np.sin(0.3 * t)
    v2 = 0.05 * np.sin(0.3 * t - 0.5)
    lines = ['"V1","V2",'] + [f"{a:.8e},{b:.8e}," for a, b in zip(v1, v2)]
    (root / "sb.csv").write_text("\n".join(lines))


def write_plane_vibration(root: Path, n: int = 400) -> None:
    rng = np.random.default_rng(2)
    data = rng.normal(size=(n, 5)) * np.array([12.0, 0.025, 0.24, 0.39, 0.36])
    lines = ['"Force","Voltage","Acceleration1","Acceleration2","Acceleration3","Fs",']
    for i, row in enumerate(data):
        lines.append(",".join(f"{v:.8e}" for v in row) + (",400," if i == 0 else ",,"))
    (root / "pv.csv").write_text("\n".join(lines) + "\n")


def write_walker(root: Path, files: int = 8, steps: int = 40) -> None:
    rng = np.random.default_rng(3)
    d = root / "walker"
    d.mkdir(parents=True)
    for i in range(files):
        np.save(d / f"rollout_{i:03d}.npy", np.cumsum(0.1 * rng.normal(size=(steps, 17)), axis=0))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_mnist(root)
    write_cifar10(root)
    write_silverbox(root)
    write_plane_vibration(root)
    write_walker(root)
    return root


FAMILY_EXPERIMENTS = ("pointcloud", "mnist", "cifar10", "walker2d", "silverbox-init")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir) -> dict[str, Path]:
    """All nine experiments at the tiny scale, the five the momentum family runs in with
    ``--models all``; ``{name: run_dir}``."""
    out = tmp_path_factory.mktemp("runs")
    done = {}
    for e in registry.EXPERIMENTS:
        run = out / e.name
        family = ["--models", "all"] if e.name in FAMILY_EXPERIMENTS else []
        code = main(["reproduce", e.name, "--tiny", "--quiet", "--out", str(run), "--data-dir", str(data_dir),
                     "--seed", "1", "--threads", "1", *family])
        assert code == 0, e.name
        done[e.name] = run
    return done


# What each experiment's run directory must hold besides config.json and results.csv.
FIGURES = {
    "hbode-vs-ode": ["trajectories.png", "distance.png"],
    "silverbox-init": ["growth.png"],
    "adjoint-decay": ["adjoint.png", "nfe.png", "loss.png"],
    "pointcloud": ["nfe_forward.png", "nfe_backward.png", "loss.png", "seed-0/separation.png", "seed-0/nfe.png"],
    "mnist": ["nfe.png", "loss.png", "metrics.png"],
    "cifar10": ["nfe.png", "loss.png", "metrics.png"],
    "nfe-vs-tol": ["nfe_vs_tol.png"],
    "plane-vibration": ["nfe.png", "loss.png", "curves.png"],
    "walker2d": ["nfe.png", "loss.png"],
}


def _png_ok(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 2000 and path.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("name", list(FIGURES))
def test_each_experiment_writes_results_config_and_figures(runs, name):
    run = runs[name]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["experiment"] == name and cfg["scale"] == "tiny" and cfg["seed"] == 1
    for key in ("pyhbnode", "torch", "backend", "device", "wall_seconds", "machine", "torch_threads", "command"):
        assert key in cfg, key
    assert cfg["torch_threads"] == 1
    assert "--tiny" in cfg["command"] and name in cfg["command"]
    rows = read_csv(run / "results.csv")
    assert rows
    for fig in FIGURES[name]:
        assert _png_ok(run / fig), fig


def test_training_runs_cover_every_model_with_nfe(runs):
    # With --models all: every model the task runs, the momentum family beside the heavy-ball five.
    for name in ("mnist", "cifar10", "plane-vibration", "walker2d"):
        rows = {r["model"]: r for r in read_csv(runs[name] / "results.csv")}
        assert set(rows) == set(zoo.models_for(registry.get(name).task)), name
        for r in rows.values():
            assert r["nfe_forward_mean"] > 0 and r["nfe_backward_mean"] > 0 and r["parameters"] > 0
    assert {"nesterovnode", "gnesterovnode", "adamnode"} <= {r["model"] for r in read_csv(runs["mnist"] / "results.csv")}
    assert json.loads((runs["walker2d"] / "config.json").read_text())["skipped_models"].keys() == {"adamnode"}
    for name in ("pointcloud", "silverbox-init"):
        rows = {r["model"]: r for r in read_csv(runs[name] / "results.csv")}
        assert set(rows) == set(zoo.MODELS), name
    rows = read_csv(runs["nfe-vs-tol"] / "results.csv")
    assert sorted({r["tol"] for r in rows}) == [1e-3, 1e-2] and len(rows) == 10
    adjoint = json.loads((runs["adjoint-decay"] / "adjoint.json").read_text())
    assert set(adjoint["models"]) == {"node", "hbnode", "ghbnode"}
    curves = json.loads((runs["plane-vibration"] / "curves.json").read_text())
    assert set(curves["models"]) == {"node", "anode", "sonode", "hbnode", "ghbnode"}
    assert np.asarray(curves["models"]["hbnode"]).shape == np.asarray(curves["truth"]).shape


def test_checkpoints_live_under_the_run_dir(runs):
    assert any((runs["mnist"] / "checkpoints").rglob("*")), "fit's checkpoints should be under <run>/checkpoints/"


def test_redraw_rebuilds_the_figures_from_saved_results(runs, capsys):
    for name in ("hbode-vs-ode", "silverbox-init", "adjoint-decay", "nfe-vs-tol", "plane-vibration", "pointcloud"):
        run = runs[name]
        for fig in FIGURES[name]:
            (run / fig).unlink()
        assert main(["reproduce", name, "--redraw", "--out", str(run)]) == 0
        for fig in FIGURES[name]:
            assert _png_ok(run / fig), (name, fig)
    capsys.readouterr()


def test_rerunning_resumes_instead_of_retraining(runs, data_dir, capsys):
    run = runs["walker2d"]
    before = read_csv(run / "results.csv")
    code = main(["reproduce", "walker2d", "--tiny", "--quiet", "--out", str(run), "--data-dir", str(data_dir),
                 "--seed", "1", "--models", "all"])
    assert code == 0
    after = read_csv(run / "results.csv")
    assert [r["final_loss"] for r in after] == pytest.approx([r["final_loss"] for r in before])
    capsys.readouterr()


def test_report_builds_tables_with_claims_and_verdicts(runs, tmp_path, capsys):
    out = tmp_path / "report.md"
    assert main(["report", *map(str, runs.values()), "--out", str(out), "--html"]) == 0
    text = out.read_text()
    for e in registry.EXPERIMENTS:
        assert f"(`{e.name}`)" in text and e.claim in text
    assert text.count("**Verdict:") == 9
    assert "| model | params | iters | mean fwd NFE | mean bwd NFE | s/epoch | test accuracy |" in text
    assert "HBNODE/NODE forward NFE" in text and "GHBNODE/NODE backward NFE" in text
    for line in text.splitlines():
        if line.startswith("!["):
            target = line.split("](")[1].rstrip(")")
            assert (out.parent / target).is_file(), target
    page = out.with_suffix(".html").read_text()
    assert page.startswith("<!doctype html>") and page.count("<h2") == 9
    # a parent folder works too
    parent = next(iter(runs.values())).parent
    assert main(["report", str(parent), "--out", str(tmp_path / "r2.md")]) == 0
    assert (tmp_path / "r2.md").read_text().count("**Verdict:") == 9
    capsys.readouterr()
