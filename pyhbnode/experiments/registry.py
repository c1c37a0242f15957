"""The paper's nine experiments as data: what each runs, on which data, at which scale, and
which claim it checks.  ``pyhbnode reproduce`` and ``pyhbnode report`` read only this table.

Each experiment names a module of :mod:`pyhbnode.experiments` that provides ``run(ctx)``,
``redraw(run_dir)`` and ``assess(run_dir)`` (see :mod:`pyhbnode.experiments.common`).
Settings come at four scales: ``full`` (the paper's), ``standard`` (the real data at the
paper's batch size and tolerance, long enough for the claim to be tested, at most about an
hour per experiment on two CPU cores), ``quick`` (a few minutes, subsampled) and ``tiny``
(seconds, for the test suite).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import zoo
from ..checks import COUNT, INDEX, POSITIVE, Setting

__all__ = ["Experiment", "EXPERIMENTS", "SCALES", "SETTINGS", "MODEL_GROUPS", "get", "names", "CLAIM_NFE"]

SCALES = ("tiny", "quick", "standard", "full")

# Spec §4, last paragraph: the claim every training comparison checks.
CLAIM_NFE = (
    "(G)HBNODE needs markedly fewer forward and especially backward NFEs than NODE/ANODE/SONODE, "
    "with equal or better accuracy"
)


# Names ``--models`` takes besides single models: each stands for a list, from which the models the
# experiment's task does not run are skipped with a note (a model named on its own is refused instead).
MODEL_GROUPS: dict[str, tuple[str, ...]] = {"all": zoo.MODELS, "paper": zoo.PAPER_MODELS}


# Every setting an experiment reads, declared once: its type and range (``--set`` is checked here).
SETTINGS: dict[str, Setting] = {
    "tol": POSITIVE,
    "train_tol": POSITIVE,
    "lr": POSITIVE,
    "tols": Setting(list),
    "batch_size": COUNT,
    "epochs": COUNT,
    "iters": COUNT,
    "stamps": COUNT,
    "seq_len": COUNT,
    "curve_windows": COUNT,
    "measure_batches": COUNT,
    "train_iters": COUNT,
    "max_batches": COUNT.with_none(),
    "max_files": COUNT.with_none(),
    "train_limit": COUNT.with_none(),
    "test_limit": INDEX.with_none(),  # 0: no test split
    # none: one seed, written into the run directory itself (what `pyhbnode compare` runs)
    "seeds": COUNT.with_none(),
    "functions": Setting(list),
    "dataset": Setting(str),
    "device": Setting(str, nullable=True),
}
# What a training comparison reads besides its scales' settings.
TRAINING_OPTIONS = ("max_batches", "device")


def _paper(task: str) -> dict[str, Any]:
    """The paper's learning rate, batch size and tolerance for ``task`` (its TaskSpec)."""
    spec = zoo.task_spec(task)
    return {"lr": spec.lr, "batch_size": spec.batch_size, "tol": spec.tol}


# Experiments whose every scale but tiny is the paper's (each solve takes under a second):
# one settings dict serves those scales (Experiment.settings hands out copies).
_HBODE_VS_ODE_PAPER: dict[str, Any] = {
    "tol": 1e-7,
    "functions": [
        {"name": "rosenbrock", "t1": 1.0, "step": 0.001, "gamma": 0.9},
        {"name": "beale", "t1": 2.0, "step": 0.01, "gamma": 0.7},
    ],
}
_SILVERBOX_INIT_PAPER: dict[str, Any] = {"seeds": 10, "stamps": 64, "tol": zoo.task_spec("silverbox").tol}


@dataclass(frozen=True)
class Experiment:
    """One paper experiment.

    Attributes:
        name: the ``reproduce`` argument, e.g. ``"mnist"``.
        figure: the paper's figure, e.g. ``"Fig. 6"``.
        title: one line for listings.
        description: what runs and what is plotted.
        data: the data it needs (files under ``--data-dir``), or ``"built in"``.
        claim: the paper's claim it checks (the HBNODE paper's figures).
        module: the module with ``run``, ``redraw`` and ``assess``.
        models: the models it runs by default, less those its task does not run (skipped with a
            note); the heavy-ball paper's five (``zoo.PAPER_MODELS``) unless a run asks for more.
        tiny, quick, standard, full: settings per scale.
        notes: caveats (subsets, differences from the paper).
        optional: settings it reads that its scales leave unset (``max_batches`` ...).
        task: the zoo task whose models it builds (``None``: it builds none, so it runs exactly
            ``models``); a ``dataset`` setting, where the experiment has one, names it instead.
    """

    name: str
    figure: str
    title: str
    description: str
    data: str
    claim: str
    module: str
    models: tuple[str, ...]
    tiny: Mapping[str, Any]
    quick: Mapping[str, Any]
    full: Mapping[str, Any]
    standard: Mapping[str, Any]
    notes: str = ""
    needs_data: bool = True
    optional: tuple[str, ...] = ()
    task: str | None = None

    def settings(self, scale: str) -> dict[str, Any]:
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}; choose one of {list(SCALES)}")
        return dict(getattr(self, scale))

    def keys(self) -> tuple[str, ...]:
        """Every setting ``--set`` may change: those of its scales and the optional ones."""
        found = dict.fromkeys(k for scale in SCALES for k in getattr(self, scale))
        return tuple({**found, **dict.fromkeys(self.optional)})

    def zoo_task(self, settings: Mapping[str, Any]) -> str | None:
        """The zoo task a run at ``settings`` builds its models for."""
        return settings.get("dataset", self.task)

    def select_models(
        self, requested: Sequence[str] | None, settings: Mapping[str, Any]
    ) -> tuple[tuple[str, ...], dict[str, str]]:
        """The models a run at ``settings`` trains, and why each model left out was left out.

        ``requested`` (``--models``; ``None``: the experiment's default list) holds model names
        and :data:`MODEL_GROUPS` names.  A model that comes from the default list or a group but
        that the task does not run is skipped, with a note; one named on its own is refused with
        a ``ValueError``: asking for it by name and getting a run without it would mislead."""
        task = self.zoo_task(settings)
        named = [m for m in (requested or ()) if m not in MODEL_GROUPS]
        listed = (
            self.models
            if not requested
            else [m for g in requested if g in MODEL_GROUPS for m in (MODEL_GROUPS[g] if task else self.models)]
        )
        refused = [m for m in named if not self._runs(task, m)]
        if refused:
            raise ValueError(
                f"--models {' '.join(refused)}: {self._why_not(task, refused)}; drop "
                f"{'it' if len(refused) == 1 else 'them'}, or pass --models all for every model "
                f"{self.name} runs"
            )
        wanted = list(dict.fromkeys([*listed, *named]))
        skipped = {m: self._why_not(task, [m]) for m in wanted if not self._runs(task, m)}
        return tuple(m for m in wanted if m not in skipped), skipped

    def _runs(self, task: str | None, model: str) -> bool:
        return model in self.models if task is None else zoo.runs_on(task, model)

    def _why_not(self, task: str | None, models: Sequence[str]) -> str:
        if task is None:
            return f"{self.name} builds no zoo model; it runs {', '.join(self.models)} only"
        return "; ".join(
            f"the zoo has no {task} architecture for {m} (its authors ran it on {', '.join(zoo.RUNS_ON[m])} only)"
            for m in models
        )

    def _fn(self, what: str) -> Callable:
        return getattr(importlib.import_module(f"pyhbnode.experiments.{self.module}"), what)

    @property
    def run(self) -> Callable:
        """``run(ctx: RunContext) -> None``: run the experiment into ``ctx.out``."""
        return self._fn("run")

    @property
    def redraw(self) -> Callable[[str | Path], list[Path]]:
        """``redraw(run_dir) -> list[Path]``: redraw the figures from saved results."""
        return self._fn("redraw")

    @property
    def assess(self) -> Callable:
        """``assess(run_dir) -> Assessment``: the report's table and verdict."""
        return self._fn("assess")


EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment(
        name="hbode-vs-ode",
        figure="Fig. 2",
        title="gradient-flow ODE vs heavy-ball ODE on Rosenbrock and Beale",
        description="Solve dx/dt = -∇F (NODE field) and x'' + γx' = -∇F (HBNODE field, fixed γ, x'(0) = 0) "
        "from (0, 0); "
        "plot both paths over the contours and the distance to the minimiser vs t.",
        data="built in (Rosenbrock, Beale; App. E.6)",
        needs_data=False,
        claim="The heavy-ball ODE approaches the minimiser faster than the gradient-flow ODE (Fig. 2).",
        module="hbode_vs_ode",
        models=("node", "hbnode"),
        tiny={
            "tol": 1e-5,
            "functions": [
                {"name": "rosenbrock", "t1": 1.0, "step": 0.05, "gamma": 0.9},
                {"name": "beale", "t1": 2.0, "step": 0.1, "gamma": 0.7},
            ],
        },
        quick=_HBODE_VS_ODE_PAPER,
        full=_HBODE_VS_ODE_PAPER,
        standard=_HBODE_VS_ODE_PAPER,
        notes="quick = full: both solves take well under a second.",
    ),
    Experiment(
        name="silverbox-init",
        figure="Fig. 3",
        title="‖h(t)‖ at initialisation on the Silverbox input",
        description="Drive each untrained Silverbox model (one dense layer with a V1(t)^3 input) by the first stamps "
        "of the training series from V2(0), over several random initialisations; plot ‖h(t)‖ "
        "per model.",
        data="sb.csv",
        claim="GHBNODE keeps ‖h(t)‖ bounded at initialisation while the other models can blow up.",
        module="silverbox_init",
        models=zoo.PAPER_MODELS,
        task="silverbox",
        tiny={"seeds": 2, "stamps": 12, "tol": 1e-5},
        quick=_SILVERBOX_INIT_PAPER,
        full=_SILVERBOX_INIT_PAPER,
        standard=_SILVERBOX_INIT_PAPER,
        notes="The reference averages 10 initialisations over 64 stamps at tolerance 1e-7; quick does the same.",
    ),
    Experiment(
        name="adjoint-decay",
        figure="Fig. 4",
        title="‖∂L/∂h_t‖ vs T − t on Walker2D",
        description="Train ODE-RNN, HBNODE-RNN and GHBNODE-RNN on Walker2D; then, on test windows, backpropagate the "
        "loss of the last prediction and plot the norm of its gradient with respect to each hidden state "
        "h_t against T − t (at initialisation and after training).",
        data="walker/rollout_*.npy",
        claim="The adjoint ‖∂L/∂h_t‖ of (G)HBNODE-RNN vanishes far more slowly with T − t than that of ODE-RNN.",
        module="adjoint_decay",
        models=("node", "hbnode", "ghbnode"),
        task="walker2d",
        tiny={
            "max_files": 8,
            "seq_len": 8,
            "train_limit": 8,
            "test_limit": 4,
            "batch_size": 4,
            "epochs": 1,
            "lr": 0.003,
            "tol": 1e-4,
        },
        quick={"max_files": 40, "seq_len": 64, "train_limit": 512, "test_limit": 64, "epochs": 2, **_paper("walker2d")},
        full={
            "max_files": None,
            "seq_len": 64,
            "train_limit": None,
            "test_limit": 256,
            "epochs": 50,
            **_paper("walker2d"),
        },
        standard={
            "max_files": None,
            "seq_len": 64,
            "train_limit": None,
            "test_limit": 256,
            "epochs": 1,
            "max_batches": 20,
            **_paper("walker2d"),
        },
        optional=TRAINING_OPTIONS,
        notes="standard: 20 batches of 256 windows from all 400 rollouts (about half an epoch).",
    ),
    Experiment(
        name="pointcloud",
        figure="Fig. 5",
        title="point-cloud separation (built-in data)",
        description="Separate 40 points in the disk r < 0.5 from 80 in the annulus 0.85 < r < 1 with every model "
        "the zoo has for it (the heavy-ball paper's five and the momentum family's three); "
        "forward/backward NFE and loss vs iteration, mean ± std over seeds, learned features h(1).",
        data="built in (generated)",
        needs_data=False,
        claim=CLAIM_NFE + "; NODE cannot separate the point cloud (it preserves topology) while (G)HBNODE "
        "drive the loss to zero.",
        module="pointcloud_seeds",
        models=zoo.PAPER_MODELS,
        task="pointcloud",
        tiny={"seeds": 1, "iters": 2, "tol": 1e-4},
        quick={"seeds": 3, "iters": zoo.task_spec("pointcloud").iterations, "tol": zoo.task_spec("pointcloud").tol},
        full={"seeds": 5, "iters": zoo.task_spec("pointcloud").iterations, "tol": zoo.task_spec("pointcloud").tol},
        standard={"seeds": 20, "iters": zoo.task_spec("pointcloud").iterations, "tol": zoo.task_spec("pointcloud").tol},
        notes="standard: 20 seeds x 300 iterations (mean and spread of NFE, share of seeds separated).",
    ),
    Experiment(
        name="mnist",
        figure="Fig. 6",
        title="MNIST classification",
        description="Train the conv-field models (the heavy-ball paper's five and the momentum family's three) on "
        "MNIST; forward/backward NFE, time and test accuracy vs epoch.",
        data="mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz",
        claim=CLAIM_NFE,
        module="images",
        models=zoo.PAPER_MODELS,
        task="mnist",
        tiny={"train_limit": 8, "test_limit": 8, "batch_size": 4, "epochs": 1, "lr": 0.001, "tol": 1e-3},
        quick={"train_limit": 512, "test_limit": 128, "epochs": 1, **_paper("mnist")},
        full={"train_limit": None, "test_limit": None, "epochs": 40, **_paper("mnist")},
        standard={"train_limit": None, "test_limit": 2000, "epochs": 1, "max_batches": 60, **_paper("mnist")},
        optional=TRAINING_OPTIONS,
        notes=(
            "standard: 60 iterations of batch 64 on the full training set (NFE per iteration over training), "
            "test accuracy on the first 2,000 test images."
        ),
    ),
    Experiment(
        name="cifar10",
        figure="Fig. 1",
        title="CIFAR-10 classification",
        description="Train the conv-field models (the heavy-ball paper's five and the momentum family's three) on "
        "CIFAR-10; forward/backward NFE, time and test accuracy vs epoch.",
        data="cifar10/data_batch_*.bin[.gz], cifar10/test_batch*.bin[.gz] (any subset; ours: 4,000 train + 1,000 test)",
        claim=CLAIM_NFE,
        module="images",
        models=zoo.PAPER_MODELS,
        task="cifar10",
        tiny={"train_limit": 8, "test_limit": 8, "batch_size": 4, "epochs": 1, "lr": 0.001, "tol": 1e-3},
        quick={"train_limit": 256, "test_limit": 128, "epochs": 1, **_paper("cifar10")},
        full={"train_limit": None, "test_limit": None, "epochs": 40, **_paper("cifar10")},
        standard={"train_limit": None, "test_limit": None, "epochs": 1, "max_batches": 30, **_paper("cifar10")},
        optional=TRAINING_OPTIONS,
        notes=(
            "standard: 30 iterations of batch 64, test accuracy on all 1,000 local test images. The local "
            "copy holds only 4,000 training and 1,000 test images; the paper used 50,000/10,000."
        ),
    ),
    Experiment(
        name="nfe-vs-tol",
        figure="Fig. 7",
        title="forward vs backward NFE across tolerances",
        description="Train each model for a few iterations at each tolerance on CIFAR-10 (or MNIST with "
        "--set dataset=mnist) and plot mean forward and backward NFE against the tolerance.",
        data="cifar10/ (or mnist/)",
        claim="(G)HBNODE needs fewer forward and backward NFEs than NODE/ANODE/SONODE at every tolerance, the gap "
        "widening as the tolerance shrinks, with forward and backward NFE growing roughly in proportion.",
        module="nfe_vs_tol",
        models=zoo.PAPER_MODELS,
        task="cifar10",
        tiny={"dataset": "mnist", "tols": [1e-2, 1e-3], "iters": 1, "train_limit": 4, "batch_size": 4, "lr": 0.001},
        quick={
            "dataset": "cifar10",
            "tols": [1e-3, 1e-4, 1e-5],
            "iters": 2,
            "train_limit": 256,
            "batch_size": 32,
            "lr": 0.001,
        },
        full={
            "dataset": "cifar10",
            "tols": [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7],
            "iters": 200,
            "train_limit": None,
            "batch_size": zoo.task_spec("cifar10").batch_size,
            "lr": zoo.task_spec("cifar10").lr,
        },
        standard={
            "dataset": "mnist",
            "train_tol": zoo.task_spec("mnist").tol,
            "train_iters": 40,
            "tols": [1e-3, 1e-4, 1e-5, 1e-6],
            "measure_batches": 2,
            "train_limit": None,
            "batch_size": zoo.task_spec("mnist").batch_size,
            "lr": zoo.task_spec("mnist").lr,
        },
        optional=("device",),
        notes=(
            "standard: each model trained 40 iterations on MNIST at 1e-5, then its trained field measured "
            "(forward and backward, 2 batches) at each tolerance."
        ),
    ),
    Experiment(
        name="plane-vibration",
        figure="Fig. 8",
        title="plane vibration (F-16 GVT) forecasting",
        description="Train the five ODE-RNN hybrids on irregular 64-stamp windows of the F-16 vibration data; NFE, "
        "train/test MSE vs epoch, and learned one-step predictions against the truth.",
        data="pv.csv",
        claim=CLAIM_NFE,
        module="plane_vibration",
        models=zoo.PAPER_MODELS,
        task="plane_vibration",
        tiny={
            "seq_len": 8,
            "train_limit": 8,
            "test_limit": 4,
            "curve_windows": 2,
            "batch_size": 4,
            "epochs": 1,
            "lr": 0.0001,
            "tol": 1e-4,
        },
        quick={
            "seq_len": 64,
            "train_limit": 256,
            "test_limit": 64,
            "curve_windows": 3,
            "epochs": 2,
            **_paper("plane_vibration"),
        },
        full={
            "seq_len": 64,
            "train_limit": None,
            "test_limit": None,
            "curve_windows": 4,
            "epochs": 500,
            **_paper("plane_vibration"),
        },
        standard={
            "seq_len": 64,
            "train_limit": None,
            "test_limit": None,
            "curve_windows": 4,
            "epochs": 3,
            **_paper("plane_vibration"),
        },
        optional=TRAINING_OPTIONS,
        notes="standard: 3 epochs on the full training split (509 windows) and the full test split.",
    ),
    Experiment(
        name="walker2d",
        figure="Fig. 9",
        title="Walker2D kinematic simulation",
        description="Train the ODE-RNN hybrids (the heavy-ball paper's five, (G)NesterovNODE) to predict the next "
        "step of irregular 64-step Walker2D windows; NFE and train/test MSE vs epoch.",
        data="walker/rollout_*.npy",
        claim=CLAIM_NFE + "; SONODE blows up at initialisation on Walker2D.",
        module="walker2d",
        models=zoo.PAPER_MODELS,
        task="walker2d",
        tiny={
            "max_files": 8,
            "seq_len": 8,
            "train_limit": 8,
            "test_limit": 4,
            "batch_size": 4,
            "epochs": 1,
            "lr": 0.003,
            "tol": 1e-4,
        },
        quick={
            "max_files": 40,
            "seq_len": 64,
            "train_limit": 512,
            "test_limit": 120,
            "epochs": 2,
            **_paper("walker2d"),
        },
        full={
            "max_files": None,
            "seq_len": 64,
            "train_limit": None,
            "test_limit": None,
            "epochs": 500,
            **_paper("walker2d"),
        },
        standard={
            "max_files": None,
            "seq_len": 64,
            "train_limit": None,
            "test_limit": 512,
            "epochs": 1,
            "max_batches": 20,
            **_paper("walker2d"),
        },
        optional=TRAINING_OPTIONS,
        notes=(
            "standard: 20 batches of 256 windows from all 400 rollouts (about half an epoch), test MSE on "
            "512 test windows."
        ),
    ),
)

_BY_NAME = {e.name: e for e in EXPERIMENTS}


def names() -> list[str]:
    return [e.name for e in EXPERIMENTS]


def get(name: str) -> Experiment:
    """The experiment called ``name`` (underscores accepted for dashes)."""
    key = name.replace("_", "-")
    if key not in _BY_NAME:
        raise ValueError(f"unknown experiment {name!r}; choose one of {names()} (see `pyhbnode reproduce --list`)")
    return _BY_NAME[key]
