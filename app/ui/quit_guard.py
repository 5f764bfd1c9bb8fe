"""Before the window closes, runs kept only in memory are offered a save; else the close is cancelled.

When the session log file cannot be used, the app keeps its runs in an app.store.MemoryLog, and
closing the window (Ctrl+Q included) would lose them without a word. MainWindow.closeEvent asks
first:

    def closeEvent(self, event):
        if not confirm_close(self, self.controller.log_state().log, save=self.save_memory_log):
            event.ignore()
            return
        ...  # then stop the timers and the workers as before

The signature:

    confirm_close(parent: QWidget | None, log: SessionLog, save: Callable[[], bool],
                  ask: Callable[[QWidget | None, str], str] | None = None) -> bool

It returns True when the window may close: `log` is a file log (every run is already on disk), a
MemoryLog holding no run that is not saved yet, or the user chose Discard, or chose Save… and
`save()` returned True. It returns False when the user chose Cancel (or pressed Escape, or closed
the box), or chose Save… and `save()` returned False (its file dialog cancelled, or the file
could not be used): the runs are still in memory, so the window stays.

`ask(parent, text)` answers "save", "discard" or "cancel"; by default ask_with_box shows the
QMessageBox that question_box builds (objectName "quit_guard"). Tests may pass their own.

mark_saved(log) records that every run the log holds now is in a file. confirm_close calls it
after a successful save; the window may call it after File → Save runs kept in memory too, so that
quitting afterwards does not ask again. Without it the question just comes again, which is safe:
MemoryLog.save_to never imports the same run twice.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from PySide6.QtWidgets import QMessageBox, QWidget

from app.store import MemoryLog, SessionLog, StoreError

OBJECT_NAME = "quit_guard"
ANSWERS = ("save", "discard", "cancel")

# Per MemoryLog, the ids of the runs known to be in a file; weak, so a log that goes is forgotten.
_saved: weakref.WeakKeyDictionary[MemoryLog, frozenset[int]] = weakref.WeakKeyDictionary()


def unsaved_runs(log: SessionLog) -> int | None:
    """Runs `log` holds that no file has: 0 for a file log; None when a MemoryLog cannot count them."""
    if not isinstance(log, MemoryLog):
        return 0
    try:
        ids = {run.id for run in log.list_runs()}
    except StoreError:
        return None
    return len(ids - _saved.get(log, frozenset()))


def mark_saved(log: SessionLog) -> None:
    """Remember that every run `log` holds now is in a file (after a MemoryLog.save_to that worked)."""
    if isinstance(log, MemoryLog):
        try:
            _saved[log] = frozenset(run.id for run in log.list_runs())
        except StoreError:
            pass  # not counted, so still asked about: the safe side


def question(n: int | None) -> str:
    """What the box says, for n runs not saved (None: a number the log could not give)."""
    what = ("Runs are" if n is None else "1 run is" if n == 1 else f"{n} runs are")
    return (f"{what} kept only in memory, because the session log file could not be used; "
            "they are lost when FastSlow closes. Save them to a log file first?")


def question_box(parent: QWidget | None, text: str) -> QMessageBox:
    """Save… (the default, for Enter), Discard, and Cancel (for Escape and the close button)."""
    box = QMessageBox(QMessageBox.Warning, "Runs not saved", text,
                      QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, parent)
    box.setObjectName(OBJECT_NAME)
    box.button(QMessageBox.Save).setText("Save…")
    box.button(QMessageBox.Discard).setText("Discard")
    box.setDefaultButton(QMessageBox.Save)
    box.setEscapeButton(QMessageBox.Cancel)
    return box


def ask_with_box(parent: QWidget | None, text: str) -> str:
    """Show question_box modally; its answer as "save", "discard" or "cancel"."""
    box = question_box(parent, text)
    try:
        box.exec()
        clicked = box.clickedButton()
        button = box.standardButton(clicked) if clicked is not None else QMessageBox.Cancel
    finally:
        box.deleteLater()
    return {QMessageBox.Save: "save", QMessageBox.Discard: "discard"}.get(button, "cancel")


def confirm_close(
    parent: QWidget | None,
    log: SessionLog,
    save: Callable[[], bool],
    ask: Callable[[QWidget | None, str], str] | None = None,
) -> bool:
    """True when the window may close; asks first when `log` holds runs kept only in memory."""
    n = unsaved_runs(log)
    if n == 0:
        return True
    answer = (ask or ask_with_box)(parent, question(n))
    if answer not in ANSWERS:
        raise ValueError(f"ask answered {answer!r}; it must be one of {', '.join(ANSWERS)}")
    if answer == "discard":
        return True
    if answer == "save" and save():
        mark_saved(log)
        return True
    return False
