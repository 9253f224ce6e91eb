"""Where inference time goes, for docs/performance.md.

Usage, from the repository root:  .venv/bin/python docs/scripts/profile_inference.py

1. ``torch.profiler`` over the forward pass of the full-width UNet (``unet-resnet34``, width 64)
   on a batch of 4 windows of 384 px, as ``predict_slide`` runs it (fp32, channels_last): the
   share of each operator.
2. The arithmetic rate of a 3×3 convolution of the sizes the network uses, in fp32 and in
   bf16, against which the CPU's peak can be judged.
"""

from __future__ import annotations

import time

import torch

from napari_wsi_ssl.models import build_model


def profile_forward() -> None:
    torch.manual_seed(0)
    model = build_model("unet-resnet34", "segment", num_classes=2, width=64).eval()
    model = model.to(memory_format=torch.channels_last)
    x = torch.rand(4, 3, 384, 384).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(x)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            model(x)
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in rows)
    print(f"forward, batch 4 x 384 px, fp32: {total / 1e6:.2f} s")
    for e in rows[:6]:
        print(f"  {e.key:40s} {100 * e.self_cpu_time_total / total:5.1f} %")


def conv_rates() -> None:
    print("3x3 convolution, batch 4, channels_last (GFLOP/s)")
    for c, side in [(64, 384), (64, 192), (128, 96), (256, 48), (512, 24)]:
        flops = 2 * 4 * c * c * 9 * side * side
        rates = {}
        for dtype in (torch.float32, torch.bfloat16):
            conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False).to(dtype)
            conv = conv.to(memory_format=torch.channels_last)
            x = torch.rand(4, c, side, side, dtype=dtype).contiguous(
                memory_format=torch.channels_last
            )
            with torch.inference_mode():
                conv(x)
                start = time.perf_counter()
                for _ in range(5):
                    conv(x)
                rates[str(dtype).split(".")[-1]] = flops * 5 / (time.perf_counter() - start) / 1e9
        print(
            f"  {c:4d} channels at {side:3d} px: "
            + ", ".join(f"{k} {v:.0f}" for k, v in rates.items())
        )


if __name__ == "__main__":
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    profile_forward()
    conv_rates()
