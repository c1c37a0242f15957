"""The experiment registry, the ``reproduce``/``report`` command lines and the verdict logic
(no training here: these run in well under a second each)."""
from __future__ import annotations

import json

import pytest

from pyhbnode.cli import main
from pyhbnode.experiments import registry
from pyhbnode.cli.reproduce import EXIT_DATA_MISSING, parse_overrides
from pyhbnode.experiments.common import (
    HELD, NOT_ASSESSED, NOT_HELD, PARTLY, combine_verdicts, metric_verdict, nfe_verdict,
)

PAPER_FIGURES = {"hbode-vs-ode": "Fig. 2", "silverbox-init": "Fig. 3", "adjoint-decay": "Fig. 4",
                 "pointcloud": "Fig. 5", "mnist": "Fig. 6", "cifar10": "Fig. 1", "nfe-vs-tol": "Fig. 7",
                 "plane-vibration": "Fig. 8", "walker2d": "Fig. 9"}


def test_registry_holds_the_nine_experiments_of_the_paper():
    assert {e.name: e.figure for e in registry.EXPERIMENTS} == PAPER_FIGURES
    for e in registry.EXPERIMENTS:
        assert e.claim and e.description and e.data and e.models
        for scale in registry.SCALES:
            assert isinstance(e.settings(scale), dict) and e.settings(scale)
        # the three entry points exist and are callable
        assert callable(e.run) and callable(e.redraw) and callable(e.assess)


def test_registry_lookup_accepts_underscores_and_rejects_unknown_names():
    assert registry.get("plane_vibration").name == "plane-vibration"
    with pytest.raises(ValueError, match="--list"):
        registry.get("imagenet")
    with pytest.raises(ValueError, match="scale"):
        registry.get("mnist").settings("huge")


def test_full_settings_follow_the_spec():
    s = {e.name: e.full for e in registry.EXPERIMENTS}
    assert (s["mnist"]["batch_size"], s["mnist"]["lr"], s["mnist"]["tol"]) == (64, 0.001, 1e-5)
    assert (s["cifar10"]["batch_size"], s["cifar10"]["lr"], s["cifar10"]["tol"]) == (64, 0.001, 1e-5)
    pv = s["plane-vibration"]
    assert (pv["batch_size"], pv["lr"], pv["tol"]) == (64, 1e-4, 1e-7)
    assert (s["walker2d"]["batch_size"], s["walker2d"]["lr"], s["walker2d"]["tol"]) == (256, 0.003, 1e-7)
    assert s["pointcloud"]["tol"] == 1e-7
    fns = {f["name"]: f for f in s["hbode-vs-ode"]["functions"]}
    assert (fns["rosenbrock"]["t1"], fns["rosenbrock"]["step"], fns["rosenbrock"]["gamma"]) == (1.0, 0.001, 0.9)
    assert (fns["beale"]["t1"], fns["beale"]["step"], fns["beale"]["gamma"]) == (2.0, 0.01, 0.7)
    assert s["silverbox-init"]["tol"] == 1e-7


def test_reproduce_list_shows_all_nine(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for name, fig in PAPER_FIGURES.items():
        assert name in out and fig in out
    assert "9 experiments" in out


def test_reproduce_without_a_name_or_with_a_bad_one_fails_cleanly(capsys):
    assert main(["reproduce"]) == 2
    assert "--list" in capsys.readouterr().err
    assert main(["reproduce", "imagenet", "--tiny"]) == 2
    assert "unknown experiment" in capsys.readouterr().err
    assert main(["reproduce", "mnist", "--tiny", "--set", "epochs"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize("name, missing", [("mnist", "train-images-idx3-ubyte"), ("cifar10", "data_batch_1"),
                                           ("silverbox-init", "sb.csv"), ("plane-vibration", "pv.csv"),
                                           ("walker2d", "rollout_"), ("adjoint-decay", "rollout_"),
                                           ("nfe-vs-tol", "train-images-idx3-ubyte")])
def test_missing_data_names_the_file_and_exits_nonzero(tmp_path, capsys, name, missing):
    code = main(["reproduce", name, "--tiny", "--quiet", "--out", str(tmp_path / "run"),
                 "--data-dir", str(tmp_path / "empty")])
    err = capsys.readouterr().err
    assert code == EXIT_DATA_MISSING
    assert missing in err and "--data-dir" in err and str(tmp_path / "empty") in err


def test_overrides_are_json_or_strings():
    assert parse_overrides(["epochs=5", "tols=[0.001, 1e-05]", "dataset=mnist", "x=null"]) == {
        "epochs": 5, "tols": [1e-3, 1e-5], "dataset": "mnist", "x": None}
    with pytest.raises(ValueError):
        parse_overrides(["=3"])


def test_redraw_needs_an_existing_run(tmp_path, capsys):
    assert main(["reproduce", "mnist", "--redraw", "--out", str(tmp_path)]) == 2
    assert "no run to redraw" in capsys.readouterr().err


def test_report_without_runs_fails_cleanly(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no reproduce runs" in capsys.readouterr().err


# --- the verdict logic on hand-made numbers ---------------------------------------------------

def _rows(nfe: dict[str, tuple[float, float]], acc: dict[str, float] | None = None) -> list[dict]:
    return [{"model": m, "nfe_forward_mean": f, "nfe_backward_mean": b, "status": "ok",
             **({"acc": acc[m]} if acc else {})} for m, (f, b) in nfe.items()]


def test_nfe_verdict_and_ratios():
    rows = _rows({"node": (100, 200), "anode": (90, 180), "sonode": (95, 150), "hbnode": (80, 120),
                  "ghbnode": (70, 100)})
    verdict, reasons, ratios = nfe_verdict(rows)
    assert verdict == HELD and len(reasons) == 4
    assert ratios == {"HBNODE/NODE forward NFE": 0.8, "HBNODE/NODE backward NFE": 0.6,
                      "GHBNODE/NODE forward NFE": 0.7, "GHBNODE/NODE backward NFE": 0.5}
    rows[3]["nfe_backward_mean"] = 160  # HBNODE now above SONODE's backward NFE
    assert nfe_verdict(rows)[0] == PARTLY
    worse = _rows({"node": (50, 50), "hbnode": (80, 120), "ghbnode": (70, 100)})
    assert nfe_verdict(worse)[0] == NOT_HELD
    assert nfe_verdict(_rows({"hbnode": (1, 1)}))[0] == NOT_ASSESSED


def test_metric_verdict_with_slack():
    rows = _rows({"node": (1, 1), "anode": (1, 1), "hbnode": (1, 1), "ghbnode": (1, 1)},
                 acc={"node": 0.90, "anode": 0.92, "hbnode": 0.91, "ghbnode": 0.85})
    v, reasons = metric_verdict(rows, "acc", higher_is_better=True, label="accuracy", abs_tol=0.02)
    assert v == PARTLY and "worse" in reasons[1]
    assert metric_verdict(rows, "acc", higher_is_better=False, label="mse")[0] == PARTLY  # 0.91 > 0.90
    v, _ = metric_verdict(rows, "acc", higher_is_better=False, label="mse", rel_tol=0.02)
    assert v == HELD  # lower is better: 0.91 and 0.85 both within 2% of 0.90
    assert combine_verdicts(HELD, HELD) == HELD
    assert combine_verdicts(HELD, NOT_HELD) == PARTLY
    assert combine_verdicts(NOT_HELD, NOT_ASSESSED) == NOT_HELD
    assert combine_verdicts(NOT_ASSESSED) == NOT_ASSESSED


def test_hbode_vs_ode_pieces_are_exact():
    import torch

    from pyhbnode.experiments.hbode_vs_ode import OBJECTIVES, NegativeGradient

    for name, obj in OBJECTIVES.items():
        z = torch.tensor([[0.3, -0.7], [1.2, 0.4]], dtype=torch.float64, requires_grad=True)
        F = obj.value(z[:, 0], z[:, 1]).sum()
        (g,) = torch.autograd.grad(F, z)
        assert torch.allclose(NegativeGradient(obj)(z.detach()), -g), name
        mx, my = obj.minimiser
        assert obj.value(mx, my) == pytest.approx(0.0, abs=1e-12)


def test_config_of_a_run_is_json(tmp_path):
    from pathlib import Path

    from pyhbnode.experiments.common import RunContext

    ctx = RunContext(experiment="hbode-vs-ode", out=tmp_path, settings={"tol": 1e-3}, seed=3)
    import time

    cfg = json.loads(Path(ctx.write_config(time.time())).read_text())
    for key in ("experiment", "scale", "experiment_settings", "seed", "pyhbnode", "torch", "backend", "device",
                "wall_seconds", "machine", "torch_threads", "command"):
        assert key in cfg, key
    assert cfg["seed"] == 3 and cfg["experiment"] == "hbode-vs-ode"


@pytest.mark.parametrize("key,value", [("iters", "abc"), ("iters", 1.5), ("iters", True), ("tol", "x"), ("seeds", [1]),
                                       ("iters", 0), ("seeds", -1), ("tol", 0), ("tol", -1e-3)])
def test_reproduce_set_values_of_the_wrong_kind_or_range_are_refused_by_name(key, value):
    from pyhbnode.cli.reproduce import merge_settings

    defaults = {"iters": 300, "tol": 1e-7, "seeds": 20}
    with pytest.raises(ValueError, match=f"--set {key}="):
        merge_settings(defaults, {key: value})
    assert merge_settings(defaults, {"iters": 5.0, "tol": 1}) == {"iters": 5, "tol": 1, "seeds": 20}


def test_reproduce_set_refuses_an_unknown_key_listing_the_valid_ones(capsys):
    assert main(["reproduce", "pointcloud", "--tiny", "--set", "foo=1"]) == 2
    err = capsys.readouterr().err
    assert "--set foo: unknown setting" in err and "seeds, iters, tol" in err and "Traceback" not in err
    assert main(["reproduce", "pointcloud", "--tiny", "--set", "iter=3"]) == 2
    assert "did you mean 'iters'?" in capsys.readouterr().err
    # a setting another experiment has is still unknown here
    assert main(["reproduce", "pointcloud", "--tiny", "--set", "train_limit=3"]) == 2
    assert "unknown setting" in capsys.readouterr().err


@pytest.mark.parametrize("item, words", [("epochs=-1", "--set epochs=-1: epochs must be an int >= 1"),
                                         ("lr=0", "lr must be a float > 0"),
                                         ("test_limit=-2", "test_limit must be an int or none, >= 0"),
                                         ("adjoint=sideways", "unknown gradient mode 'sideways'")])
def test_reproduce_set_refuses_values_out_of_range(capsys, item, words):
    assert main(["reproduce", "mnist", "--tiny", "--set", item]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_every_setting_an_experiment_has_is_declared_with_its_range():
    for e in registry.EXPERIMENTS:
        for key in e.keys():
            assert key in registry.SETTINGS, (e.name, key)
        for scale in registry.SCALES:  # every shipped value passes its own declaration
            for key, value in e.settings(scale).items():
                registry.SETTINGS[key].check(key, value)


def test_reproduce_takes_solver_options_as_flags_and_as_set_keys(tmp_path):
    from pyhbnode.cli.main import build_parser

    args = build_parser().parse_args(["reproduce", "pointcloud", "--rtol", "1e-4", "--max-steps", "500",
                                      "--set", "adjoint=backsolve", "--tol", "1e-3"])
    assert (args.rtol, args.max_steps, args.tol) == (1e-4, 500, 1e-3)
    from pyhbnode.cli.reproduce import _solver_overrides

    settings, solver = _solver_overrides({"adjoint": "backsolve", "tol": 1e-3, "iters": 2},
                                         registry.get("pointcloud").keys())
    assert settings == {"tol": 1e-3, "iters": 2} and solver == {"adjoint": "backsolve"}


def test_report_names_the_folders_it_found_no_run_in(tmp_path, capsys):
    empty, other = tmp_path / "empty", tmp_path / "other"
    empty.mkdir()
    other.mkdir()
    (other / "notes.txt").write_text("no run here")
    assert main(["report", str(empty), str(other), "--out", str(tmp_path / "r.md")]) != 0
    err = capsys.readouterr().err
    assert str(empty) in err and str(other) in err and not (tmp_path / "r.md").exists()


def test_silverbox_norms_come_from_one_solve_per_trajectory():
    """``reproduce silverbox-init`` records the NFE of one trajectory, not of two solves."""
    import torch

    from pyhbnode import record, zoo
    from pyhbnode.experiments.silverbox_init import trajectory_norms

    v1 = torch.linspace(-0.3, 0.3, 12)[None]
    v2_0, ts = torch.tensor([[0.05]]), torch.arange(12.0)
    for name in ("node", "hbnode", "ghbnode"):
        torch.manual_seed(0)
        model = zoo.build("silverbox", name, tol=1e-5)
        with record() as one, torch.no_grad():
            h_forward = model(v1, v2_0, ts)
        with record() as measured:
            h, state = trajectory_norms(model, v1, v2_0, ts)
        assert measured.stats.nfe_forward == one.stats.nfe_forward > 0, name
        assert (torch.from_numpy(h) == h_forward.flatten(1).norm(dim=1)).all(), name
        assert state.shape == h.shape


def test_compare_is_reproduce_pointcloud_with_one_seed_in_place(tmp_path, capsys):
    from pyhbnode.experiments.records import read_csv

    out = tmp_path / "cmp"
    assert main(["compare", "pointcloud", "--iters", "2", "--models", "node", "--tol", "1e-3", "--quiet",
                 "--adjoint", "backsolve", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "paper's claim" in printed and "verdict" in printed  # reproduce's assessment
    config = json.loads((out / "config.json").read_text())
    assert config["experiment"] == "pointcloud" and config["experiment_settings"]["seeds"] is None
    assert config["experiment_settings"]["tol"] == 1e-3 and config["solver_options"] == {"tol": "0.001",
                                                                                         "adjoint": "backsolve"}
    assert config["command"].startswith("pyhbnode reproduce pointcloud") and "--set seeds=none" in config["command"]
    row = read_csv(out / "results.csv")[0]
    assert (row["seeds"], row["iterations"]) == (1, 2) and not list(out.glob("seed-*"))
    # the defaults are the task's: the paper's tolerance and length
    from pyhbnode import zoo
    from pyhbnode.cli.main import build_parser

    args = build_parser().parse_args(["compare", "pointcloud"])
    assert args.iters is None and args.tol is None
    full = registry.get("pointcloud").settings("full")
    assert (full["iters"], full["tol"]) == (zoo.task_spec("pointcloud").iterations, zoo.task_spec("pointcloud").tol)
