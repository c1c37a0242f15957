"""The zoo presets end to end: ``reproduce --preset``, ``compare --preset``, ``train --preset``
record the preset in ``config.json``, build the preset's models, and ``report`` sets runs of
both presets side by side; plus the ``--standard`` scale in the registry."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyhbnode.cli import main
from pyhbnode.experiments import registry
from pyhbnode.experiments.records import read_csv
from test_experiments_reproduce import write_plane_vibration


@pytest.fixture(scope="module")
def pointcloud_runs(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("preset-runs")
    runs = {}
    for preset in ("paper", "authors"):
        run = out / f"pointcloud-{preset}"
        code = main(["reproduce", "pointcloud", "--tiny", "--quiet", "--preset", preset, "--out", str(run),
                     "--models", "node", "ghbnode", "--threads", "1"])
        assert code == 0
        runs[preset] = run
    return runs


def test_reproduce_records_the_preset_and_builds_its_models(pointcloud_runs):
    for preset, run in pointcloud_runs.items():
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["preset"] == preset and f"--preset {preset}" in cfg["command"]
        seed_cfg = json.loads((run / "seed-0" / "config.json").read_text())
        assert seed_cfg["settings"]["preset"] == preset
        rows = {r["model"]: r for r in read_csv(run / "results.csv")}
        # the authors fix the point-cloud GHBNODE's ξ = 2: one learnable coefficient fewer
        assert rows["ghbnode"]["parameters"] == {"paper": 569, "authors": 568}[preset]
        assert rows["node"]["parameters"] == 525


def test_report_names_the_preset_and_compares_the_two(pointcloud_runs, tmp_path, capsys):
    out = tmp_path / "report.md"
    assert main(["report", *map(str, pointcloud_runs.values()), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| experiment | paper | scale | preset | wall time | verdict |" in text
    assert "| tiny | paper |" in text and "| tiny | authors |" in text
    assert "## Paper preset vs authors' preset" in text and "### pointcloud (tiny)" in text
    assert text.count("fwd NFE (paper / authors)") == 1
    capsys.readouterr()


def test_reproduce_sequence_task_with_authors_preset(tmp_path, capsys):
    write_plane_vibration(tmp_path)
    run = tmp_path / "pv"
    code = main(["reproduce", "plane-vibration", "--tiny", "--quiet", "--preset", "authors", "--models", "hbnode",
                 "--out", str(run), "--data-dir", str(tmp_path), "--threads", "1"])
    assert code == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["preset"] == "authors" and cfg["settings"]["build_kwargs"] == {"window": 8}
    # the authors' plane-vibration HBNODE learns ξ too; tiny windows of 8 stamps: 8*5 inputs to the initial state
    assert read_csv(run / "results.csv")[0]["parameters"] == 16127 - (64 - 8) * 5 * 40
    capsys.readouterr()


def test_compare_and_train_take_a_preset(tmp_path, capsys):
    out = tmp_path / "compare"
    assert main(["compare", "pointcloud", "--models", "ghbnode", "--iters", "2", "--tol", "1e-3", "--quiet",
                 "--preset", "authors", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["preset"] == "authors"
    assert read_csv(out / "results.csv")[0]["parameters"] == 568
    run = tmp_path / "train"
    assert main(["train", "--task", "pointcloud", "--model", "ghbnode", "--epochs", "1", "--tol", "1e-3", "--quiet",
                 "--preset", "authors", "--out", str(run)]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["config"]["preset"] == "authors"
    assert read_csv(run / "results.csv")[0]["parameters"] == 568
    with pytest.raises(SystemExit):
        main(["train", "--task", "pointcloud", "--model", "ghbnode", "--preset", "nope"])
    capsys.readouterr()


def test_every_experiment_has_a_standard_scale_at_the_papers_settings():
    for e in registry.EXPERIMENTS:
        std, full = e.settings("standard"), e.settings("full")
        assert std, e.name
        for key in ("batch_size", "tol", "lr", "seq_len", "stamps"):
            if key in full and key in std:
                assert std[key] == full[key], (e.name, key)
    assert registry.get("pointcloud").settings("standard")["seeds"] == 20
    assert registry.get("mnist").settings("standard")["test_limit"] == 2000
    assert registry.get("nfe-vs-tol").settings("standard")["train_iters"] > 0


def test_nfe_vs_tol_measures_each_pass_on_its_own_not_the_layers_running_totals():
    """The trained-field measurement once read the layers' running totals (training included)."""
    import torch

    from pyhbnode import record, zoo
    from pyhbnode.experiments.nfe_vs_tol import measure_nfe

    torch.manual_seed(0)
    model = zoo.build("mnist", "hbnode", tol=1e-3)
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    for _ in range(3):  # "training" before the measurement
        torch.nn.functional.cross_entropy(model(x), y).backward()
    first = measure_nfe(model, [(x, y)], [1e-3, 1e-4])
    assert measure_nfe(model, [(x, y)], [1e-3, 1e-4]) == first
    model.zero_grad()
    with record() as rec:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    assert first[-1][1:] == (rec.stats.nfe_forward, rec.stats.nfe_backward)
    assert all(fwd % 6 == 2 for _, fwd, _ in first)  # one dopri5 solve: 2 start-up + 6 per attempt


def _fake_mnist_run(path: Path, preset: str, rows: dict[str, tuple[float, float, float]], max_batches: int) -> Path:
    """A run directory as ``reproduce mnist`` writes it, cut to what ``report`` reads."""
    from pyhbnode.experiments.records import write_csv

    path.mkdir(parents=True)
    settings = {"train_limit": None, "test_limit": 2000, "batch_size": 64, "max_batches": max_batches}
    (path / "config.json").write_text(json.dumps({
        "experiment": "mnist", "scale": "standard", "preset": preset, "experiment_settings": settings,
        "settings": {"task": "mnist", "preset": preset}, "wall_seconds": 1.0}))
    write_csv([{"model": m, "parameters": 1, "status": "ok", "iterations": max_batches, "nfe_forward_mean": f,
                "nfe_backward_mean": b, "final_val_accuracy": acc} for m, (f, b, acc) in rows.items()],
              path / "results.csv")
    return path


def test_report_pairs_runs_of_equal_settings_and_judges_a_partial_authors_run_on_the_papers_baselines(tmp_path):
    from pyhbnode.experiments.report import build_report

    paper = {"node": (33.6, 31.6, 0.84), "anode": (28.6, 26.6, 0.86), "sonode": (26.0, 24.0, 0.85),
             "hbnode": (26.0, 24.0, 0.86), "ghbnode": (26.2, 24.2, 0.85)}
    runs = [_fake_mnist_run(tmp_path / "mnist-standard", "paper", paper, 60),
            _fake_mnist_run(tmp_path / "mnist-standard-200", "paper", {m: (99.0, 97.0, 0.9) for m in paper}, 200),
            _fake_mnist_run(tmp_path / "mnist-standard-authors", "authors", {"ghbnode": (32.0, 30.0, 0.85)}, 60)]
    out = tmp_path / "report.md"
    build_report(runs, out)
    text = out.read_text()
    assert text.count("### mnist (standard)") == 1
    assert "| ghbnode | 26.2 / 32 |" in text  # paired with the 60-iteration paper run, not the 200-iteration one
    assert "With the paper run's NODE, ANODE, SONODE, HBNODE" in text
    assert "GHBNODE/NODE forward NFE = 0.952" in text


def test_a_rerun_of_the_same_run_adds_its_wall_time_and_another_run_starts_over(tmp_path, capsys):
    from pyhbnode.training.metadata import with_wall_time

    run = tmp_path / "hb"
    args = ["reproduce", "hbode-vs-ode", "--tiny", "--quiet", "--out", str(run)]
    assert main(args) == 0
    first = json.loads((run / "config.json").read_text())
    assert first["wall_seconds_total"] == first["wall_seconds"]
    assert main(args) == 0
    second = json.loads((run / "config.json").read_text())
    assert second["wall_seconds_total"] == pytest.approx(first["wall_seconds_total"] + second["wall_seconds"], abs=0.02)
    # a config of another run in the folder (other settings, seed or preset) is not added
    assert with_wall_time({**second, "seed": 1}, run / "config.json", 2.0)["wall_seconds_total"] == 2.0
    assert with_wall_time(second, tmp_path / "absent.json", 2.0)["wall_seconds_total"] == 2.0
    capsys.readouterr()
