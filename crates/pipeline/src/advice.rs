//! What to do about a kind of failure: one recommendation per cause, shown
//! by `graft ledger` next to the failures grouped by cause.

use graft_ledger::{Ledger, LedgerStats};
use serde_json::{Value, json};

/// What the ledger says about all upgrades, as `graft ledger --json`,
/// `GET /v1/ledger` and the MCP `ledger` tool give it: the stats, each
/// failure cause with its recommendation, generation cost, rollbacks by
/// cause and the webhook outbox. The stats come back too, for a text view.
pub fn ledger_report(ledger: &Ledger, recent: usize) -> graft_ledger::Result<(LedgerStats, Value)> {
    let stats = ledger.stats(recent)?;
    let mut v = serde_json::to_value(&stats).unwrap_or_default();
    v["failures_by_cause"] = stats
        .failures_by_cause
        .iter()
        .map(|c| {
            json!({
                "cause": c.cause, "count": c.count, "example": c.example,
                "last_upgrade": c.last_upgrade, "recommendation": recommendation(&c.cause),
            })
        })
        .collect();
    v["generation"] = serde_json::to_value(ledger.usage_totals(recent)?).unwrap_or_default();
    v["rollbacks_by_cause"] = ledger
        .rollback_counts()?
        .into_iter()
        .map(|(cause, count)| json!({ "cause": cause, "count": count }))
        .collect();
    v["notifications"] = json!(ledger.outbox_counts()?);
    Ok((stats, v))
}

/// A recommendation for failures with machine cause `reason`.
pub fn recommendation(reason: &str) -> String {
    let (head, tail) = reason.split_once(':').unwrap_or((reason, ""));
    match head {
        "gate_failed" if tail == "parse" => {
            "changes arrive with syntax errors: check how they are produced (an LLM reply cut short, a patch edited by hand)".into()
        }
        "gate_failed" => format!(
            "gate `{tail}` rejects changes most often: run it locally before submitting, and read its whole output in the last failure (`graft show ID`)"
        ),
        "gate_setup" => format!(
            "gate `{tail}` cannot run as set up (its command is missing or refuses its arguments): fix `command` of that gate in graft.toml, or install its tool, then try the change again"
        ),
        "gate_modified_tree" => format!(
            "gate `{tail}` edits the tree it checks: make it read-only (a `--check` flag) so what lands is what passed"
        ),
        "path_traversal" | "path_absolute" | "path_git_dir" | "path_protected" | "symlink_escape" | "path_invalid" => {
            "changes try to touch files outside what policy allows: check where these changes come from".into()
        }
        "search_not_found" | "search_ambiguous" | "hunk_mismatch" | "file_missing" | "file_exists" => {
            "changes no longer match the code: regenerate them against the current tip of the branch".into()
        }
        "malformed_patch" | "truncated_hunk" | "not_utf8" | "invalid_edits" | "empty_change" | "binary" => {
            "malformed input: check the tool that produces these patches (a truncated or re-encoded file is typical)".into()
        }
        "too_large" => "changes exceed the size limits: split them, or raise `[limits]` in graft.toml if that is intended".into(),
        "dirty_tree" => "local edits block upgrades: commit or stash them first, or let upgrades run in a clean clone".into(),
        "base_moved" => "the branch moves while upgrades run: send changes through Graft, or pause other pushes meanwhile".into(),
        "interrupted" => "graft was killed mid-upgrade: look for OOM kills, CI timeouts or restarts of the host".into(),
        "manual_rollback" => "upgrades were rolled back by hand after landing: add a gate that would have caught what made you roll back".into(),
        "deploy_failed" => "new releases fail to start or become ready: check the readiness checks and the release's logs (`graft logs`)".into(),
        "watch_failed" => "new releases fail in their watch window: add tests for what broke, and keep the window long enough to see it".into(),
        "cancelled" => "upgrades are being cancelled: check whether their requests are still wanted".into(),
        _ => "read the message of the last failure with this cause (`graft status`)".into(),
    }
}
