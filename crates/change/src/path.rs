//! Repository-relative paths that cannot leave the repository.
//!
//! Design invariant 6 says a change can only touch files inside the target
//! repo. Every path a change names becomes a [`RelPath`] before anything else
//! looks at it, so the lexical half of that promise (no `..`, not absolute,
//! nothing in `.git`) holds by construction; the symlink half needs the tree
//! and is checked in `apply`.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::ChangeError;

/// A normalised, validated path relative to the repository root, with `/`
/// separators: never empty, absolute, `..`-containing or inside `.git`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(String);

impl RelPath {
    /// Validates `raw` and normalises away `.` components and repeated
    /// slashes (`./a//b` becomes `a/b`).
    pub fn new(raw: &str) -> Result<RelPath, ChangeError> {
        let owned = || raw.to_string();
        if raw.is_empty() {
            return Err(ChangeError::PathEmpty { path: owned() });
        }
        if raw.chars().any(char::is_control) {
            return Err(ChangeError::PathControlChar { path: owned() });
        }
        if raw.starts_with('/') || is_windows_absolute(raw) {
            return Err(ChangeError::PathAbsolute { path: owned() });
        }
        if raw.contains('\\') {
            return Err(ChangeError::PathBackslash { path: owned() });
        }
        if raw.ends_with('/') {
            return Err(ChangeError::PathTrailingSlash { path: owned() });
        }
        let mut parts = Vec::new();
        for part in raw.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(ChangeError::PathTraversal { path: owned() }),
                _ if is_git_dir_name(part) => {
                    return Err(ChangeError::PathGitDir { path: owned() });
                }
                _ => parts.push(part),
            }
        }
        if parts.is_empty() {
            return Err(ChangeError::PathEmpty { path: owned() });
        }
        Ok(RelPath(parts.join("/")))
    }

    /// For strings built from an already valid path's components.
    pub(crate) fn from_normalised(path: String) -> RelPath {
        RelPath(path)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This path under `root`, built component by component so it never
    /// depends on the platform's separator.
    pub fn to_path(&self, root: &Path) -> PathBuf {
        let mut out = root.to_path_buf();
        out.extend(self.0.split('/'));
        out
    }

    /// The path's components, outermost first.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Every proper ancestor directory, outermost first (`a/b/c` gives `a`,
    /// `a/b`).
    pub fn ancestors(&self) -> impl Iterator<Item = RelPath> + '_ {
        self.0
            .match_indices('/')
            .map(|(i, _)| RelPath(self.0[..i].to_string()))
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for RelPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// `C:`, `C:\x`, `C:/x` and `\\server\share`: absolute on Windows, and a
/// repo may be checked out there, so refuse them everywhere. A name like
/// `a:b` is an ordinary file name and stays allowed.
fn is_windows_absolute(raw: &str) -> bool {
    if raw.starts_with("\\\\") || raw.starts_with('\\') {
        return true;
    }
    let bytes = raw.as_bytes();
    bytes.len() >= 2
        && bytes[0].is_ascii_alphabetic()
        && bytes[1] == b':'
        && (bytes.len() == 2 || bytes[2] == b'/' || bytes[2] == b'\\')
}

/// `.git` in any case; also with trailing dots or spaces, which Windows
/// strips when opening a file, the same spellings git itself refuses.
fn is_git_dir_name(part: &str) -> bool {
    part.trim_end_matches(['.', ' ']).eq_ignore_ascii_case(".git")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(raw: &str) -> &'static str {
        RelPath::new(raw).unwrap_err().code()
    }

    #[test]
    fn accepts_and_normalises() {
        assert_eq!(RelPath::new("src/main.rs").unwrap().as_str(), "src/main.rs");
        assert_eq!(RelPath::new("./a//b").unwrap().as_str(), "a/b");
        assert_eq!(RelPath::new("a/./b/./c").unwrap().as_str(), "a/b/c");
        assert_eq!(RelPath::new(".gitignore").unwrap().as_str(), ".gitignore");
        assert_eq!(RelPath::new("a:b").unwrap().as_str(), "a:b");
        assert_eq!(RelPath::new("dir/.github/x").unwrap().as_str(), "dir/.github/x");
        assert_eq!(RelPath::new("café/ü.txt").unwrap().as_str(), "café/ü.txt");
    }

    #[test]
    fn refuses_empty() {
        assert_eq!(code(""), "path_empty");
        assert_eq!(code("."), "path_empty");
        assert_eq!(code("./."), "path_empty");
    }

    #[test]
    fn refuses_control_characters() {
        assert_eq!(code("a\0b"), "path_control_char");
        assert_eq!(code("a\nb"), "path_control_char");
        assert_eq!(code("a\tb"), "path_control_char");
        assert_eq!(code("a\u{7f}"), "path_control_char");
        let msg = RelPath::new("a\nb").unwrap_err().to_string();
        assert!(msg.contains("`a\\nb`"), "{msg}");
        assert!(msg.contains("control character"), "{msg}");
    }

    #[test]
    fn refuses_absolute_paths() {
        assert_eq!(code("/etc/passwd"), "path_absolute");
        assert_eq!(code("//x"), "path_absolute");
        assert_eq!(code("C:\\Windows"), "path_absolute");
        assert_eq!(code("c:/Windows"), "path_absolute");
        assert_eq!(code("C:"), "path_absolute");
        assert_eq!(code("\\\\server\\share"), "path_absolute");
        assert_eq!(code("\\x"), "path_absolute");
        let msg = RelPath::new("/etc/passwd").unwrap_err().to_string();
        assert!(msg.contains("`/etc/passwd` is absolute"), "{msg}");
        assert!(msg.contains("relative to the repository root"), "{msg}");
    }

    #[test]
    fn refuses_backslashes() {
        assert_eq!(code("src\\main.rs"), "path_backslash");
        let msg = RelPath::new("a\\b").unwrap_err().to_string();
        assert!(msg.contains("separate directories with `/`"), "{msg}");
    }

    #[test]
    fn refuses_trailing_slash() {
        assert_eq!(code("src/"), "path_trailing_slash");
        assert_eq!(code("./"), "path_trailing_slash");
    }

    #[test]
    fn refuses_parent_components_anywhere() {
        assert_eq!(code(".."), "path_traversal");
        assert_eq!(code("../x"), "path_traversal");
        assert_eq!(code("a/../b"), "path_traversal");
        assert_eq!(code("a/.."), "path_traversal");
        assert_eq!(code("./a/../../etc"), "path_traversal");
        let msg = RelPath::new("a/../b").unwrap_err().to_string();
        assert!(msg.contains("`a/../b` contains `..`"), "{msg}");
        // Names that merely contain dots are fine.
        assert!(RelPath::new("a/..b/c...").is_ok());
    }

    #[test]
    fn refuses_git_directory_in_any_case() {
        assert_eq!(code(".git"), "path_git_dir");
        assert_eq!(code(".git/config"), "path_git_dir");
        assert_eq!(code(".GIT/config"), "path_git_dir");
        assert_eq!(code("sub/.Git/hooks/pre-commit"), "path_git_dir");
        assert_eq!(code("./.git"), "path_git_dir");
        assert_eq!(code(".git./config"), "path_git_dir");
        assert_eq!(code(".git /config"), "path_git_dir");
        let msg = RelPath::new(".git/config").unwrap_err().to_string();
        assert!(msg.contains("`.git/config` is inside `.git`"), "{msg}");
    }

    #[test]
    fn joins_under_a_root() {
        let p = RelPath::new("a/b.txt").unwrap();
        assert_eq!(p.to_path(Path::new("/r")), PathBuf::from("/r/a/b.txt"));
        assert_eq!(p.to_string(), "a/b.txt");
        assert_eq!(p.file_name(), "b.txt");
    }

    #[test]
    fn lists_ancestors_outermost_first() {
        let p = RelPath::new("a/b/c").unwrap();
        let got: Vec<String> = p.ancestors().map(|a| a.to_string()).collect();
        assert_eq!(got, ["a", "a/b"]);
        assert_eq!(RelPath::new("x").unwrap().ancestors().count(), 0);
    }
}
