//! `[provider]`: what turns an instruction into a change.
//!
//! ```toml
//! [provider]
//! default = "claude"              # used by `graft upgrade "..."`
//! max_retries = 3                 # rounds of generate → gates, the first included
//! context_tokens = 24000          # prompt budget (repo map, files, conventions)
//! edit_format = "search-replace"  # or "diff", "whole"
//! autofix_when_unreachable = false
//!
//! [provider.budget]               # per upgrade, all rounds together
//! max_tokens = 400000
//! max_cost_usd = 2.0
//!
//! [provider.pricing."my-model"]   # USD per million tokens; overrides the built-in table
//! input = 1.0
//! output = 3.0
//!
//! [provider.llm.claude]
//! api = "anthropic"               # or "openai" (any Chat Completions endpoint)
//! model = "claude-sonnet-4-5"
//! api_key_env = "ANTHROPIC_API_KEY"
//!
//! [provider.command.aider]
//! command = "aider --yes --message {instruction}"
//! timeout = "30m"
//! ```
//!
//! Architecture invariant: API keys are never in this file, only the name
//! of the environment variable that holds one (`api_key_env`); a value
//! that looks like a key is refused.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::ConfigError;
use crate::values::DurationValue;

/// `[provider]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    /// The provider `graft upgrade "..."` uses when `--provider` is not
    /// given; may be omitted when exactly one is configured.
    pub default: Option<toml::Spanned<String>>,
    /// Rounds of generate → stage → gates at most, the first included.
    pub max_retries: u32,
    /// Token budget of one prompt.
    pub context_tokens: u64,
    pub edit_format: EditFormat,
    /// When the LLM cannot be reached, run the autofixers instead.
    pub autofix_when_unreachable: bool,
    pub budget: BudgetConfig,
    /// Prices per model, overriding the built-in table.
    pub pricing: BTreeMap<String, Price>,
    pub llm: BTreeMap<String, LlmConfig>,
    pub command: BTreeMap<String, CommandConfig>,
    pub autofix: AutofixConfig,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            default: None,
            max_retries: 3,
            context_tokens: 24_000,
            edit_format: EditFormat::SearchReplace,
            autofix_when_unreachable: false,
            budget: BudgetConfig::default(),
            pricing: BTreeMap::new(),
            llm: BTreeMap::new(),
            command: BTreeMap::new(),
            autofix: AutofixConfig::default(),
        }
    }
}

/// Which edit format the prompt asks for (replies in any of the three are
/// read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EditFormat {
    SearchReplace,
    Diff,
    Whole,
}

/// `[provider.budget]`: what one upgrade may spend, over all its rounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Input plus output tokens.
    pub max_tokens: u64,
    /// Estimated cost in US dollars (models with a known price only).
    pub max_cost_usd: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            max_tokens: 400_000,
            max_cost_usd: 2.0,
        }
    }
}

/// A model's price in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

/// The wire format an LLM endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// The Anthropic Messages API.
    Anthropic,
    /// OpenAI Chat Completions (OpenAI, Ollama, llama.cpp, vLLM, LM Studio).
    Openai,
}

impl Api {
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Anthropic => "anthropic",
            Api::Openai => "openai",
        }
    }

    pub fn default_base_url(self) -> &'static str {
        match self {
            Api::Anthropic => "https://api.anthropic.com",
            Api::Openai => "https://api.openai.com/v1",
        }
    }

    pub fn default_key_env(self) -> &'static str {
        match self {
            Api::Anthropic => "ANTHROPIC_API_KEY",
            Api::Openai => "OPENAI_API_KEY",
        }
    }
}

/// `[provider.llm.NAME]`: one LLM endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    pub api: Api,
    pub model: String,
    /// Default: the API's public endpoint.
    pub base_url: Option<String>,
    /// The environment variable holding the API key. Default: the API's
    /// usual variable for its public endpoint; none for another base URL
    /// (a local server needs no key).
    pub api_key_env: Option<String>,
    /// Per request, including reading the reply.
    #[serde(default = "default_llm_timeout")]
    pub timeout: DurationValue,
    /// Retries on rate limits (429), server errors (5xx) and lost
    /// connections, with exponential backoff (Retry-After is honoured).
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_max_output_tokens")]
    pub max_output_tokens: u32,
    pub temperature: Option<f64>,
}

fn default_llm_timeout() -> DurationValue {
    DurationValue::secs(180)
}
fn default_retries() -> u32 {
    4
}
fn default_max_output_tokens() -> u32 {
    8192
}

impl LlmConfig {
    pub fn base_url(&self) -> &str {
        self.base_url
            .as_deref()
            .unwrap_or(self.api.default_base_url())
            .trim_end_matches('/')
    }

    /// The variable to read the key from, if the endpoint needs one.
    pub fn key_env(&self) -> Option<&str> {
        match (&self.api_key_env, &self.base_url) {
            (Some(v), _) => Some(v),
            (None, None) => Some(self.api.default_key_env()),
            (None, Some(_)) => None,
        }
    }
}

/// `[provider.command.NAME]`: an external coding agent run in the staging
/// worktree; what it changes there is the change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Run with `sh -c`; `{instruction}` becomes the instruction, quoted
    /// for the shell (it is also in `$GRAFT_INSTRUCTION`).
    pub command: String,
    #[serde(default = "default_command_timeout")]
    pub timeout: DurationValue,
    /// Rounds at most; default: `[provider] max_retries`.
    pub max_rounds: Option<u32>,
}

fn default_command_timeout() -> DurationValue {
    DurationValue::secs(30 * 60)
}

/// `[provider.autofix]`: the ecosystem fixers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutofixConfig {
    /// Per fixer command.
    pub timeout: DurationValue,
}

impl Default for AutofixConfig {
    fn default() -> Self {
        AutofixConfig {
            timeout: DurationValue::secs(10 * 60),
        }
    }
}

/// A configured provider, by name.
#[derive(Debug, Clone, Copy)]
pub enum NamedProvider<'a> {
    Llm(&'a LlmConfig),
    Command(&'a CommandConfig),
}

impl ProviderConfig {
    /// The provider called `name`.
    pub fn get(&self, name: &str) -> Option<NamedProvider<'_>> {
        self.llm
            .get(name)
            .map(NamedProvider::Llm)
            .or_else(|| self.command.get(name).map(NamedProvider::Command))
    }

    /// Every configured name, LLMs first.
    pub fn names(&self) -> Vec<&str> {
        self.llm
            .keys()
            .chain(self.command.keys())
            .map(String::as_str)
            .collect()
    }

    /// The name `graft upgrade "..."` uses: `default`, or the only one.
    pub fn default_name(&self) -> Option<&str> {
        if let Some(d) = &self.default {
            return Some(d.get_ref());
        }
        match self.names().as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    pub(crate) fn check(&self, file: &Path, text: &str) -> Result<(), ConfigError> {
        let at_header = |header: &str, key: String, msg: String| match text.find(header) {
            Some(i) => ConfigError::at(file, text, i..i, key, msg),
            None => ConfigError {
                file: file.to_path_buf(),
                line: None,
                column: None,
                key: Some(key),
                message: msg,
                missing: false,
            },
        };
        if self.max_retries == 0 || self.max_retries > 20 {
            return Err(at_header(
                "max_retries",
                "provider.max_retries".into(),
                format!(
                    "max_retries must be from 1 to 20 (rounds of generate → gates, the first included), got {}",
                    self.max_retries
                ),
            ));
        }
        if self.context_tokens < 1000 {
            return Err(at_header(
                "context_tokens",
                "provider.context_tokens".into(),
                format!(
                    "context_tokens must be at least 1000, got {}",
                    self.context_tokens
                ),
            ));
        }
        let b = &self.budget;
        if b.max_tokens == 0 || !(b.max_cost_usd.is_finite() && b.max_cost_usd > 0.0) {
            return Err(at_header(
                "[provider.budget]",
                "provider.budget".into(),
                "the budget's max_tokens and max_cost_usd must be positive".into(),
            ));
        }
        for (model, p) in &self.pricing {
            if !(p.input.is_finite() && p.input >= 0.0 && p.output.is_finite() && p.output >= 0.0) {
                return Err(at_header(
                    model,
                    format!("provider.pricing.{model}"),
                    format!(
                        "the price of `{model}` must be a number of dollars per million tokens, 0 or more"
                    ),
                ));
            }
        }
        for (name, llm) in &self.llm {
            let header = format!("provider.llm.{name}");
            let key = |k: &str| format!("provider.llm.{name}.{k}");
            if let Err(e) = crate::values::check_name(name) {
                return Err(at_header(&header, header.clone(), format!("provider {e}")));
            }
            if self.command.contains_key(name) {
                return Err(at_header(
                    &header,
                    header.clone(),
                    format!("`{name}` is both an llm and a command provider; names must be unique"),
                ));
            }
            if llm.model.trim().is_empty() {
                return Err(at_header(
                    &header,
                    key("model"),
                    "`model` may not be empty".into(),
                ));
            }
            if let Some(url) = &llm.base_url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(at_header(
                    &header,
                    key("base_url"),
                    format!("base_url `{url}` must start with http:// or https://"),
                ));
            }
            if let Some(var) = &llm.api_key_env {
                check_env_name(var).map_err(|m| at_header(&header, key("api_key_env"), m))?;
            }
            if let Some(t) = llm.temperature
                && !(0.0..=2.0).contains(&t)
            {
                return Err(at_header(
                    &header,
                    key("temperature"),
                    format!("temperature must be from 0 to 2, got {t}"),
                ));
            }
            if llm.max_output_tokens == 0 {
                return Err(at_header(
                    &header,
                    key("max_output_tokens"),
                    "max_output_tokens must be positive".into(),
                ));
            }
            if llm.retries > 10 {
                return Err(at_header(
                    &header,
                    key("retries"),
                    format!("retries must be at most 10, got {}", llm.retries),
                ));
            }
        }
        for (name, cmd) in &self.command {
            let header = format!("provider.command.{name}");
            if let Err(e) = crate::values::check_name(name) {
                return Err(at_header(&header, header.clone(), format!("provider {e}")));
            }
            if cmd.command.trim().is_empty() {
                return Err(at_header(
                    &header,
                    format!("{header}.command"),
                    format!("command provider `{name}` has an empty command"),
                ));
            }
            if cmd.max_rounds == Some(0) {
                return Err(at_header(
                    &header,
                    format!("{header}.max_rounds"),
                    "max_rounds must be at least 1".into(),
                ));
            }
        }
        if let Some(d) = &self.default
            && self.get(d.get_ref()).is_none()
        {
            let names = self.names();
            let known = if names.is_empty() {
                "none is configured: add a [provider.llm.NAME] or [provider.command.NAME] table".to_string()
            } else {
                format!("configured: {}", names.join(", "))
            };
            return Err(ConfigError::at(
                file,
                text,
                d.span(),
                "provider.default".into(),
                format!("no provider named `{}` ({known})", d.get_ref()),
            ));
        }
        Ok(())
    }
}

/// An environment variable's name, not its value.
fn check_env_name(var: &str) -> Result<(), String> {
    let looks_like_key = var.starts_with("sk-") || var.len() > 64 || var.contains('-');
    if looks_like_key {
        return Err(
            "api_key_env names the environment variable that holds the key (like ANTHROPIC_API_KEY), never the key itself; remove the key from graft.toml and export it instead"
                .into(),
        );
    }
    let ok = !var.is_empty()
        && !var.starts_with(|c: char| c.is_ascii_digit())
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "api_key_env `{var}` is not an environment variable name (letters, digits and `_`)"
        ))
    }
}
