"""The momentum family in the experiments: which models a run selects (a default list or a
``--models`` group skips what the task does not run, with a note; a model named on its own is
refused), and the NesterovNODE and AdamNODE papers' claims, judged on synthetic results (the
tiny end-to-end runs with the new models are in ``test_experiments_reproduce.py``)."""
from __future__ import annotations

import json

import pytest

from pyhbnode import zoo
from pyhbnode.cli import main
from pyhbnode.experiments import family, registry
from pyhbnode.experiments.common import HELD, NOT_ASSESSED, NOT_HELD, PARTLY
from pyhbnode.experiments.records import write_csv
from pyhbnode.experiments.report import build_report

FAMILY = ("nesterovnode", "gnesterovnode", "adamnode")


# --- selection -------------------------------------------------------------------------------

def test_default_lists_are_the_five_and_all_adds_the_family_with_a_skip_note():
    """The defaults keep every experiment's earlier selection (and wall time); ``all`` runs the
    family beside the five and skips, with a note, a model the task has no architecture for."""
    for name in ("pointcloud", "mnist", "cifar10", "silverbox-init", "walker2d"):
        exp = registry.get(name)
        assert exp.select_models(None, exp.settings("tiny")) == (zoo.PAPER_MODELS, {}), name
        models, skipped = exp.select_models(["all"], exp.settings("tiny"))
        if name == "walker2d":
            assert models == tuple(m for m in zoo.MODELS if m != "adamnode")
            assert list(skipped) == ["adamnode"] and "walker2d" in skipped["adamnode"]
        else:
            assert models == zoo.MODELS and not skipped, name


def test_groups_skip_with_a_note_and_paper_is_the_five():
    pv = registry.get("plane-vibration")
    models, skipped = pv.select_models(["all"], pv.settings("tiny"))
    assert models == zoo.PAPER_MODELS and set(skipped) == set(FAMILY)
    mnist = registry.get("mnist")
    assert mnist.select_models(["paper"], mnist.settings("tiny")) == (zoo.PAPER_MODELS, {})
    # a group and a name together, without repeats; the order is the group's, then the names
    assert mnist.select_models(["paper", "adamnode", "hbnode"], mnist.settings("tiny"))[0] == (
        *zoo.PAPER_MODELS, "adamnode")
    # nfe-vs-tol's task is its dataset setting
    tol = registry.get("nfe-vs-tol")
    assert tol.select_models(["all"], {**tol.settings("tiny"), "dataset": "mnist"}) == (zoo.models_for("mnist"), {})


@pytest.mark.parametrize("name, models, words", [
    ("walker2d", ["node", "adamnode"], "--models adamnode: the zoo has no walker2d architecture for adamnode"),
    ("plane-vibration", ["nesterovnode", "gnesterovnode"], "--models nesterovnode gnesterovnode:"),
    ("adjoint-decay", ["adamnode"], "no walker2d architecture for adamnode"),
    ("hbode-vs-ode", ["nesterovnode"], "hbode-vs-ode builds no zoo model; it runs node, hbnode only"),
])
def test_a_model_named_alone_that_the_task_does_not_run_is_refused(name, models, words):
    exp = registry.get(name)
    with pytest.raises(ValueError, match="--models") as err:
        exp.select_models(models, exp.settings("tiny"))
    assert words in str(err.value) and "--models all" in str(err.value)


def test_the_cli_refuses_by_name_and_notes_a_skip(tmp_path, capsys):
    assert main(["reproduce", "walker2d", "--tiny", "--models", "adamnode", "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "--models adamnode" in err and "pointcloud, mnist, cifar10, silverbox" in err
    assert not (tmp_path / "w").exists()
    assert main(["train", "--task", "walker2d", "--model", "adamnode", "--out", str(tmp_path / "t"),
                 "--data-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "--model adamnode on --task walker2d" in err and "no walker2d architecture" in err
    # `all` on the point cloud runs every model; here only the skip note matters, so a group that
    # skips: plane vibration with --models all on data that is absent stops at the data, after the note
    assert main(["reproduce", "plane-vibration", "--tiny", "--quiet", "--models", "all", "--data-dir",
                 str(tmp_path / "nowhere"), "--out", str(tmp_path / "pv")]) == 3
    out = capsys.readouterr().out
    assert all(f"note: {m} skipped: the zoo has no plane_vibration architecture" in out for m in FAMILY)


def test_compare_runs_a_family_model_on_the_point_cloud(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "pointcloud", "--iters", "1", "--models", "nesterovnode", "adamnode", "--tol", "1e-3",
                 "--quiet", "--out", str(out)]) == 0
    assert "AdamNODE" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["models"] == ["nesterovnode", "adamnode"] and config["skipped_models"] == {}


# --- claims on synthetic results -------------------------------------------------------------

def _row(model: str, fwd: float, bwd: float, **extra) -> dict:
    return {"model": model, "status": "ok", "nfe_forward_mean": fwd, "nfe_backward_mean": bwd, **extra}


def _images(nesterov: tuple[float, float, float], adam_loss: float) -> list[dict]:
    """NODE 26/24, HBNODE 20/18, GHBNODE 20/18 NFE at accuracy 0.9; both Nesterov models at
    ``nesterov`` = (fwd, bwd, accuracy); AdamNODE at 20/18 with training loss ``adam_loss``
    (HBNODE's 0.5, GHBNODE's 0.6)."""
    fwd, bwd, acc = nesterov
    return [_row("node", 26, 24, final_val_accuracy=0.9, final_loss=0.4),
            _row("hbnode", 20, 18, final_val_accuracy=0.9, final_loss=0.5),
            _row("ghbnode", 20, 18, final_val_accuracy=0.9, final_loss=0.6),
            _row("nesterovnode", fwd, bwd, final_val_accuracy=acc, final_loss=0.5),
            _row("gnesterovnode", fwd, bwd, final_val_accuracy=acc, final_loss=0.5),
            _row("adamnode", 20, 18, final_val_accuracy=0.9, final_loss=adam_loss)]


def _nfe_claim(rows: list[dict]) -> family.Claim:
    (claim,) = family.nesterov_nfe(rows, metric="final_val_accuracy", label="test accuracy", higher_is_better=True,
                                   abs_tol=0.02)
    return claim


@pytest.mark.parametrize("nesterov, verdict", [
    ((14, 12, 0.9), HELD),        # fewer than NODE and (G)HBNODE, forward and backward, same accuracy
    ((30, 30, 0.5), NOT_HELD),    # more NFEs and worse accuracy
    ((14, 12, 0.5), PARTLY),      # cheaper, but 0.4 less accurate
    ((22, 20, 0.91), PARTLY),     # cheaper than NODE only
])
def test_nesterov_nfe_claim(nesterov, verdict):
    claim = _nfe_claim(_images(nesterov, 0.3))
    assert claim.verdict == verdict and claim.paper == family.NESTEROV_PAPER
    assert any("GNesterovNODE" in r and "GHBNODE" in r for r in claim.reasons)


def test_nesterov_is_measured_against_its_counterpart():
    rows = _images((19, 17, 0.9), 0.3)
    rows[1] = _row("hbnode", 10, 8, final_val_accuracy=0.9, final_loss=0.5)  # only HBNODE cheaper than both
    claim = _nfe_claim(rows)
    # GNesterovNODE beats NODE and GHBNODE; NesterovNODE beats NODE but not HBNODE
    assert claim.verdict == PARTLY
    assert any(r.startswith("NesterovNODE forward NFE 19") and "not fewer than HBNODE (10)" in r for r in claim.reasons)
    assert any(r.startswith("GNesterovNODE forward NFE 19") and "not fewer than" not in r for r in claim.reasons)


@pytest.mark.parametrize("adam_loss, adam_nfe, verdict", [
    (0.3, (20, 18), HELD),        # below HBNODE's 0.5 and GHBNODE's 0.6 at their NFE
    (0.9, (20, 18), NOT_HELD),    # above both: comparable NFE does not rescue it
    (0.9, (60, 50), NOT_HELD),
    (0.55, (20, 18), PARTLY),     # below GHBNODE's only
    (0.3, (60, 50), PARTLY)])     # lower, but at 2.9× their NFE
def test_adam_loss_claim(adam_loss, adam_nfe, verdict):
    rows = [r for r in _images((14, 12, 0.9), adam_loss) if r["model"] != "adamnode"]
    rows.append(_row("adamnode", *adam_nfe, final_loss=adam_loss))
    (claim,) = family.adam_loss(rows)
    assert claim.verdict == verdict and claim.paper == family.ADAM_PAPER


def test_separation_bounded_and_mse_claims():
    seeds = [{"model": "nesterovnode", "seeds": 4, "seeds_zero_loss": 4},
             {"model": "gnesterovnode", "seeds": 4, "seeds_zero_loss": 4}]
    assert family.nesterov_separation(seeds, 0.01)[0].verdict == HELD
    seeds[1]["seeds_zero_loss"] = 0
    assert family.nesterov_separation(seeds, 0.01)[0].verdict == PARTLY
    seeds[0]["seeds_zero_loss"] = 0
    assert family.nesterov_separation(seeds, 0.01)[0].verdict == NOT_HELD

    box = [{"model": "gnesterovnode", "seeds": 10, "seeds_unbounded": 0, "max_norm": 3.0},
           {"model": "nesterovnode", "seeds": 10, "seeds_unbounded": 10, "max_norm": 1e12}]
    assert family.gnesterov_bounded(box, 10.0)[0].verdict == HELD
    box[0]["seeds_unbounded"] = 10
    assert family.gnesterov_bounded(box, 10.0)[0].verdict == NOT_HELD

    walker = [{"model": m, "final_val_loss": 1.0} for m in zoo.PAPER_MODELS]
    walker += [{"model": "nesterovnode", "final_val_loss": 1.05}, {"model": "gnesterovnode", "final_val_loss": 0.9}]
    assert family.nesterov_mse(walker, rel_tol=0.1)[0].verdict == HELD
    walker[-2]["final_val_loss"] = 2.0
    assert family.nesterov_mse(walker, rel_tol=0.1)[0].verdict == PARTLY


def test_no_claim_rows_without_their_models_and_not_assessed_without_a_counterpart():
    paper_only = [r for r in _images((14, 12, 0.9), 0.3) if r["model"] in zoo.PAPER_MODELS]
    assert family.nesterov_nfe(paper_only, metric="final_val_accuracy", label="test accuracy",
                               higher_is_better=True) == []
    assert family.adam_loss(paper_only) == [] and family.gnesterov_bounded(paper_only, 10.0) == []
    lonely = [_row("nesterovnode", 14, 12, final_val_accuracy=0.9)]
    assert _nfe_claim(lonely).verdict == NOT_ASSESSED


def test_the_report_shows_the_claim_rows_of_a_run(tmp_path):
    run = tmp_path / "mnist"
    run.mkdir()
    write_csv(_images((14, 12, 0.9), 0.9), run / "results.csv")
    (run / "config.json").write_text(json.dumps({"experiment": "mnist", "scale": "standard", "preset": "paper",
                                                 "skipped_models": {}}))
    (md,) = build_report([run], tmp_path / "report.md")
    text = md.read_text()
    assert ("| [mnist](#mnist) | Nguyen et al., NeurIPS 2022 (NesterovNODE) | (G)NesterovNODE needs fewer forward "
            "and backward NFEs than NODE and than (G)HBNODE at equal or better test accuracy | ✅ held |") in text
    # AdamNODE's loss 0.9 is above HBNODE's 0.5 and GHBNODE's 0.6, though at their NFE
    assert ("| Cho et al., 2022 (AdamNODE) | AdamNODE reaches a lower training loss than HBNODE and GHBNODE at "
            "comparable NFE (at most 1.25× theirs) | ❌ not held |") in text
    assert "training loss: not held; NFE: held" in text
