"""Fixtures of the GUI tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def viewer(make_napari_viewer: Any) -> Any:
    return make_napari_viewer()
