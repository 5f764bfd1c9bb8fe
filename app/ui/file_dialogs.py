"""File dialogs that never open the files they list.

SQLite keeps its locks on the session log as POSIX advisory locks, which belong to the process: a
close() of *any* descriptor of the file in this process drops them all. Qt's dialogs open files to
sniff their type for an icon; listing the log's folder (-wal, -shm) then dropped the app's locks,
another process took the database for unused, checkpointed and deleted the WAL, and later runs went
into a deleted file. These dialogs tell files apart by name and stat() alone. On POSIX they are
Qt's own dialogs (a platform dialog in this process could sniff files too); on Windows, where
SQLite's locks belong to its handles, the platform's.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QFileInfo
from PySide6.QtWidgets import QFileDialog, QFileIconProvider, QWidget


class SafeIconProvider(QFileIconProvider):
    """Icons and type names from the name and the kind of entry, never from the file's content."""

    def icon(self, what):  # noqa: D401 (Qt's name)
        if isinstance(what, QFileInfo):
            kind = QFileIconProvider.Folder if what.isDir() else QFileIconProvider.File
            return super().icon(kind)
        return super().icon(what)

    def type(self, info: QFileInfo) -> str:  # noqa: A003 (Qt's name)
        if info.isDir():
            return "Folder"
        suffix = info.suffix()
        return f"{suffix.upper()} file" if suffix else "File"


def _dialog(parent: QWidget | None, caption: str, folder: str, name_filter: str = "") -> QFileDialog:
    dialog = QFileDialog(parent, caption, folder, name_filter)
    if sys.platform != "win32":
        dialog.setOption(QFileDialog.DontUseNativeDialog, True)
        dialog.setIconProvider(SafeIconProvider())
    return dialog


def save_file_name(parent: QWidget | None, caption: str, default: str = "", name_filter: str = "") -> str:
    """The path to save to, or "" when the user cancelled."""
    dialog = _dialog(parent, caption, default, name_filter)
    dialog.setAcceptMode(QFileDialog.AcceptSave)
    return dialog.selectedFiles()[0] if dialog.exec() and dialog.selectedFiles() else ""


def open_file_name(parent: QWidget | None, caption: str, folder: str = "", name_filter: str = "") -> str:
    """An existing file to open, or "" when the user cancelled."""
    dialog = _dialog(parent, caption, folder, name_filter)
    dialog.setFileMode(QFileDialog.ExistingFile)
    return dialog.selectedFiles()[0] if dialog.exec() and dialog.selectedFiles() else ""


def existing_directory(parent: QWidget | None, caption: str, folder: str = "") -> str:
    """An existing folder, or "" when the user cancelled."""
    dialog = _dialog(parent, caption, folder)
    dialog.setFileMode(QFileDialog.Directory)
    dialog.setOption(QFileDialog.ShowDirsOnly, True)
    return dialog.selectedFiles()[0] if dialog.exec() and dialog.selectedFiles() else ""
