//! The LLM provider: a [`Generator`] that asks a model for edits, reads
//! its reply into a change, and, when a gate fails or the change is
//! refused, continues the conversation with the reason and asks for a
//! correction.
//!
//! Each round's change is complete relative to the base commit: the edits
//! of a round whose change staged (and then failed a gate) are kept, and
//! the next round's edits apply on top of them, as the model sees the
//! files; the edits of a refused round are dropped. Budget: before each
//! call, the tokens and (priced) dollars spent so far are checked against
//! `[provider.budget]`.

use std::collections::BTreeMap;

use graft_change::{Change, RelPath};
use graft_config::{EditFormat, LlmConfig, Price};
use graft_pipeline::{
    Failure, FailureClass, GateFeedback, GenerateContext, Generated, Generator, Output, Usage,
};
use serde_json::json;

use crate::api::{self, ApiError, Message, Role};
use crate::edits::change_from_reply;
use crate::http::{Http, HttpError};
use crate::prompt::{self, PromptInput};
use crate::reply::ReplyError;
use crate::{Settings, pricing};

/// Most bytes of an HTTP reply read (the reply text is limited further by
/// [`crate::reply::MAX_REPLY_BYTES`]).
pub const MAX_HTTP_REPLY_BYTES: u64 = 4 * 1024 * 1024;

pub struct LlmGenerator {
    name: String,
    config: LlmConfig,
    key: Option<String>,
    http: Http,
    settings: Settings,
    price: Option<Price>,
    instruction: String,
    explicit: Vec<String>,
    title: String,
    system: String,
    conversation: Vec<Message>,
    /// Contents after the last change that staged (relative to the base).
    accepted: BTreeMap<RelPath, Option<String>>,
    /// Contents the last round proposed.
    proposed: BTreeMap<RelPath, Option<String>>,
    spent_tokens: u64,
    spent_usd: f64,
}

impl LlmGenerator {
    pub fn new(
        name: &str,
        config: &LlmConfig,
        key: Option<String>,
        settings: Settings,
        instruction: &str,
        explicit: Vec<String>,
    ) -> LlmGenerator {
        let price = pricing::price(&config.model, &settings.pricing);
        let first = instruction
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        let mut title: String = first.chars().take(100).collect();
        if title.len() < first.len() {
            title.push('…');
        }
        LlmGenerator {
            name: name.to_string(),
            config: config.clone(),
            key,
            http: Http::new(config.timeout.0, config.retries, MAX_HTTP_REPLY_BYTES),
            settings,
            price,
            instruction: instruction.to_string(),
            explicit,
            title,
            system: String::new(),
            conversation: Vec::new(),
            accepted: BTreeMap::new(),
            proposed: BTreeMap::new(),
            spent_tokens: 0,
            spent_usd: 0.0,
        }
    }

    fn check_budget(&self, next_prompt_tokens: u64) -> Result<(), Failure> {
        let b = &self.settings.budget;
        if self.spent_tokens + next_prompt_tokens > b.max_tokens {
            return Err(Failure::new(
                FailureClass::Provider,
                "budget_exceeded",
                format!(
                    "the token budget of this upgrade is spent: {} tokens used, the next prompt needs about {next_prompt_tokens}, the limit is {} (`[provider.budget] max_tokens`)",
                    self.spent_tokens, b.max_tokens
                ),
            ));
        }
        if self.spent_usd >= b.max_cost_usd {
            return Err(Failure::new(
                FailureClass::Provider,
                "budget_exceeded",
                format!(
                    "the cost budget of this upgrade is spent: ${:.4} used, the limit is ${:.2} (`[provider.budget] max_cost_usd`)",
                    self.spent_usd, b.max_cost_usd
                ),
            ));
        }
        Ok(())
    }

    /// The message that asks for a repair.
    fn repair_message(&mut self, fb: &GateFeedback) -> String {
        let mut m = String::new();
        match &fb.gate {
            Some(gate) => {
                // The change staged: its edits stand, the next ones go on top.
                self.accepted = std::mem::take(&mut self.proposed);
                m.push_str(&format!(
                    "Graft applied your change and ran the gates on it. The required gate `{gate}` failed.\n\nIts output (the end):\n```\n{}```\n\n",
                    fb.output
                ));
                m.push_str(
                    "Fix the cause. Your previous edits are applied; the files you changed now read:\n\n",
                );
                for (path, content) in &self.accepted {
                    match content {
                        Some(text) => m.push_str(&prompt::file_block(path.as_str(), text)),
                        None => m.push_str(&format!("{path} (deleted)\n\n")),
                    }
                }
            }
            None => {
                self.proposed.clear();
                m.push_str(&format!(
                    "Graft could not apply your reply, so nothing of it was applied:\n{}\n\n",
                    fb.message
                ));
                if !self.accepted.is_empty() {
                    m.push_str("The edits of your earlier replies that did apply still stand.\n");
                }
            }
        }
        m.push_str(&format!(
            "Reply with the edits that fix this, in the same format, against the files as they are now ({}).",
            match self.settings.format {
                EditFormat::SearchReplace => "SEARCH/REPLACE blocks",
                EditFormat::Diff => "unified diffs",
                EditFormat::Whole => "whole files",
            }
        ));
        m
    }

    /// The reply as a change relative to the base, or why it cannot be.
    fn change_from(&mut self, ctx: &GenerateContext<'_>, text: &str) -> Result<(Change, usize), ReplyError> {
        let (change, blocks, all) = change_from_reply(text, ctx.staging, &self.accepted)?;
        self.proposed = all;
        Ok((change, blocks))
    }
}

impl Generator for LlmGenerator {
    fn name(&self) -> &str {
        &self.name
    }

    fn model(&self) -> Option<&str> {
        Some(&self.config.model)
    }

    fn title(&self) -> String {
        self.title.clone()
    }

    fn describe(&self) -> serde_json::Value {
        json!({
            "provider": self.name,
            "api": self.config.api.as_str(),
            "base_url": self.config.base_url(),
            "model": self.config.model,
            "instruction": self.instruction,
            "files": self.explicit,
        })
    }

    fn max_rounds(&self) -> u32 {
        self.settings.max_rounds
    }

    fn generate(
        &mut self,
        ctx: &GenerateContext<'_>,
        feedback: Option<&GateFeedback>,
    ) -> Result<Generated, Failure> {
        match feedback {
            None => {
                let p = prompt::build(&PromptInput {
                    instruction: &self.instruction,
                    root: ctx.staging,
                    tracked: ctx.tracked,
                    explicit: &self.explicit,
                    budget_tokens: self.settings.context_tokens,
                    format: self.settings.format,
                    withheld: &|p| RelPath::new(p).map_or(true, |p| ctx.policy.is_protected(&p).is_some()),
                });
                (ctx.message)(&format!(
                    "prompt for {} ({}): {} chars, ~{} tokens; {} file(s) in full, {} in the repo map",
                    self.name,
                    self.config.model,
                    p.system.len() + p.user.len(),
                    (p.system.len() + p.user.len()).div_ceil(4),
                    p.files.len(),
                    p.mapped
                ));
                self.system = p.system;
                self.conversation = vec![Message {
                    role: Role::User,
                    text: p.user,
                }];
            }
            Some(fb) => {
                let text = self.repair_message(fb);
                self.conversation.push(Message {
                    role: Role::User,
                    text,
                });
            }
        }
        let prompt_chars: usize =
            self.system.len() + self.conversation.iter().map(|m| m.text.len()).sum::<usize>();
        let prompt_tokens = prompt::tokens(&self.system)
            + self
                .conversation
                .iter()
                .map(|m| prompt::tokens(&m.text))
                .sum::<u64>();
        self.check_budget(prompt_tokens)?;
        // What the budget leaves for the reply (at least 1 token).
        let room = self
            .settings
            .budget
            .max_tokens
            .saturating_sub(self.spent_tokens + prompt_tokens)
            .clamp(1, u64::from(u32::MAX));
        let max_out = self.config.max_output_tokens.min(room as u32);
        let completion = api::complete(
            &self.http,
            &self.config,
            self.key.as_deref(),
            &self.system,
            &self.conversation,
            max_out,
            &|m| (ctx.message)(&format!("{}: {m}", self.name)),
        )
        .map_err(|e| self.failure(&e));
        let completion = match completion {
            Ok(c) => c,
            Err(Unusable(f)) => {
                // The model answered, but too much to read: told like a bad reply.
                self.conversation.push(Message {
                    role: Role::Assistant,
                    text: "[reply not kept: over the size limit]".into(),
                });
                return Ok(Generated {
                    output: Output::Unusable(f),
                    usage: Usage {
                        model: Some(self.config.model.clone()),
                        prompt_chars: prompt_chars as u64,
                        cost_known: self.price.is_some(),
                        ..Usage::default()
                    },
                    edits: 0,
                    log: String::new(),
                });
            }
            Err(Fatal(f)) => return Err(f),
        };
        let cost = self.price.map_or(0.0, |p| {
            pricing::cost(&p, completion.input_tokens, completion.output_tokens)
        });
        self.spent_tokens += completion.input_tokens + completion.output_tokens;
        self.spent_usd += cost;
        let usage = Usage {
            model: Some(self.config.model.clone()),
            prompt_chars: prompt_chars as u64,
            reply_chars: completion.text.len() as u64,
            input_tokens: completion.input_tokens,
            output_tokens: completion.output_tokens,
            cost_usd: cost,
            cost_known: self.price.is_some(),
        };
        let result = self.change_from(ctx, &completion.text);
        // Keep the reply in the conversation (bounded: a runaway reply
        // would make every later prompt huge).
        let kept = if completion.text.len() > 64 * 1024 {
            let mut end = 64 * 1024;
            while !completion.text.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}\n[… reply cut]", &completion.text[..end])
        } else {
            completion.text.clone()
        };
        self.conversation.push(Message {
            role: Role::Assistant,
            text: kept,
        });
        Ok(match result {
            Ok((change, blocks)) => Generated {
                output: Output::Change(change),
                usage,
                edits: blocks,
                log: String::new(),
            },
            Err(e) => {
                let mut message = e.message;
                if completion.truncated {
                    message.push_str(" (the reply stopped at the output token limit)");
                }
                Generated {
                    output: Output::Unusable(Failure::new(FailureClass::Refused, e.code, message)),
                    usage,
                    edits: 0,
                    log: String::new(),
                }
            }
        })
    }
}

enum CallFailure {
    /// The upgrade cannot go on.
    Fatal(Failure),
    /// The model answered with something unusable.
    Unusable(Failure),
}
use CallFailure::{Fatal, Unusable};

impl LlmGenerator {
    fn failure(&self, e: &ApiError) -> CallFailure {
        let who = format!(
            "provider `{}` ({} API, model {})",
            self.name,
            self.config.api.as_str(),
            self.config.model
        );
        let f = |reason: &str, msg: String| Failure::new(FailureClass::Provider, reason, msg);
        match e {
            ApiError::Http(HttpError::Unreachable { .. }) => Fatal(f(
                "provider_unreachable",
                format!("{who} is unreachable: {e}; check `base_url` and the network"),
            )),
            ApiError::Http(HttpError::Timeout { .. }) => Fatal(f("provider_timeout", format!("{who}: {e}"))),
            ApiError::Http(HttpError::Status { status, .. }) => {
                let hint = match status {
                    401 | 403 => match self.config.key_env() {
                        Some(var) => format!("; check the key in ${var}"),
                        None => "; this endpoint wants a key: set `api_key_env`".to_string(),
                    },
                    404 => "; check `base_url` and `model`".into(),
                    429 => {
                        "; the rate limit held through every retry: try again later or raise `retries`".into()
                    }
                    _ => String::new(),
                };
                let reason = if *status == 429 {
                    "provider_rate_limited"
                } else {
                    "provider_error"
                };
                Fatal(f(reason, format!("{who}: {e}{hint}")))
            }
            ApiError::Http(HttpError::TooLarge { .. }) => Unusable(Failure::new(
                FailureClass::Refused,
                "reply_too_large",
                format!("{e}; answer with the edits only"),
            )),
            ApiError::BadReply(m) => Fatal(f("provider_error", format!("{who}: {m}"))),
        }
    }
}
