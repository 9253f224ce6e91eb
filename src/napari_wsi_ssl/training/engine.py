"""The training loop shared by pretraining and fine-tuning.

One generator runs every step: it checks the cancel token, sets the lr from a pure schedule,
runs forward and backward under the chosen autocast, halves the micro-batch when the device runs
out of memory, stops on a non-finite loss, validates and checkpoints each epoch, and resumes
exactly: the batches of an epoch depend only on (seed, epoch), and the checkpoint holds the
optimizer state, the step and the position inside the epoch.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .._atomic import ensure_writable
from ..errors import CheckpointError, TrainingError
from ..events import CancelToken, Log, Preview, Progress
from ..models import WsiModel, read_payload, save_checkpoint
from ..models.device import autocast_for, choose_device
from .config import FinetuneConfig, PretrainConfig, lr_factor

Batch = dict[str, Any]
Outputs = dict[str, torch.Tensor]


@dataclass
class Job:
    """What differs between runs: model, data, loss, validation and checkpoint metadata.

    Hyper-parameters, budget, device and seed come from ``config``; ``milestones``, ``gamma``
    and ``patience`` apply when the config has them.
    """

    config: PretrainConfig | FinetuneConfig
    model: WsiModel
    params: list[torch.nn.Parameter]
    train_set: Dataset
    loss_fn: Callable[[Outputs, Batch], torch.Tensor]
    forward: Callable[[torch.nn.Module, Batch], Outputs]
    meta: dict[str, Any]  # mpp, patch_size, class_names, train_config
    in_memory: bool = False  # the samples are tensors on the device: no loader workers
    evaluate: Callable[[torch.nn.Module, Callable[[Batch], Batch]], dict[str, float]] | None = None
    preview: Callable[[Outputs, Batch], dict[str, np.ndarray]] | None = None
    prepare: Callable[[torch.device], Generator[Any, None, None]] | None = None
    history: dict[str, list[Any]] = field(default_factory=lambda: {"step_loss": [], "epoch": []})


def _to(batch: Batch, device: torch.device) -> Batch:
    def move(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.to(device, non_blocking=True)
        if isinstance(v, list):
            return [move(t) for t in v]
        return v

    return {k: move(v) for k, v in batch.items()}


def _split(batch: Batch, size: int) -> Iterator[tuple[Batch, int]]:
    n = len(batch["index"])
    for s in range(0, n, size):

        def cut(v: Any, s: int = s) -> Any:
            if isinstance(v, torch.Tensor) and v.ndim > 0:
                return v[s : s + size]
            if isinstance(v, list):
                return [cut(t) for t in v]
            return v

        yield {k: cut(v) for k, v in batch.items()}, min(size, n - s)


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def setup_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """Join the process group when launched by ``torchrun`` (gloo on CPU, nccl on CUDA)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)
    rank, world = _world()
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    return rank, world, device


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of an epoch: a permutation fixed by (seed, epoch); a short last batch is dropped when n >= batch_size."""
    order = np.random.default_rng([seed, epoch]).permutation(n).tolist()
    full = n // batch_size if n >= batch_size else 1
    return [order[i * batch_size : (i + 1) * batch_size] for i in range(full)]


def run(job: Job, out: Path, cancel: CancelToken | None = None) -> Generator[Any, None, Path]:
    """Train ``job`` and return the checkpoint path (see module docstring)."""
    out = Path(out)
    cfg = job.config
    ensure_writable(out)  # before any work: a run must not end unable to save
    device = choose_device(cfg.device)
    rank, world, device = setup_distributed(device)
    torch.manual_seed(cfg.seed)
    model = job.model.to(device)
    opt = torch.optim.Adam(job.params, lr=cfg.lr)
    budget = cfg.budget
    milestones = tuple(getattr(cfg, "milestones", ()))
    patience = getattr(cfg, "patience", None)
    micro_saved = 0
    st: dict[str, Any] = {
        "step": 0,
        "epoch": 0,
        "in_epoch": 0,
        "best_val": None,
        "bad": 0,
        "elapsed": 0.0,
    }
    best_state: dict[str, torch.Tensor] | None = None
    history = job.history
    if cfg.resume and out.is_file():
        payload, _ = read_payload(out)
        res = payload.get("resume")
        if not res:
            raise CheckpointError(
                "holds no resume state (it finished, or was not written by a run)", out
            )
        model.load_state_dict(
            res["model"] if res.get("model") is not None else payload["state_dict"]
        )
        opt.load_state_dict(res["optimizer"])
        st.update({k: res[k] for k in st})
        micro_saved = int(res.get("micro", 0))
        history = payload["history"]
        best_state = payload["state_dict"] if res.get("model") is not None else None
        torch.set_rng_state(res["torch_rng"])
        yield Log(f"resumed from {out} at step {st['step']}, epoch {st['epoch']}")
    if job.prepare is not None:
        yield from job.prepare(device)
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    autocast = autocast_for(device, cfg.precision)
    n = len(job.train_set)  # type: ignore[arg-type]
    batch_size = min(cfg.batch_size, n)
    per_epoch = len(epoch_batches(n, batch_size, cfg.seed, 0))
    total = budget.total_steps(per_epoch)
    micro = max(batch_size // world, 1)
    if cfg.resume and out.is_file() and micro_saved:
        micro = min(micro, micro_saved)
    t_start = time.monotonic() - st["elapsed"]
    saved = out.is_file() and cfg.resume

    def save() -> None:
        nonlocal saved
        st["elapsed"] = time.monotonic() - t_start
        if rank != 0:
            return
        resume = {
            **st,
            "model": model.state_dict() if best_state is not None else None,
            "optimizer": opt.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "micro": micro,
        }
        # the weights of the file are the best epoch's when validated, the latest otherwise;
        # the latest also travel in ``resume`` so that a resumed run continues exactly
        save_checkpoint(
            out, model, history=history, resume=resume, state_dict=best_state, **job.meta
        )
        saved = True

    def budget_spent() -> bool:
        return budget.spent(st["step"], time.monotonic() - t_start, st["epoch"])

    def validate(complete: bool) -> Generator[Any, None, None]:
        """Validate (when the job can), track the best weights and record the epoch in the history."""
        nonlocal best_state
        record: dict[str, Any] = {"epoch": st["epoch"], "step": st["step"], "complete": complete}
        if job.evaluate is not None and (complete or st["in_epoch"] > 0):
            metrics = job.evaluate(model, lambda b: _to(b, device))
            model.train()
            record.update(metrics)
            yield Progress(
                step=st["step"],
                total=total,
                loss=metrics.get("val_loss"),
                epoch=st["epoch"],
                metrics=metrics,
                message="validation",
            )
            # no validation set: no best epoch to keep, the latest weights are saved
            val = metrics.get("val_loss")
            if val is None:
                pass
            elif st["best_val"] is None or val < st["best_val"]:
                st["best_val"], st["bad"] = val, 0
                best_state = copy.deepcopy(model.state_dict())
            elif complete:
                st["bad"] += 1
        if complete or job.evaluate is not None:
            history["epoch"].append(record)

    stop = budget_spent()
    try:
        while not stop:
            batches = epoch_batches(n, batch_size, cfg.seed, st["epoch"])
            mine = [b[rank::world] for b in batches[st["in_epoch"] :]]
            job.train_set.epoch = st["epoch"]  # type: ignore[attr-defined]
            workers = 0 if job.in_memory else cfg.num_workers
            loader = DataLoader(job.train_set, batch_sampler=mine, num_workers=workers)
            model.train()
            for batch in loader:
                if cancel is not None and cancel.cancelled:
                    save()
                    yield Log(f"cancelled at step {st['step']}; checkpoint saved to {out}")
                    return out
                spent = budget.progress(st["step"], time.monotonic() - t_start, per_epoch)
                lr = cfg.lr * (
                    lr_factor(spent, milestones, getattr(cfg, "gamma", 0.1)) if milestones else 1.0
                )
                for g in opt.param_groups:
                    g["lr"] = lr
                batch = _to(batch, device)
                while True:
                    try:
                        loss, outputs = _step(net, job, opt, batch, micro, autocast)
                        break
                    except torch.OutOfMemoryError:
                        opt.zero_grad(set_to_none=True)
                        if device.type == "cuda":
                            torch.cuda.empty_cache()
                        if micro <= 1:
                            raise TrainingError(
                                "out of memory even with a batch of 1",
                                hint="use a smaller patch size or width",
                            ) from None
                        micro = max(micro // 2, 1)
                        yield Log(f"out of memory: batch halved to {micro}, retrying", "warning")
                if not math.isfinite(loss):
                    where = (
                        f"the last good checkpoint is {out}"
                        if saved
                        else "no checkpoint was written yet"
                    )
                    raise TrainingError(
                        f"the loss became {loss} at step {st['step'] + 1} (NaN or infinite); training stopped and {where}",
                        hint="lower the learning rate or check the input images",
                    )
                st["step"] += 1
                st["in_epoch"] += 1
                history["step_loss"].append(loss)
                yield Progress(step=st["step"], total=total, loss=loss, epoch=st["epoch"], lr=lr)
                if job.preview and cfg.preview_every and st["step"] % cfg.preview_every == 0:
                    yield Preview(st["step"], job.preview(outputs, batch))
                if budget_spent():
                    stop = True
                    yield from validate(complete=False)
                    break
            else:
                st["epoch"] += 1
                st["in_epoch"] = 0
                yield from validate(complete=True)
                stop = budget_spent() or bool(patience and st["bad"] >= patience)
                if patience and st["bad"] >= patience:
                    yield Log(
                        f"early stop at epoch {st['epoch']}: no better validation loss for {st['bad']} epochs"
                    )
                save()
        save()
    except KeyboardInterrupt:
        save()
        raise
    finally:
        if world > 1:
            torch.distributed.barrier()
    return out


def _step(
    net: torch.nn.Module,
    job: Job,
    opt: torch.optim.Optimizer,
    batch: Batch,
    micro: int,
    autocast: Any,
) -> tuple[float, Outputs]:
    """One optimizer step over ``batch`` in micro-batches of ``micro`` (gradients accumulated)."""
    opt.zero_grad(set_to_none=True)
    n = len(batch["index"])
    total = 0.0
    outputs: Outputs = {}
    for part, size in _split(batch, micro):
        with autocast:
            outputs = job.forward(net, part)
            loss = job.loss_fn(outputs, part)
        (loss * (size / n)).backward()
        total += float(loss.detach()) * size / n
    if math.isfinite(total):
        opt.step()
    return total, outputs
