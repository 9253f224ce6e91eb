"""Fine-tuning: segmentation (+ reconstruction for the UNet), classification and nuclei.

Adam at a fixed lr, a held-out validation split, early stopping on the validation loss, and the
three modes of the studies: ``full``, ``frozen-encoder`` (features cached: the fast interactive
mode) and ``scratch``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from .. import metrics
from ..errors import TrainingError
from ..events import CancelToken, Log
from ..models import Checkpoint, WsiModel, build_model, load_checkpoint
from ..models.device import autocast_for
from ..patches import (
    NO_AUGMENT,
    Augment,
    ImageFolderPatches,
    LabelArray,
    SlidePatches,
    balanced_coords,
    to_uint8,
)
from ..patches.augment import augment_for
from ..patches.coords import mask_window
from ..slide import open_slide
from ..vocab import UNLABELLED, Mode, Preset, Task, class_names_for
from .config import FinetuneConfig, context_for
from .data import FinetuneData, Indexed, check_painted
from .engine import Job, run
from .nuclei import CLASS_WEIGHTS, nuclei_sets

#: The loss's ignore index where every target is a class (patch and nuclei data): torch's default.
NOTHING_IGNORED = -100


def _datasets(
    data: FinetuneData, cfg: FinetuneConfig, patch_size: int, mpp: float | None
) -> tuple[Any, Any, list[str], int, float | None]:
    """(train dataset, val dataset factory, class names, ignore index, mpp)."""
    aug = augment_for(cfg.augment)
    if data.kind == "patches":
        assert data.folder is not None
        parts = [ImageFolderPatches(data.folder, patch_size, augment=aug, seed=cfg.seed)]
        val_parts = [ImageFolderPatches(data.folder, patch_size, seed=cfg.seed)]
        names = parts[0].class_names
        return Indexed(parts), Indexed(val_parts), names, NOTHING_IGNORED, mpp
    if data.more:
        return _several_slides(data, cfg, patch_size, aug, mpp)
    assert data.slide is not None and data.labels is not None
    with open_slide(data.slide, mpp=data.slide_mpp) as slide:
        if mpp is None:
            mpp = slide.mpp[0] if slide.mpp else None
        d = 1.0 if mpp is None else slide.downsample_for_mpp(mpp)
        # the whole annotation's classes name the outputs; the region's must be two or more
        check_painted(data.labels, data.labels_downsample, slide, data.region)
    labels = LabelArray(data.labels, data.labels_downsample)
    present = sorted(int(v) for v in np.unique(data.labels) if v != UNLABELLED)
    coords, _ = balanced_coords(
        data.labels,
        data.labels_downsample,
        patch_size,
        d,
        cfg.num_patches,
        np.random.default_rng(cfg.seed),
        region=data.region,
    )
    xy = np.column_stack([np.zeros(len(coords), np.int64), coords])
    slide_path = data.slide

    def mk(a: Augment) -> SlidePatches:
        return SlidePatches(
            [slide_path],
            [d],
            xy,
            patch_size,
            labels=[labels],
            mpps=[data.slide_mpp],
            augment=a,
            seed=cfg.seed,
        )

    names = class_names_for(present, data.class_names)
    return Indexed([mk(aug)]), Indexed([mk(NO_AUGMENT)]), names, UNLABELLED, mpp


def _several_slides(
    data: FinetuneData, cfg: FinetuneConfig, patch_size: int, aug: Augment, mpp: float | None
) -> tuple[Any, Any, list[str], int, float | None]:
    """``_datasets`` of several annotated slides, patches balanced across slides and classes:
    each patch draws a class, then a slide that has it, then a painted pixel of it there."""
    parts = data.slides()
    downsamples, present = [], []
    for part in parts:
        assert part.slide is not None and part.labels is not None
        with open_slide(part.slide, mpp=part.slide_mpp) as slide:
            if mpp is None:  # the first slide's level 0 is the working resolution
                mpp = slide.mpp[0] if slide.mpp else None
            downsamples.append(1.0 if mpp is None else slide.downsample_for_mpp(mpp))
            check_painted(part.labels, part.labels_downsample, slide, part.region)
        win = mask_window(part.labels.shape, part.labels_downsample, part.region)
        window = part.labels[win.y0 : win.y1, win.x0 : win.x1]
        present.append({int(v) for v in np.unique(window) if v != UNLABELLED})
    classes = sorted(set().union(*present))
    rng = np.random.default_rng(cfg.seed)
    drawn = rng.choice(np.asarray(classes), size=cfg.num_patches)
    rows = []
    for c in classes:
        having = [s for s, p in enumerate(present) if c in p]
        picks = rng.choice(np.asarray(having), size=int((drawn == c).sum()))
        for s in having:
            n = int((picks == s).sum())
            if n:
                part = parts[s]
                corners, _ = balanced_coords(
                    part.labels,  # type: ignore[arg-type]
                    part.labels_downsample,
                    patch_size,
                    downsamples[s],
                    n,
                    rng,
                    region=part.region,
                    classes=[c],
                )
                rows.append(np.column_stack([np.full(n, s, np.int64), corners]))
    xy = np.concatenate(rows)
    labels = [LabelArray(p.labels, p.labels_downsample) for p in parts]  # type: ignore[arg-type]

    def mk(a: Augment) -> SlidePatches:
        return SlidePatches(
            [p.slide for p in parts],  # type: ignore[misc]
            downsamples,
            xy,
            patch_size,
            labels=labels,
            mpps=[p.slide_mpp for p in parts],
            augment=a,
            seed=cfg.seed,
        )

    painted = {int(v) for p in parts for v in np.unique(np.asarray(p.labels)) if v != UNLABELLED}
    names = class_names_for(sorted(painted), data.class_names)
    return Indexed([mk(aug)]), Indexed([mk(NO_AUGMENT)]), names, UNLABELLED, mpp


def _build_model(
    cfg: FinetuneConfig,
    init: Path | None,
    num_classes: int,
    seg_head: str,
    ck: Checkpoint | None = None,
) -> tuple[WsiModel, list[str]]:
    """The model to fine-tune: from scratch, or initialised from ``init`` (``ck``: that
    checkpoint, already loaded)."""
    task = cfg.task
    torch.manual_seed(cfg.seed)
    if init is None or cfg.mode == Mode.SCRATCH:
        return build_model(cfg.preset, task, num_classes, cfg.width, seg_head=seg_head), [
            "scratch: random initialisation"
        ]
    ck = ck if ck is not None else load_checkpoint(init)
    model = build_model(ck.preset, task, num_classes, ck.arch["width"], seg_head=seg_head)
    init_decoder = (
        cfg.init_decoder if cfg.init_decoder is not None else ck.preset == Preset.UNET_RESNET34
    )
    own = model.state_dict()
    take = {
        k: v
        for k, v in ck.model.state_dict().items()
        if k in own
        and own[k].shape == v.shape
        and (k.startswith("encoder.") or (init_decoder and not k.startswith("seg_head")))
    }
    model.load_state_dict(take, strict=False)
    return model, [f"initialised {len(take)} tensors from {init} ({ck.preset})"]


def finetune(
    data: FinetuneData,
    config: FinetuneConfig,
    out: str | Path,
    init: str | Path | None = None,
    cancel: CancelToken | None = None,
) -> Generator[Any, None, Path]:
    """Fine-tune from a pretrained checkpoint ``init`` (or from scratch) and return the checkpoint path.

    ``data.kind`` ``"slide"`` fits ``task="segment"``, ``"patches"`` fits ``"classify"`` and
    ``"nuclei"`` fits ``"nuclei"``. Yields ``Progress`` (with ``metrics`` after each epoch's
    validation: ``val_loss``, ``val_acc``, ``val_miou``), ``Preview`` and ``Log`` events. The
    saved weights are those of the best validation epoch.
    """
    cfg = config
    want = {"slide": (Task.SEGMENT,), "patches": (Task.CLASSIFY,), "nuclei": (Task.NUCLEI,)}[
        data.kind
    ]
    if cfg.task not in want:
        raise TrainingError(
            f"task {cfg.task!r} does not fit {data.kind} data",
            data.slide or data.folder,
            f"set 'task' to {want[0]}",
        )
    init_path = None if init is None or cfg.mode == Mode.SCRATCH else Path(init)
    if init_path is None and cfg.mode == Mode.FROZEN_ENCODER:
        raise TrainingError(
            "frozen-encoder fine-tuning needs a pretrained checkpoint",
            hint="give a pretrained checkpoint as 'init'",
        )
    ck_meta = load_checkpoint(init_path) if init_path is not None else None
    patch_size = cfg.patch_size or (ck_meta.patch_size if ck_meta else 128)
    mpp = cfg.mpp if cfg.mpp is not None else (ck_meta.mpp if ck_meta else None)
    frozen = cfg.mode == Mode.FROZEN_ENCODER
    seg_head = cfg.seg_head if cfg.seg_head != "auto" else ("light" if frozen else "decoder")
    context = 0
    if data.kind == "slide" and seg_head == "decoder":  # the map is predicted in windows
        context = context_for(patch_size, cfg.context)
        patch_size += 2 * context
    train_set: Any
    val_set: Any
    data_notes: list[Log] = []
    weight = None
    if data.kind == "nuclei":  # split by image, resampled to the model's µm/px
        aug = augment_for(cfg.augment)
        train_set, val_set, names, mpp, data_notes = nuclei_sets(data, cfg, patch_size, mpp, aug)
        ignore, weight = NOTHING_IGNORED, torch.tensor(CLASS_WEIGHTS)
    else:
        train_all, val_all, names, ignore, mpp = _datasets(data, cfg, patch_size, mpp)
        tr, va = cfg.split(len(train_all))
        train_set, val_set = train_all.subset(tr), val_all.subset(va)
    model, notes = _build_model(cfg, init_path, len(names), seg_head, ck_meta)
    if context:
        notes.append(
            f"patches of {patch_size} px: {context} px of context on each side, with no "
            "segmentation loss, so that the map does not depend on the prediction window"
        )
    params = model.trainable_parts(frozen)
    cache = frozen and cfg.cache_features and model.decoder is None
    holder: dict[str, Dataset] = {"val": val_set}

    def forward(net: torch.nn.Module, b: dict[str, Any]) -> dict[str, torch.Tensor]:
        if "features" in b:
            return net(None, features=b["features"], size=(patch_size, patch_size))
        return net(b["image"])

    def loss_fn(o: dict[str, torch.Tensor], b: dict[str, Any]) -> torch.Tensor:
        if "logits" in o:
            return F.cross_entropy(o["logits"].float(), b["label"])
        mask = _centre_only(b["mask"], context, ignore)
        seg = o["seg"].float()
        if weight is not None:
            loss = F.cross_entropy(seg, mask, weight=weight.to(seg.device))
        else:
            ce = F.cross_entropy(seg, mask, ignore_index=ignore, reduction="sum")
            loss = ce / (mask != ignore).sum().clamp(min=1)
        if "recon" in o and cfg.recon_weight:
            loss = loss + cfg.recon_weight * F.l1_loss(o["recon"].float(), b["image"])
        return loss

    @torch.no_grad()
    def evaluate(
        m: torch.nn.Module, to_device: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, float]:
        m.eval()
        vs = holder["val"]
        if len(vs) == 0:  # type: ignore[arg-type]
            return {}
        n, total = 0, 0.0
        k = len(names)
        conf = np.zeros((k, k), np.int64)
        dev = next(m.parameters()).device
        for b in DataLoader(vs, batch_size=cfg.batch_size):
            b = to_device(b)
            with autocast_for(dev, cfg.precision):
                o = forward(m, b)
            size = len(b["index"])
            total += float(loss_fn(o, b)) * size
            n += size
            if "logits" in o:
                pred, tgt = o["logits"].argmax(1), b["label"]
            else:
                pred, tgt = o["seg"].argmax(1), _centre_only(b["mask"], context, ignore)
            keep = tgt != ignore
            p, t = pred[keep].cpu().numpy(), tgt[keep].cpu().numpy()
            conf += metrics.confusion_matrix(t, np.clip(p, 0, k - 1), k)
        iou = metrics.iou_from_confusion(conf)
        if 0 <= ignore < k:  # the unlabelled class is no class of the model
            iou[ignore] = np.nan
        measured = iou[np.isfinite(iou)]
        return {
            "val_loss": total / max(n, 1),
            "val_acc": float(np.trace(conf)) / max(int(conf.sum()), 1),
            "val_miou": float(measured.mean()) if measured.size else 0.0,
        }

    def preview(o: dict[str, torch.Tensor], b: dict[str, Any]) -> dict[str, np.ndarray]:
        if "image" not in b:
            return {}
        images = {"input": to_uint8(b["image"][0])}
        if "recon" in o:
            images["recon"] = to_uint8(o["recon"][0])
        if "seg" in o:
            prob = o["seg"][0].float().softmax(0)[min(1, len(names) - 1)]
            images["probability"] = to_uint8(prob.expand(3, -1, -1))
        return images

    def prepare(device: torch.device) -> Generator[Any, None, None]:
        for note in notes:
            yield Log(note)
        yield from data_notes
        if not cache:
            return
        yield Log("caching frozen encoder features")
        job.train_set = _cache(model, train_set, device, cfg)
        if len(val_set):  # type: ignore[arg-type]
            holder["val"] = _cache(model, val_set, device, cfg)

    job = Job(
        config=cfg,
        model=model,
        params=params,
        train_set=train_set,
        loss_fn=loss_fn,
        forward=forward,
        meta={
            "mpp": mpp,
            "patch_size": patch_size,
            "class_names": names,
            "train_config": {
                **cfg.to_dict(),
                "context": context,
                "init": str(init_path) if init_path else None,
                "data": data.kind,
                **({"slides": [str(p.slide) for p in data.slides()]} if data.more else {}),
                **({"held_out": list(data.exclude)} if data.exclude else {}),
            },
        },
        in_memory=cache,
        evaluate=evaluate,
        preview=preview,
        prepare=prepare,
    )
    return (yield from run(job, Path(out), cancel))


def _centre_only(mask: torch.Tensor, context: int, ignore: int) -> torch.Tensor:
    """``mask`` with a band of ``context`` pixels along every border set to ``ignore``."""
    if context <= 0:
        return mask
    out = torch.full_like(mask, ignore)
    out[..., context:-context, context:-context] = mask[..., context:-context, context:-context]
    return out


class _Cached(Dataset):
    def __init__(self, feats: list[torch.Tensor], targets: dict[str, torch.Tensor]) -> None:
        self.feats, self.targets, self.epoch = feats, targets, 0

    def __len__(self) -> int:
        return len(self.feats[-1])

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "features": [f[i] for f in self.feats],
            **{k: v[i] for k, v in self.targets.items()},
            "index": i,
        }


@torch.no_grad()
def _cache(model: WsiModel, ds: Any, device: torch.device, cfg: FinetuneConfig) -> _Cached:
    """Encoder features of every sample (no augmentation), kept on ``device``; unused levels are empty."""
    model.eval()
    feats: list[list[torch.Tensor]] = [[] for _ in range(5)]
    targets: dict[str, list[torch.Tensor]] = {}
    used = {2, 3, 4} if model.seg_head is not None else {4}
    for b in DataLoader(ds, batch_size=cfg.batch_size, num_workers=cfg.num_workers):
        with autocast_for(device, cfg.precision):
            fs = model.forward_features(b["image"].to(device))
        for k, f in enumerate(fs):
            feats[k].append(f.float() if k in used else torch.zeros(len(f), 0, device=device))
        for key in ("mask", "label"):
            if key in b:
                targets.setdefault(key, []).append(b[key].to(device))
    return _Cached([torch.cat(f) for f in feats], {k: torch.cat(v) for k, v in targets.items()})
