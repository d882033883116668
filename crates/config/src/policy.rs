//! `[policy]` and `[schedule]`: which upgrades run on their own, which wait
//! for a person, and what Graft starts by itself.

use std::str::FromStr;

use serde::Deserialize;

use crate::values::DurationValue;

/// `[policy]`: risk thresholds and approvals.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Low-risk upgrades run without approval.
    pub auto_approve_low_risk: bool,
    /// Medium-risk upgrades run without approval (off by default).
    pub auto_approve_medium_risk: bool,
    /// An upgrade awaiting approval longer than this expires.
    pub approval_timeout: DurationValue,
    /// Learning never lowers a risk below this level.
    pub risk_floor: RiskLevel,
    /// A failed upgrade made by a provider is tried again this many times,
    /// with the failure as context (stopped early when it fails the same
    /// way). Off by default: every attempt spends the provider's tokens.
    pub max_upgrade_retries: u32,
    /// Changed lines above which a change is medium, then high risk.
    pub large_change_lines: u64,
    pub huge_change_lines: u64,
    /// Changed files above which a change is medium, then high risk.
    pub many_files: u64,
    pub too_many_files: u64,
    /// Outcomes of similar upgrades needed before they move a risk.
    pub learn_min_outcomes: u64,
    /// Let the record of similar upgrades raise a risk (where they often
    /// failed) or lower it (where they nearly always succeeded).
    pub learn_risk: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            auto_approve_low_risk: true,
            auto_approve_medium_risk: false,
            approval_timeout: DurationValue::secs(72 * 3600),
            risk_floor: RiskLevel::Low,
            max_upgrade_retries: 0,
            large_change_lines: 300,
            huge_change_lines: 1000,
            many_files: 10,
            too_many_files: 30,
            learn_min_outcomes: 3,
            learn_risk: true,
        }
    }
}

/// low < medium < high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
}

impl RiskLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
        }
    }

    pub fn up(self) -> RiskLevel {
        match self {
            RiskLevel::Low => RiskLevel::Medium,
            _ => RiskLevel::High,
        }
    }

    pub fn down(self) -> RiskLevel {
        match self {
            RiskLevel::High => RiskLevel::Medium,
            _ => RiskLevel::Low,
        }
    }
}

impl FromStr for RiskLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "low" => Ok(RiskLevel::Low),
            "medium" => Ok(RiskLevel::Medium),
            "high" => Ok(RiskLevel::High),
            other => Err(format!("`{other}` is not a risk level (low, medium, high)")),
        }
    }
}

impl std::fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[schedule]`: what Graft starts by itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// When to scan and queue the suggestions.
    pub scan: Every,
    /// When to run the autofixers.
    pub autofix: Every,
    /// Upgrades the schedules (scans and autofixes together) may create
    /// in any 24 hours of their clock.
    pub max_upgrades_per_day: u64,
    /// Suggestions with a lower priority are not queued.
    pub min_priority: i64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            scan: Every::Manual,
            autofix: Every::Manual,
            max_upgrades_per_day: 10,
            min_priority: 5,
        }
    }
}

/// `manual`, `daily` (03:00 UTC), `weekly` (Mondays 03:00 UTC), or a cron
/// expression (`"0 4 * * 1-5"`, UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Every {
    #[default]
    Manual,
    /// A cron pattern, checked to parse.
    Cron(String),
}

impl TryFrom<String> for Every {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let pattern = match s.trim() {
            "manual" => return Ok(Every::Manual),
            "daily" => "0 3 * * *".to_string(),
            "weekly" => "0 3 * * 1".to_string(),
            other => other.to_string(),
        };
        croner::Cron::from_str(&pattern).map_err(|e| {
            format!("`{s}` is not a schedule: write \"manual\", \"daily\", \"weekly\" or a cron expression like \"0 3 * * 1\" ({e})")
        })?;
        Ok(Every::Cron(pattern))
    }
}
