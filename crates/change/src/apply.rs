//! Resolving a [`Change`] against a tree: every resulting file, in memory.
//!
//! [`resolve`] reads the tree at a root, applies the edits in order over an
//! in-memory overlay (so a later edit sees an earlier one's result) and
//! checks every path it touches: the [`RelPath`] rules, the [`Policy`], and
//! the tree itself (no symlink anywhere on the way, no file where a
//! directory must be). It writes nothing; a change that fails anywhere
//! leaves the tree as it was (design invariants 6 and 7). Only
//! [`Resolved::write_to`] (in `write`) touches the disk.
//!
//! What the result lists: one [`ResolvedFile`] per final path whose content
//! or executable bit differs from the tree. Edit sequences that net out to
//! nothing for a path (create then delete, a replace with the same text, a
//! rename there and back) are dropped, so [`Resolved::is_empty`] can tell a
//! caller that the change does nothing.

mod linediff;
mod ops;
mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

use crate::error::ChangeError;
use crate::path::RelPath;
use crate::policy::Policy;
use crate::{Change, Edit};

/// What happened to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Create,
    Modify,
    Delete,
    Rename,
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangeKind::Create => "create",
            ChangeKind::Modify => "modify",
            ChangeKind::Delete => "delete",
            ChangeKind::Rename => "rename",
        })
    }
}

/// Every file a change ends up touching, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolved {
    pub files: Vec<ResolvedFile>,
}

/// One file's before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedFile {
    /// Where the file ends up (for a delete, where it was).
    pub path: RelPath,
    /// For a rename, where the file was.
    pub from: Option<RelPath>,
    pub kind: ChangeKind,
    /// Content in the tree before the change (at `from` for a rename).
    pub before: Option<Vec<u8>>,
    /// Content after the change; `None` for a delete.
    pub after: Option<Vec<u8>>,
    /// Whether the file is executable after the change (before it, for a
    /// delete).
    pub executable: bool,
}

impl Resolved {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Total lines added and removed over all files.
    pub fn lines_added_removed(&self) -> (usize, usize) {
        self.files.iter().fold((0, 0), |(a, r), f| {
            let (fa, fr) = f.lines_added_removed();
            (a + fa, r + fr)
        })
    }
}

impl ResolvedFile {
    /// Lines added and removed, as a line diff of `before` and `after`
    /// would count them. Exact up to a few thousand differing lines;
    /// beyond that an estimate, see `linediff`.
    pub fn lines_added_removed(&self) -> (usize, usize) {
        let empty: &[u8] = &[];
        linediff::added_removed(
            self.before.as_deref().unwrap_or(empty),
            self.after.as_deref().unwrap_or(empty),
        )
    }

    /// Whether the change writes content here that the tree did not hold
    /// before (false for a pure rename and for a delete).
    fn writes_new_content(&self) -> bool {
        self.after.is_some() && self.after != self.before
    }
}

/// Applies `change` to the tree at `root` in memory and checks the result
/// against `policy`. Writes nothing.
pub fn resolve(change: &Change, root: &Path, policy: &Policy) -> Result<Resolved, ChangeError> {
    if change.edits.is_empty() {
        return Err(ChangeError::EmptyChange {
            source_name: "change".to_string(),
            reason: "the change has no edits",
        });
    }
    let mut overlay = Overlay {
        root,
        policy,
        files: BTreeMap::new(),
    };
    for edit in &change.edits {
        overlay.apply(edit)?;
    }
    let resolved = overlay.finish();
    check_limits(&resolved, policy)?;
    Ok(resolved)
}

/// A file as the tree holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnDisk {
    pub content: Vec<u8>,
    pub executable: bool,
    /// Full permission bits, so a rewrite keeps them (unix; 0 elsewhere).
    pub mode: u32,
}

/// One path's state in the overlay.
struct FileState {
    original: Option<OnDisk>,
    current: Option<Vec<u8>>,
    executable: bool,
    /// The path whose original content this is, when it got here by
    /// renames; lets a rename show up once, as a rename.
    moved_from: Option<RelPath>,
}

struct Overlay<'a> {
    root: &'a Path,
    policy: &'a Policy,
    files: BTreeMap<RelPath, FileState>,
}

impl Overlay<'_> {
    fn apply(&mut self, edit: &Edit) -> Result<(), ChangeError> {
        match edit {
            Edit::Create {
                path,
                content,
                executable,
            } => {
                let state = self.load(path)?;
                if state.current.is_some() {
                    return Err(ChangeError::FileExists { path: path.clone() });
                }
                self.check_shape(path)?;
                let state = self.state(path);
                state.current = Some(content.clone());
                state.executable = *executable;
                state.moved_from = None;
            }
            Edit::Delete { path, expect } => {
                let state = self.load(path)?;
                let Some(current) = &state.current else {
                    return Err(ChangeError::FileMissing { path: path.clone() });
                };
                if expect.as_ref().is_some_and(|e| e != current) {
                    return Err(ChangeError::DeleteMismatch { path: path.clone() });
                }
                state.current = None;
                state.moved_from = None;
            }
            Edit::Modify { path, ops } => {
                let state = self.load(path)?;
                let Some(current) = &state.current else {
                    return Err(ChangeError::FileMissing { path: path.clone() });
                };
                state.current = Some(ops::apply_ops(path, current, ops)?);
            }
            Edit::Replace { path, content } => {
                let state = self.load(path)?;
                if state.current.is_none() {
                    return Err(ChangeError::FileMissing { path: path.clone() });
                }
                state.current = Some(content.clone());
            }
            Edit::Rename { from, to, ops } if from == to => {
                return self.apply(&Edit::Modify {
                    path: to.clone(),
                    ops: ops.clone(),
                });
            }
            Edit::Rename { from, to, ops } => {
                let source = self.load(from)?;
                if source.current.is_none() {
                    return Err(ChangeError::FileMissing { path: from.clone() });
                }
                if self.load(to)?.current.is_some() {
                    return Err(ChangeError::FileExists { path: to.clone() });
                }
                let source = self.state(from);
                let content = source.current.take().expect("checked above");
                let executable = source.executable;
                let moved_from = source.moved_from.take().unwrap_or_else(|| from.clone());
                // Check the destination's shape only now: the source may be
                // the very file that stood in the way.
                self.check_shape(to)?;
                let content = ops::apply_ops(to, &content, ops)?;
                let target = self.state(to);
                target.current = Some(content);
                target.executable = executable;
                target.moved_from = Some(moved_from);
            }
        }
        Ok(())
    }

    /// The overlay state of `path`, reading it from the tree on first use,
    /// which is where the path is checked against policy and the tree.
    fn load(&mut self, path: &RelPath) -> Result<&mut FileState, ChangeError> {
        if !self.files.contains_key(path) {
            self.policy.check_path(path)?;
            let original = read_checked(self.root, path)?;
            let state = FileState {
                current: original.as_ref().map(|o| o.content.clone()),
                executable: original.as_ref().is_some_and(|o| o.executable),
                original,
                moved_from: None,
            };
            self.files.insert(path.clone(), state);
        }
        Ok(self.state(path))
    }

    fn state(&mut self, path: &RelPath) -> &mut FileState {
        self.files.get_mut(path).expect("loaded before use")
    }

    /// Within the change itself, a file cannot stand where another file
    /// needs a directory, or the other way round. (The tree on disk was
    /// checked by `read_checked`.)
    fn check_shape(&self, path: &RelPath) -> Result<(), ChangeError> {
        for ancestor in path.ancestors() {
            if self.files.get(&ancestor).is_some_and(|s| s.current.is_some()) {
                return Err(ChangeError::NotADirectory {
                    path: path.clone(),
                    component: ancestor,
                });
            }
        }
        let prefix = format!("{path}/");
        let under = self
            .files
            .range(RelPath::from_normalised(prefix.clone())..)
            .take_while(|(p, _)| p.as_str().starts_with(&prefix))
            .any(|(_, s)| s.current.is_some());
        if under {
            return Err(ChangeError::IsADirectory { path: path.clone() });
        }
        Ok(())
    }

    fn finish(self) -> Resolved {
        let files = &self.files;
        let rename_source = |state| rename_source(files, state);
        let consumed: BTreeSet<&RelPath> = files.values().filter_map(rename_source).collect();

        let mut out = Vec::new();
        for (path, state) in files {
            if consumed.contains(path) {
                continue;
            }
            let before = state.original.as_ref().map(|o| o.content.clone());
            let entry = |kind, from, before, after, executable| ResolvedFile {
                path: path.clone(),
                from,
                kind,
                before,
                after,
                executable,
            };
            if let Some(from) = rename_source(state) {
                let source = files[from].original.as_ref().expect("rename source existed");
                out.push(entry(
                    ChangeKind::Rename,
                    Some(from.clone()),
                    Some(source.content.clone()),
                    state.current.clone(),
                    state.executable,
                ));
                continue;
            }
            match (&state.original, &state.current) {
                (None, None) => {}
                (None, Some(after)) => out.push(entry(
                    ChangeKind::Create,
                    None,
                    None,
                    Some(after.clone()),
                    state.executable,
                )),
                (Some(original), None) => {
                    out.push(entry(ChangeKind::Delete, None, before, None, original.executable))
                }
                (Some(original), Some(after)) => {
                    if &original.content != after || original.executable != state.executable {
                        out.push(entry(
                            ChangeKind::Modify,
                            None,
                            before,
                            Some(after.clone()),
                            state.executable,
                        ));
                    }
                }
            }
        }
        Resolved { files: out }
    }
}

/// The source of the rename that brought `state` where it is, if it is a
/// real move: the source existed and is gone, and the destination is new.
fn rename_source<'a>(files: &'a BTreeMap<RelPath, FileState>, state: &'a FileState) -> Option<&'a RelPath> {
    let from = state.moved_from.as_ref()?;
    let source = files.get(from)?;
    (state.original.is_none()
        && state.current.is_some()
        && source.original.is_some()
        && source.current.is_none())
    .then_some(from)
}

/// Size and binary limits apply to content the change writes anew; a
/// pure rename moves what the repository already holds and passes (but
/// counts as a file touched).
fn check_limits(resolved: &Resolved, policy: &Policy) -> Result<(), ChangeError> {
    let limits = policy.limits();
    limits.check_files(resolved.files.len())?;
    let mut total: u64 = 0;
    for file in resolved.files.iter().filter(|f| f.writes_new_content()) {
        let after = file.after.as_deref().expect("writes content");
        let size = after.len() as u64;
        limits.check_file_bytes(&file.path, size, false)?;
        if !limits.allow_binary && is_binary(after) {
            return Err(ChangeError::Binary {
                path: file.path.clone(),
            });
        }
        total += size;
    }
    limits.check_change_bytes(total, false)
}

fn is_binary(content: &[u8]) -> bool {
    content.contains(&0) || std::str::from_utf8(content).is_err()
}

/// The metadata of `path` under `root` if it exists, refusing any symlink
/// on the way (the file included) and any non-directory where a directory
/// must be. What is found at the end is never a link: it may still be a
/// directory or not a regular file, which the caller judges.
pub fn inspect_checked(root: &Path, path: &RelPath) -> Result<Option<fs::Metadata>, ChangeError> {
    let parts: Vec<&str> = path.components().collect();
    let mut here = root.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        here.push(part);
        let named = || RelPath::from_normalised(parts[..=i].join("/"));
        let meta = match fs::symlink_metadata(&here) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ChangeError::io(&here, "inspect", e)),
        };
        if meta.file_type().is_symlink() {
            return Err(ChangeError::SymlinkEscape {
                path: path.clone(),
                link: named(),
                target: fs::read_link(&here).unwrap_or_default(),
            });
        }
        if i + 1 == parts.len() {
            return Ok(Some(meta));
        }
        if !meta.is_dir() {
            return Err(ChangeError::NotADirectory {
                path: path.clone(),
                component: named(),
            });
        }
    }
    unreachable!("a RelPath has at least one component")
}

/// Reads `path` under `root` if it exists, refusing any symlink on the way
/// (the file included), any non-directory where a directory must be, and
/// anything but a regular file at the end. Symlinks are refused even when
/// they point inside the repository: a write through one lands somewhere
/// other than the path the change named and the gates checked, and a read
/// through one shows a file under another name than its own.
pub fn read_checked(root: &Path, path: &RelPath) -> Result<Option<OnDisk>, ChangeError> {
    let Some(meta) = inspect_checked(root, path)? else {
        return Ok(None);
    };
    let here = root.join(path.as_str());
    if meta.is_dir() {
        return Err(ChangeError::IsADirectory { path: path.clone() });
    }
    if !meta.is_file() {
        let e = io::Error::other("not a regular file (a device, socket or pipe)");
        return Err(ChangeError::io(&here, "change", e));
    }
    let content = fs::read(&here).map_err(|e| ChangeError::io(&here, "read", e))?;
    let mode = file_mode(&meta);
    Ok(Some(OnDisk {
        content,
        executable: mode & 0o111 != 0,
        mode,
    }))
}

#[cfg(unix)]
fn file_mode(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn file_mode(_meta: &fs::Metadata) -> u32 {
    0
}

#[cfg(all(test, unix))]
mod tests;
