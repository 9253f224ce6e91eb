"""The project folder without napari: paths relative and absolute, one prompt for moved slides,
atomic writes, one-line errors (tests/test_layers.py: it loads neither napari nor torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_wsi_ssl._napari.project import (
    AnnotationEntry,
    Project,
    ProjectError,
    SlideEntry,
    locate_slides,
    read_annotation,
    read_project,
    save_project,
    stored_path,
)


def _project(folder: Path, slides: list[Path]) -> Project:
    return Project(
        slides=[SlideEntry(p.name, stored_path(p, folder)) for p in slides],
        annotations=[
            AnnotationEntry("annotations", slides[0].name, "annotations/0.zarr", [4, 4], [1.5, 1.5])
        ],
    )


def test_round_trip_and_one_prompt_for_a_moved_folder(tmp_path: Path) -> None:
    slides = [tmp_path / "slides" / f"case{k}.svs" for k in (1, 2)]
    slides[0].parent.mkdir()
    for p in slides:
        p.write_bytes(b"slide")
    folder = tmp_path / "project"
    labels = np.zeros((50, 70), np.uint8)
    labels[5:9, 10:20] = 2
    save_project(folder, _project(folder, slides), {"annotations": labels})
    saved = read_project(folder)
    assert saved.slides[0].path["relative"] == "../slides/case1.svs"
    assert saved.versions["napari_wsi_ssl"]
    assert np.array_equal(read_annotation(folder, saved.annotations[0]), labels)
    assert not list(folder.glob(".*"))  # no temporary left behind
    assert locate_slides(saved, folder) == {s.name: s.resolve() for s in slides}
    # saved again without the annotation layer: its array goes
    save_project(folder, Project(slides=saved.slides), {})
    assert not (folder / "annotations" / "0.zarr").exists() and read_project(folder).slides

    # the slides move away from both the relative and the absolute path: asked once
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "slides").rename(tmp_path / "elsewhere" / "slides")
    asked: list[Path] = []

    def locate(recorded: Path) -> Path:
        asked.append(recorded)
        return tmp_path / "elsewhere" / "slides" / recorded.name

    found = locate_slides(saved, folder, locate)
    assert [p.name for p in asked] == ["case1.svs"]
    assert found["case2.svs"] == tmp_path / "elsewhere" / "slides" / "case2.svs"
    with pytest.raises(ProjectError, match="case1.svs: the slide of this project is missing"):
        locate_slides(saved, folder)


def test_damaged_projects_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="no project.json here"):
        read_project(tmp_path)
    (tmp_path / "project.json").write_text("{bad")
    with pytest.raises(ProjectError, match="is damaged: not valid JSON") as e:
        read_project(tmp_path)
    assert "\n" not in str(e.value)
    (tmp_path / "project.json").write_text(
        '{"format": "napari-wsi-ssl project", "format_version": 9}'
    )
    with pytest.raises(ProjectError, match="newer version"):
        read_project(tmp_path)
