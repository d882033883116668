//! `[[gates]]`: the command gates a change must pass before it lands.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ConfigError;
use crate::values::{DurationValue, Fraction, Name};

/// What a gate is for; decides defaults and how results are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GateKind {
    Build,
    Lint,
    Test,
    /// Prints a figure that is compared with the live release's.
    Perf,
    Audit,
    Custom,
}

impl GateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GateKind::Build => "build",
            GateKind::Lint => "lint",
            GateKind::Test => "test",
            GateKind::Perf => "perf",
            GateKind::Audit => "audit",
            GateKind::Custom => "custom",
        }
    }
}

/// Whether a larger perf figure is better (throughput) or worse (latency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
}

/// One command gate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    pub name: Name,
    pub kind: GateKind,
    /// Run with `sh -c` in the staging worktree.
    pub command: String,
    #[serde(default = "default_timeout")]
    pub timeout: DurationValue,
    /// An advisory gate (`required = false`) is recorded but never blocks.
    #[serde(default = "yes")]
    pub required: bool,
    /// Extra environment for the command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// perf: a regex whose first group is the figure; default: the last
    /// number in the output.
    pub pattern: Option<String>,
    /// perf: which direction is better.
    pub better: Option<Better>,
    /// perf: how much worse than the live release's figure is tolerated.
    pub tolerance: Option<Fraction>,
}

fn default_timeout() -> DurationValue {
    DurationValue::secs(600)
}

fn yes() -> bool {
    true
}

impl GateConfig {
    pub(crate) fn check(&self, file: &Path, text: &str, i: usize) -> Result<(), ConfigError> {
        let at = |key: &str, msg: String| {
            ConfigError::at(file, text, self.name.span(), format!("gates[{i}].{key}"), msg)
        };
        if self.command.trim().is_empty() {
            return Err(at(
                "command",
                format!("gate `{}` has an empty command", self.name),
            ));
        }
        let perf_only = self.pattern.is_some() || self.better.is_some() || self.tolerance.is_some();
        if self.kind != GateKind::Perf && perf_only {
            return Err(at(
                "kind",
                format!(
                    "gate `{}` sets `pattern`, `better` or `tolerance`, which only a `kind = \"perf\"` gate uses",
                    self.name
                ),
            ));
        }
        if let Some(pattern) = &self.pattern {
            match regex::Regex::new(pattern) {
                Ok(re) if re.captures_len() >= 2 => {}
                Ok(_) => {
                    return Err(at(
                        "pattern",
                        format!(
                            "pattern `{pattern}` has no group: put the figure in parentheses, e.g. '([0-9.]+) req/s'"
                        ),
                    ));
                }
                Err(e) => {
                    return Err(at(
                        "pattern",
                        format!("pattern `{pattern}` is not a valid regex: {e}"),
                    ));
                }
            }
        }
        if self.kind == GateKind::Perf && self.better.is_none() {
            return Err(at(
                "better",
                format!(
                    "perf gate `{}` needs `better = \"higher\"` (throughput) or `better = \"lower\"` (time)",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// The tolerance of a perf gate, 10 % unless set.
    pub fn tolerance(&self) -> f64 {
        self.tolerance.map_or(0.10, |t| t.0)
    }
}
