"""DistributedDataParallel under torchrun: 2 gloo processes on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from napari_wsi_ssl.models import load_checkpoint

SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    torch.set_num_threads(1)
    from napari_wsi_ssl.events import run_to_end
    from napari_wsi_ssl.training import PretrainConfig, pretrain

    folder, out = sys.argv[1], sys.argv[2]
    cfg = PretrainConfig(width=8, patch_size=32, batch_size=4, steps=2, device="cpu",
                         precision="fp32", mpp=None)
    gen = pretrain([folder], cfg, out)
    run_to_end(gen)
    rank = torch.distributed.get_rank()
    world = torch.distributed.get_world_size()
    open(f"{out}.rank{rank}", "w").write(f"{world}")
    torch.distributed.destroy_process_group()
    """
)


def test_torchrun_two_gloo_processes(patch_folder: Path, tmp_path: Path) -> None:
    script = tmp_path / "ddp_run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(patch_folder),
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [Path(f"{out}.rank{r}").read_text().split() for r in (0, 1)]
    assert reports[0][0] == reports[1][0] == "2"
    ck = load_checkpoint(out)
    assert ck.resume is not None and ck.resume["step"] == 2
    assert all(torch.isfinite(v.float()).all() for v in ck.model.state_dict().values())
