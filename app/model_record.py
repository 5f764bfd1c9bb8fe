"""A model's record from the session log: its checked runs, made into routing/evidence.py's record.

Checked runs are those whose answer was marked: against a known answer (eval's questions, the
app's known-answer box, `compare --answer`) or by a person (the pane's right/wrong buttons). A
model is keyed as the log keys it (expected_cost.model_key: a served model by its server's URL).
"""

from __future__ import annotations

from app.engines.types import ModelSpec
from app.expected_cost import model_key
from app.reasoning.answers import INSTRUCTION
from app.routing.evidence import Checked, ModelRecord, model_record
from app.store import SessionLog, StoreError

RECENT = 2000  # the newest checked runs that count: the model and the machine as they are now


def record_for(log: SessionLog | None, spec: ModelSpec, without: str | None = None) -> ModelRecord | None:
    """The model's record from the log; None without a log or when the log cannot be read (the
    router then goes by the prompt alone, as it does for a model with no checked run). `without`: a
    prompt whose own runs are left out (an eval routing a question it has answered already)."""
    if log is None:
        return None
    try:
        runs = log.list_runs(limit=RECENT, model=model_key(spec), checked=True)
    except StoreError:
        return None
    checked = [Checked(r.prompt, r.n_thinking_tokens > 0, bool(r.right), r.total_s, r.energy_j) for r in runs
               if r.prompt != without]
    return model_record(spec.label, checked, strip=INSTRUCTION)
