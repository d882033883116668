//! The two wire formats: the Anthropic Messages API and OpenAI-compatible
//! Chat Completions (OpenAI, Ollama, llama.cpp server, vLLM, LM Studio).
//! Both take a system prompt and a conversation and give back the reply's
//! text and its token counts. Replies are not streamed: Graft needs the
//! whole reply before it can parse it, and a bounded body is simpler to
//! keep bounded.

use graft_config::{Api, LlmConfig};
use serde_json::{Value, json};

use crate::http::{Http, HttpError};

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub text: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The model stopped at the output limit: the reply is cut off.
    pub truncated: bool,
}

/// Why a completion failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    Http(HttpError),
    /// A 2xx answer that is not the API's format.
    BadReply(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Http(e) => e.fmt(f),
            ApiError::BadReply(m) => f.write_str(m),
        }
    }
}

/// The Anthropic API version Graft speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Ask the model. `key` is the API key, if the endpoint takes one.
pub fn complete(
    http: &Http,
    config: &LlmConfig,
    key: Option<&str>,
    system: &str,
    messages: &[Message],
    max_output_tokens: u32,
    on_retry: &dyn Fn(&str),
) -> Result<Completion, ApiError> {
    match config.api {
        Api::Anthropic => anthropic(http, config, key, system, messages, max_output_tokens, on_retry),
        Api::Openai => openai(http, config, key, system, messages, max_output_tokens, on_retry),
    }
}

fn anthropic(
    http: &Http,
    config: &LlmConfig,
    key: Option<&str>,
    system: &str,
    messages: &[Message],
    max_tokens: u32,
    on_retry: &dyn Fn(&str),
) -> Result<Completion, ApiError> {
    let url = format!("{}/v1/messages", config.base_url());
    let mut body = json!({
        "model": config.model,
        "max_tokens": max_tokens,
        "system": system,
        "messages": messages.iter().map(|m| json!({ "role": m.role.as_str(), "content": m.text })).collect::<Vec<_>>(),
    });
    if let Some(t) = config.temperature {
        body["temperature"] = json!(t);
    }
    let mut headers = vec![("anthropic-version", ANTHROPIC_VERSION)];
    if let Some(k) = key {
        headers.push(("x-api-key", k));
    }
    let text = http
        .post_json(&url, &headers, &body, on_retry)
        .map_err(ApiError::Http)?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| ApiError::BadReply(format!("{url} answered with something that is not JSON: {e}")))?;
    let content = v.get("content").and_then(Value::as_array).ok_or_else(|| {
        ApiError::BadReply(format!(
            "{url} answered without `content`: not a Messages API reply"
        ))
    })?;
    let text: String = content
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("");
    let usage = v.get("usage");
    let n = |k: &str| usage.and_then(|u| u.get(k)).and_then(Value::as_u64).unwrap_or(0);
    Ok(Completion {
        text,
        input_tokens: n("input_tokens") + n("cache_read_input_tokens") + n("cache_creation_input_tokens"),
        output_tokens: n("output_tokens"),
        truncated: v.get("stop_reason").and_then(Value::as_str) == Some("max_tokens"),
    })
}

/// Models that take `max_completion_tokens` and refuse `max_tokens`.
fn takes_max_completion_tokens(model: &str) -> bool {
    let m = model.rsplit('/').next().unwrap_or(model);
    ["o1", "o3", "o4", "gpt-5"].iter().any(|p| m.starts_with(p))
}

fn openai(
    http: &Http,
    config: &LlmConfig,
    key: Option<&str>,
    system: &str,
    messages: &[Message],
    max_tokens: u32,
    on_retry: &dyn Fn(&str),
) -> Result<Completion, ApiError> {
    let url = format!("{}/chat/completions", config.base_url());
    let mut all = vec![json!({ "role": "system", "content": system })];
    all.extend(
        messages
            .iter()
            .map(|m| json!({ "role": m.role.as_str(), "content": m.text })),
    );
    let mut body = json!({ "model": config.model, "messages": all });
    let limit_key = if takes_max_completion_tokens(&config.model) {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    body[limit_key] = json!(max_tokens);
    if let Some(t) = config.temperature {
        body["temperature"] = json!(t);
    }
    let auth = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    let text = http
        .post_json(&url, &headers, &body, on_retry)
        .map_err(ApiError::Http)?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| ApiError::BadReply(format!("{url} answered with something that is not JSON: {e}")))?;
    let choice = v
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| {
            ApiError::BadReply(format!(
                "{url} answered without `choices`: not a Chat Completions reply"
            ))
        })?;
    let text = choice
        .pointer("/message/content")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let usage = v.get("usage");
    let n = |k: &str| usage.and_then(|u| u.get(k)).and_then(Value::as_u64).unwrap_or(0);
    Ok(Completion {
        text,
        input_tokens: n("prompt_tokens"),
        output_tokens: n("completion_tokens"),
        truncated: choice.get("finish_reason").and_then(Value::as_str) == Some("length"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_openai_models_take_max_completion_tokens() {
        assert!(takes_max_completion_tokens("gpt-5-mini"));
        assert!(takes_max_completion_tokens("openai/o3"));
        assert!(!takes_max_completion_tokens("gpt-4o"));
        assert!(!takes_max_completion_tokens("qwen2.5-coder:7b"));
    }
}
