"""Merge ``wsi-ssl study`` output folders that scored the same test folder into one report.

A study's cells are independent, so on a shared machine its arms can run as several studies in
parallel (each its own output folder, the same data, seeds and budgets; the pretrained
checkpoints linked into each folder first, so every arm uses the same encoders). This script
gathers their runs and test probabilities into OUT and writes the one table, comparison,
intervals and plots that a single study would have written.

Usage, from the repository root:
    PYTHONPATH=src .venv/bin/python docs/scripts/study_merge.py OUT STUDY_DIR [STUDY_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from napari_wsi_ssl.evaluation.study_report import comparison_table, markdown_table, write_outputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("studies", type=Path, nargs="+")
    args = ap.parse_args()
    (args.out / "scores").mkdir(parents=True, exist_ok=True)
    runs, labels, seen, sources = [], None, set(), {}
    for folder in args.studies:
        state = json.loads((folder / "study.json").read_text())
        if labels is not None and state["test_labels"] != labels:
            raise SystemExit(f"{folder} scored other test patches")
        labels = state["test_labels"]
        sources[str(folder)] = {
            "config": state["config"],
            "pretrain_seconds": state.get("pretrain_seconds"),
            "runs": len(state["runs"]),
        }
        for run in state["runs"]:
            key = (run["objective"], run["mode"], run["fraction"], run["fold"])
            if key in seen:
                continue
            seen.add(key)
            shutil.copyfile(folder / run["scores"], args.out / run["scores"])
            runs.append(run)
    state = {"sources": sources, "test_labels": labels, "runs": runs}
    result = write_outputs(args.out, state)
    print(markdown_table(result["summary"]), end="")
    print(comparison_table(result["comparison"]), end="")


if __name__ == "__main__":
    main()
