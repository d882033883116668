//! From pipeline events to webhook notifications in the ledger's outbox.
//!
//! The [`Notifier`] is a pipeline observer: it runs on the pipeline's
//! thread, so a notification is in the outbox (one SQLite insert per
//! webhook) before the upgrade goes on, and a crash right after loses
//! nothing. It never sends anything itself: delivery is
//! [`super::deliver`]'s, on its own threads, so a dead webhook cannot slow
//! an upgrade down.
//!
//! | notification | when |
//! |---|---|
//! | `planned` | the change is staged (its files and diff are known) |
//! | `needs_approval` | the upgrade waits for approval |
//! | `gates_passed` | every required gate passed (before the release is built; at the end of a dry run) |
//! | `gates_failed` | a required gate failed, or the release could not be built |
//! | `deployed` | the new release serves; its watch window begins |
//! | `promoted`, `rolled_back`, `cancelled` | the upgrade ended so |
//! | `failed` | it ended for another reason (refused, provider, ...) |

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use graft_config::{Config, WebhookConfig, WebhookEvent};
use graft_ledger::{Ledger, Upgrade, UpgradeState};
use graft_pipeline::{Event, Observer};

use super::payload::Notification;

/// How many upgrades' last end are remembered, to tell an end event seen
/// twice from a new end (an upgrade can end twice: promoted, then rolled
/// back). A `graft run` lives long; this keeps what it remembers bounded.
const ENDS_KEPT: usize = 256;

/// What was announced already.
#[derive(Default)]
struct Seen {
    /// Per upgrade under way, forgotten once it ended.
    once: HashMap<String, Once>,
    /// The end announced for the latest upgrades that ended, oldest first:
    /// at most [`ENDS_KEPT`].
    ends: VecDeque<(String, String)>,
}

impl Seen {
    /// Records `end` for `id`; false when it is the end last announced
    /// for it.
    fn new_end(&mut self, id: &str, end: &str) -> bool {
        let last = self.ends.iter().rev().find(|(i, _)| i == id);
        if last.is_some_and(|(_, e)| e == end) {
            return false;
        }
        self.ends.push_back((id.to_string(), end.to_string()));
        if self.ends.len() > ENDS_KEPT {
            self.ends.pop_front();
        }
        true
    }
}

#[derive(Default)]
struct Once {
    planned: bool,
    gates_passed: bool,
}

/// What an event may be news of, known before the ledger is read.
enum Cue<'a> {
    Planned,
    GatesPassed,
    Deployed,
    NeedsApproval,
    Ended(&'a str),
}

impl<'a> Cue<'a> {
    /// The upgrade an event is about and what it may be news of; `None`
    /// for the events no webhook hears of.
    fn of(event: &'a Event) -> Option<(&'a str, Cue<'a>)> {
        let cue = match event {
            Event::StateChanged { id, state } => match state.as_str() {
                "validating" => (id, Cue::Planned),
                "awaiting_approval" => (id, Cue::NeedsApproval),
                end @ ("promoted" | "rolled_back" | "failed" | "cancelled") => (id, Cue::Ended(end)),
                _ => return None,
            },
            Event::StepBegin { id, step } if step == "release" => (id, Cue::GatesPassed),
            Event::StepEnd {
                id, step, outcome, ..
            } if step == "deploy" && outcome == "ok" => (id, Cue::Deployed),
            _ => return None,
        };
        Some((cue.0.as_str(), cue.1))
    }
}

pub struct Notifier {
    ledger: Mutex<Ledger>,
    hooks: Vec<WebhookConfig>,
    target: String,
    seen: Mutex<Seen>,
    wake: tokio::sync::watch::Sender<u64>,
}

impl Notifier {
    /// A notifier for the repo at `root` with its config; None when no
    /// webhook is configured.
    pub fn open(root: &Path, config: &Config) -> Result<Option<Arc<Notifier>>, String> {
        if config.webhooks.is_empty() {
            return Ok(None);
        }
        let path = root.join(".graft").join("ledger.db");
        let ledger = Ledger::open(&path).map_err(|e| e.to_string())?;
        Ok(Some(Arc::new(Notifier {
            ledger: Mutex::new(ledger),
            hooks: config.webhooks.clone(),
            target: config.target.display_name(root),
            seen: Mutex::new(Seen::default()),
            wake: tokio::sync::watch::Sender::new(0),
        })))
    }

    /// [`Notifier::open`] for a pipeline run in this process: a ledger
    /// that cannot be opened is said on stderr after `who` (`graft`,
    /// `graft mcp`) and the run goes on without webhooks.
    pub fn open_or_warn(root: &Path, config: &Config, who: &str) -> Option<Arc<Notifier>> {
        Notifier::open(root, config).unwrap_or_else(|e| {
            eprintln!("{who}: webhooks: {e}");
            None
        })
    }

    /// What a pipeline run reports to: `notifier`, or no one.
    pub fn observer(notifier: Option<&Arc<Notifier>>) -> &dyn Observer {
        match notifier {
            Some(n) => &**n,
            None => &graft_pipeline::NullObserver,
        }
    }

    /// Changes each time something is queued (the delivery loop waits on it).
    pub fn wake(&self) -> tokio::sync::watch::Receiver<u64> {
        self.wake.subscribe()
    }

    fn once(&self, id: &str, pick: impl FnOnce(&mut Once) -> &mut bool) -> bool {
        let mut seen = self.seen.lock().expect("lock");
        let flag = pick(seen.once.entry(id.to_string()).or_default());
        !std::mem::replace(flag, true)
    }

    fn queue(
        &self,
        ledger: &Ledger,
        event: WebhookEvent,
        u: &Upgrade,
        summary: String,
        facts: Vec<(String, String)>,
    ) {
        let n = Notification {
            event,
            target: self.target.clone(),
            upgrade: u.clone(),
            summary,
            facts,
            at: graft_ledger::now(),
        };
        for h in self.hooks.iter().filter(|h| h.wants(event)) {
            let body = n.render(h.format).to_string();
            if let Err(e) = ledger.enqueue_notification(&h.key(), Some(u.id.as_str()), event.as_str(), &body)
            {
                eprintln!(
                    "graft: cannot queue the `{event}` notification of {} for webhook `{}`: {e}",
                    u.id,
                    h.key()
                );
            }
        }
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn handle(&self, ledger: &Ledger, id: &str, cue: Cue) {
        let Ok(Some(u)) = ledger.upgrade(id) else {
            return;
        };
        match cue {
            Cue::Planned => {
                if self.once(id, |s| &mut s.planned) {
                    self.planned(ledger, &u);
                }
            }
            Cue::GatesPassed => {
                if self.once(id, |s| &mut s.gates_passed) {
                    self.gates_passed(ledger, &u);
                }
            }
            Cue::Deployed => {
                let commit = short(u.landed_commit.as_deref());
                self.queue(
                    ledger,
                    WebhookEvent::Deployed,
                    &u,
                    format!("release {commit} serves now; its watch window has begun"),
                    vec![("commit".into(), commit)],
                );
            }
            Cue::NeedsApproval => self.queue(
                ledger,
                WebhookEvent::NeedsApproval,
                &u,
                format!("\u{201c}{}\u{201d} waits for approval", u.title),
                vec![
                    ("risk".into(), u.risk.clone().unwrap_or_else(|| "unknown".into())),
                    (
                        "approve".into(),
                        format!("graft approve {} (or POST /v1/upgrades/{}/approve)", u.id, u.id),
                    ),
                ],
            ),
            Cue::Ended(end) => {
                if !self.seen.lock().expect("lock").new_end(id, end) {
                    return;
                }
                self.ended(ledger, &u);
                self.seen.lock().expect("lock").once.remove(id);
            }
        }
    }

    fn planned(&self, ledger: &Ledger, u: &Upgrade) {
        let files = ledger.file_changes(u.id.as_str()).unwrap_or_default();
        let (added, removed) = files
            .iter()
            .fold((0, 0), |(a, r), f| (a + f.lines_added, r + f.lines_removed));
        let list: Vec<String> = files
            .iter()
            .take(10)
            .map(|f| format!("{} +{} -{}", f.path, f.lines_added, f.lines_removed))
            .collect();
        let mut facts = vec![
            ("files".into(), list.join("\n")),
            ("kind".into(), u.kind.to_string()),
        ];
        if u.dry_run {
            facts.push(("dry run".into(), "yes: nothing will land".into()));
        }
        self.queue(
            ledger,
            WebhookEvent::Planned,
            u,
            format!(
                "\u{201c}{}\u{201d}: {} file(s), +{added} -{removed}",
                u.title,
                files.len()
            ),
            facts,
        );
    }

    fn gates_passed(&self, ledger: &Ledger, u: &Upgrade) {
        let gates = latest_round(ledger, u);
        let names: Vec<String> = gates
            .iter()
            .map(|g| format!("{} {}", g.name, seconds(g.duration_ms)))
            .collect();
        self.queue(
            ledger,
            WebhookEvent::GatesPassed,
            u,
            format!("every required gate passed ({})", names.join(", ")),
            vec![("gates".into(), names.join("\n"))],
        );
    }

    fn ended(&self, ledger: &Ledger, u: &Upgrade) {
        let first_line = |s: &Option<String>| {
            s.as_deref()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        };
        let reason = u.reason.clone().unwrap_or_default();
        match u.state {
            UpgradeState::Promoted => {
                let commit = short(u.landed_commit.as_deref());
                self.queue(
                    ledger,
                    WebhookEvent::Promoted,
                    u,
                    format!(
                        "{commit} is live on {}",
                        u.target_branch.as_deref().unwrap_or("the branch")
                    ),
                    vec![("commit".into(), commit), ("title".into(), u.title.clone())],
                );
            }
            UpgradeState::RolledBack => {
                let rb = ledger.rollbacks(Some(u.id.as_str())).unwrap_or_default();
                let last = rb.last();
                let cause = last.map(|r| r.cause.clone()).unwrap_or(reason);
                let revert = short(
                    last.and_then(|r| r.revert_commit.as_deref())
                        .or(u.revert_commit.as_deref()),
                );
                let mut facts = vec![
                    ("cause".into(), cause.clone()),
                    ("revert commit".into(), revert.clone()),
                ];
                if let Some(e) = &u.error {
                    facts.push(("why".into(), first_line(&Some(e.clone()))));
                }
                self.queue(
                    ledger,
                    WebhookEvent::RolledBack,
                    u,
                    format!("rolled back ({cause}); revert {revert} is live"),
                    facts,
                );
            }
            UpgradeState::Cancelled if u.dry_run && reason == "dry_run" => {
                // A dry run ends after its gates: that is its news.
                if !self.once(u.id.as_str(), |s| &mut s.gates_passed) {
                    return;
                }
                self.gates_passed(ledger, u);
            }
            UpgradeState::Cancelled => self.queue(
                ledger,
                WebhookEvent::Cancelled,
                u,
                "cancelled; nothing landed".into(),
                vec![("by".into(), first_line(&u.error))],
            ),
            UpgradeState::Failed
                if reason.starts_with("gate_failed")
                    || reason.starts_with("gate_modified_tree")
                    || reason == "release_failed" =>
            {
                let failed: Vec<String> = latest_round(ledger, u)
                    .iter()
                    .filter(|g| g.status != graft_ledger::GateStatus::Passed && g.required)
                    .map(|g| {
                        let tail: Vec<&str> = g
                            .output_tail
                            .lines()
                            .rev()
                            .take(5)
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect();
                        format!("{} ({}): {}", g.name, g.status, tail.join("\n"))
                    })
                    .collect();
                self.queue(
                    ledger,
                    WebhookEvent::GatesFailed,
                    u,
                    first_line(&u.error),
                    vec![("reason".into(), reason), ("gates".into(), failed.join("\n"))],
                );
            }
            UpgradeState::Failed => self.queue(
                ledger,
                WebhookEvent::Failed,
                u,
                first_line(&u.error),
                vec![("reason".into(), reason)],
            ),
            _ => {}
        }
    }
}

impl Observer for Notifier {
    fn on_event(&self, event: &Event) {
        // Most events are no webhook's news: decided before the ledger is
        // read.
        let Some((id, cue)) = Cue::of(event) else {
            return;
        };
        let ledger = self.ledger.lock().expect("lock");
        self.handle(&ledger, id, cue);
    }
}

/// The gate runs of the upgrade's last round.
fn latest_round(ledger: &Ledger, u: &Upgrade) -> Vec<graft_ledger::GateRun> {
    let runs = ledger.gate_runs(u.id.as_str()).unwrap_or_default();
    let last = runs.iter().map(|g| g.round).max().unwrap_or(1);
    runs.into_iter().filter(|g| g.round == last).collect()
}

fn short(commit: Option<&str>) -> String {
    commit.map_or("-", graft_pipeline::land::short).to_string()
}

fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use graft_ledger::{NewUpgrade, RequestKind, UpgradeId, UpgradeUpdate};

    fn setup() -> (tempfile::TempDir, Arc<Notifier>, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".graft")).unwrap();
        let config = Config::parse(
            Path::new("graft.toml"),
            "[target]\nname = \"greeter\"\n\n[[webhooks]]\nname = \"all\"\nurl = \"http://127.0.0.1:9/all\"\nformat = \"json\"\n\n[[webhooks]]\nname = \"few\"\nurl = \"http://127.0.0.1:9/few\"\nevents = [\"needs_approval\"]\n",
        )
        .unwrap();
        let n = Notifier::open(dir.path(), &config)
            .unwrap()
            .expect("webhooks configured");
        let l = Ledger::open(&dir.path().join(".graft/ledger.db")).unwrap();
        (dir, n, l)
    }

    fn upgrade(l: &Ledger, state: UpgradeState, dry_run: bool) -> UpgradeId {
        let id = UpgradeId::generate(chrono::Utc::now());
        l.insert_upgrade(&NewUpgrade {
            id: id.clone(),
            kind: RequestKind::Instruction,
            title: "Split the god class".into(),
            request: serde_json::json!({}),
            requested_by: "schedule".into(),
            priority: 7,
            dry_run,
            state,
        })
        .unwrap();
        id
    }

    fn changed(id: &UpgradeId, state: &str) -> Event {
        Event::StateChanged {
            id: id.to_string(),
            state: state.into(),
        }
    }

    #[test]
    fn an_upgrade_awaiting_approval_is_announced_to_the_webhooks_that_want_it() {
        let (_d, n, l) = setup();
        let id = upgrade(&l, UpgradeState::AwaitingApproval, false);
        let wake = n.wake();
        n.on_event(&changed(&id, "awaiting_approval"));
        assert!(wake.has_changed().unwrap(), "the sender is woken");
        let rows = l.outbox(None, 10).unwrap();
        assert_eq!(rows.len(), 2, "both webhooks want it");
        let body: serde_json::Value = serde_json::from_str(&rows[1].body).unwrap();
        assert_eq!(rows[1].webhook, "all");
        assert_eq!(body["event"], "needs_approval");
        assert_eq!(body["target"], "greeter");
        assert_eq!(
            body["summary"],
            "\u{201c}Split the god class\u{201d} waits for approval"
        );
        assert!(
            body["facts"]["approve"]
                .as_str()
                .unwrap()
                .contains(&format!("POST /v1/upgrades/{id}/approve"))
        );
        let slack: serde_json::Value = serde_json::from_str(&rows[0].body).unwrap();
        assert!(
            slack["text"]
                .as_str()
                .unwrap()
                .starts_with("[greeter] needs approval"),
            "{slack}"
        );
    }

    #[test]
    fn what_was_announced_stays_bounded_over_many_upgrades() {
        let (_d, n, l) = setup();
        let first = upgrade(&l, UpgradeState::Promoted, false);
        n.on_event(&changed(&first, "validating"));
        n.on_event(&changed(&first, "promoted"));
        let seen = |n: &Notifier| {
            let s = n.seen.lock().unwrap();
            (s.once.len(), s.ends.len())
        };
        assert_eq!(seen(&n), (0, 1), "an ended upgrade's flags are forgotten");
        for _ in 0..ENDS_KEPT + 20 {
            let id = upgrade(&l, UpgradeState::Failed, false);
            n.on_event(&changed(&id, "validating"));
            n.on_event(&changed(&id, "failed"));
            n.on_event(&changed(&id, "failed"));
        }
        assert_eq!(seen(&n), (0, ENDS_KEPT));
        let failed = l
            .outbox(Some("all"), 10_000)
            .unwrap()
            .iter()
            .filter(|r| r.event == "failed")
            .count();
        assert_eq!(failed, ENDS_KEPT + 20, "each end told once");
    }

    #[test]
    fn events_no_webhook_hears_of_are_passed_over() {
        for event in [
            Event::StateChanged {
                id: "upg_x".into(),
                state: "queued".into(),
            },
            Event::StateChanged {
                id: "upg_x".into(),
                state: "deploying".into(),
            },
            Event::StepBegin {
                id: "upg_x".into(),
                step: "deploy".into(),
            },
        ] {
            assert!(Cue::of(&event).is_none(), "{event:?}");
        }
        let promoted = changed(&UpgradeId::generate(chrono::Utc::now()), "promoted");
        assert!(matches!(Cue::of(&promoted), Some((_, Cue::Ended("promoted")))));
    }

    #[test]
    fn an_end_is_told_once_and_a_dry_run_ends_with_its_gates() {
        let (_d, n, l) = setup();
        let id = upgrade(&l, UpgradeState::Promoted, false);
        n.on_event(&changed(&id, "promoted"));
        n.on_event(&changed(&id, "promoted"));
        let events: Vec<String> = l
            .outbox(Some("all"), 10)
            .unwrap()
            .into_iter()
            .map(|r| r.event)
            .collect();
        assert_eq!(events, ["promoted"]);
        // Rolled back later: a new end.
        l.set_state(&id, UpgradeState::RolledBack).unwrap();
        n.on_event(&changed(&id, "rolled_back"));
        assert_eq!(l.outbox(Some("all"), 10).unwrap()[0].event, "rolled_back");

        let dry = upgrade(&l, UpgradeState::Staging, true);
        l.update_upgrade(
            &dry,
            &UpgradeUpdate {
                state: Some(UpgradeState::Cancelled),
                reason: Some(Some("dry_run".into())),
                ..Default::default()
            },
        )
        .unwrap();
        n.on_event(&changed(&dry, "cancelled"));
        let last = &l.outbox(Some("all"), 1).unwrap()[0];
        assert_eq!(
            (last.event.as_str(), last.upgrade_id.as_deref()),
            ("gates_passed", Some(dry.as_str()))
        );
        assert!(
            l.outbox(Some("few"), 10)
                .unwrap()
                .iter()
                .all(|r| r.event == "needs_approval")
        );
    }
}
