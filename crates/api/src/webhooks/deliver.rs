//! Sending the outbox: per webhook, oldest first; a notification is marked
//! delivered when the receiver answers 2xx, else retried after a back-off
//! (1 s, doubling, up to `max_backoff`), and the ones behind it wait, so
//! a receiver that was down gets every notification, in order, once it is
//! back. One older than `give_up_after` is dropped (and recorded so).
//!
//! Delivery is at least once: a receiver that answered but whose answer
//! was lost gets the notification again; `X-Graft-Delivery` (the outbox
//! id) lets it recognise a repeat.
//!
//! Who sends: whichever process holds `.graft/webhooks.lock`. `graft run`
//! takes it for its lifetime and sends as notifications arrive (its own,
//! at once; those the CLI queued, within a second). Without a daemon, each
//! `graft` command that ran the pipeline sends what is due before it exits,
//! for a few seconds at most; what fails waits in the outbox for the next
//! command or `graft run`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use graft_config::WebhookConfig;
use graft_ledger::{Ledger, OutboxRow};
use nix::fcntl::{Flock, FlockArg};

/// What one pass over a webhook's outbox did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Nothing waits.
    Empty,
    /// The head is not due yet (or just failed): try again after this.
    Wait(Duration),
}

fn lock_path(root: &Path) -> PathBuf {
    root.join(".graft").join("webhooks.lock")
}

fn try_lock(root: &Path) -> Option<Flock<std::fs::File>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(root))
        .ok()?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).ok()
}

fn open_ledger(root: &Path) -> Result<Ledger, String> {
    Ledger::open(&root.join(".graft").join("ledger.db")).map_err(|e| e.to_string())
}

/// The HTTP client of one sender, made once: its connections are kept
/// for the next notification to the same receiver.
fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .user_agent(concat!("graft/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// POST one notification.
fn attempt(agent: &ureq::Agent, url: &str, row: &OutboxRow, timeout: Duration) -> Result<(), String> {
    let resp = agent
        .post(url)
        .config()
        .timeout_global(Some(timeout))
        .build()
        .header("content-type", "application/json")
        .header("x-graft-event", &row.event)
        .header("x-graft-delivery", row.id.to_string())
        .send(row.body.as_bytes())
        .map_err(|e| match e {
            ureq::Error::Timeout(_) => format!("no answer within {} s", timeout.as_secs_f64()),
            other => other.to_string(),
        })?;
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("the receiver answered HTTP {status}"))
    }
}

fn backoff(attempts: i64, max: Duration) -> Duration {
    let secs = 1u64.checked_shl(attempts.clamp(0, 30) as u32).unwrap_or(u64::MAX);
    Duration::from_secs(secs).min(max)
}

fn parse_time(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Records a failed attempt at `row` and when to try again.
fn failed(ledger: &Ledger, hook: &WebhookConfig, row: &OutboxRow, error: &str) -> Pass {
    let wait = backoff(row.attempts, hook.max_backoff.0);
    let next = (Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default())
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    if let Err(e) = ledger.notification_failed(row.id, error, &next) {
        return unrecorded(hook, "a failed attempt", e);
    }
    Pass::Wait(wait)
}

/// A write to the outbox failed: say so, and wait before the next pass
/// (going on at once would send the same notification again and again).
fn unrecorded(hook: &WebhookConfig, what: &str, e: impl std::fmt::Display) -> Pass {
    eprintln!(
        "graft: warning: webhook `{}`: {what} could not be recorded in the ledger ({e}); trying again in {} s",
        hook.key(),
        UNRECORDED_WAIT.as_secs()
    );
    Pass::Wait(UNRECORDED_WAIT)
}

const UNRECORDED_WAIT: Duration = Duration::from_secs(5);

/// Send what is due for one webhook, in order, until the outbox is empty,
/// a notification fails, or `deadline` passes.
fn pass(
    ledger: &Ledger,
    agent: &ureq::Agent,
    hook: &WebhookConfig,
    timeout: Duration,
    deadline: Option<Instant>,
) -> Pass {
    let key = hook.key();
    loop {
        let Ok(Some(row)) = ledger.next_notification(&key) else {
            return Pass::Empty;
        };
        let now = Utc::now();
        let age = parse_time(&row.created_at).map(|t| (now - t).to_std().unwrap_or_default());
        if age.is_some_and(|a| a > hook.give_up_after.0) {
            let why = format!(
                "given up: undelivered after {} (`give_up_after`); last error: {}",
                humantime::format_duration(hook.give_up_after.0),
                row.last_error.as_deref().unwrap_or("none")
            );
            if let Err(e) = ledger.notification_dropped(row.id, &why) {
                return unrecorded(hook, "giving up on a notification", e);
            }
            continue;
        }
        if let Some(due) = parse_time(&row.next_attempt_at)
            && due > now
        {
            return Pass::Wait((due - now).to_std().unwrap_or_default());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Pass::Wait(Duration::ZERO);
        }
        let sent = hook
            .resolve_url()
            .and_then(|url| attempt(agent, &url, &row, timeout));
        if let Err(e) = sent {
            return failed(ledger, hook, &row, &e);
        }
        if let Err(e) = ledger.notification_delivered(row.id) {
            return unrecorded(hook, "a delivery", e);
        }
    }
}

/// Drop what waits for webhooks that are no longer configured.
fn drop_orphans(ledger: &Ledger, hooks: &[WebhookConfig]) {
    let Ok(keys) = ledger.webhooks_with_pending() else {
        return;
    };
    for key in keys.into_iter().filter(|k| !hooks.iter().any(|h| &h.key() == k)) {
        while let Ok(Some(row)) = ledger.next_notification(&key) {
            let why = format!("no webhook `{key}` in graft.toml any more");
            if ledger.notification_dropped(row.id, &why).is_err() {
                break;
            }
        }
    }
}

/// `graft run`'s sender: takes the lock (waiting while a CLI command
/// holds it), then sends each webhook's notifications as they arrive,
/// until the process ends.
pub async fn run(root: PathBuf, hooks: Vec<WebhookConfig>, wake: tokio::sync::watch::Receiver<u64>) {
    if hooks.is_empty() {
        return;
    }
    let lock = loop {
        if let Some(l) = try_lock(&root) {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if let Ok(l) = open_ledger(&root) {
        drop_orphans(&l, &hooks);
    }
    let mut tasks = Vec::new();
    for hook in hooks {
        let (root, mut wake) = (root.clone(), wake.clone());
        tasks.push(tokio::spawn(async move {
            let mut ledger: Option<Ledger> = None;
            let agent = client();
            loop {
                let (l, next) = {
                    let hook = hook.clone();
                    let taken = ledger.take();
                    let (root, agent) = (root.clone(), agent.clone());
                    tokio::task::spawn_blocking(move || {
                        let l = match taken {
                            Some(l) => l,
                            None => match open_ledger(&root) {
                                Ok(l) => l,
                                Err(e) => {
                                    eprintln!("graft run: webhooks: {e}");
                                    return (None, Pass::Wait(Duration::from_secs(5)));
                                }
                            },
                        };
                        let p = pass(&l, &agent, &hook, hook.timeout.0, None);
                        (Some(l), p)
                    })
                    .await
                    .unwrap_or((None, Pass::Wait(Duration::from_secs(1))))
                };
                ledger = l;
                // Poll at least every second: the CLI may have queued some.
                let wait = match next {
                    Pass::Empty => Duration::from_secs(1),
                    Pass::Wait(d) => d.min(Duration::from_secs(1)).max(Duration::from_millis(20)),
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    changed = wake.changed() => {
                        if changed.is_err() {
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    drop(lock);
}

/// What [`flush`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Nothing is configured or waiting.
    Nothing,
    /// `graft run` (or another command) holds the lock and sends.
    Elsewhere,
    /// Sent what was due; `left` notifications still wait (a receiver is
    /// down, or it ran out of time).
    Sent { left: usize },
}

/// How long a command (the CLI's or an MCP call's) spends sending its
/// notifications when no `graft run` does it.
pub const COMMAND_BUDGET: Duration = Duration::from_secs(5);

/// A command's sender, without a daemon: send what is due within
/// `budget` (each attempt at most `min(timeout, budget)`).
pub fn flush(root: &Path, hooks: &[WebhookConfig], budget: Duration) -> Flushed {
    if hooks.is_empty() {
        return Flushed::Nothing;
    }
    let Ok(ledger) = open_ledger(root) else {
        return Flushed::Nothing;
    };
    if ledger
        .webhooks_with_pending()
        .map(|k| k.is_empty())
        .unwrap_or(true)
    {
        return Flushed::Nothing;
    }
    let Some(_lock) = try_lock(root) else {
        return Flushed::Elsewhere;
    };
    drop_orphans(&ledger, hooks);
    let deadline = Instant::now() + budget;
    let agent = client();
    for hook in hooks {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        pass(&ledger, &agent, hook, hook.timeout.0.min(left), Some(deadline));
    }
    let left = ledger.outbox_counts().map(|c| c.pending as usize).unwrap_or(0);
    Flushed::Sent { left }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_up_to_the_cap() {
        let cap = Duration::from_secs(300);
        let waits: Vec<u64> = (0..11).map(|a| backoff(a, cap).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(1000, cap), cap);
    }
}
