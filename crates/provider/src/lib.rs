//! Providers: what turns a plain-language instruction into a change.
//!
//! Each provider is a [`graft_pipeline::Generator`], which the binary hands
//! to the pipeline; the pipeline runs the rounds, the staging and the gates
//! and knows nothing of what is in here.
//!
//! - [`llm::LlmGenerator`]: the Anthropic Messages API or any
//!   OpenAI-compatible Chat Completions endpoint ([`api`], over [`http`]),
//!   with a prompt built by [`prompt`] and replies read by [`reply`] and
//!   placed by [`edits`]; tokens priced by [`pricing`].
//! - [`command::CommandGenerator`]: an external coding agent run in the
//!   staging worktree.
//! - [`autofix::AutofixGenerator`]: the ecosystem's own fixers, also the
//!   fallback when an LLM cannot be reached ([`Fallback`]).
//!
//! Architecture invariant: API keys come from the environment only, are
//! held in memory for the request headers, and are never in a message, the
//! ledger or a log ([`llm::LlmGenerator::describe`] names the variable).

pub mod api;
pub mod autofix;
pub mod command;
pub mod corpus;
pub mod edits;
pub mod http;
pub mod llm;
pub mod pricing;
pub mod prompt;
pub mod reply;

use std::collections::BTreeMap;

use graft_config::{BudgetConfig, Config, EditFormat, NamedProvider, Price};
use graft_pipeline::{Failure, FailureClass, GateFeedback, GenerateContext, Generated, Generator};

/// The `[provider]` settings an LLM generator needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_rounds: u32,
    pub context_tokens: u64,
    pub format: EditFormat,
    pub budget: BudgetConfig,
    pub pricing: BTreeMap<String, Price>,
}

impl Settings {
    pub fn of(config: &Config) -> Settings {
        let p = &config.provider;
        Settings {
            max_rounds: p.max_retries,
            context_tokens: p.context_tokens,
            format: p.edit_format,
            budget: p.budget.clone(),
            pricing: p.pricing.clone(),
        }
    }
}

/// Why a provider cannot even be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError {
    /// `no_provider`, `unknown_provider` or `missing_api_key`.
    pub code: &'static str,
    pub message: String,
}

/// The generator for an instruction: the provider named `name`, or the
/// configured default. `env` reads environment variables (API keys).
/// `explicit` files always go into the prompt in full.
pub fn for_instruction(
    config: &Config,
    name: Option<&str>,
    instruction: &str,
    explicit: Vec<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Box<dyn Generator>, SetupError> {
    let p = &config.provider;
    let names = p.names();
    let name = match name.or(p.default_name()) {
        Some(n) => n,
        None if names.is_empty() => {
            return Err(SetupError {
                code: "no_provider",
                message: "no provider is configured: add one to graft.toml, e.g.\n\n[provider.llm.claude]\napi = \"anthropic\"\nmodel = \"claude-sonnet-4-5\"\napi_key_env = \"ANTHROPIC_API_KEY\"\n\nor run `graft upgrade --autofix` to use the ecosystem's fixers".into(),
            });
        }
        None => {
            return Err(SetupError {
                code: "no_provider",
                message: format!(
                    "several providers are configured ({}) and none is the default: pass `--provider NAME` or set `[provider] default`",
                    names.join(", ")
                ),
            });
        }
    };
    let settings = Settings::of(config);
    match p.get(name) {
        None => Err(SetupError {
            code: "unknown_provider",
            message: format!(
                "no provider named `{name}` in graft.toml (configured: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        }),
        Some(NamedProvider::Command(c)) => Ok(Box::new(command::CommandGenerator::new(
            name,
            c,
            instruction,
            settings.max_rounds,
        ))),
        Some(NamedProvider::Llm(llm)) => {
            let key = match llm.key_env() {
                None => None,
                Some(var) => match env(var).filter(|k| !k.trim().is_empty()) {
                    Some(k) => Some(k.trim().to_string()),
                    None => {
                        return Err(SetupError {
                            code: "missing_api_key",
                            message: format!(
                                "provider `{name}` needs an API key in the environment variable {var}, which is not set; export it (`export {var}=...`) and run again. Graft reads keys only from the environment, never from graft.toml"
                            ),
                        });
                    }
                },
            };
            let generator = llm::LlmGenerator::new(name, llm, key, settings, instruction, explicit);
            if p.autofix_when_unreachable {
                Ok(Box::new(Fallback {
                    primary: Box::new(generator),
                    fallback: autofix(config),
                    switched: false,
                }))
            } else {
                Ok(Box::new(generator))
            }
        }
    }
}

/// The autofix generator with the config's timeout, finding tools on `PATH`.
pub fn autofix(config: &Config) -> autofix::AutofixGenerator {
    autofix::AutofixGenerator::new(
        config.provider.autofix.timeout.0,
        std::env::var_os("PATH").as_deref(),
    )
}

/// An LLM with the autofixers behind it: when the LLM cannot be reached in
/// the first round, the autofixers make the change instead
/// (`[provider] autofix_when_unreachable = true`).
pub struct Fallback {
    primary: Box<dyn Generator>,
    fallback: autofix::AutofixGenerator,
    switched: bool,
}

/// Failures that mean "no LLM answers" rather than "the LLM answered no".
fn unreachable(f: &Failure) -> bool {
    matches!(f.reason.as_str(), "provider_unreachable" | "provider_timeout")
}

impl Generator for Fallback {
    fn name(&self) -> &str {
        if self.switched {
            self.fallback.name()
        } else {
            self.primary.name()
        }
    }
    fn model(&self) -> Option<&str> {
        if self.switched { None } else { self.primary.model() }
    }
    fn title(&self) -> String {
        self.primary.title()
    }
    fn describe(&self) -> serde_json::Value {
        let mut v = self.primary.describe();
        v["fallback"] = serde_json::json!("autofix");
        v
    }
    fn max_rounds(&self) -> u32 {
        // The fixers do what they can in one round; a failing gate is
        // beyond them.
        if self.switched {
            1
        } else {
            self.primary.max_rounds()
        }
    }
    fn generate(
        &mut self,
        ctx: &GenerateContext<'_>,
        feedback: Option<&GateFeedback>,
    ) -> Result<Generated, Failure> {
        if self.switched {
            return Err(Failure::new(
                FailureClass::Provider,
                "no_repair",
                "the autofixers ran because the LLM was unreachable; they cannot repair a failing gate",
            ));
        }
        match self.primary.generate(ctx, feedback) {
            Err(f) if ctx.round == 1 && unreachable(&f) => {
                (ctx.message)(&format!(
                    "{}; running the autofixers instead (autofix_when_unreachable)",
                    f.message
                ));
                self.switched = true;
                self.fallback.generate(ctx, None)
            }
            other => other,
        }
    }
}
