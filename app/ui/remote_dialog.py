""""Served model…": a model another program serves (llama-server, vLLM, SGLang, Ollama, LM Studio), by
its OpenAI-compatible base URL and model id. "List models" asks the server's /v1/models off the GUI
thread; a bad URL is said in one sentence; choosing gives `remote:<base URL>#<model id>`.

No API key is asked for or stored: the worker reads it from the keyring or FASTSLOW_API_KEY.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import thread_worker

from app.engines.openai_stream import EXAMPLE_URL
from app.engines.types import EngineError
from app.model_picks import KEY_NOTE, remote_name, served_models

RED = "color: #b00020"


class RemoteModelDialog(QDialog):
    def __init__(self, url: str = "", model: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("A served model")
        self.chosen: str | None = None  # remote:<url>#<model> once accepted
        self.url = QLineEdit(url)
        self.url.setPlaceholderText(EXAMPLE_URL)
        self.url.setToolTip("The server's OpenAI-compatible base URL (Ollama: http://127.0.0.1:11434/v1, "
                            "LM Studio: http://127.0.0.1:1234/v1)")
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.setMinimumContentsLength(24)
        self.model.setEditText(model)
        self.model.lineEdit().setPlaceholderText("the model id, as /v1/models lists it")
        self.list_button = QPushButton("List models")
        self.list_button.clicked.connect(self.list_models)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(self.list_button)
        form = QFormLayout()
        form.addRow("Base URL", self.url)
        form.addRow("Model", model_row)
        self.message = QLabel()
        self.message.setWordWrap(True)
        key = QLabel(KEY_NOTE)
        key.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Load")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(key)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self._workers: list = []

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(RED if error else "")

    def list_models(self) -> bool:
        """Ask the server which models it serves, off the GUI thread; False when the URL is refused first."""
        url = self.url.text().strip()
        try:
            remote_name(url, "x")  # the URL's shape, said at once, no network
        except EngineError as exc:
            self._say(_sentence(exc), error=True)
            return False
        self._say(f"Asking {url} for its models…")
        self.list_button.setEnabled(False)
        worker = _list_worker(url)
        worker.returned.connect(self._show_models)
        worker.errored.connect(lambda exc: self._say(_sentence(exc), error=True))
        worker.finished.connect(lambda: self.list_button.setEnabled(True))
        self._workers.append(worker)
        worker.finished.connect(lambda: self._workers.remove(worker) if worker in self._workers else None)
        worker.start()
        return True

    def _show_models(self, found: tuple[str, list[str]]) -> None:
        base, ids = found
        typed = self.model.currentText().strip()
        self.model.clear()
        self.model.addItems(ids)
        self.model.setEditText(typed if typed in ids else ids[0] if ids else typed)
        self._say(f"{base} serves {len(ids)} model{'s' if len(ids) != 1 else ''}." if ids
                  else f"{base} lists no models: give the id by hand.", error=not ids)

    def accept(self) -> None:
        try:
            self.chosen = remote_name(self.url.text(), self.model.currentText())
        except EngineError as exc:
            self._say(_sentence(exc), error=True)
            return
        super().accept()

    def done(self, result: int) -> None:  # a listing still under way only has its signals cut
        for worker in list(self._workers):
            for signal in (worker.returned, worker.errored):
                try:
                    signal.disconnect()
                except (RuntimeError, TypeError):
                    pass
        super().done(result)


def _sentence(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, EngineError) else f"{type(exc).__name__}: {exc}"
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else f"{text}."


@thread_worker(start_thread=False, ignore_errors=True)  # errored is handled: no re-raise
def _list_worker(url: str) -> tuple[str, list[str]]:
    return served_models(url)
