//! `graft.toml`: what a target is and how Graft treats it.
//!
//! This crate is the schema of the file (plain serde structs), its loading
//! with errors that name the file, line, column and key, and the ecosystem
//! templates `graft init` writes. It does no I/O beyond reading the file and
//! knows nothing of git, the ledger or processes.
//!
//! Architecture invariant: every section denies unknown keys, and every value
//! that can be wrong is checked while deserializing (newtypes with
//! `try_from`), so a loaded [`Config`] is valid and an invalid file is
//! refused with the exact place of the mistake.

mod api;
mod error;
mod gate;
mod init;
mod policy;
mod provider;
mod run;
mod scan;
mod values;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use api::{
    ApiConfig, ApiListen, Bounded, EnvName, MAX_API_BODY_BYTES, SecretFile, WebhookConfig, WebhookEvent,
    WebhookFormat, WebhookUrl,
};
pub use error::ConfigError;
pub use gate::{Better, GateConfig, GateKind};
pub use init::{
    Ecosystem, InitFile, NodeLock, NodeProbe, Probe, PythonEnv, PythonProbe, cargo_package,
    detect_ecosystems, recipes, render_template,
};
pub use policy::{Every, PolicyConfig, RiskLevel, ScheduleConfig};
pub use provider::{
    Api, AutofixConfig, BudgetConfig, CommandConfig, EditFormat, LlmConfig, NamedProvider, Price,
    ProviderConfig,
};
pub use run::{HealthConfig, ListenAddress, ListenConfig, ReadyCheck, RunConfig, Signal, WatchConfig};
pub use scan::{Count, ScanConfig};
pub use values::{DurationValue, Fraction, GlobList, Name};

/// The file name Graft looks for at the target repo root.
pub const FILE_NAME: &str = "graft.toml";

/// A whole `graft.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub target: TargetConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub staging: StagingConfig,
    /// Command gates, run in order after the built-in `parse` gate.
    #[serde(default)]
    pub gates: Vec<GateConfig>,
    /// How `graft run` supervises the target; None: it cannot be run.
    pub run: Option<RunConfig>,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub watch: WatchConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// What turns an instruction into a change.
    #[serde(default)]
    pub provider: ProviderConfig,
    /// What `graft scan` analyses and its thresholds.
    #[serde(default)]
    pub scan: ScanConfig,
    /// The HTTP control plane `graft run` serves.
    #[serde(default)]
    pub api: ApiConfig,
    /// Chat or HTTP endpoints told of each upgrade's state changes.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

/// `[target]`: the program Graft manages.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A display name; defaults to the repo directory's name.
    pub name: Option<String>,
    /// The branch upgrades land on; defaults to the branch checked out.
    pub branch: Option<String>,
    /// Data files (relative paths) copied before an upgrade lands and
    /// restored when it is rolled back.
    #[serde(default)]
    pub data: Vec<values::DataPath>,
    /// Extra protected globs: a change may touch them only with approval.
    #[serde(default)]
    pub protected: GlobList,
    /// Globs of files whose change makes an upgrade high risk.
    #[serde(default)]
    pub high_risk: GlobList,
    /// Globs of files whose change needs no restart (docs, say).
    #[serde(default)]
    pub no_restart: GlobList,
}

impl TargetConfig {
    /// The name to show for the target: `name`, else the name of the
    /// repo's directory `root` (`target` for a repo at `/`).
    pub fn display_name(&self, root: &Path) -> String {
        self.name.clone().unwrap_or_else(|| {
            root.file_name()
                .map_or_else(|| "target".into(), |n| n.to_string_lossy().into_owned())
        })
    }
}

/// `[limits]`: how big a change may be.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_change_bytes: u64,
    pub max_file_bytes: u64,
    /// Files one change may touch (create, change, delete, rename).
    pub max_files: Count,
    pub allow_binary: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_change_bytes: 1024 * 1024,
            max_file_bytes: 512 * 1024,
            max_files: Count(1000),
            allow_binary: false,
        }
    }
}

/// `[staging]`: the isolated worktree where changes are applied and gated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StagingConfig {
    /// Keep `graft/<id>` branches of failed upgrades for inspection.
    pub keep_failed_branches: bool,
}

impl Default for StagingConfig {
    fn default() -> Self {
        StagingConfig {
            keep_failed_branches: true,
        }
    }
}

impl Config {
    /// Parse `text` as the content of `file` (used in error messages).
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::toml(file, text, None, e))?;
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let key = (key != ".").then_some(key);
            ConfigError::toml(file, text, key, e.into_inner())
        })?;
        config.check(file, text)?;
        Ok(config)
    }

    /// Read and parse `graft.toml` in `repo`.
    pub fn load(repo: &Path) -> Result<Config, ConfigError> {
        let file = repo.join(FILE_NAME);
        let text = std::fs::read_to_string(&file).map_err(|e| ConfigError::read(&file, e))?;
        Config::parse(&file, &text)
    }

    /// Checks that span several values (each value alone is checked while
    /// deserializing).
    fn check(&self, file: &Path, text: &str) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for (i, gate) in self.gates.iter().enumerate() {
            let name = gate.name.as_str();
            if name == "parse" {
                return Err(ConfigError::at(
                    file,
                    text,
                    gate.name.span(),
                    format!("gates[{i}].name"),
                    "`parse` is Graft's built-in syntax gate and always runs first; give this gate another name",
                ));
            }
            if !seen.insert(name) {
                return Err(ConfigError::at(
                    file,
                    text,
                    gate.name.span(),
                    format!("gates[{i}].name"),
                    format!("a gate named `{name}` is already defined above; gate names must be unique"),
                ));
            }
            gate.check(file, text, i)?;
        }
        if let Some(run) = &self.run {
            let mut names = std::collections::HashSet::new();
            for (i, l) in run.listen.iter().enumerate() {
                if l.name.as_str() == "health" {
                    return Err(ConfigError::at(
                        file,
                        text,
                        l.name.span(),
                        format!("run.listen[{i}].name"),
                        "`health` is the name of each release's private health socket; give this one another name",
                    ));
                }
                if !names.insert(l.name.as_str()) {
                    return Err(ConfigError::at(
                        file,
                        text,
                        l.name.span(),
                        format!("run.listen[{i}].name"),
                        format!("a socket named `{}` is already defined above", l.name),
                    ));
                }
            }
            if run.prepare_required && run.prepare_signal.is_none() && run.prepare_path.is_none() {
                return Err(ConfigError::at(
                    file,
                    text,
                    0..0,
                    "run.prepare_required".into(),
                    "`prepare_required = true` needs `prepare_signal` or `prepare_path` in [run]: how Graft asks the live release to save its state",
                ));
            }
            if run.command.trim().is_empty() {
                return Err(ConfigError::at(
                    file,
                    text,
                    0..0,
                    "run.command".into(),
                    "the run command is empty",
                ));
            }
        }
        if self.health.address.is_some() {
            let plain = self.run.as_ref().is_none_or(|r| r.listen.is_empty());
            let why = if !plain {
                Some("`address` is for plain mode (no [[run.listen]]): with [[run.listen]] each release is checked on its own private health socket, since a check on a shared address would be answered by whichever release accepts it; remove `address`".to_string())
            } else if !matches!(self.health.ready, ReadyCheck::Http | ReadyCheck::Tcp) {
                Some(format!(
                    "`address` is where `ready = \"http\"` and `ready = \"tcp\"` checks go; with `ready = \"{}\"` nothing would use it",
                    self.health.ready.as_str()
                ))
            } else {
                None
            };
            if let Some(why) = why {
                return Err(ConfigError::at(file, text, 0..0, "health.address".into(), why));
            }
        }
        if self.health.ready == ReadyCheck::Command && self.health.command.is_none() {
            return Err(ConfigError::at(
                file,
                text,
                0..0,
                "health.command".into(),
                "`ready = \"command\"` needs `command = \"...\"` in [health]",
            ));
        }
        self.provider.check(file, text)?;
        api::check_webhooks(&self.webhooks, file, text)?;
        Ok(())
    }

    /// The path of `graft.toml` in `repo`.
    pub fn path_in(repo: &Path) -> PathBuf {
        repo.join(FILE_NAME)
    }
}

#[cfg(test)]
mod tests;
