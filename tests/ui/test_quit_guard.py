"""The quit guard: runs kept only in memory are offered a save before the window closes.

With a real MemoryLog holding real runs; the question is answered by a stand-in `ask` where the
test is about what follows an answer, and by clicking the real QMessageBox where it is about the box.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from app.engines.types import GenerationRequest
from app.store import MemoryLog, SessionLog, StoreError
from app.ui.quit_guard import (
    OBJECT_NAME,
    ask_with_box,
    confirm_close,
    mark_saved,
    question,
    question_box,
    unsaved_runs,
)
from tests.store.store_helpers import finished_run


@pytest.fixture
def memory_log():
    log = MemoryLog()
    yield log
    log.close()


def add_runs(log: SessionLog, n: int = 1) -> None:
    request = GenerationRequest.from_prompt("A train leaves at 3:40 pm and takes 2 h 35 min. When?")
    prompt_id = log.add_prompt(log.start_session(mode="fair"), request)
    for pane in range(n):
        finished_run(log, prompt_id, request, pane=pane)


@pytest.fixture
def parent(qtbot):
    widget = QWidget()
    qtbot.addWidget(widget)
    return widget


class Asker:
    """Stands in for the box: answers as told and remembers what it was asked."""

    def __init__(self, answer: str) -> None:
        self.answer, self.asked = answer, []

    def __call__(self, parent, text: str) -> str:
        self.asked.append((parent, text))
        return self.answer


class Saver:
    def __init__(self, works: bool, log: MemoryLog | None = None, target=None) -> None:
        self.works, self.log, self.target, self.calls = works, log, target, 0

    def __call__(self) -> bool:
        self.calls += 1
        if self.works and self.log is not None:
            with SessionLog.open(self.target) as target:
                self.log.save_to(target)
        return self.works


# -- when nothing would be lost, nothing is asked -----------------------------------------------

def test_a_file_log_closes_without_a_question(parent, tmp_path):
    with SessionLog.open(tmp_path / "log.db") as log:
        add_runs(log, 2)
        ask, save = Asker("cancel"), Saver(True)
        assert unsaved_runs(log) == 0
        assert confirm_close(parent, log, save=save, ask=ask) is True
    assert ask.asked == [] and save.calls == 0


def test_an_empty_memory_log_closes_without_a_question(parent, memory_log):
    ask, save = Asker("cancel"), Saver(True)
    assert unsaved_runs(memory_log) == 0
    assert confirm_close(parent, memory_log, save=save, ask=ask) is True
    assert ask.asked == [] and save.calls == 0


# -- runs kept in memory: each answer ---------------------------------------------------------

def test_runs_in_memory_are_asked_about_with_their_number(parent, memory_log):
    add_runs(memory_log, 2)
    ask = Asker("cancel")
    assert confirm_close(parent, memory_log, save=Saver(True), ask=ask) is False
    assert ask.asked == [(parent, question(2))]
    assert question(2).startswith("2 runs are kept only in memory")
    assert question(1).startswith("1 run is kept only in memory")
    assert "Save them to a log file first?" in question(1)


def test_cancel_keeps_the_window_and_saves_nothing(parent, memory_log):
    add_runs(memory_log)
    save = Saver(True)
    assert confirm_close(parent, memory_log, save=save, ask=Asker("cancel")) is False
    assert save.calls == 0 and unsaved_runs(memory_log) == 1  # still there, still not saved


def test_discard_lets_the_window_close_without_saving(parent, memory_log):
    add_runs(memory_log)
    save = Saver(True)
    assert confirm_close(parent, memory_log, save=save, ask=Asker("discard")) is True
    assert save.calls == 0


def test_save_that_works_lets_the_window_close_and_the_runs_are_in_the_file(parent, memory_log, tmp_path):
    add_runs(memory_log, 2)
    target = tmp_path / "saved.db"
    save = Saver(True, memory_log, target)
    assert confirm_close(parent, memory_log, save=save, ask=Asker("save")) is True
    assert save.calls == 1
    with SessionLog.open(target) as saved:
        assert len(saved.list_runs()) == 2
    # Saved: a second close asks nothing.
    ask = Asker("cancel")
    assert unsaved_runs(memory_log) == 0
    assert confirm_close(parent, memory_log, save=Saver(True), ask=ask) is True and ask.asked == []


def test_save_that_fails_or_is_cancelled_keeps_the_window(parent, memory_log):
    add_runs(memory_log)
    save = Saver(False)  # the file dialog cancelled, or the file unusable
    assert confirm_close(parent, memory_log, save=save, ask=Asker("save")) is False
    assert save.calls == 1 and unsaved_runs(memory_log) == 1


def test_a_run_after_a_save_is_asked_about_again(parent, memory_log):
    add_runs(memory_log)
    mark_saved(memory_log)  # as the window may after File → Save runs kept in memory
    assert unsaved_runs(memory_log) == 0
    add_runs(memory_log)
    ask = Asker("cancel")
    assert confirm_close(parent, memory_log, save=Saver(True), ask=ask) is False
    assert ask.asked == [(parent, question(1))]


def test_a_log_that_cannot_count_its_runs_is_asked_about_anyway(parent, memory_log, monkeypatch):
    add_runs(memory_log)

    def broken(*args, **kwargs):
        raise StoreError("The session log could not be read.", "io")

    monkeypatch.setattr(memory_log, "list_runs", broken)
    assert unsaved_runs(memory_log) is None
    mark_saved(memory_log)  # cannot record anything: still asked
    ask = Asker("cancel")
    assert confirm_close(parent, memory_log, save=Saver(True), ask=ask) is False
    assert ask.asked == [(parent, question(None))] and question(None).startswith("Runs are kept only in memory")


def test_an_answer_that_is_not_one_of_the_three_is_an_error(parent, memory_log):
    add_runs(memory_log)
    with pytest.raises(ValueError, match="'yes'"):
        confirm_close(parent, memory_log, save=Saver(True), ask=Asker("yes"))


# -- the real box ------------------------------------------------------------------------------

def test_the_box_offers_save_discard_and_cancel(parent):
    box = question_box(parent, question(3))
    assert box.objectName() == OBJECT_NAME and parent.findChild(QMessageBox, OBJECT_NAME) is box
    assert box.text() == question(3) and box.icon() == QMessageBox.Warning
    assert [box.button(b).text() for b in (QMessageBox.Save, QMessageBox.Discard, QMessageBox.Cancel)] == [
        "Save…", "Discard", "Cancel"]
    assert box.defaultButton() is box.button(QMessageBox.Save)  # Enter keeps the runs
    assert box.escapeButton() is box.button(QMessageBox.Cancel)
    box.deleteLater()


def answer_box(qtbot, parent, act) -> list[QMessageBox]:
    """Once the box is up (inside its exec), act on it; whatever happens, no modal box is left open."""
    seen = []

    def when_shown() -> None:
        box = parent.findChild(QMessageBox, OBJECT_NAME)
        try:
            if box is not None:
                seen.append(box)
                act(box)
        finally:
            modal = QApplication.activeModalWidget()
            if modal is not None:  # the act did not close it: close it, and the test fails on `seen`
                modal.reject()

    QTimer.singleShot(0, when_shown)
    return seen


@pytest.mark.parametrize(
    "act, answer",
    [
        (lambda qtbot, box: qtbot.mouseClick(box.button(QMessageBox.Save), Qt.LeftButton), "save"),
        (lambda qtbot, box: qtbot.mouseClick(box.button(QMessageBox.Discard), Qt.LeftButton), "discard"),
        (lambda qtbot, box: qtbot.mouseClick(box.button(QMessageBox.Cancel), Qt.LeftButton), "cancel"),
        (lambda qtbot, box: qtbot.keyClick(box, Qt.Key_Escape), "cancel"),
        (lambda qtbot, box: qtbot.keyClick(box, Qt.Key_Return), "save"),
    ],
    ids=["Save", "Discard", "Cancel", "Escape", "Enter"],
)
def test_the_box_answers_what_was_clicked(qtbot, parent, act, answer):
    parent.show()
    seen = answer_box(qtbot, parent, lambda box: act(qtbot, box))
    assert ask_with_box(parent, question(1)) == answer
    assert len(seen) == 1 and seen[0].text() == question(1)


def test_closing_the_box_any_other_way_is_cancel(qtbot, parent):
    parent.show()
    seen = answer_box(qtbot, parent, lambda box: box.reject())
    assert ask_with_box(parent, question(1)) == "cancel" and len(seen) == 1


def test_confirm_close_asks_with_the_real_box_by_default(qtbot, parent, memory_log):
    add_runs(memory_log)
    parent.show()
    seen = answer_box(qtbot, parent,
                      lambda box: qtbot.mouseClick(box.button(QMessageBox.Discard), Qt.LeftButton))
    assert confirm_close(parent, memory_log, save=Saver(True)) is True
    assert len(seen) == 1 and seen[0].text() == question(1)
