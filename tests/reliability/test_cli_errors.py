"""Every subcommand turns bad input into one line on stderr and exit code 2, never a traceback.

The cases run through ``wsi-ssl``'s ``main`` in this process, so that an exception that is not
one of the project's errors fails the test with its traceback; one case runs as a real process
to check what a user's terminal shows, with and without ``--debug``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from rel_helpers import assert_one_line_error, run_wsi_ssl

TINY = ["--width", "8", "--patch-size", "32", "--batch-size", "2", "--steps", "1"]


@pytest.fixture(scope="module")
def junk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("junk")
    files = {
        "text": folder / "notes.txt",
        "ckpt": folder / "model.pt",
        "empty_dir": folder / "empty",
        "missing": folder / "absent",
    }
    files["text"].write_text("not an image\n")
    files["ckpt"].write_bytes(b"PK\x03\x04 half a zip")
    files["empty_dir"].mkdir()
    return files


Case = Callable[[dict[str, Path], Path, object, Path], tuple[list[object], list[str]]]

# name -> (arguments, strings the one error line must contain)
CASES: dict[str, Case] = {
    "info-text-file": lambda j, s, ae, t: (["info", j["text"]], [str(j["text"])]),
    "synth-into-a-file": lambda j, s, ae, t: (["synth", j["text"], "--size", "256"], ["notes.txt"]),
    "pretrain-missing-source": lambda j, s, ae, t: (
        ["pretrain", j["missing"], "-o", t / "a.pt", *TINY],
        [str(j["missing"])],
    ),
    "pretrain-zero-batch": lambda j, s, ae, t: (
        ["pretrain", s, "-o", t / "a.pt", *TINY, "--batch-size", "0"],
        ["batch_size"],
    ),
    "pretrain-output-inside-a-file": lambda j, s, ae, t: (
        ["pretrain", s, "-o", j["text"] / "a.pt", *TINY],
        [str(j["text"] / "a.pt")],
    ),
    "finetune-broken-init": lambda j, s, ae, t: (
        ["finetune", "--init", j["ckpt"], "--slide", s, "--mask", s, "-o", t / "f.pt"],
        [str(j["ckpt"]), "checkpoint"],
    ),
    "finetune-text-mask": lambda j, s, ae, t: (
        ["finetune", "--scratch", "--slide", s, "--mask", j["text"], "-o", t / "f.pt", *TINY],
        [str(j["text"]), "mask"],
    ),
    "predict-broken-model": lambda j, s, ae, t: (
        ["predict", s, "--model", j["ckpt"], "-o", t / "p"],
        [str(j["ckpt"])],
    ),
    "predict-reconstruction-model": lambda j, s, ae, t: (
        ["predict", s, "--model", ae, "-o", t / "p"],
        [str(ae), "reconstruct"],
    ),
    "predict-output-inside-a-file": lambda j, s, ae, t: (
        ["predict", s, "--model", ae, "-o", j["text"] / "p"],
        [str(j["text"])],
    ),
    "evaluate-broken-model": lambda j, s, ae, t: (
        ["evaluate", "--model", j["ckpt"], "--patches", j["empty_dir"], "-o", t / "e"],
        [str(j["ckpt"])],
    ),
    "export-missing-store": lambda j, s, ae, t: (
        ["export", j["missing"], "-o", t / "m.ome.tif"],
        [str(j["missing"])],
    ),
    "export-unknown-format": lambda j, s, ae, t: (
        ["export", s, "-o", t / "m.jpeg2000"],
        ["m.jpeg2000", ".ome.tif"],
    ),
    "export-output-inside-a-file": lambda j, s, ae, t: (
        ["export", s, "-o", j["text"] / "m.png"],
        [str(j["text"] / "m.png")],
    ),
    "study-missing-folder": lambda j, s, ae, t: (
        ["study", j["missing"], "-o", t / "s"],
        [str(j["missing"])],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_exit_2(
    cli, junk: dict[str, Path], small_slide, tiny_ae_ckpt: Path, tmp_path: Path, case: str
) -> None:
    args, names = CASES[case](junk, small_slide.slide, tiny_ae_ckpt, tmp_path)
    result = cli(*args)
    assert result.code == 2, (result.out, result.err)
    assert_one_line_error(result.err, *names)
    assert not list(tmp_path.glob("**/*.tmp")), "a failed run leaves no temporary file"


def test_terminal_shows_one_line_and_debug_shows_the_traceback(junk: dict[str, Path]) -> None:
    plain = run_wsi_ssl(["info", junk["text"]])
    assert plain.returncode == 2 and plain.stdout == ""
    line = assert_one_line_error(plain.stderr, str(junk["text"]))
    assert line.startswith("wsi-ssl info: error: ")
    debug = run_wsi_ssl(["info", junk["text"], "--debug"])
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "SlideError" in debug.stderr
