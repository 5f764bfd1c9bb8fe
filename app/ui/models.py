"""The model manager: every catalog and local model (GGUF or MLX), whether it fits here, download,
import, delete; and, read-only, the models Ollama and LM Studio keep or serve, marked with their source.

Downloads, imports, the fit check and the look into other tools' folders and servers run off the
GUI thread; errors become one clear sentence.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import thread_worker

from app.catalog import MODELS_DIR, load_catalog
from app.downloads import delete_model, download_model, import_gguf, import_mlx_folder, remove_local
from app.engines.types import EngineError
from app.hardware import memory_state
from app.engines.gguf_header import read_gguf_header
from app.local_stores import SOURCES, Places, discover
from app.models_overview import gib, overview, params_text, store_rows
from app.thinking_styles import detect_style
from app.ui.file_dialogs import existing_directory, open_file_name

COLUMNS = ("Model", "Format", "Params", "Quant", "Size", "Thinking", "License", "Fits here", "Where")
FIT = COLUMNS.index("Fits here")


class ModelManager(QWidget):
    models_changed = Signal()  # a model was downloaded, imported or deleted

    def __init__(self, n_ctx: int = 4096, models_dir: Path | None = None, parent: QWidget | None = None,
                 places: Places | None = None) -> None:
        super().__init__(parent)
        self.n_ctx = n_ctx
        self.models_dir = models_dir or MODELS_DIR
        self.places = places  # where Ollama and LM Studio keep models; None: read from the environment each time
        self.elsewhere: list[str] = []  # what the last look into other tools said went wrong there
        self.rows: list[dict] = []
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.download_button = QPushButton("Download")
        self.download_button.clicked.connect(self.download_selected)
        self.cancel_button = QPushButton("Cancel download")
        self.cancel_button.clicked.connect(self.cancel_downloads)
        self.cancel_button.setEnabled(False)
        self.import_button = QPushButton("Import a GGUF file…")
        self.import_button.clicked.connect(lambda: self.import_file())
        self.import_folder_button = QPushButton("Import an MLX folder…")
        self.import_folder_button.clicked.connect(lambda: self.import_folder())
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(lambda: self.delete_selected())
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.summary = QLabel()
        buttons = QHBoxLayout()
        for widget in (self.download_button, self.cancel_button, self.import_button, self.import_folder_button,
                       self.delete_button, refresh):
            buttons.addWidget(widget)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.detail)
        self._cancel = threading.Event()
        self._workers: list = []
        self._loaded = False

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name): fill the table the first time it is seen
        if not self._loaded:
            self.refresh()
        super().showEvent(event)

    # -- the table ----------------------------------------------------------------------------

    def refresh(self, outcome: str | None = None, error: bool = False) -> None:
        """Re-read the models; outcome (what the last action did) stays on screen meanwhile."""
        self._loaded = True
        self._say(outcome or "Reading the models and checking what fits…", error)
        worker = _overview_worker(self.n_ctx, self.models_dir, self.places)
        worker.returned.connect(lambda found: self._show_rows(*found, keep_message=outcome is not None))
        worker.errored.connect(lambda exc: self.message.setText(f"Could not list the models: {exc}"))
        self._keep(worker)

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #b00020" if error else "")

    def _show_rows(self, rows: list[dict], elsewhere: list[str] | None = None, keep_message: bool = False) -> None:
        self.rows = rows
        self.elsewhere = elsewhere or []
        self.table.setRowCount(len(rows))
        for n, row in enumerate(rows):
            if row.get("read_only"):  # another tool's model: named by where it came from
                where = SOURCES[row["source"]]
            else:
                where = row["where"] if row["where"] in ("bundled", "not downloaded") else "downloaded"
            values = (row["name"], row["format"], row["params"], row["quant"], gib(row["size_bytes"]),
                      row["thinking"], row["license"], row["fit"], where)
            for col, value in enumerate(values):
                item = QTableWidgetItem("—" if value is None else str(value))
                if col == FIT and row.get("fit_detail"):
                    item.setToolTip(row["fit_detail"])
                self.table.setItem(n, col, item)
        self.table.resizeColumnsToContents()
        memory = memory_state()
        others = sum(1 for row in rows if row.get("read_only"))
        self.summary.setText(f"{len(rows)} models{f' ({others} from Ollama or LM Studio)' if others else ''} · "
                             f"fit judged at {self.n_ctx:,} context · {gib(memory.ram_available)} RAM available"
                             + "".join(f"<br>{html.escape(line)}" for line in self.elsewhere))
        if not keep_message:
            self._say("")
        self._on_selection()  # the selected row may have changed state (downloaded, deleted…)

    def selected_row(self) -> dict | None:
        rows = self.table.selectionModel().selectedRows()
        return self.rows[rows[0].row()] if rows else None

    def _on_selection(self) -> None:
        row = self.selected_row()
        if row is None:
            self.download_button.setEnabled(False)
            self.delete_button.setEnabled(False)
            return
        facts = (f" · {row['architecture']}, context {row['context_length'] or '?':,}"
                 if row.get("architecture") else "")
        source = SOURCES[row["source"]] if row.get("read_only") else row["source"]
        self.detail.setText(f"<b>{row['name']}</b> · {row['format']} · {source}{facts} · {row.get('fit_detail') or ''}"
                            + (f"<br>{row['path']}" if row["path"] else "")
                            + "".join(f"<br>{html.escape(note)}" for note in row.get("notes") or ()))
        self.download_button.setEnabled(row["where"] == "not downloaded")
        self.delete_button.setEnabled(row["where"] not in ("bundled", "not downloaded") and not row.get("read_only"))

    def _entry(self, row: dict):
        return next((e for e in load_catalog() if e.id == row["model"]), None)

    def _keep(self, worker) -> None:
        """Hold a reference until the worker ends, so Qt does not lose it mid-task."""
        self._workers.append(worker)
        worker.finished.connect(lambda: self._workers.remove(worker) if worker in self._workers else None)
        worker.start()

    # -- download, import, delete ---------------------------------------------------------------

    def download_selected(self) -> bool:
        row = self.selected_row()
        entry = self._entry(row) if row else None
        if entry is None or row["where"] != "not downloaded":
            self.message.setText("Select a catalog model that is not downloaded yet.")
            return False
        self._cancel.clear()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.cancel_button.setEnabled(True)
        self.download_button.setEnabled(False)
        self.message.setText(f"Downloading {entry.name} from {entry.hf_repo}…")
        worker = _download_worker(entry, self._cancel, self.models_dir)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(lambda path: self._download_done(f"Downloaded and verified: {path}"))
        worker.errored.connect(lambda exc: self._download_done(_error_text(exc), error=True))
        self._keep(worker)
        return True

    def _on_progress(self, progress) -> None:
        if progress.total_bytes:
            self.progress.setValue(int(100 * progress.downloaded_bytes / progress.total_bytes))
            rate = f" · {progress.bytes_per_s / 2**20:.1f} MiB/s" if progress.bytes_per_s else ""
            self.progress.setFormat(f"%p% · {gib(progress.downloaded_bytes)} of {gib(progress.total_bytes)}{rate}")

    def _download_done(self, text: str, error: bool = False) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setEnabled(False)
        if not error:
            self.models_changed.emit()
        self.refresh(text, error)

    def cancel_downloads(self) -> None:
        self._cancel.set()

    def import_file(self, path: str | None = None) -> bool:
        if path is None:
            path = open_file_name(self, "Import a GGUF model", "", "GGUF models (*.gguf)")
            if not path:
                return False
        return self._start_import(_import_worker(path, self.models_dir),
                                  lambda done: f"Imported {Path(path).name} into {done[0].parent}: {done[1]}")

    def import_folder(self, path: str | None = None) -> bool:
        """An MLX model folder (config.json, *.safetensors, tokenizer), checked and copied into models/."""
        if path is None:
            path = existing_directory(self, "Import an MLX model folder")
            if not path:
                return False
        return self._start_import(_import_folder_worker(path, self.models_dir),
                                  lambda dest: f"Imported the MLX model {dest.name} into {dest.parent}")

    def _start_import(self, worker, describe) -> bool:
        worker.returned.connect(lambda result: self._import_done(describe(result)))
        worker.errored.connect(lambda exc: self._import_done(_error_text(exc), error=True))
        self._keep(worker)
        return True

    def _import_done(self, text: str, error: bool = False) -> None:
        if error:
            self._say(text, error=True)
        else:
            self.models_changed.emit()
            self.refresh(text)

    def delete_selected(self, confirm: bool = True) -> bool:
        row = self.selected_row()
        if row is None or row["where"] in ("bundled", "not downloaded"):
            self.message.setText("Select a downloaded or imported model to delete (bundled models come with the app).")
            return False
        if row.get("read_only"):  # its tool's own records point at the file: removing it there keeps them true
            self._say(f"{row['name']} belongs to {SOURCES[row['source']]}; FastSlow does not delete another tool's "
                      f"models: remove it in {SOURCES[row['source']].removesuffix(' server')}.", error=True)
            return False
        if confirm and QMessageBox.question(self, "Delete model", f"Delete {row['name']} ({gib(row['size_bytes'])})?") != QMessageBox.Yes:
            return False
        try:
            entry = self._entry(row)
            if entry is not None:
                freed = delete_model(entry, models_dir=self.models_dir)
            else:  # a GGUF file or MLX folder the user put into models/
                freed = remove_local(Path(row["path"]))
        except (EngineError, OSError) as exc:
            self._say(_error_text(exc), error=True)
            return False
        self.models_changed.emit()
        self.refresh(f"Deleted {row['name']}: {gib(freed)} freed")
        return True


def _error_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, EngineError) else f"{type(exc).__name__}: {exc}"


@thread_worker(start_thread=False, ignore_errors=True)  # errored is handled: no re-raise
def _overview_worker(n_ctx: int, models_dir: Path, places: Places | None) -> tuple[list[dict], list[str]]:
    """The models and, from Ollama's and LM Studio's folders and servers, theirs; with what failed there."""
    memory = memory_state()
    found = discover(places)
    failed = [f"{SOURCES[looked.source]}: {looked.message}" for looked in found.looked if looked.state == "failed"]
    return overview(n_ctx, memory, models_dir) + store_rows(found, n_ctx, memory), failed


@thread_worker(start_thread=False, ignore_errors=True)  # errored is handled: no re-raise
def _download_worker(entry, cancel: threading.Event, models_dir: Path):
    updates: list = []
    # Progress arrives on the download thread; it is handed to the GUI through this generator.
    result = {}

    def on_progress(progress) -> None:
        updates.append(progress)

    def download():
        result["path"] = _capture(lambda: download_model(entry, on_progress, cancel, models_dir=models_dir))

    thread = threading.Thread(target=download, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)
        if updates:
            yield updates[-1]
            updates.clear()
    outcome = result["path"]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _capture(fn):
    try:
        return fn()
    except BaseException as exc:  # handed back to the worker, which raises it on its own thread
        return exc


@thread_worker(start_thread=False, ignore_errors=True)  # errored is handled: no re-raise
def _import_folder_worker(path: str, models_dir: Path) -> Path:
    return import_mlx_folder(path, models_dir)


@thread_worker(start_thread=False, ignore_errors=True)  # errored is handled: no re-raise
def _import_worker(path: str, models_dir: Path) -> tuple[Path, str]:
    dest = import_gguf(path, models_dir)
    return dest, describe_gguf(read_gguf_header(dest))


def describe_gguf(header) -> str:
    """What the file says about itself, in one line: what a user checks after an import."""
    style = detect_style(header.chat_template)
    return (f"{header.name or header.architecture} · {header.architecture} · {params_text(header.n_params)} parameters · "
            f"{header.quantization} · {gib(header.file_size)} · context {header.context_length or '?':,} · "
            f"chat template: {'yes' if header.chat_template else 'none (give one in the catalog)'} · "
            f"thinking: {style}")
