"""Many slides over a dask.distributed cluster: one slide per task, each failure on its own."""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import WsiSslError
from ..events import run_to_end
from .config import PredictConfig
from .predict import predict_slide


@dataclass(frozen=True)
class SlideResult:
    """The outcome of one slide: its store, or the one-line error that stopped it."""

    slide: str
    store: str | None
    error: str | None = None


def predict_one(
    slide_path: str,
    checkpoint_path: str | None,
    out_dir: str,
    config: PredictConfig,
    region: tuple[int, int, int, int] | None = None,
) -> SlideResult:
    """Run ``predict_slide`` to its end; user errors become a result instead of an exception."""
    try:
        store = run_to_end(
            predict_slide(slide_path, checkpoint_path, out_dir, config, region=region)
        )
        return SlideResult(str(slide_path), str(store))
    except WsiSslError as exc:
        return SlideResult(str(slide_path), None, str(exc))
    except Exception as exc:  # noqa: BLE001 - one broken slide must not stop a batch
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return SlideResult(str(slide_path), None, f"{slide_path}: {last}")


def predict_many(
    slides: Sequence[str | Path],
    checkpoint_path: str | Path | None,
    out_dir: str | Path,
    config: PredictConfig = PredictConfig(),
    *,
    region: tuple[int, int, int, int] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
) -> list[SlideResult]:
    """Predict several slides, in this process or on a dask.distributed cluster.

    Parameters
    ----------
    workers
        Start a ``LocalCluster`` of this many single-threaded worker processes.
    scheduler
        Address of a running scheduler (``tcp://host:8786``) to submit to instead.

    With neither, slides run one after another here. The stores are the same either way: each
    slide runs the same deterministic ``predict_slide`` on one worker, writing to ``out_dir``
    (which must be shared storage for a remote cluster).
    """
    args = [str(checkpoint_path) if checkpoint_path else None, str(out_dir), config, region]
    if workers is None and scheduler is None:
        return [predict_one(str(s), *args) for s in slides]  # type: ignore[arg-type]
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler is None:
        # one thread per worker process: torch and the read threads already use the cores
        cluster = LocalCluster(
            n_workers=max(1, int(workers or 1)),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            futures = client.map(
                predict_one,
                [str(s) for s in slides],
                *[[a] * len(slides) for a in args],
                pure=False,
            )
            return list(client.gather(futures))
    finally:
        if cluster is not None:
            cluster.close()


__all__ = ["SlideResult", "predict_many", "predict_one"]
