"""The first drop of a session: a text file named ``.svs`` dropped on a fresh viewer, before any
dock is opened, gives the plugin's one-line error, not napari's "Choose reader" dialog.

napari runs no plugin code before the plugin is used, and its own reader also claims ``.svs``;
the plugin's association is saved in napari's settings the first time it runs. Each session is a
fresh process sharing one settings file (``NAPARI_CONFIG``), as a user's napari sessions do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

SESSION = r"""
import json, sys
from napari._qt.dialogs.qt_reader_dialog import QtReaderDialog
from napari.utils.notifications import notification_manager
from qtpy.QtCore import QMimeData, QPointF, Qt, QUrl
from qtpy.QtGui import QDropEvent
from qtpy.QtWidgets import QApplication
import napari

text, open_dock = sys.argv[1], sys.argv[2] == "dock"
dialogs, errors = [], []
# the user closes napari's reader dialog without choosing
QtReaderDialog.get_user_choices = lambda self: (dialogs.append(1), ("", False))[1]
notification_manager.notification_ready.connect(
    lambda n: errors.append(str(n.message)) if str(n.severity) == "error" else None
)
viewer = napari.Viewer(show=True)


def drop():
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(text)])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    viewer.window._qt_viewer.dropEvent(event)
    QApplication.processEvents()
    return {"dialogs": len(dialogs), "errors": list(errors), "layers": len(viewer.layers)}


steps = [drop()]
if open_dock:
    viewer.window.add_plugin_dock_widget("napari-wsi-ssl", "Export")
    steps.append(drop())
viewer.close()
print(json.dumps(steps))
"""


def _session(text: Path, config: Path, open_dock: bool) -> list[dict]:
    env = {**os.environ, "NAPARI_CONFIG": str(config)}
    proc = subprocess.run(
        [sys.executable, "-c", SESSION, str(text), "dock" if open_dock else "none"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_first_drop_of_a_later_session_gives_the_plugins_message(tmp_path: Path) -> None:
    text = tmp_path / "notes.svs"
    text.write_text("patient 12, block B\n")
    config = tmp_path / "napari" / "settings.yaml"

    # a napari that has never run the plugin: napari asks which reader (it knows no better)
    first, in_use = _session(text, config, open_dock=True)
    assert first == {"dialogs": 1, "errors": [], "layers": 0}
    # once a dock is open the plugin reads .svs: its one line, no dialog
    assert in_use["dialogs"] == 1 and len(in_use["errors"]) == 1 and in_use["layers"] == 0

    # every later session: the first drop, before any dock, goes straight to the plugin
    [drop] = _session(text, config, open_dock=False)
    assert drop["dialogs"] == 0 and drop["layers"] == 0
    [message] = drop["errors"]
    assert str(text) in message and "not a whole-slide image" in message
    assert "\n" not in message and "Error" not in message
