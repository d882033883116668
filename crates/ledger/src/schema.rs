//! The ledger's tables, as numbered migrations.
//!
//! `PRAGMA user_version` holds the number of migrations applied. A migration
//! is never edited once released: a change to the schema is a new entry at
//! the end of [`MIGRATIONS`].

/// Each entry brings the schema from version `i` to `i + 1`. Entries 2 to 6
/// belong to the parts of Graft that own them (providers, analyzer,
/// supervisor, control plane, orchestration), so that their schema changes
/// land in a fixed order; a reserved one is a no-op until filled.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the core pipeline.
    r#"
CREATE TABLE upgrades (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,          -- instruction | patch | edits | suggestion | autofix
    title           TEXT NOT NULL,
    request         TEXT NOT NULL,          -- JSON: what was asked, as given
    requested_by    TEXT NOT NULL,
    priority        INTEGER NOT NULL DEFAULT 5,
    risk            TEXT,                   -- low | medium | high
    risk_reasons    TEXT NOT NULL DEFAULT '[]',
    state           TEXT NOT NULL,
    reason          TEXT,                   -- machine cause of failure: gate_failed, interrupted, ...
    error           TEXT,                   -- human explanation of the failure
    dry_run         INTEGER NOT NULL DEFAULT 0,
    target_branch   TEXT,
    base_commit     TEXT,
    staged_commit   TEXT,
    branch          TEXT,                   -- graft/<id> while it exists
    landed_commit   TEXT,
    revert_commit   TEXT,
    diff            TEXT,                   -- the staged change as a unified diff
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    finished_at     TEXT
);
CREATE INDEX upgrades_state ON upgrades(state);
CREATE INDEX upgrades_created ON upgrades(created_at);

-- The journal: a row before (begin) and after (end) each pipeline step.
-- Append-only, so the history of a crash stays readable.
CREATE TABLE steps (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    upgrade_id  TEXT NOT NULL REFERENCES upgrades(id),
    step        TEXT NOT NULL,
    phase       TEXT NOT NULL CHECK (phase IN ('begin', 'end')),
    outcome     TEXT,                       -- ok | failed | skipped (end rows)
    at          TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX steps_upgrade ON steps(upgrade_id, id);

CREATE TABLE gate_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    upgrade_id   TEXT NOT NULL REFERENCES upgrades(id),
    round        INTEGER NOT NULL DEFAULT 1,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    required     INTEGER NOT NULL,
    status       TEXT NOT NULL,             -- passed | failed | timed_out | error | skipped
    exit_code    INTEGER,
    duration_ms  INTEGER NOT NULL,
    output_tail  TEXT NOT NULL DEFAULT '',
    figure       REAL,
    baseline     REAL,
    started_at   TEXT NOT NULL
);
CREATE INDEX gate_runs_upgrade ON gate_runs(upgrade_id);

CREATE TABLE file_changes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    upgrade_id     TEXT NOT NULL REFERENCES upgrades(id),
    path           TEXT NOT NULL,
    old_path       TEXT,
    kind           TEXT NOT NULL,           -- create | modify | delete | rename
    lines_added    INTEGER NOT NULL,
    lines_removed  INTEGER NOT NULL,
    blob_before    TEXT,
    blob_after     TEXT
);
CREATE INDEX file_changes_upgrade ON file_changes(upgrade_id);
CREATE INDEX file_changes_path ON file_changes(path);

CREATE TABLE file_versions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    path         TEXT NOT NULL,
    sha256       TEXT,                      -- NULL: the file was deleted
    commit_id    TEXT NOT NULL,
    upgrade_id   TEXT REFERENCES upgrades(id),
    recorded_at  TEXT NOT NULL
);
CREATE INDEX file_versions_path ON file_versions(path);

-- Copies of declared data files taken before an upgrade lands.
CREATE TABLE data_backups (
    upgrade_id   TEXT NOT NULL REFERENCES upgrades(id),
    path         TEXT NOT NULL,
    existed      INTEGER NOT NULL,
    sha256       TEXT,
    backup_path  TEXT,
    PRIMARY KEY (upgrade_id, path)
);

CREATE TABLE rollbacks (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    upgrade_id     TEXT NOT NULL REFERENCES upgrades(id),
    at             TEXT NOT NULL,
    cause          TEXT NOT NULL,
    requested_by   TEXT NOT NULL,
    revert_commit  TEXT,
    data_restored  INTEGER NOT NULL DEFAULT 0,
    detail         TEXT NOT NULL DEFAULT '{}'
);

-- The figure each perf gate measured for a landed commit.
CREATE TABLE perf_baselines (
    gate         TEXT NOT NULL,
    commit_id    TEXT NOT NULL,
    figure       REAL NOT NULL,
    upgrade_id   TEXT,
    recorded_at  TEXT NOT NULL,
    PRIMARY KEY (gate, commit_id)
);

CREATE TABLE scans (
    id           TEXT PRIMARY KEY,
    created_at   TEXT NOT NULL,
    root         TEXT NOT NULL,
    scope        TEXT,
    commit_id    TEXT,
    duration_ms  INTEGER NOT NULL DEFAULT 0,
    summary      TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE suggestions (
    id           TEXT PRIMARY KEY,
    scan_id      TEXT NOT NULL REFERENCES scans(id),
    kind         TEXT NOT NULL,
    title        TEXT NOT NULL,
    files        TEXT NOT NULL DEFAULT '[]',
    risk         TEXT NOT NULL,
    priority     INTEGER NOT NULL,
    instruction  TEXT NOT NULL,
    detail       TEXT NOT NULL DEFAULT '{}',
    upgrade_id   TEXT
);
CREATE INDEX suggestions_scan ON suggestions(scan_id);

-- Outcomes by dimension (kind, module, provider), for learning.
CREATE TABLE learning (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    upgrade_id  TEXT NOT NULL REFERENCES upgrades(id),
    dimension   TEXT NOT NULL,
    key         TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    cause       TEXT,
    at          TEXT NOT NULL
);
CREATE INDEX learning_key ON learning(dimension, key);
"#,
    // 2: providers: one row per round of generate → stage → gates, and
    // each upgrade's token and cost totals.
    r#"
ALTER TABLE upgrades ADD COLUMN provider TEXT;
ALTER TABLE upgrades ADD COLUMN model TEXT;
ALTER TABLE upgrades ADD COLUMN rounds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE upgrades ADD COLUMN input_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE upgrades ADD COLUMN output_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE upgrades ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0;
-- 0 when some round used a model without a known price (its cost counts as 0).
ALTER TABLE upgrades ADD COLUMN cost_known INTEGER NOT NULL DEFAULT 1;

CREATE TABLE generation_rounds (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    upgrade_id     TEXT NOT NULL REFERENCES upgrades(id),
    round          INTEGER NOT NULL,
    provider       TEXT NOT NULL,
    model          TEXT,
    prompt_chars   INTEGER NOT NULL DEFAULT 0,
    reply_chars    INTEGER NOT NULL DEFAULT 0,
    input_tokens   INTEGER NOT NULL DEFAULT 0,
    output_tokens  INTEGER NOT NULL DEFAULT 0,
    cost_usd       REAL NOT NULL DEFAULT 0,
    cost_known     INTEGER NOT NULL DEFAULT 1,
    edits          INTEGER NOT NULL DEFAULT 0,
    outcome        TEXT NOT NULL,           -- passed | gate_failed | refused | error | stuck
    reason         TEXT,                    -- the failure's machine cause
    feedback       TEXT,                    -- what was sent back for the next round
    gates          TEXT NOT NULL DEFAULT '[]',  -- [{"name", "status"}]
    output_tail    TEXT NOT NULL DEFAULT '',    -- a command provider's output
    started_at     TEXT NOT NULL,
    duration_ms    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX generation_rounds_upgrade ON generation_rounds(upgrade_id, round);
"#,
    // 3: analyzer (reserved).
    "SELECT 1;",
    // 4: supervisor.
    r#"
-- A release is the build output of a tree: a revert commit has the tree of
-- the release before, so it maps onto it and never needs a rebuild.
CREATE TABLE releases (
    tree_id      TEXT PRIMARY KEY,
    commit_id    TEXT NOT NULL,             -- the first commit seen with this tree
    path         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    size_bytes   INTEGER NOT NULL DEFAULT 0,
    state        TEXT NOT NULL              -- ready | pruned
);

-- Every process Graft started for a release; one with no stopped_at after
-- a crash of graft itself is an orphan to kill.
CREATE TABLE instances (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    commit_id    TEXT NOT NULL,
    tree_id      TEXT NOT NULL,
    pid          INTEGER,
    start_ticks  INTEGER,                   -- /proc/<pid>/stat starttime, to recognise it
    started_at   TEXT NOT NULL,
    ready_at     TEXT,
    stopped_at   TEXT,
    exit_status  TEXT,
    log_path     TEXT
);

-- Which commit is live, over time; the last row is the current one.
CREATE TABLE live (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    commit_id    TEXT NOT NULL,
    instance_id  INTEGER,
    since        TEXT NOT NULL,
    cause        TEXT NOT NULL              -- start | deploy | rollback | restart | no_restart
);

CREATE TABLE agent_task (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    content      TEXT NOT NULL,
    version      INTEGER NOT NULL,
    updated_at   TEXT NOT NULL
);

CREATE TABLE agent_history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT NOT NULL,
    role         TEXT NOT NULL,
    content      TEXT NOT NULL,
    meta         TEXT NOT NULL DEFAULT '{}'
);
"#,
    // 5: control plane.
    r#"
-- Webhook notifications, written when an upgrade changes state and sent
-- by whichever Graft process holds .graft/webhooks.lock: oldest first per
-- webhook, retried with backoff, so a receiver that was down gets every
-- one, in order, once it is back.
CREATE TABLE webhook_outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook          TEXT NOT NULL,         -- the webhook's key (name, URL or env:VAR)
    upgrade_id       TEXT,
    event            TEXT NOT NULL,         -- planned | gates_passed | promoted | ...
    body             TEXT NOT NULL,         -- the JSON sent, rendered when written
    created_at       TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    last_error       TEXT,
    delivered_at     TEXT,
    dropped_at       TEXT                   -- given up: too old, or no such webhook any more
);
CREATE INDEX webhook_outbox_pending ON webhook_outbox(webhook, id)
    WHERE delivered_at IS NULL AND dropped_at IS NULL;

-- Approvals given to upgrades that waited for one.
CREATE TABLE approvals (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    upgrade_id   TEXT NOT NULL REFERENCES upgrades(id),
    at           TEXT NOT NULL,
    approved_by  TEXT NOT NULL
);
"#,
    // 6: orchestration: the queue's stored requests, approvals, retries,
    // schedules, and code metrics before and after each upgrade.
    r#"
-- What a queued upgrade will run: kept whole (the body is the patch, the
-- edits or the instruction), so it can run after a restart.
CREATE TABLE requests (
    upgrade_id   TEXT PRIMARY KEY REFERENCES upgrades(id),
    name         TEXT NOT NULL,
    body         BLOB NOT NULL,
    spec         TEXT NOT NULL DEFAULT '{}'
);
ALTER TABLE upgrades ADD COLUMN source TEXT NOT NULL DEFAULT 'cli';   -- cli | api | mcp | schedule | retry
ALTER TABLE upgrades ADD COLUMN approval TEXT;                        -- requested | approved | auto | rejected | expired
ALTER TABLE upgrades ADD COLUMN approved_level TEXT;                  -- the highest risk that was approved
ALTER TABLE upgrades ADD COLUMN approval_requested_at TEXT;
ALTER TABLE upgrades ADD COLUMN approved_by TEXT;
ALTER TABLE upgrades ADD COLUMN retry_of TEXT;
ALTER TABLE upgrades ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
CREATE INDEX upgrades_queue ON upgrades(state, priority, created_at);

-- A schedule that came due, and what running it did.
CREATE TABLE schedule_runs (
    name     TEXT NOT NULL,
    due_at   TEXT NOT NULL,
    ran_at   TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    detail   TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (name, due_at)
);

-- The analyzer's figures of each file an upgrade touched, before and after.
CREATE TABLE file_metrics (
    upgrade_id      TEXT NOT NULL REFERENCES upgrades(id),
    path            TEXT NOT NULL,
    phase           TEXT NOT NULL CHECK (phase IN ('before', 'after')),
    loc             INTEGER NOT NULL,
    functions       INTEGER NOT NULL,
    complexity      INTEGER NOT NULL,
    max_complexity  INTEGER NOT NULL,
    duplicates      INTEGER NOT NULL,
    cycles          INTEGER NOT NULL,
    PRIMARY KEY (upgrade_id, path, phase)
);
"#,
    // 7: a suggestion's text is kept once, however many scans find it.
    r#"
-- What a suggestion says, kept once: a re-scan of a tree that has not changed
-- adds only a short row per suggestion pointing here. The digest is the
-- xxh3-128 of the body's fields; bodies carried over from before have none.
CREATE TABLE suggestion_bodies (
    id           INTEGER PRIMARY KEY,
    digest       BLOB UNIQUE,
    kind         TEXT NOT NULL,
    title        TEXT NOT NULL,
    files        TEXT NOT NULL DEFAULT '[]',
    risk         TEXT NOT NULL,
    priority     INTEGER NOT NULL,
    instruction  TEXT NOT NULL,
    detail       TEXT NOT NULL DEFAULT '{}'
);
-- A scan's suggestions: the id an upgrade is made from, and its body.
CREATE TABLE scan_suggestions (
    id           TEXT PRIMARY KEY,
    scan_id      TEXT NOT NULL REFERENCES scans(id),
    body_id      INTEGER NOT NULL REFERENCES suggestion_bodies(id),
    upgrade_id   TEXT
) WITHOUT ROWID;
INSERT INTO suggestion_bodies (id, kind, title, files, risk, priority, instruction, detail)
    SELECT rowid, kind, title, files, risk, priority, instruction, detail FROM suggestions;
INSERT INTO scan_suggestions (id, scan_id, body_id, upgrade_id)
    SELECT id, scan_id, rowid, upgrade_id FROM suggestions;
DROP TABLE suggestions;
ALTER TABLE scan_suggestions RENAME TO suggestions;
CREATE INDEX suggestions_scan ON suggestions(scan_id);
"#,
    // 8: only the newest scans keep their suggestions.
    r#"
-- When a scan's suggestions were dropped by `[scan] suggestion_history`
-- (its summary stays); NULL while they are kept.
ALTER TABLE scans ADD COLUMN suggestions_pruned_at TEXT;
-- `body_id` is no longer a declared foreign key: SQLite would check each
-- body deleted by a scan of this table, or want an index on it that every
-- scan's inserts write all over (two thirds of the pages a scan wrote).
-- Only `prune_suggestions` deletes bodies, and only those no row names.
CREATE TABLE suggestions_8 (
    id           TEXT PRIMARY KEY,
    scan_id      TEXT NOT NULL REFERENCES scans(id),
    body_id      INTEGER NOT NULL,
    upgrade_id   TEXT
) WITHOUT ROWID;
INSERT INTO suggestions_8 (id, scan_id, body_id, upgrade_id)
    SELECT id, scan_id, body_id, upgrade_id FROM suggestions;
DROP TABLE suggestions;
ALTER TABLE suggestions_8 RENAME TO suggestions;
CREATE INDEX suggestions_scan ON suggestions(scan_id);
"#,
    // 9: a gate's first error line, kept even when its tail lost it.
    r#"
ALTER TABLE gate_runs ADD COLUMN first_error TEXT;
"#,
];
