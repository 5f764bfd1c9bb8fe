"""The session log: SQLite via sqlite-utils, crash-safe, exportable. Imports nothing above it."""

from app.store.log import (
    MemoryLog,
    RunSummary,
    SessionLog,
    SessionSummary,
    StoreError,
    TelemetrySample,
    open_log,
    result_from_record,
)
from app.store.paths import default_db_path, resolve_db_path

__all__ = [
    "MemoryLog", "RunSummary", "SessionLog", "SessionSummary", "StoreError", "TelemetrySample",
    "default_db_path", "open_log", "resolve_db_path", "result_from_record",
]
