"""All seven docks fit a 1600 x 1000 screen (pytest-xvfb's): the window stays inside it, and each
dock's main button is on screen when its tab is chosen."""

from __future__ import annotations

from typing import Any

import pytest
from gui_helpers import open_dock
from qtpy.QtCore import QRect

pytestmark = pytest.mark.gui

MAIN_BUTTONS = {
    "Pretrain": "pretrain_button",
    "Fine-tune": "finetune_button",
    "Predict": "predict_button",
    "Evaluate": "evaluate_button",
    "Export": "export_button",
    "Nuclei table": "measure_button",
    "Project": "save_button",
}


def _global_rect(widget: Any) -> QRect:
    return QRect(widget.mapToGlobal(widget.rect().topLeft()), widget.size())


def test_all_docks_fit_the_screen(viewer: Any, qtbot: Any) -> None:
    viewer.window.show()
    docks = {name: open_dock(viewer, name) for name in MAIN_BUTTONS}
    qtbot.wait(100)  # the docks become tabs at the next turns of the event loop
    window = docks["Predict"].native.window()
    screen = window.screen().availableGeometry()
    assert (screen.width(), screen.height()) == (1600, 1000), "pytest-xvfb's screen"
    assert screen.contains(window.frameGeometry()), (window.frameGeometry(), screen)
    for name, attr in MAIN_BUTTONS.items():
        dock = docks[name]
        holder = dock.native.parentWidget()
        while holder is not None and not holder.inherits("QDockWidget"):
            holder = holder.parentWidget()
        assert holder is not None
        holder.raise_()  # the user clicks the dock's tab
        qtbot.waitUntil(lambda d=dock: not d.native.visibleRegion().isEmpty(), timeout=2000)
        button = getattr(dock, attr).native
        rect = _global_rect(button)
        assert screen.contains(rect), (name, rect, screen)
        # not hidden below the edge of the dock's scroll area either
        assert not button.visibleRegion().isEmpty(), name
        assert button.visibleRegion().boundingRect().size() == button.size(), name
    # tabs: the last chosen dock shows, the others wait behind their tabs
    shown = [n for n, d in docks.items() if not d.native.visibleRegion().isEmpty()]
    assert shown == ["Project"], shown
