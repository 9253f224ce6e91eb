"""The compute side: a torch model as a batch function, and the prefetching tile pipeline."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ..errors import CancelledError
from ..events import CancelToken, TilesDone

Tile = tuple[int, int]


class TorchPredictor:
    """A model as a function from uint8 (B, H, W, 3) images to float32 class probabilities.

    Segmentation models give (B, C, H, W), classifiers (B, C). The batch goes to the device as
    ``channels_last`` and runs under ``torch.inference_mode()`` and the device's autocast.

    With ``compile_batch``, the model is compiled (``torch.compile``, inductor, weights frozen)
    for batches of exactly that size: shorter batches are padded. If compiling or running the
    compiled model fails, the plain model takes over for good and ``note`` says why.
    """

    def __init__(
        self, model: Any, device: Any, output: str = "seg", compile_batch: int | None = None
    ) -> None:
        import torch

        self.device = device
        self.output = output
        self.model = model.to(device).eval().to(memory_format=torch.channels_last)
        self.compile_batch = compile_batch
        self.compiled: Any = None
        self.note: str | None = None
        if compile_batch:
            try:
                self.compiled = torch.compile(self.model, dynamic=False, options={"freezing": True})
            except Exception as exc:  # noqa: BLE001 - no compiler, an unsupported platform
                self._give_up(exc)

    def _give_up(self, exc: BaseException) -> None:
        self.compiled = None
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        self.note = f"torch.compile failed ({type(exc).__name__}: {first}); the plain model is used"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        from ..models import predict_batch  # torch: inference stays light to import

        if self.compiled is not None:
            try:
                return self._run_compiled(images)
            except Exception as exc:  # noqa: BLE001 - fall back, never lose the run
                self._give_up(exc)
        return predict_batch(self.model, images, self.device, self.output)

    def _run_compiled(self, images: np.ndarray) -> np.ndarray:
        from ..models import predict_batch  # torch: inference stays light to import

        n = images.shape[0]
        b = int(self.compile_batch or n)
        if n < b:  # pad to the compiled shape, so that nothing recompiles
            images = np.concatenate([images, np.repeat(images[-1:], b - n, axis=0)])
        # inductor freezes the weights into the graph under no_grad (not inference_mode)
        out = predict_batch(self.compiled, images, self.device, self.output, inference_mode=False)
        return out[:n]


def run_tiles(
    tiles: Sequence[Tile],
    prepare: Callable[[int, int], Any],
    compute: Callable[[list[Any]], list[Any]],
    finish: Callable[[int, int, Any], None],
    *,
    batch_size: int,
    read_workers: int,
    prefetch_batches: int,
    box_of: Callable[[int, int], tuple[int, int, int, int]],
    done_before: int,
    total: int,
    cancel: CancelToken | None = None,
) -> Generator[TilesDone, None, int]:
    """Run ``prepare`` (threads, ahead of time) -> ``compute`` (batches) -> ``finish`` (one writer
    thread) over the tiles, yielding ``TilesDone`` as tiles reach the store.

    Reading runs ``prefetch_batches`` batches ahead of the model and writing runs behind it, so
    I/O hides behind compute. On cancel, the tiles already computed are written and the run
    raises ``CancelledError`` (the store stays valid and resumable). Returns the tiles done.
    """
    readers = ThreadPoolExecutor(max(1, read_workers), thread_name_prefix="wsi-read")
    writer = ThreadPoolExecutor(1, thread_name_prefix="wsi-write")
    queue: deque[tuple[Tile, Future[Any]]] = deque()
    writes: deque[tuple[list[Tile], Future[None]]] = deque()
    it = iter(tiles)
    done = done_before
    cancelled = False

    def fill() -> None:
        while len(queue) < batch_size * (prefetch_batches + 1):
            t = next(it, None)
            if t is None:
                return
            queue.append((t, readers.submit(prepare, *t)))

    def write_all(batch: list[Tile], outputs: list[Any]) -> None:
        for (ty, tx), out in zip(batch, outputs, strict=True):
            finish(ty, tx, out)

    def report(wait: bool) -> Generator[TilesDone, None, None]:
        nonlocal done
        while writes and (wait or writes[0][1].done() or len(writes) > 2):
            batch, fut = writes.popleft()
            fut.result()
            done += len(batch)
            yield TilesDone(done, total, tuple(box_of(*t) for t in batch))

    try:
        fill()
        while queue:
            if cancel is not None and cancel.cancelled:
                cancelled = True
                break
            batch = [queue.popleft() for _ in range(min(batch_size, len(queue)))]
            fill()
            inputs = [f.result() for _, f in batch]
            outputs = compute(inputs)
            names = [t for t, _ in batch]
            writes.append((names, writer.submit(write_all, names, outputs)))
            yield from report(wait=False)
        yield from report(wait=True)
    finally:
        for _, f in queue:
            f.cancel()
        readers.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True)
    if cancelled:
        raise CancelledError(f"prediction cancelled after {done} of {total} tiles; they are kept")
    return done
