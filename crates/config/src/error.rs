//! Errors that point at the mistake: file, line, column and key.

use std::fmt;
use std::path::{Path, PathBuf};

/// A `graft.toml` that cannot be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column of the mistake, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The key path, such as `gates[1].timeout`.
    pub key: Option<String>,
    pub message: String,
    /// True when the file does not exist (so callers can suggest `graft init`).
    pub missing: bool,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key
            && !self.message.contains(&format!("`{key}`"))
        {
            write!(f, "key `{key}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl ConfigError {
    pub(crate) fn read(file: &Path, e: std::io::Error) -> ConfigError {
        let missing = e.kind() == std::io::ErrorKind::NotFound;
        let message = if missing {
            "no such file: run `graft init` in the repository to create one".to_string()
        } else {
            format!("cannot read the file: {e}")
        };
        ConfigError {
            file: file.to_path_buf(),
            line: None,
            column: None,
            key: None,
            message,
            missing,
        }
    }

    pub(crate) fn toml(file: &Path, text: &str, key: Option<String>, e: toml::de::Error) -> ConfigError {
        let (line, column) = match e.span() {
            Some(span) => {
                let (l, c) = line_col(text, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        let mut message = humanize(e.message());
        // "unknown key `x`" says more as "unknown key `target.x`", and then
        // the key needs no separate mention.
        if let Some(full) = &key
            && let Some(rest) = message.strip_prefix("unknown key `")
            && let Some((_, tail)) = rest.split_once('`')
        {
            message = format!("unknown key `{full}`{tail}");
        }
        ConfigError {
            file: file.to_path_buf(),
            line,
            column,
            key,
            message,
            missing: false,
        }
    }

    pub(crate) fn at(
        file: &Path,
        text: &str,
        span: std::ops::Range<usize>,
        key: String,
        message: impl Into<String>,
    ) -> ConfigError {
        let (l, c) = line_col(text, span.start);
        ConfigError {
            file: file.to_path_buf(),
            line: Some(l),
            column: Some(c),
            key: Some(key),
            message: message.into(),
            missing: false,
        }
    }
}

/// serde says "unknown field"; a TOML user thinks in keys.
fn humanize(message: &str) -> String {
    let m = message.trim().replace("unknown field", "unknown key");
    m.replace("missing field", "missing key")
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..at].chars().count() + 1;
    (line, column)
}
