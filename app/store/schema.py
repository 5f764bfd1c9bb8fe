"""The log's schema as numbered, append-only migrations (sqlite-utils' Migrations helper).

Never edit a migration that has shipped: add the next number. A database remembers which ones it
has applied (table `_sqlite_migrations`), so an older file is upgraded at open, and a file that
names a migration this build does not know was written by a newer FastSlow and is refused.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATION_SET = "fastslow"
migrations = Migrations(MIGRATION_SET)


def _run(db: Database, *statements: str) -> None:
    # One statement at a time: executescript() would commit the migration's transaction early.
    for sql in statements:
        db.execute(sql)


@migrations(name="001_initial")
def _initial(db: Database) -> None:
    _run(
        db,
        """CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,            -- stable across export/import
            started_at TEXT NOT NULL,
            mode TEXT,                           -- fair | live
            app_version TEXT,
            host TEXT                            -- JSON: platform, machine, python
        )""",
        """CREATE TABLE prompts (
            id INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            text TEXT NOT NULL,                  -- the last user message, for lists and reports
            messages TEXT NOT NULL,              -- JSON [{role, content}]
            request TEXT NOT NULL                -- JSON: max_tokens, sampling, seed, thinking...
        )""",
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,
            prompt_id INTEGER NOT NULL REFERENCES prompts(id) ON DELETE CASCADE,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            finished_at TEXT,
            writer TEXT,                         -- 'pid:start time' of the process running it
            -- the plan: what was asked of this pane
            route TEXT,
            route_budget INTEGER,
            route_confidence REAL,
            route_reasons TEXT,                  -- JSON list of sentences
            params TEXT,                         -- JSON: the request this pane ran
            model_info TEXT,                     -- JSON: what the load produced
            -- RunResult, one column per field (token_times_s lives in token_timelines)
            pane INTEGER NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            mode TEXT NOT NULL,
            status TEXT NOT NULL,                -- running | ok | cancelled | failed | interrupted
            finish_reason TEXT,
            error_kind TEXT,
            error TEXT,
            text TEXT NOT NULL DEFAULT '',
            thinking TEXT NOT NULL DEFAULT '',
            thinking_style TEXT NOT NULL DEFAULT 'none',
            thinking_unclosed INTEGER NOT NULL DEFAULT 0,
            thinking_budget INTEGER,
            strategy TEXT NOT NULL DEFAULT 'native', -- native thinking, or scaffold
            thinking_budget_hit INTEGER NOT NULL DEFAULT 0,
            model_path TEXT NOT NULL DEFAULT '',
            engine TEXT NOT NULL DEFAULT '',
            backend TEXT NOT NULL DEFAULT '',
            quantization TEXT NOT NULL DEFAULT '',
            n_threads INTEGER NOT NULL DEFAULT 0,
            n_gpu_layers INTEGER NOT NULL DEFAULT 0,
            n_prompt_tokens INTEGER NOT NULL DEFAULT 0,
            n_prompt_evaluated INTEGER NOT NULL DEFAULT 0,
            n_generated INTEGER NOT NULL DEFAULT 0,
            n_thinking_tokens INTEGER NOT NULL DEFAULT 0,
            n_answer_tokens INTEGER NOT NULL DEFAULT 0,
            ttft_s REAL,
            ttfat_s REAL,
            prompt_eval_s REAL,
            prompt_tps REAL,
            decode_tps REAL,
            total_s REAL,
            engine_decode_tps REAL,
            started_at TEXT NOT NULL DEFAULT '',
            -- energy is never a bare number: it carries where it came from
            energy_j REAL,
            energy_source TEXT NOT NULL DEFAULT '',  -- measured:nvml | measured:rapl | estimated:tdp ...
            energy_approximate INTEGER NOT NULL DEFAULT 0,
            avg_w REAL,
            peak_w REAL,
            thinking_energy_j REAL,
            answer_energy_j REAL,
            j_per_token REAL,
            j_per_thinking_token REAL,
            j_per_answer_token REAL,
            energy_detail TEXT NOT NULL DEFAULT '{}',  -- JSON: breakdown by source, notes, formula
            peak_rss_bytes INTEGER
        )""",
        """CREATE TABLE token_timelines (
            run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
            n_tokens INTEGER NOT NULL,
            times BLOB NOT NULL,                 -- float64 little-endian, seconds from submit
            channels BLOB NOT NULL               -- one byte per token: 0 answer, 1 thinking
        )""",
        """CREATE TABLE telemetry_samples (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE,
            t_s REAL NOT NULL,
            name TEXT NOT NULL,                  -- cpu_percent, rss_bytes, power_w ...
            value REAL NOT NULL,
            unit TEXT NOT NULL DEFAULT '',
            source TEXT NOT NULL DEFAULT ''      -- measured:nvml, estimated:tdp ...
        )""",
        "CREATE INDEX idx_prompts_session ON prompts(session_id)",
        "CREATE INDEX idx_runs_prompt ON runs(prompt_id)",
        "CREATE INDEX idx_runs_session ON runs(session_id)",
        "CREATE INDEX idx_runs_status ON runs(status)",
        "CREATE INDEX idx_telemetry_run ON telemetry_samples(run_id)",
        "CREATE INDEX idx_telemetry_session ON telemetry_samples(session_id)",
    )


@migrations(name="002_answer_logprob")
def _answer_logprob(db: Database) -> None:
    # The mean log-probability of a run's answer tokens: the confidence a cascade router reads.
    _run(db, "ALTER TABLE runs ADD COLUMN answer_logprob_mean REAL")


@migrations(name="003_thinking_min_engine_memory")
def _thinking_min_engine_memory(db: Database) -> None:
    # Budget forcing (a minimum thought, and how often it was enforced), and the peak memory an
    # engine counts itself (MLX), which RSS misses for GPU buffers.
    _run(db, "ALTER TABLE runs ADD COLUMN thinking_min INTEGER",
         "ALTER TABLE runs ADD COLUMN thinking_extended INTEGER NOT NULL DEFAULT 0",
         "ALTER TABLE runs ADD COLUMN engine_peak_memory_bytes INTEGER")


@migrations(name="004_power_supply")
def _power_supply(db: Database) -> None:
    # Whether a run ran on battery: a laptop throttles there, so its speed and energy are not
    # comparable with a run on mains.
    _run(db, "ALTER TABLE runs ADD COLUMN on_mains INTEGER",
         "ALTER TABLE runs ADD COLUMN battery_percent REAL")


@migrations(name="005_answers")
def _answers(db: Database) -> None:
    # A prompt's known answer (typed in the app, --answer), each run's mark against it, and why a run
    # that finished has no answer: what a person reads first, so it is kept with the run.
    _run(db, "ALTER TABLE prompts ADD COLUMN known_answer TEXT",
         "ALTER TABLE runs ADD COLUMN correct INTEGER",
         "ALTER TABLE runs ADD COLUMN no_answer TEXT NOT NULL DEFAULT ''")


@migrations(name="006_placement_load")
def _placement_load(db: Database) -> None:
    # Where a run ran (the GPU its layers were offloaded to, of how many layers) and the load other
    # processes put on the CPU meanwhile: a figure read without them compares unlike with unlike.
    _run(db, "ALTER TABLE runs ADD COLUMN device TEXT NOT NULL DEFAULT ''",
         "ALTER TABLE runs ADD COLUMN n_layers INTEGER NOT NULL DEFAULT 0",
         "ALTER TABLE runs ADD COLUMN background_cores REAL",
         "ALTER TABLE runs ADD COLUMN load_note TEXT NOT NULL DEFAULT ''")


@migrations(name="007_thought_note")
def _thought_note(db: Database) -> None:
    # A served model cannot hold a thinking budget: the run says so, so that its thought is never
    # read as one the budget held.
    _run(db, "ALTER TABLE runs ADD COLUMN thought_note TEXT NOT NULL DEFAULT ''")


@migrations(name="008_samples")
def _samples(db: Database) -> None:
    # k samples of one prompt decoded together: each its own run, with its place in the batch, since
    # its time and energy are shares of the batch's and must not be read as a run's alone.
    _run(db, "ALTER TABLE runs ADD COLUMN sample INTEGER NOT NULL DEFAULT 0",
         "ALTER TABLE runs ADD COLUMN n_samples INTEGER NOT NULL DEFAULT 1",
         "ALTER TABLE runs ADD COLUMN samples_note TEXT NOT NULL DEFAULT ''")


@migrations(name="009_rating")
def _rating(db: Database) -> None:
    # A person's mark on an answer (the pane's right/wrong buttons): 1 right, -1 wrong. With the known
    # answer's mark it is what a model's record is made of (routing/evidence.py); it wins over that mark.
    _run(db, "ALTER TABLE runs ADD COLUMN rating INTEGER")


def known_names() -> list[str]:
    """Every migration this build knows, in order."""
    # Everything is pending on an empty database: the public way to list the set.
    return [m.name for m in migrations.pending(Database(memory=True, execute_plugins=False))]


def unknown_applied(db: Database) -> list[str]:
    """Migrations the file has and this build lacks: a sign that a newer FastSlow wrote it."""
    known = set(known_names())
    return [m.name for m in migrations.applied(db) if m.name not in known]
