//! Value types that check themselves while `graft.toml` is deserialized, so
//! a bad value is reported with its line and key by serde itself.

use std::time::Duration;

use serde::Deserialize;

/// A gate or section name: lowercase letters, digits, `-` and `_`. Keeps its
/// place in the file for checks that span several values.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "toml::Spanned<String>")]
pub struct Name {
    value: String,
    span: std::ops::Range<usize>,
}

impl Name {
    pub fn as_str(&self) -> &str {
        &self.value
    }
    pub(crate) fn span(&self) -> std::ops::Range<usize> {
        self.span.clone()
    }
    /// A name made in code (templates, tests); it has no place in a file.
    pub fn new(value: &str) -> Result<Name, String> {
        check_name(value)?;
        Ok(Name {
            value: value.to_string(),
            span: 0..0,
        })
    }
}

pub(crate) fn check_name(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("a name may not be empty".into());
    }
    if value.len() > 40 {
        return Err(format!("name `{value}` is longer than 40 characters"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(format!(
            "name `{value}` may only hold lowercase letters, digits, `-` and `_`"
        ));
    }
    Ok(())
}

impl TryFrom<toml::Spanned<String>> for Name {
    type Error = String;
    fn try_from(s: toml::Spanned<String>) -> Result<Self, String> {
        let span = s.span();
        let value = s.into_inner();
        check_name(&value)?;
        Ok(Name { value, span })
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.value)
    }
}

/// A positive duration, written as seconds (`90`) or with units (`"90s"`,
/// `"10m"`, `"1h 30m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawDuration")]
pub struct DurationValue(pub Duration);

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Seconds(i64),
    Text(String),
}

impl TryFrom<RawDuration> for DurationValue {
    type Error = String;
    fn try_from(raw: RawDuration) -> Result<Self, String> {
        let d = match raw {
            RawDuration::Seconds(s) if s > 0 => Duration::from_secs(s as u64),
            RawDuration::Seconds(s) => return Err(format!("duration must be positive, got {s}")),
            RawDuration::Text(t) => humantime::parse_duration(t.trim()).map_err(|e| {
                format!("`{t}` is not a duration ({e}); write seconds (90) or units (\"90s\", \"10m\", \"1h 30m\")")
            })?,
        };
        if d.is_zero() {
            return Err("duration must be positive".into());
        }
        Ok(DurationValue(d))
    }
}

impl DurationValue {
    pub fn secs(s: u64) -> DurationValue {
        DurationValue(Duration::from_secs(s))
    }
}

/// A number from 0 to 1 (a share: 0.1 is 10 %).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "f64")]
pub struct Fraction(pub f64);

impl TryFrom<f64> for Fraction {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if v.is_finite() && (0.0..=1.0).contains(&v) {
            Ok(Fraction(v))
        } else {
            Err(format!("{v} is not a share between 0 and 1 (write 0.1 for 10 %)"))
        }
    }
}

/// A list of glob patterns, each checked to compile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct GlobList(pub Vec<String>);

impl TryFrom<Vec<String>> for GlobList {
    type Error = String;
    fn try_from(globs: Vec<String>) -> Result<Self, String> {
        for g in &globs {
            globset::Glob::new(g).map_err(|e| format!("`{g}` is not a valid glob: {}", e.kind()))?;
        }
        Ok(GlobList(globs))
    }
}

/// A path relative to the repo root that stays inside it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct DataPath(pub String);

impl TryFrom<String> for DataPath {
    type Error = String;
    fn try_from(p: String) -> Result<Self, String> {
        let bad = |why: &str| Err(format!("data path `{p}` {why}"));
        if p.trim().is_empty() {
            return bad("is empty");
        }
        if p.starts_with('/') || p.contains('\\') {
            return bad("must be relative to the repository root, with `/` separators");
        }
        if p.split('/').any(|c| c == "..") {
            return bad("leaves the repository (`..`)");
        }
        if p.split('/')
            .any(|c| c.eq_ignore_ascii_case(".git") || c == ".graft")
        {
            return bad("is inside `.git/` or `.graft/`");
        }
        Ok(DataPath(p))
    }
}

impl DataPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
