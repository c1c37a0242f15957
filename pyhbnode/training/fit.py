"""``fit``: train any ``nn.Module`` (the zoo's ODE models included) with NFE logging,
checkpoints that survive a crash, and optional data-parallel training."""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from ..checks import check_bool, check_choice, check_device, check_int, check_real, describe
from ..fields import dormant_names
from ..layers import set_solver_options, solver_layers
from ..solving import SolverError, SolverOptions
from ..solving import record as record_solves
from ..solving.backends.native import decide_compile
from .callbacks import Callback, as_callbacks
from .checkpoint import (
    Position,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    remove_checkpoints,
    restore_training_state,
    save_checkpoint,
    training_state,
    writable_dir,
)
from .distributed import DistContext, setup_distributed, teardown_distributed, wrap_model
from .errors import CheckpointError, TrainingDiverged, WriteFailed
from .history import History
from .loaders import TrainData, make_loader, split_batch, to_device
from .losses import LossFn, check_output, resolve_loss, resolve_metrics
from .optim import OPTIMIZERS, OptimizerSpec, ScheduleSpec, check_schedule, make_optimizer, make_scheduler
from .rng import capture_rng, restore_rng, seed_everything
from .run_lock import RunLock

__all__ = ["fit"]


def fit(
    model: nn.Module,
    train_data: TrainData,
    *,
    val_data: TrainData | None = None,
    loss: str | LossFn = "mse",
    metrics: Sequence[str | LossFn] = (),
    epochs: int = 1,
    lr: float = 1e-3,
    batch_size: int = 32,
    optimizer: OptimizerSpec = "adam",
    lr_schedule: ScheduleSpec = None,
    grad_clip: float | None = None,
    weight_decay: float = 0.0,
    solver: SolverOptions | Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    callbacks: Sequence[Callback | Callable[[dict], Any]] = (),
    progress: bool = True,
    strategy: str | None = None,
    max_batches: int | None = None,
) -> History:
    """Train ``model`` on ``train_data`` and return its :class:`History`.

    Data and batches:
        ``train_data``/``val_data`` is a torch ``Dataset``, a ``DataLoader`` (used as given:
        its own batch size, sampler and collate; ``batch_size`` is then
        ignored) or a tuple of tensors/arrays sharing their first axis (wrapped in a
        ``TensorDataset``).  Every batch is a tuple whose last element is the target and whose
        other elements are the model's inputs: ``out = model(*batch[:-1])``.
        A Dataset with a ``collate`` method batches its own items with it (that is how
        :class:`pyhbnode.data.SequenceDataset` gives time-first ODE-RNN batches ``x (T, B, k)``,
        ``dt (T, B)``, ``y (T, B, k)``); other datasets are stacked on a new first axis.
        The training order is a fresh permutation per epoch drawn from ``(seed, epoch)``.

    Args:
        model: any ``nn.Module``; its ``ODEBlock``/``ODERNN`` layers report NFE.  Build (and seed)
            it before calling ``fit``: its initial weights are the caller's.
        loss: ``"mse"``, ``"cross_entropy"`` (logits ``(B, C, ...)``, integer labels ``(B, ...)``),
            ``"bce"`` (logits, float targets in [0, 1]) or a callable ``(out, target) -> scalar``.
        metrics: names (``"accuracy"``, ``"mse"``, ``"mae"``) or callables ``(out, target) ->
            scalar batch mean``, logged per batch, per epoch on the training batches
            (``train_<name>``) and on ``val_data`` (``val_<name>``).
        epochs: passes over ``train_data``.  max_batches: stop after this many optimiser steps
            in total (across epochs) even if epochs remain.
        lr, weight_decay: the optimiser's.  optimizer: ``"adam"``, ``"adamw"``, ``"sgd"``
            (momentum 0.9), ``"rmsprop"`` or a callable ``(params, lr=, weight_decay=)``.
        batch_size: samples per optimiser step; under ``strategy="ddp"`` the *global* batch,
            split evenly across ranks.
        lr_schedule: ``None``, ``"cosine"``, ``"step:<every>:<gamma>"`` or a callable
            ``(optimizer) -> scheduler``; stepped once per completed epoch.
        grad_clip: clip the global gradient norm to this value.
        solver: the solver options of every solving layer of ``model`` during training: a
            :class:`~pyhbnode.SolverOptions` (replaces each layer's options) or a mapping of
            some of its fields (and ``tol``) that changes only those, e.g. ``{"tol": 1e-5}``;
            ``None`` keeps the model's.  ``ValueError`` if given for a model without solving layers.
        device: where to train (``"cpu"``, ``"cuda"``, ``"cuda:1"``); under DDP on CUDA each rank
            uses ``cuda:<LOCAL_RANK>``.
        seed: seeds Python's ``random``, NumPy, torch and the shuffling.  On the CPU the same
            seed, model and data give the same weights, bit for bit.
        checkpoint_dir: where to keep checkpoints (``None``: none).  checkpoint_every: write one
            every this many optimiser steps (default: after each epoch) and one when training
            ends; the two newest are kept.
        resume: continue from the newest good checkpoint in ``checkpoint_dir`` (exactly: the
            same final weights as an uninterrupted run).  The checkpoint must come from a run
            with the same settings (``ValueError`` otherwise); ``epochs`` and ``max_batches``
            may grow to train further.  ``resume=False`` deletes the directory's checkpoints.
        callbacks: :class:`~pyhbnode.training.Callback` objects, or functions called with each
            epoch record; returning ``True`` stops training.
        progress: a tqdm bar with the loss and forward/backward NFE, and one per validation pass
            (labelled ``validation``), on rank 0 only.
        strategy: ``None`` (one process) or ``"ddp"``: DistributedDataParallel in a process group
            started by ``torchrun`` or :func:`~pyhbnode.training.launch_ddp`; rank 0 alone writes
            checkpoints.  With equal per-rank batches a DDP step equals a single-process step on
            the same global batch.  Under adaptive step control each rank solves only its
            shard, so step counts (and hence results, within float tolerance) can differ from
            one solve of the whole batch; fixed-grid methods (``method="rk4"``) or models
            without solves reproduce single-process training.

    Returns:
        The :class:`History` (on every rank under DDP, with rank-reduced records).

    Raises:
        ValueError: bad input, before any training: unknown loss/metric/optimizer/schedule
            names, bad numbers, empty data, a batch that is not ``(inputs..., target)``, a model
            output that does not fit the target for the loss (checked with one forward pass on
            the first batch), labels of the wrong dtype, a non-writable ``checkpoint_dir``, a
            checkpoint from a run with other settings.
        TrainingDiverged: the loss or gradient became NaN/Inf, or a solve failed; it names the
            epoch and batch, and the last good checkpoint is kept.
        UnsafeCheckpoint: a checkpoint holds objects other than plain data (never loaded).
    """
    lr, grad_clip, weight_decay = _check_settings(
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        grad_clip=grad_clip,
        weight_decay=weight_decay,
        checkpoint_every=checkpoint_every,
        max_batches=max_batches,
        seed=seed,
    )
    _check_arguments(
        model=model,
        callbacks=callbacks,
        progress=progress,
        resume=resume,
        checkpoint_dir=checkpoint_dir,
        strategy=strategy,
    )
    solver = _solver_changes(solver)
    loss_name, loss_fn = resolve_loss(loss)
    metric_fns = resolve_metrics(metrics)
    check_schedule(lr_schedule)
    if isinstance(optimizer, str) and optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {sorted(OPTIMIZERS)} or pass a callable")
    hooks = as_callbacks(callbacks)
    dev = check_device("device", device)
    ckpt_dir = writable_dir(checkpoint_dir, "checkpoint_dir") if checkpoint_dir is not None else None

    ctx = setup_distributed(strategy, dev)
    lock = RunLock(ckpt_dir) if ckpt_dir is not None and ctx.is_main else None
    try:
        if lock is not None:
            lock.acquire()  # before reading or deleting any checkpoint: one trainer per directory
        if ctx.enabled and dev.type == "cuda":
            dev = torch.device("cuda", ctx.local_rank)
        seed_everything(seed)
        loader_args = dict(seed=seed, num_replicas=ctx.world_size, rank=ctx.rank)
        train_loader, n_train = make_loader(
            train_data, batch_size=batch_size, shuffle=True, where="training", **loader_args
        )
        val_loader = None
        if val_data is not None:
            val_loader, _ = make_loader(
                val_data, batch_size=batch_size, shuffle=False, where="validation", **loader_args
            )
        if solver is not None:
            set_solver_options(model, solver=solver)
        model.to(dev)

        generators = [train_loader.generator] if train_loader.generator is not None else []
        before = capture_rng(generators)  # checking must not shift what training draws
        for loader, where in ((train_loader, "training"), (val_loader, "validation")):
            if loader is not None:
                _check_first_batch(model, loader, dev, loss_name, loss_fn, metric_fns, where)
        _resolve_compile(model, train_loader, dev, epochs, max_batches)
        restore_rng(before, generators)

        train_model = wrap_model(model, ctx, dev)
        dormant = dormant_names(model)
        opt = make_optimizer(
            optimizer,
            [p for name, p in model.named_parameters() if name not in dormant],
            lr=lr,
            weight_decay=weight_decay,
        )
        scheduler = make_scheduler(lr_schedule, opt, epochs)
        signature = _signature(
            lr=lr,
            batch_size=getattr(train_data, "batch_size", None) or batch_size,
            optimizer=optimizer,
            weight_decay=weight_decay,
            lr_schedule=lr_schedule,
            epochs=epochs,
            grad_clip=grad_clip,
            seed=seed,
            loss=loss_name,
            n_train=n_train,
        )

        run = _Run(
            model=model,
            train_model=train_model,
            opt=opt,
            scheduler=scheduler,
            ctx=ctx,
            device=dev,
            loss_fn=loss_fn,
            metric_fns=metric_fns,
            grad_clip=grad_clip,
            generators=generators,
            ckpt_dir=ckpt_dir,
            signature=signature,
        )
        if ckpt_dir is not None:
            if resume:
                run.resume()
            elif ctx.is_main and (n := remove_checkpoints(ckpt_dir)):
                warnings.warn(f"resume=False: deleted {n} old checkpoint(s) in {ckpt_dir}", stacklevel=2)
        return run.train(
            train_loader,
            val_loader,
            epochs=epochs,
            max_batches=max_batches,
            checkpoint_every=checkpoint_every,
            callbacks=hooks,
            progress=progress,
        )
    finally:
        if lock is not None:
            lock.release()
        teardown_distributed(ctx)


def _solver_changes(solver: Any) -> SolverOptions | dict[str, Any] | None:
    """``fit(solver=...)`` checked: options whole, or a mapping of option names (values
    checked by building the options they would give)."""
    if solver is None or isinstance(solver, SolverOptions):
        return solver
    if not isinstance(solver, Mapping):
        raise TypeError(
            f"solver must be a SolverOptions, a mapping of solver options (e.g. {{'tol': 1e-5}}) "
            f"or None, got {describe(solver)}"
        )
    changes = dict(solver)
    SolverOptions.from_kwargs(**changes)
    return changes


def _check_arguments(
    *, model: Any, callbacks: Any, progress: Any, resume: Any, checkpoint_dir: Any, strategy: Any
) -> None:
    """The arguments ``_check_settings`` does not cover: types of the objects ``fit`` is handed."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module (e.g. from pyhbnode.zoo.build), got {describe(model)}")
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of Callback objects or functions, got {describe(callbacks)}")
    check_bool("progress", progress)
    check_bool("resume", resume)
    if checkpoint_dir is not None and not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise TypeError(f"checkpoint_dir must be a path (str or os.PathLike) or None, got {describe(checkpoint_dir)}")
    check_choice("strategy", strategy, ["ddp"], allow_none=True)


def _check_settings(
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    grad_clip: float | None,
    weight_decay: float,
    checkpoint_every: int | None,
    max_batches: int | None,
    seed: int,
) -> tuple[float, float | None, float]:
    """Refuse a bad setting by name; returns ``(lr, grad_clip, weight_decay)`` as plain floats
    (a one-element tensor is accepted and read out, so nothing downstream holds a tensor)."""
    for name, value in (
        ("epochs", epochs),
        ("batch_size", batch_size),
        ("checkpoint_every", checkpoint_every),
        ("max_batches", max_batches),
    ):
        check_int(name, value, minimum=1, allow_none=name in ("checkpoint_every", "max_batches"))
    check_int("seed", seed, minimum=0)
    return (
        check_real("lr", lr, low=0.0, open_low=True),
        check_real("grad_clip", grad_clip, low=0.0, open_low=True, allow_none=True),
        check_real("weight_decay", weight_decay, low=0.0),
    )


def _describe(values: Sequence[Any]) -> str:
    return ", ".join(
        f"{tuple(v.shape)} {str(v.dtype).replace('torch.', '')}" if isinstance(v, torch.Tensor) else type(v).__name__
        for v in values
    )


def _check_first_batch(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    loss_name: str,
    loss_fn: LossFn,
    metric_fns: Mapping[str, LossFn],
    where: str,
) -> None:
    """One forward pass on the first batch (eval mode, no gradient) to catch data that does not
    fit the model or the loss before any training starts."""
    try:
        batch = next(iter(loader))
    except StopIteration:
        raise ValueError(f"the {where} data is empty") from None
    inputs, target = to_device(split_batch(batch, where), device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(*inputs)
    except SolverError:
        raise
    except Exception as err:
        raise ValueError(
            f"the model cannot run on the first {where} batch (inputs: {_describe(inputs)}): "
            f"{type(err).__name__}: {err}"
        ) from None
    finally:
        model.train(was_training)
    check_output(out, target, loss_name, loss_fn, metric_fns, where)


def _resolve_compile(
    model: nn.Module, loader: DataLoader, device: torch.device, epochs: int, max_batches: int | None
) -> None:
    """``compile="auto"`` decided once for the whole run (never in its middle), from the
    iterations it will make and the state size of its first batch, and set on the layers."""
    if not any(layer.options.compile == "auto" for layer in solver_layers(model)):
        return
    try:
        iterations = epochs * len(loader)
    except TypeError:  # a loader without a length: max_batches if given, else counted as short
        iterations = max_batches or 1
    iterations = min(iterations, max_batches or iterations)
    inputs, _ = to_device(split_batch(next(iter(loader)), "training"), device)
    set_solver_options(model, compile=decide_compile(model, inputs, device, max(1, iterations)))


def _signature(
    *,
    lr: float,
    batch_size: int,
    optimizer: OptimizerSpec,
    weight_decay: float,
    lr_schedule: ScheduleSpec,
    epochs: int,
    grad_clip: float | None,
    seed: int,
    loss: str,
    n_train: int,
) -> dict[str, Any]:
    """The settings a resumed run must share with the checkpoint's run.  ``epochs`` counts only
    where the schedule depends on it; the number of ranks may change (same global batches)."""

    def name(x: Any) -> Any:
        return x if x is None or isinstance(x, str) else getattr(x, "__qualname__", type(x).__name__)

    return {
        "lr": lr,
        "batch_size": batch_size,
        "optimizer": name(optimizer),
        "weight_decay": weight_decay,
        "lr_schedule": name(lr_schedule),
        "schedule_epochs": epochs if lr_schedule == "cosine" else None,
        "grad_clip": grad_clip,
        "seed": seed,
        "loss": loss,
        "n_train": n_train,
    }


def _batch_sizes(loader: DataLoader) -> Iterator[int | None]:
    """Samples in each batch this rank loads (``None`` where the loader does not say)."""
    size = loader.batch_size
    try:
        total = len(loader.sampler)  # type: ignore[arg-type]
    except TypeError:
        total = None
    k = 0
    while True:
        yield None if size is None or total is None else max(0, min(size, total - k * size))
        k += 1


class _Run:
    """The state of one ``fit`` call while it trains (kept off ``fit`` to keep each step small)."""

    def __init__(
        self,
        *,
        model: nn.Module,
        train_model: nn.Module,
        opt: torch.optim.Optimizer,
        scheduler: Any,
        ctx: DistContext,
        device: torch.device,
        loss_fn: LossFn,
        metric_fns: Mapping[str, LossFn],
        grad_clip: float | None,
        generators: list[torch.Generator],
        ckpt_dir: Path | None,
        signature: dict[str, Any],
    ) -> None:
        self.model, self.train_model, self.opt, self.scheduler = model, train_model, opt, scheduler
        self.ctx, self.device, self.loss_fn, self.metric_fns = ctx, device, loss_fn, metric_fns
        self.grad_clip, self.generators, self.ckpt_dir, self.signature = grad_clip, generators, ckpt_dir, signature
        self.position = Position()
        self.history = History()
        self.rng_now: dict | None = None  # set when resuming
        self.rng_epoch_start: dict | None = None
        self.last_checkpoint: Path | None = None

    # --- checkpoints ------------------------------------------------------------------------
    def resume(self) -> None:
        """Load the newest good checkpoint, if any (rank 0 picks it; every rank loads it)."""
        assert self.ckpt_dir is not None
        chosen, error, found = -1, None, None
        if self.ctx.is_main:
            try:
                found = latest_checkpoint(self.ckpt_dir, quarantine=True)
                chosen = found[1]["position"]["iteration"] if found else -1
            except CheckpointError as err:
                chosen, error = -2, err
        chosen = self.ctx.broadcast(chosen)
        if chosen == -2:
            raise (
                error
                if error is not None
                else CheckpointError(f"rank 0 could not read the checkpoints in {self.ckpt_dir}")
            )
        if chosen < 0:
            return
        path = checkpoint_path(self.ckpt_dir, chosen)
        state = found[1] if found is not None else load_checkpoint(path)
        saved = json.loads(state["signature"])
        diffs = [
            f"{k} {saved.get(k)!r} (checkpoint) vs {v!r} (now)" for k, v in self.signature.items() if saved.get(k) != v
        ]
        if diffs:
            raise ValueError(
                f"the checkpoint {path} comes from a run with other settings: {'; '.join(diffs)}. "
                "Pass resume=False to start over, or use another checkpoint_dir"
            )
        try:
            self.position, self.history = restore_training_state(
                state, model=self.model, optimizer=self.opt, scheduler=self.scheduler
            )
        except (RuntimeError, KeyError, ValueError) as err:
            raise ValueError(
                f"the checkpoint {path} does not fit this model/optimizer: {str(err).splitlines()[0]}"
            ) from None
        self.rng_now, self.rng_epoch_start = state["rng"], state["rng_epoch_start"]
        self.last_checkpoint = path

    def save(self, position: Position) -> None:
        """Write a checkpoint at ``position`` (rank 0), refusing non-finite weights."""
        if self.ckpt_dir is None:
            return
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            raise TrainingDiverged(
                "the weights became NaN/Inf",
                epoch=position.epoch + 1,
                batch=position.batch,
                iteration=position.iteration,
                checkpoint=self.last_checkpoint,
            )
        path = checkpoint_path(self.ckpt_dir, position.iteration)
        if self.ctx.is_main:
            state = training_state(
                model=self.model,
                optimizer=self.opt,
                scheduler=self.scheduler,
                position=position,
                history=self.history,
                rng=capture_rng(self.generators),
                rng_epoch_start=self.rng_epoch_start or {},
                signature=self.signature,
            )
            try:
                save_checkpoint(self.ckpt_dir, position.iteration, state)
            except OSError as err:  # disk full, read-only file system ...: nothing half-written is left
                raise WriteFailed(path, err, checkpoint=self.last_checkpoint) from err
        self.last_checkpoint = path

    # --- the loop ---------------------------------------------------------------------------
    def train(
        self,
        train_loader: DataLoader,
        val_loader: DataLoader | None,
        *,
        epochs: int,
        max_batches: int | None,
        checkpoint_every: int | None,
        callbacks: list[Callback],
        progress: bool,
    ) -> History:
        def capped(iteration: int) -> bool:
            return max_batches is not None and iteration >= max_batches

        pos = self.position
        per_epoch: int | None
        total: int | None
        try:
            per_epoch = len(train_loader)
            total = epochs * per_epoch if max_batches is None else min(epochs * per_epoch, max_batches)
        except TypeError:
            per_epoch, total = None, max_batches
        bar = tqdm(
            total=total,
            initial=min(pos.iteration, total or pos.iteration),
            unit="batch",
            dynamic_ncols=True,
            disable=not (progress and self.ctx.is_main),
            leave=True,
            desc="fit",
        )
        stop = any([cb.on_train_begin(self.model, self.history) is True for cb in callbacks])
        epoch, done_in_epoch, iteration = pos.epoch, pos.batch, pos.iteration
        if self.rng_now is not None and done_in_epoch == 0:
            restore_rng(self.rng_now, self.generators)
        try:
            while epoch < epochs and not stop and not capped(iteration):
                started = time.perf_counter()
                if isinstance(train_loader.sampler, DistributedSampler):
                    train_loader.sampler.set_epoch(epoch)
                if done_in_epoch:  # resuming inside an epoch: rebuild its order, skip what was trained
                    # the checkpoint that left the run inside an epoch holds both states
                    assert self.rng_epoch_start is not None and self.rng_now is not None
                    restore_rng(self.rng_epoch_start, self.generators)
                else:
                    self.rng_epoch_start = capture_rng(self.generators)
                batches, sizes = iter(train_loader), _batch_sizes(train_loader)
                for _ in zip(range(done_in_epoch), batches, sizes, strict=False):
                    pass
                if done_in_epoch and self.rng_now is not None:
                    restore_rng(self.rng_now, self.generators)
                self.train_model.train()
                for batch, size in zip(batches, sizes, strict=False):
                    done_in_epoch += 1
                    iteration += 1
                    record = self._step(batch, size, epoch + 1, done_in_epoch, iteration)
                    self.history.add_batch(record)
                    bar.update(1)
                    bar.set_postfix(
                        epoch=f"{epoch + 1}/{epochs}",
                        loss=f"{record['loss']:.4g}",
                        nfe=f"{record['nfe_forward']:g}/{record['nfe_backward']:g}",
                        refresh=False,
                    )
                    stop = any([cb.on_batch_end(record) is True for cb in callbacks])
                    if checkpoint_every is not None and iteration % checkpoint_every == 0:
                        self.save(Position(epoch, done_in_epoch, iteration))
                    if stop or capped(iteration):
                        break
                # An epoch is finished when all its batches ran; a loader without a length
                # only tells by running dry, i.e. by the loop ending without a break.
                finished = done_in_epoch == per_epoch if per_epoch is not None else not (stop or capped(iteration))
                record = self._epoch_record(epoch + 1, iteration, val_loader, time.perf_counter() - started, progress)
                self.history.add_epoch(record)
                stop = any([cb.on_epoch_end(record) is True for cb in callbacks]) or stop
                if not finished:
                    break
                if self.scheduler is not None:
                    self.scheduler.step()
                epoch, done_in_epoch = epoch + 1, 0
                if checkpoint_every is None:
                    self.save(Position(epoch, 0, iteration))
            self.save(Position(epoch, done_in_epoch, iteration, completed=True))
        finally:
            bar.close()
        for cb in callbacks:
            cb.on_train_end(self.history)
        return self.history

    def _diverged(self, cause: str, epoch: int, batch: int, iteration: int) -> TrainingDiverged:
        return TrainingDiverged(cause, epoch=epoch, batch=batch, iteration=iteration, checkpoint=self.last_checkpoint)

    def _step(self, batch: Any, size: int | None, epoch: int, batch_index: int, iteration: int) -> dict[str, Any]:
        """One optimiser step; the record of it, reduced over ranks."""
        started = time.perf_counter()
        inputs, target = to_device(split_batch(batch, "training"), self.device)
        n = size if size else (len(target) if isinstance(target, torch.Tensor) and target.dim() else 1)
        failure: SolverError | None = None
        # the recorder keeps this step's solves; their backward NFE is filled in by backward()
        with record_solves() as solves:
            try:
                out = self.train_model(*inputs)
                loss = self.loss_fn(out, target)
                local_loss = float(loss.detach())
            except SolverError as err:
                failure, local_loss = err, math.nan
        # Every rank learns of a failure on any rank before backward, so none waits forever.
        loss_sum, count, failed = self.ctx.sum([local_loss * n, n, failure is not None])
        where = dict(epoch=epoch, batch=batch_index, iteration=iteration)
        if failed:
            cause = f"the forward solve failed: {failure}" if failure else "the forward solve failed on another rank"
            raise self._diverged(cause, **where) from failure
        mean_loss = loss_sum / count
        if not math.isfinite(mean_loss):
            raise self._diverged(f"the loss is {mean_loss}", **where)
        self.opt.zero_grad(set_to_none=True)
        try:
            # Julia may only be entered from the main thread: keep autograd's backward on
            # the calling thread (CUDA would otherwise run it on a device worker thread).
            with torch.autograd.set_multithreading_enabled(False):
                loss.backward()
        except SolverError as err:
            raise self._diverged(f"the backward (adjoint) solve failed: {err}", **where) from err
        # max_norm=inf measures the norm without changing the gradients (they are scaled by 1.0).
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip or math.inf))
        if not math.isfinite(grad_norm):
            raise self._diverged(f"the gradient norm is {grad_norm}", **where)
        self.opt.step()
        stats = solves.stats  # after backward: forward and backward NFE of this step
        with torch.no_grad():
            values = [float(fn(out.detach(), target)) * n for fn in self.metric_fns.values()]
        nfe_f, nfe_b, *metric_sums = self.ctx.sum([stats.nfe_forward, stats.nfe_backward, *values])
        world = self.ctx.world_size
        record = {
            **where,
            "size": int(count),
            "loss": mean_loss,
            "nfe_forward": nfe_f / world,
            "nfe_backward": nfe_b / world,
            "grad_norm": grad_norm,
            "seconds": time.perf_counter() - started,
            "lr": self.opt.param_groups[0]["lr"],
        }
        if world == 1:  # integers stay integers in one process
            record["nfe_forward"], record["nfe_backward"] = int(nfe_f), int(nfe_b)
        record.update({name: s / count for name, s in zip(self.metric_fns, metric_sums, strict=True)})
        return record

    def _epoch_record(
        self, epoch: int, iteration: int, val_loader: DataLoader | None, seconds: float, progress: bool
    ) -> dict[str, Any]:
        batches = self.history.epoch_batches(epoch)
        count = sum(b["size"] for b in batches) or 1

        def weighted(key: str) -> float:
            return sum(b[key] * b["size"] for b in batches) / count

        def mean(key: str) -> float:
            return sum(b[key] for b in batches) / max(1, len(batches))

        record: dict[str, Any] = {
            "epoch": epoch,
            "batches": len(batches),
            "iteration": iteration,
            "train_loss": weighted("loss"),
        }
        record.update({f"train_{name}": weighted(name) for name in self.metric_fns})
        record.update({"nfe_forward": mean("nfe_forward"), "nfe_backward": mean("nfe_backward")})
        if val_loader is not None:
            record.update(self._evaluate(val_loader, progress))
        record.update({"seconds": seconds, "lr": self.opt.param_groups[0]["lr"]})
        return record

    def _evaluate(self, loader: DataLoader, progress: bool) -> dict[str, float]:
        """Loss, metrics and mean forward NFE on ``loader`` (this rank's share), reduced over ranks.
        With ``progress``, a bar of its own: a full test set takes minutes after a short training.

        The generators are put back afterwards (creating a DataLoader iterator draws a seed), so
        training draws the same numbers with or without validation, and a checkpoint written
        after it resumes exactly."""
        rng = capture_rng(self.generators)
        was_training = self.model.training
        self.model.eval()
        sums = [0.0] * (3 + len(self.metric_fns))  # loss, samples, nfe, metrics...
        batches = 0
        try:
            bar = tqdm(
                loader,
                unit="batch",
                dynamic_ncols=True,
                disable=not (progress and self.ctx.is_main),
                leave=False,
                desc="validation",
            )
            with torch.no_grad(), bar:
                for batch, size in zip(bar, _batch_sizes(loader), strict=False):
                    inputs, target = to_device(split_batch(batch, "validation"), self.device)
                    n = size if size else (len(target) if target.dim() else 1)
                    with record_solves() as solves:
                        out = self.model(*inputs)
                    sums[0] += float(self.loss_fn(out, target)) * n
                    sums[1] += n
                    sums[2] += solves.stats.nfe_forward
                    for i, fn in enumerate(self.metric_fns.values()):
                        sums[3 + i] += float(fn(out, target)) * n
                    batches += 1
        finally:
            self.model.train(was_training)
            restore_rng(rng, self.generators)
        loss_sum, count, nfe, *metric_sums, batches_all = self.ctx.sum([*sums, batches])
        count = count or 1
        result = {"val_loss": loss_sum / count}
        result.update({f"val_{name}": s / count for name, s in zip(self.metric_fns, metric_sums, strict=True)})
        result["val_nfe_forward"] = nfe / max(1, batches_all)
        return result
