"""``pyhbnode train``: end to end on the point cloud, config files, overrides, typos, exit codes."""
from __future__ import annotations

import argparse
import csv
import json

import pytest

from pyhbnode.solving.options import DEFAULT_BACKEND
from pyhbnode.cli import train as train_command
from pyhbnode.training import History
from pyhbnode.cli.config import merge, parse_assignment, read_config_file

FAST = ["--task", "pointcloud", "--model", "hbnode", "--epochs", "2", "--tol", "1e-3", "--quiet"]




def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="pyhbnode")
    train_command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", *argv])
    return args.func(args)


def test_train_end_to_end_writes_history_results_and_config(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(*FAST, "--out", str(out)) == 0
    assert "trained hbnode on pointcloud" in capsys.readouterr().out
    assert {"history.jsonl", "epochs.jsonl", "results.csv", "config.json", "checkpoints"} <= {p.name for p in out.iterdir()}

    lines = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert len(lines) == 6  # 2 epochs x 3 batches of 50 (120 points)
    for key in ("kind", "model", "epoch", "batch", "iteration", "loss", "nfe_forward", "nfe_backward", "seconds", "lr"):
        assert key in lines[0], key
    epochs = [json.loads(line) for line in (out / "epochs.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2] and "val_accuracy" in epochs[-1]
    history = History.from_jsonl(out / "history.jsonl", out / "epochs.jsonl")
    assert len(history.batches) == 6 and len(history.epochs) == 2

    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1
    row = rows[0]
    for key in ("task", "model", "parameters", "iterations", "nfe_forward_mean", "nfe_backward_mean",
                "seconds_per_iter", "final_loss", "final_train_accuracy", "final_val_loss", "final_val_accuracy"):
        assert row[key] != "", key
    assert (row["task"], row["model"], row["iterations"]) == ("pointcloud", "hbnode", "6")

    config = json.loads((out / "config.json").read_text())
    for key in ("config", "seed", "pyhbnode", "torch", "backend", "solver", "device", "wall_seconds", "machine"):
        assert key in config, key
    # the resolved settings: task defaults filled in, overrides applied
    assert (config["config"]["lr"], config["config"]["batch_size"], config["config"]["epochs"]) == (0.01, 50, 2)
    assert config["solver"]["rtol"] == config["solver"]["atol"] == 1e-3
    assert (config["backend"], config["device"], config["seed"]) == (DEFAULT_BACKEND, "cpu", 0)

    # rerunning the same command resumes from the finished run: nothing more to train
    assert run(*FAST, "--out", str(out)) == 0
    assert len((out / "history.jsonl").read_text().splitlines()) == 6
    # a longer run continues from there
    assert run(*FAST, "--out", str(out), "--epochs", "3") == 0
    assert len((out / "history.jsonl").read_text().splitlines()) == 9


def test_train_draws_the_figures_reproduce_draws(tmp_path):
    out = tmp_path / "run"
    assert run(*FAST, "--out", str(out)) == 0
    assert {"nfe.png", "loss.png", "metrics.png"} <= {p.name for p in out.iterdir()}


def test_max_batches_caps_validation_too(tmp_path, monkeypatch):
    seen = []

    def spy(model, train_data, *, val_data, **kwargs):
        seen.append(len(val_data[0]))
        return fit(model, train_data, val_data=val_data, **kwargs)

    fit = train_command.fit
    monkeypatch.setattr(train_command, "fit", spy)
    assert run(*FAST, "--out", str(tmp_path / "quick"), "--max-batches", "2", "--batch-size", "10") == 0
    assert run(*FAST, "--out", str(tmp_path / "full")) == 0
    assert seen == [20, 120]  # 2 batches of 10; without the cap the whole second cloud


def test_config_file_then_flags_then_set(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('task = "pointcloud"\nmodel = "ghbnode"\nepochs = 1\nlr = 0.02\ntol = 1e-3\n'
                    'progress = false\nmax_batches = 2\n[field_kwargs]\nxi = 1.5\n')
    out = tmp_path / "run"
    assert run("--config", str(toml), "--lr", "0.03", "--set", "batch_size=60", "--out", str(out)) == 0
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["model"], config["lr"], config["batch_size"], config["epochs"]) == ("ghbnode", 0.03, 60, 1)
    assert config["field_kwargs"] == {"xi": 1.5}
    assert len((out / "history.jsonl").read_text().splitlines()) == 2


def test_yaml_config(tmp_path):
    # pyyaml is in the test extra: a missing parser fails here instead of skipping
    path = tmp_path / "run.yaml"
    path.write_text("task: pointcloud\nmodel: ghbnode\nepochs: 1\nmax_batches: 1\ntol: 2.0e-3\nlr: 0.02\n"
                    "progress: false\nfield_kwargs:\n  xi: 1.5\n")
    out = tmp_path / "run"
    assert run("--config", str(path), "--out", str(out)) == 0
    written = json.loads((out / "config.json").read_text())
    config = written["config"]
    assert (config["task"], config["model"], config["epochs"], config["max_batches"], config["lr"]) == \
        ("pointcloud", "ghbnode", 1, 1, 0.02)
    assert config["field_kwargs"] == {"xi": 1.5} and config["progress"] is False
    assert written["solver"]["rtol"] == written["solver"]["atol"] == 2e-3
    assert len((out / "history.jsonl").read_text().splitlines()) == 1


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("pyhbnode train: error: ")
    return err


def test_config_typo_is_one_clear_error_naming_the_key(tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text('task = "pointcloud"\nmodel = "hbnode"\nbach_size = 10\n')
    assert run("--config", str(toml), "--out", str(tmp_path / "run")) == 2
    err = one_error_line(capsys)
    assert "unknown setting 'bach_size'" in err and "did you mean 'batch_size'?" in err and "Allowed:" in err
    assert not (tmp_path / "run").exists()  # nothing started

    assert run(*FAST, "--set", "learning_rate=0.1", "--out", str(tmp_path / "run")) == 2
    assert "unknown setting 'learning_rate' in --set" in one_error_line(capsys)


@pytest.mark.parametrize("argv, message", [
    (["--task", "pointclod", "--model", "hbnode"], "unknown task 'pointclod'"),
    (["--task", "pointcloud", "--model", "hbnod"], "unknown model 'hbnod'"),
    (["--model", "hbnode"], "say which task and model"),
    ([*FAST, "--set", "epochs=ten"], "setting 'epochs' in --set must be an int"),
    ([*FAST, "--set", "lr_schedule=linear"], "unknown lr_schedule 'linear'"),
    ([*FAST, "--config", "missing.toml"], "config file 'missing.toml' not found"),
    ([*FAST, "--set", "optimizer=adamm"], "unknown optimizer 'adamm'"),
    (["--task", "mnist", "--model", "node", "--data-dir", "{tmp}/nothing", "--quiet"], "not found; searched"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert run(*argv, "--out", str(tmp_path / "run")) == 2
    assert message in one_error_line(capsys)


def test_non_writable_output_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert run(*FAST, "--out", str(blocker / "run")) == 2
    assert "is not writable" in one_error_line(capsys)


def test_bad_config_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("task = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        read_config_file(bad)
    ini = tmp_path / "x.ini"
    ini.write_text("")
    with pytest.raises(ValueError, match=r"must end in \.toml, \.yaml or \.yml"):
        read_config_file(ini)
    with pytest.raises(ValueError, match="must be a float or none"):
        merge([("test", {"lr": "fast"})])


def test_set_values_are_read_as_json_where_they_parse():
    assert parse_assignment("lr=1e-3") == ("lr", 1e-3)
    assert parse_assignment("resume=false") == ("resume", False)
    assert parse_assignment("lr_schedule=step:10:0.5") == ("lr_schedule", "step:10:0.5")
    assert parse_assignment("grad_clip=none") == ("grad_clip", None)
    assert parse_assignment('field_kwargs={"xi": 2}') == ("field_kwargs", {"xi": 2})
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_assignment("lr")


def test_the_pyhbnode_command_reaches_train(tmp_path):
    from pyhbnode import cli

    code = cli.main(["train", *FAST, "--max-batches", "1", "--out", str(tmp_path / "run")])
    assert code == 0 and (tmp_path / "run" / "results.csv").exists()


def test_solver_table_keys_and_values_come_from_solver_options(tmp_path):
    from pyhbnode.cli.config import SETTINGS, TrainConfig
    from pyhbnode.solving.options import option_fields

    toml = tmp_path / "run.toml"
    toml.write_text('task = "pointcloud"\nmodel = "node"\n[solver]\nrtol = "1e-4"\nmax-steps = 500\n'
                    'seminorm = "off"\nadjoint = "backsolve"\n')
    config = merge([("file", read_config_file(toml)), ("--set", {"tol": 1e-3})])
    assert config.solver == {"rtol": 1e-4, "max_steps": 500, "seminorm": False, "adjoint": "backsolve", "tol": 1e-3}
    # no solver option is a field of its own, and every field's type is its annotation's
    assert not {f.name for f in option_fields()} & set(SETTINGS)
    assert SETTINGS["epochs"].type is int and SETTINGS["epochs"].nullable and SETTINGS["epochs"].low == 1
    assert TrainConfig().solver == {}
    with pytest.raises(ValueError, match="unknown solver option 'rtool'.*did you mean 'rtol'"):
        merge([("file", {"solver": {"rtool": 1e-3}})])
    with pytest.raises(ValueError, match="rtol must be a finite positive number"):
        merge([("--set", {"rtol": -1})])
    with pytest.raises(ValueError, match="setting 'epochs' in --set must be an int or none, >= 1"):
        merge([("--set", {"epochs": -1})])


def test_train_has_a_flag_per_solver_option():
    from pyhbnode.solving.options import option_names

    parser = argparse.ArgumentParser(prog="pyhbnode")
    train_command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", "--compile", "false", "--max-steps", "99", "--seminorm", "on"])
    assert all(hasattr(args, name) for name in option_names())
    assert (args.compile, args.max_steps, args.seminorm) == (False, 99, True)
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--rtol", "tiny"])
