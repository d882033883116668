//! What a webhook receives: a Slack-compatible message (`text` plus
//! `blocks`, which Mattermost, Rocket.Chat and Discord's `/slack` endpoint
//! read too) or the same facts as plain JSON.

use graft_config::{WebhookEvent, WebhookFormat};
use graft_ledger::Upgrade;
use serde_json::{Value, json};

/// One state change of one upgrade, told to the outside.
#[derive(Debug, Clone)]
pub struct Notification {
    pub event: WebhookEvent,
    pub target: String,
    pub upgrade: Upgrade,
    /// One line for people.
    pub summary: String,
    /// Labelled facts (files, gates, commits, causes).
    pub facts: Vec<(String, String)>,
    pub at: String,
}

impl Notification {
    /// The text a chat shows in a notification.
    pub fn text(&self) -> String {
        format!(
            "[{}] {} {}: {}",
            self.target,
            self.event.as_str().replace('_', " "),
            self.upgrade.id,
            self.summary
        )
    }

    pub fn render(&self, format: WebhookFormat) -> Value {
        match format {
            WebhookFormat::Json => self.json(),
            WebhookFormat::Slack => self.slack(),
        }
    }

    fn json(&self) -> Value {
        let facts: serde_json::Map<String, Value> =
            self.facts.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        json!({
            "event": self.event,
            "target": self.target,
            "text": self.text(),
            "summary": self.summary,
            "at": self.at,
            "facts": facts,
            "upgrade": {
                "id": self.upgrade.id,
                "title": self.upgrade.title,
                "kind": self.upgrade.kind,
                "state": self.upgrade.state,
                "dry_run": self.upgrade.dry_run,
                "requested_by": self.upgrade.requested_by,
                "reason": self.upgrade.reason,
                "landed_commit": self.upgrade.landed_commit,
                "revert_commit": self.upgrade.revert_commit,
            },
        })
    }

    fn slack(&self) -> Value {
        let icon = match self.event {
            WebhookEvent::Promoted | WebhookEvent::GatesPassed | WebhookEvent::Deployed => {
                ":white_check_mark:"
            }
            WebhookEvent::GatesFailed | WebhookEvent::Failed => ":x:",
            WebhookEvent::RolledBack => ":rewind:",
            WebhookEvent::NeedsApproval => ":raised_hand:",
            WebhookEvent::Planned => ":memo:",
            WebhookEvent::Cancelled => ":no_entry_sign:",
        };
        let mut blocks = vec![
            json!({
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": format!("{icon} *{}* `{}` {}", self.event.as_str().replace('_', " "), self.upgrade.id, escape(&self.upgrade.title)),
                },
            }),
            json!({ "type": "section", "text": { "type": "mrkdwn", "text": escape(&self.summary) } }),
        ];
        if !self.facts.is_empty() {
            let fields: Vec<Value> = self
                .facts
                .iter()
                .take(10)
                .map(|(k, v)| json!({ "type": "mrkdwn", "text": format!("*{}*\n{}", escape(k), escape(v)) }))
                .collect();
            blocks.push(json!({ "type": "section", "fields": fields }));
        }
        blocks.push(json!({
            "type": "context",
            "elements": [{ "type": "mrkdwn", "text": format!("{} · {} · requested by {}", escape(&self.target), self.at, escape(&self.upgrade.requested_by)) }],
        }));
        json!({ "text": self.text(), "blocks": blocks })
    }
}

/// Slack's mrkdwn escapes: `&`, `<`, `>`.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade() -> Upgrade {
        Upgrade {
            id: "upg_20261121_103001_a1b2c3".parse().unwrap(),
            kind: graft_ledger::RequestKind::Patch,
            title: "Fix <the> greeting & more".into(),
            request: json!({}),
            requested_by: "api:ada".into(),
            priority: 5,
            risk: None,
            risk_reasons: vec![],
            state: graft_ledger::UpgradeState::Promoted,
            reason: None,
            error: None,
            dry_run: false,
            target_branch: Some("main".into()),
            base_commit: None,
            staged_commit: None,
            branch: None,
            landed_commit: Some("abc".into()),
            revert_commit: None,
            created_at: "2026-11-21T10:30:01.000Z".into(),
            updated_at: "2026-11-21T10:30:01.000Z".into(),
            finished_at: None,
            source: "api".into(),
            approval: None,
            approved_level: None,
            approval_requested_at: None,
            approved_by: None,
            retry_of: None,
            attempt: 1,
        }
    }

    #[test]
    fn slack_has_text_and_blocks_with_escaped_markup() {
        let n = Notification {
            event: WebhookEvent::Promoted,
            target: "greeter".into(),
            upgrade: upgrade(),
            summary: "abc is live".into(),
            facts: vec![("files".into(), "app.py +1 -1".into())],
            at: "2026-11-21T10:31:00Z".into(),
        };
        let v = n.render(WebhookFormat::Slack);
        assert_eq!(
            v["text"],
            "[greeter] promoted upg_20261121_103001_a1b2c3: abc is live"
        );
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "section");
        assert!(
            blocks[0]["text"]["text"]
                .as_str()
                .unwrap()
                .ends_with("Fix &lt;the&gt; greeting &amp; more"),
            "{v}"
        );
        assert_eq!(blocks[2]["fields"][0]["text"], "*files*\napp.py +1 -1");
        assert_eq!(blocks.last().unwrap()["type"], "context");
        let j = n.render(WebhookFormat::Json);
        assert_eq!(j["event"], "promoted");
        assert_eq!(j["upgrade"]["landed_commit"], "abc");
        assert_eq!(j["facts"]["files"], "app.py +1 -1");
    }
}
