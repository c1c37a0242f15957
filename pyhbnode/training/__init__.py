"""Training — ``fit``, ``History``, checkpoints, callbacks and data-parallel training.

Works with any ``nn.Module``; the zoo's models add forward/backward NFE to every record.
The ``pyhbnode train`` command is an app on top of it, in :mod:`pyhbnode.cli.train`.
"""

from .callbacks import Callback
from .checkpoint import (
    Position,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    remove_checkpoints,
    save_checkpoint,
)
from .distributed import is_main_process, launch_ddp
from .errors import CheckpointCorrupt, CheckpointError, TrainingDiverged, UnsafeCheckpoint
from .fit import fit
from .history import History
from .losses import LOSSES, METRICS, accuracy
from .optim import OPTIMIZERS

__all__ = [
    "fit",
    "History",
    "Callback",
    "TrainingDiverged",
    "CheckpointError",
    "CheckpointCorrupt",
    "UnsafeCheckpoint",
    "Position",
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "remove_checkpoints",
    "launch_ddp",
    "is_main_process",
    "LOSSES",
    "METRICS",
    "OPTIMIZERS",
    "accuracy",
]
