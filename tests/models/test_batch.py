"""One path from uint8 pixels to probabilities: predict_batch, and the evaluators that use it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from napari_wsi_ssl.evaluation.nuclei import nuclei_probs
from napari_wsi_ssl.inference.runner import TorchPredictor
from napari_wsi_ssl.models import autocast_for, build_model, predict_batch


def _images(n: int, h: int, w: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_predict_batch_is_the_softmax_of_the_model_on_unit_floats() -> None:
    torch.manual_seed(0)
    seg_model = build_model("unet-resnet34", "segment", num_classes=3, width=8).eval()
    classifier = build_model("resnet34-ae", "classify", num_classes=2, width=8).eval()
    images = _images(2, 64, 64)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    for model, output, shape in (
        (seg_model, "seg", (2, 3, 64, 64)),
        (classifier, "logits", (2, 2)),
    ):
        prob = predict_batch(model, images, "cpu", output)
        with torch.inference_mode(), autocast_for("cpu"):
            expected = torch.softmax(model(x)[output].float(), dim=1).numpy()
        assert prob.dtype == np.float32 and prob.shape == shape
        np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(prob, expected, atol=1e-4)
        # the no_grad path of a compiled model gives the same numbers
        no_grad = predict_batch(model, images, "cpu", output, inference_mode=False)
        np.testing.assert_allclose(no_grad, prob, atol=1e-6)


def test_the_tile_predictor_and_the_nuclei_evaluator_agree_with_it() -> None:
    torch.manual_seed(0)
    model = build_model("resnet34-ae", "nuclei", num_classes=3, width=8).eval()
    images = _images(2, 64, 64)
    prob = predict_batch(model, images, "cpu", "seg")
    np.testing.assert_allclose(TorchPredictor(model, "cpu")(images), prob, atol=1e-5)
    ckpt = SimpleNamespace(model=model)
    np.testing.assert_allclose(nuclei_probs(ckpt, images[0], "cpu"), prob[0], atol=1e-5)
    odd = nuclei_probs(ckpt, images[0, :50, :41], "cpu")  # padded to 64 x 64 and cropped back
    assert odd.shape == (3, 50, 41)
    np.testing.assert_allclose(odd.sum(axis=0), 1.0, atol=1e-5)
