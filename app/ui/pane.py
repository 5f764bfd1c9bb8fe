"""One comparison pane: model picker, mode, sampling, the streamed thought and answer, live stats.

Layout and display only. Text arrives through append(); it is painted on the pane's own timer
(REPAINT_MS), so a burst of tokens costs one repaint, not one per token.
"""

from __future__ import annotations

import re
from html import escape

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.live import WAITING, LiveStats, final_stats
from app.plan import AUTO_MODE, DIRECT, DIRECT_MODE, MAX_SAMPLES, THINK, THINKING_MODE, PanePlan, budget_limit
from app.engines.thought_parser import THINKING, Piece
from app.runs import RunResult
from app.ui.snapshots import PaneActivity

REPAINT_MS = 50
MODE_LABELS = {DIRECT_MODE: "Direct", THINKING_MODE: "Thinking", AUTO_MODE: "Auto"}
OVERRIDES = {"Follow the router": None, "Force direct": DIRECT, "Force thinking": THINK}
STAT_NAMES = ("TTFT", "First answer", "Tokens/s now", "Tokens/s avg", "Thinking", "Answer",
              "Elapsed", "Watts", "Energy", "Numbers")


_CODE = re.compile(r"```[\s\S]*?(?:```|$)|`[^`\n]*`")


def markdown_source(text: str) -> str:
    """The model's text as Markdown with raw HTML switched off: "<answer>" is shown, not swallowed
    as a tag. Code spans and blocks are left alone (they show < literally already)."""
    out, last = [], 0
    for match in _CODE.finditer(text):
        out.append(text[last:match.start()].replace("<", "\\<"))
        out.append(match.group(0))
        last = match.end()
    out.append(text[last:].replace("<", "\\<"))
    return "".join(out)


def _fmt(value: float | None, unit: str, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f} {unit}".rstrip()


class PaneView(QFrame):
    model_chosen = Signal(int, str)  # pane, model key (catalog id or path)
    run_clicked = Signal(int)
    cancel_clicked = Signal(int)
    marked = Signal(int, int)  # pane, a person's mark on its answer: 1 right, -1 wrong (the model's record)

    def __init__(self, index: int, title: str, plan: PanePlan, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index = index
        self.setObjectName(f"pane{index}")
        self.setFrameShape(QFrame.StyledPanel)
        self._answer = ""
        self._thinking_dirty = self._answer_dirty = False
        self.activity = PaneActivity.IDLE  # what its Run/Cancel button does; set by set_activity()

        self.title = QLabel(f"<b>{title}</b>")
        self.model = QComboBox()
        self.model.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.model.setMinimumContentsLength(16)
        self.model.setToolTip("The model this pane runs")
        self.model.activated.connect(lambda _=None: self.model_chosen.emit(self.index, self.model.currentData() or ""))
        self.mode = QComboBox()
        for key, label in MODE_LABELS.items():
            self.mode.addItem(label, key)
        self.mode.setToolTip("Direct: no thinking. Thinking: reason first, within the budget. Auto: the router decides")
        self.budget = QSpinBox()
        self.budget.setRange(-1, 32768)
        self.budget.setSpecialValueText("no limit")
        self.budget.setSingleStep(64)
        self.budget.setPrefix("budget ")
        self.budget.setToolTip("Thinking tokens before the thought is closed and the model must answer")
        self.min_thinking = QSpinBox()
        self.min_thinking.setRange(0, 32768)
        self.min_thinking.setSpecialValueText("no min")
        self.min_thinking.setSingleStep(64)
        self.min_thinking.setPrefix("min ")
        self.min_thinking.setToolTip("Budget forcing (s1): when the model ends its thought before this many tokens, "
                                     "\"Wait\" is put in so it thinks on (up to 8 times)")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setPrefix("temp ")
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(1, 32768)
        self.max_tokens.setPrefix("max ")
        self.samples = QSpinBox()
        self.samples.setRange(1, MAX_SAMPLES)
        self.samples.setPrefix("k ")
        self.samples.setToolTip("k samples, majority: the model answers k times at once (decoded together, the "
                                "prompt evaluated once); the pane streams the first and shows the vote and "
                                "every answer. 1: one answer.")
        # A budget always leaves room for the answer: its largest value follows max tokens.
        self.max_tokens.valueChanged.connect(self._on_max_tokens_changed)
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self._on_run_button)
        self.set_plan(plan)
        self.mode.currentIndexChanged.connect(self._on_mode_changed)

        # Two rows, so that two panes fit side by side on a laptop screen.
        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addWidget(self.model, 1)
        top.addWidget(self.samples)  # here, not below: the settings row is as wide as a laptop allows
        top.addWidget(self.run_button)
        settings = QHBoxLayout()
        for widget in (self.mode, self.budget, self.min_thinking, self.temperature, self.max_tokens):
            settings.addWidget(widget)
        settings.addStretch(1)
        controls = QVBoxLayout()
        controls.addLayout(top)
        controls.addLayout(settings)

        # The router's decision, shown before the run in Auto mode, with an override.
        self.route_label = QLabel()
        self.route_label.setWordWrap(True)
        self.route_label.setObjectName("routeBanner")
        self.override = QComboBox()
        for label, value in OVERRIDES.items():
            self.override.addItem(label, value)
        self.router_row = QWidget()
        router = QHBoxLayout(self.router_row)
        router.setContentsMargins(0, 0, 0, 0)
        router.addWidget(self.route_label, 1)
        router.addWidget(self.override)

        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setObjectName("paneStatus")

        self.thinking_toggle = QToolButton()
        self.thinking_toggle.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.thinking_toggle.setCheckable(True)
        self.thinking_toggle.setChecked(True)
        self.thinking_toggle.setArrowType(Qt.DownArrow)
        self.thinking_toggle.setStyleSheet("QToolButton { border: none; color: #666; }")
        self.thinking_toggle.toggled.connect(self._on_thinking_toggled)
        self.thinking_view = QPlainTextEdit()
        self.thinking_view.setReadOnly(True)
        self.thinking_view.setMaximumHeight(160)
        self.thinking_view.setMinimumHeight(36)
        self.thinking_view.setStyleSheet("QPlainTextEdit { color: #666; background: #f6f6f6; }")
        self.answer_view = QTextBrowser()
        self.answer_view.setOpenExternalLinks(True)
        self.answer_view.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.answer_view.setMinimumHeight(48)

        self.stats: dict[str, QLabel] = {}
        # The figures never shrink below what they need: the text views give way instead.
        self.stats_box = QWidget()
        policy = QSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)
        policy.setHeightForWidth(True)  # a wrapped figure makes its row taller, never clipped
        self.stats_box.setSizePolicy(policy)
        grid = QGridLayout(self.stats_box)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setVerticalSpacing(0)
        for n, name in enumerate(STAT_NAMES):
            value = QLabel("—")
            value.setTextInteractionFlags(Qt.TextSelectableByMouse)
            # A long figure ("118.0 J estimated", "fair mode · on battery (41%)") wraps in its own
            # column rather than running into the next one on a narrow window.
            value.setWordWrap(True)
            value.setAlignment(Qt.AlignLeft | Qt.AlignTop)
            self.stats[name] = value
            grid.addWidget(QLabel(f"<span style='color:#777'>{name}</span>"), (n // 5) * 2, n % 5)
            grid.addWidget(value, (n // 5) * 2 + 1, n % 5)
        for column in range(5):
            grid.setColumnStretch(column, 1)

        # One click marks the answer right or wrong: evidence for this model's record, which Auto reads.
        self.mark_right, self.mark_wrong = QToolButton(), QToolButton()
        self.mark_row = QWidget()
        marks = QHBoxLayout(self.mark_row)
        marks.setContentsMargins(0, 0, 0, 0)
        self.mark_note = QLabel()
        self.mark_note.setStyleSheet("color: #666")
        for button, text, value, tip in ((self.mark_right, "✓ Right", 1, "this answer is right"),
                                         (self.mark_wrong, "✗ Wrong", -1, "this answer is wrong")):
            button.setText(text)
            button.setCheckable(True)
            button.setToolTip(f"Mark: {tip}. Auto learns from it whether thinking helps this model.")
            button.clicked.connect(lambda _=False, v=value: self._on_mark(v))
            marks.addWidget(button)
        marks.addWidget(self.mark_note, 1)

        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.router_row)
        layout.addWidget(self.status)
        layout.addWidget(self.mark_row)
        layout.addWidget(self.thinking_toggle)
        layout.addWidget(self.thinking_view)
        layout.addWidget(self.answer_view, 1)
        layout.addWidget(self.stats_box)

        self._timer = QTimer(self)
        self._timer.setInterval(REPAINT_MS)
        self._timer.timeout.connect(self.repaint_text)
        self._timer.start()
        self.clear()
        self._on_mode_changed()

    # -- the plan -----------------------------------------------------------------------------

    def set_plan(self, plan: PanePlan) -> None:
        self.max_tokens.setValue(plan.max_tokens)  # first: it bounds the budget
        self.mode.setCurrentIndex(self.mode.findData(plan.mode))
        self.budget.setValue(-1 if plan.thinking_budget is None else plan.thinking_budget)
        self.min_thinking.setValue(plan.thinking_min or 0)
        self.temperature.setValue(plan.temperature)
        self.samples.setValue(plan.n_samples)

    def plan(self, seed: int = 0) -> PanePlan:
        budget = self.budget.value()
        return PanePlan(
            mode=self.mode.currentData(),
            thinking_budget=None if budget < 0 else budget,
            thinking_min=self.min_thinking.value() or None,
            temperature=round(self.temperature.value(), 2),
            max_tokens=self.max_tokens.value(),
            seed=seed,
            override=self.override.currentData() if self.mode.currentData() == AUTO_MODE else None,
            n_samples=self.samples.value(),
        )

    def _on_max_tokens_changed(self, max_tokens: int) -> None:
        limit = budget_limit(max_tokens)
        self.budget.setMaximum(limit)
        self.budget.setToolTip(f"Thinking tokens before the thought is closed and the model must answer "
                               f"(at most {limit}: the rest of max tokens is kept for the answer)")
        self.min_thinking.setMaximum(limit)

    def _on_mode_changed(self) -> None:
        mode = self.mode.currentData()
        self.budget.setEnabled(mode != DIRECT_MODE)
        self.min_thinking.setEnabled(mode != DIRECT_MODE)
        self.router_row.setVisible(mode == AUTO_MODE)

    def show_decision(self, text: str) -> None:
        self.route_label.setText(f"<b>Router:</b> {text}")

    # -- models -------------------------------------------------------------------------------

    def set_models(self, choices: list[tuple[str, str]], current: str | None) -> None:
        """choices: (label, key) pairs; key is what model_chosen carries."""
        self.model.blockSignals(True)
        self.model.clear()
        for label, key in choices:
            self.model.addItem(label, key)
        found = self.model.findData(current) if current else -1
        self.model.setCurrentIndex(max(found, 0))
        self.model.blockSignals(False)

    def set_activity(self, activity: PaneActivity) -> None:
        """Its run state, from the controller: the button runs or cancels; the plan is editable when idle."""
        self.activity = activity
        self.run_button.setText("Cancel" if activity.running else "Run")
        self.run_button.setEnabled(activity is not PaneActivity.BLOCKED)
        idle = activity is PaneActivity.IDLE
        for widget in (self.model, self.mode, self.budget, self.min_thinking, self.temperature, self.max_tokens,
                       self.override):
            widget.setEnabled(idle)
        if idle:
            self._on_mode_changed()

    def _on_run_button(self) -> None:
        if self.activity.running:
            self.cancel_clicked.emit(self.index)
        else:
            self.run_clicked.emit(self.index)

    def set_status(self, text: str, error: bool = False) -> None:
        """One line of status (HTML); an error in red."""
        self.set_status_lines([(text, "error" if error else "")] if text else [])

    def set_status_lines(self, lines: list[tuple[str, str]]) -> None:
        """Lines of (HTML, kind): kind "error" in red, "warning" in amber, "" plain."""
        colours = {"error": "#b00020", "warning": "#8a5300", "right": "#1b7f2a"}
        html = "<br>".join(f"<span style='color:{colours.get(kind, '#555')}'>{text}</span>" for text, kind in lines)
        self.status.setText(html)
        self.status.setVisible(bool(lines))

    # -- text ---------------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget everything the last run (or a reopened one) showed: text, figures, marks, status."""
        self._answer = ""
        self.started = False
        self.thinking_view.clear()
        self.answer_view.clear()
        self.thinking_toggle.setText("")
        self.thinking_toggle.setVisible(False)
        self.thinking_view.setVisible(False)
        self._thinking_dirty = self._answer_dirty = False
        self._pending_thinking: list[str] = []
        for label in self.stats.values():
            label.setText("—")
            label.setToolTip("")
        self.set_status("")
        self.show_mark(None, markable=False)

    def _on_mark(self, value: int) -> None:
        # A second click on the same mark takes it back.
        self.marked.emit(self.index, 0 if self._mark == value else value)

    def show_mark(self, mark: int | None, markable: bool = True) -> None:
        """The answer's mark as stored (1 right, -1 wrong, None none); markable: a finished answer."""
        self._mark = mark
        self.mark_row.setVisible(markable)
        self.mark_right.setChecked(mark == 1)
        self.mark_wrong.setChecked(mark == -1)
        self.mark_note.setText({1: "you marked it right", -1: "you marked it wrong"}.get(mark, "mark the answer:"))

    def show_waiting(self, why: str) -> None:
        """Before its turn (fair mode): no figures of its own yet, and it says so."""
        self.stats["Elapsed"].setText("waiting")
        self.set_status(escape(why))

    def show_started(self) -> None:
        """Its run has started: whatever said it was waiting goes."""
        self.started = True
        self.set_status("")

    def append(self, pieces: tuple[Piece, ...]) -> None:
        """Queue text for the next repaint."""
        for piece in pieces:
            if piece.channel == THINKING:
                self._pending_thinking.append(piece.text)
                self._thinking_dirty = True
            else:
                self._answer += piece.text
                self._answer_dirty = True

    def _show_text(self, thinking: str, answer: str) -> None:
        """Show a finished run's text at once, in place of what was there."""
        self._answer, self._answer_dirty = answer, True
        self.thinking_view.clear()
        self._pending_thinking = [thinking] if thinking else []
        self._thinking_dirty = bool(thinking)
        if not thinking:
            self.thinking_toggle.setVisible(False)
            self.thinking_view.setVisible(False)
        self.repaint_text()

    @property
    def answer_text(self) -> str:
        return self._answer

    @property
    def thinking_text(self) -> str:
        return self.thinking_view.toPlainText()

    def repaint_text(self) -> None:
        if self._thinking_dirty:
            if self.thinking_toggle.isHidden():
                if not self.thinking_toggle.text():
                    self.thinking_toggle.setText("Thinking…")  # until the figures say how long, how much
                self.thinking_toggle.setVisible(True)
                self.thinking_view.setVisible(self.thinking_toggle.isChecked())
            cursor = self.thinking_view.textCursor()
            cursor.movePosition(QTextCursor.End)
            cursor.insertText("".join(self._pending_thinking))
            self._pending_thinking.clear()
            self.thinking_view.ensureCursorVisible()
            self._thinking_dirty = False
        if self._answer_dirty:
            # Markdown re-rendered per repaint (not per token): code blocks and lists appear as they form.
            bar = self.answer_view.verticalScrollBar()
            at_end = bar.value() >= bar.maximum() - 4
            self.answer_view.setMarkdown(markdown_source(self._answer))
            if at_end:
                bar.setValue(bar.maximum())
            self._answer_dirty = False

    def _on_thinking_toggled(self, open_: bool) -> None:
        self.thinking_toggle.setArrowType(Qt.DownArrow if open_ else Qt.RightArrow)
        self.thinking_view.setVisible(open_ and not self.thinking_toggle.isHidden())

    # -- stats --------------------------------------------------------------------------------

    def show_stats(self, stats: LiveStats, mode: str) -> None:
        s = self.stats
        if stats.status == WAITING:
            for label in s.values():
                label.setText("—")
            s["Elapsed"].setText("waiting")
            return
        s["TTFT"].setText(_fmt(stats.ttft_s, "s"))
        s["First answer"].setText(_fmt(stats.ttfat_s, "s"))
        s["Tokens/s now"].setText(_fmt(stats.tps_now, "", 1))
        s["Tokens/s avg"].setText(_fmt(stats.tps_avg, "", 1))
        s["Thinking"].setText(f"{stats.n_thinking} tok")
        s["Answer"].setText(f"{stats.n_answer} tok")
        s["Elapsed"].setText(_fmt(stats.elapsed_s, "s", 1))
        s["Watts"].setText(_fmt(stats.watts_now, "W", 1))
        kind = stats.energy_kind
        star = "*" if stats.energy_approximate else ""
        s["Energy"].setText(_fmt(stats.joules, "J", 1) + star + (f" <i>{kind}</i>" if kind else ""))
        s["Energy"].setToolTip("\n".join(filter(None, [stats.energy_source, stats.energy_about])))
        s["Numbers"].setText(" · ".join(filter(None, [f"{mode} mode", stats.placement, stats.power_supply])))
        s["Numbers"].setToolTip(
            "fair: panes run one after another with every core (clean numbers); "
            "live: at once with the cores split (slower each, energy shared by CPU time)"
        )
        if stats.n_thinking:
            if self.thinking_toggle.isHidden():  # tokens of thought, even before its text shows
                self.thinking_toggle.setVisible(True)
                self.thinking_view.setVisible(self.thinking_toggle.isChecked())
            if stats.ttfat_s is None and stats.status == "running":
                self.thinking_toggle.setText(f"Thinking… {stats.thinking_s or 0:.1f} s · {stats.n_thinking} tokens")
            else:
                limits = f" · {stats.thought_limits}" if stats.thought_limits else ""
                self.thinking_toggle.setText(f"Thought for {stats.thinking_s or 0:.1f} s · {stats.n_thinking} tokens"
                                             f"{limits}")
        elif stats.status != "running" and not self.thinking_toggle.isHidden():
            # Only text put in (a budget of 0 closed the thought at once): no token of thought.
            self.thinking_toggle.setText(" · ".join(["No thought", *filter(None, [stats.thought_limits])]))

    def show_result(self, r: RunResult, mode: str, known_answer: str | None = None, note: str = "") -> None:
        """The run has ended: text, figures and status from its record, exactly as the log keeps it.

        note: a first status line (HTML), e.g. where a reopened run comes from.
        """
        self.repaint_text()
        if self._answer != r.text or self.thinking_text != r.thinking:
            self._show_text(r.thinking, r.text)  # a reopened run; a streamed one already matches
        self.started = True
        self.show_stats(final_stats(r), mode)
        lines: list[tuple[str, str]] = [(note, "")] if note else []
        if r.status == "failed":
            lines.append((escape(r.error or "failed"), "error"))
        elif r.status == "cancelled":
            lines.append(("Cancelled before it started." if r.total_s is None
                          else "Cancelled: what it wrote so far is kept, and logged as cancelled.", ""))
        elif r.no_answer:
            lines.append((escape(f"No answer: {r.no_answer}."), "warning"))
        if r.thought_note:
            lines.append((escape(f"Thinking budget not held: {r.thought_note}."), "warning"))
        if r.load_note:
            lines.append((escape(f"Busy machine: {r.load_note}."), "warning"))
        if r.conditions.samples_note:  # fewer samples than asked for, or run one after another
            lines.append((escape(f"Samples: {r.conditions.samples_note}."), "warning"))
        if r.correct is not None:
            known = f": the known answer is {escape(known_answer)}" if known_answer else ""
            lines.append(("✓ right" + known, "right") if r.correct else ("✗ wrong" + known, "error"))
        self.set_status_lines(lines)
        self.show_mark(None, markable=r.status == "ok")
