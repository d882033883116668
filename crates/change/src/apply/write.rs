//! Writing a [`Resolved`] change to disk, all or nothing.
//!
//! A filesystem has no multi-file transaction, so this gets as close as it
//! allows: check that the tree still holds what `resolve` saw (a gate run
//! or an editor may have touched it since), stage every new content in a
//! temp file beside its destination (the slow, failure-prone part, while
//! nothing is changed yet), then move each into place with an atomic
//! rename and remove deleted files. Every completed step is journalled, and
//! on any failure the journal is undone: originals (still in memory) are
//! put back, new files and temp files removed, created directories removed.
//! Directories emptied by deletes are left in place; git does not see them.
//! Only a crash of the whole process mid-write can leave a staged
//! `.NAME.graft-PID-N.tmp` file behind.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{ChangeKind, OnDisk, Resolved, read_checked};
use crate::error::ChangeError;
use crate::path::RelPath;

impl Resolved {
    /// Writes every file under `root`; on failure, undoes what was done and
    /// returns the error (or [`ChangeError::RollbackFailed`] when undoing
    /// failed too, naming what needs a manual look).
    pub fn write_to(&self, root: &Path) -> Result<(), ChangeError> {
        let plan = self.plan(root)?;
        let mut journal = Journal::default();
        match execute(root, &plan, &mut journal) {
            Ok(()) => Ok(()),
            Err(error) => {
                let leftovers = journal.undo();
                if leftovers.is_empty() {
                    Err(error)
                } else {
                    Err(ChangeError::RollbackFailed {
                        error: Box::new(error),
                        leftovers,
                    })
                }
            }
        }
    }

    /// Checks the tree still matches `before` everywhere (symlinks
    /// included, as `resolve` checked them) and lists what to do.
    fn plan(&self, root: &Path) -> Result<Plan<'_>, ChangeError> {
        let mut plan = Plan::default();
        let expect = |path: &RelPath, want: Option<&[u8]>| -> Result<Option<OnDisk>, ChangeError> {
            let found = read_checked(root, path)?;
            if found.as_ref().map(|f| f.content.as_slice()) != want {
                return Err(ChangeError::Stale { path: path.clone() });
            }
            Ok(found)
        };
        for file in &self.files {
            match file.kind {
                ChangeKind::Create | ChangeKind::Modify => {
                    let original = expect(&file.path, file.before.as_deref())?;
                    plan.writes.push(PlannedWrite {
                        path: &file.path,
                        content: file.after.as_deref().unwrap_or_default(),
                        executable: file.executable,
                        keep_mode: original.as_ref().map(|o| o.mode),
                        original,
                    });
                }
                ChangeKind::Delete => {
                    let original = expect(&file.path, file.before.as_deref())?;
                    plan.removals
                        .push((&file.path, original.expect("checked present")));
                }
                ChangeKind::Rename => {
                    let from = file.from.as_ref().expect("a rename has a source");
                    let source = expect(from, file.before.as_deref())?;
                    expect(&file.path, None)?;
                    let source = source.expect("checked present");
                    plan.writes.push(PlannedWrite {
                        path: &file.path,
                        content: file.after.as_deref().unwrap_or_default(),
                        executable: file.executable,
                        keep_mode: Some(source.mode),
                        original: None,
                    });
                    plan.removals.push((from, source));
                }
            }
        }
        Ok(plan)
    }
}

#[derive(Default)]
struct Plan<'a> {
    writes: Vec<PlannedWrite<'a>>,
    /// Deleted files and rename sources, with what to put back on undo.
    removals: Vec<(&'a RelPath, OnDisk)>,
}

struct PlannedWrite<'a> {
    path: &'a RelPath,
    content: &'a [u8],
    executable: bool,
    /// The permissions to carry over (of the file being rewritten, or of a
    /// rename's source).
    keep_mode: Option<u32>,
    /// What the destination held, to put back on undo.
    original: Option<OnDisk>,
}

/// What has been done so far, in order, so it can be undone.
#[derive(Default)]
struct Journal {
    created_dirs: Vec<PathBuf>,
    /// Staged temp files not yet renamed into place.
    temps: Vec<PathBuf>,
    done: Vec<Done>,
}

enum Done {
    /// A new file now stands at the path; undo removes it.
    Created(PathBuf),
    /// A file was replaced or removed; undo puts this back.
    Replaced(PathBuf, OnDisk),
}

fn execute(root: &Path, plan: &Plan<'_>, journal: &mut Journal) -> Result<(), ChangeError> {
    let mut staged = Vec::with_capacity(plan.writes.len());
    for write in &plan.writes {
        let dest = write.path.to_path(root);
        create_parents(root, write.path, journal)?;
        let mode = |created: u32| match write.keep_mode {
            Some(kept) => with_executable(kept, write.executable),
            None => with_executable(created, write.executable),
        };
        staged.push((stage(&dest, write.content, mode, journal)?, dest));
    }

    let mut step = 0;
    for ((temp, dest), write) in staged.into_iter().zip(&plan.writes) {
        before_step(step, &dest);
        step += 1;
        fs::rename(&temp, &dest).map_err(|e| ChangeError::io(&dest, "move into place", e))?;
        journal.temps.retain(|t| t != &temp);
        journal.done.push(match &write.original {
            Some(original) => Done::Replaced(dest, original.clone()),
            None => Done::Created(dest),
        });
    }
    for (path, original) in &plan.removals {
        let dest = path.to_path(root);
        before_step(step, &dest);
        step += 1;
        fs::remove_file(&dest).map_err(|e| ChangeError::io(&dest, "remove", e))?;
        journal.done.push(Done::Replaced(dest, original.clone()));
    }
    Ok(())
}

impl Journal {
    /// Undoes everything, newest first; returns what could not be undone.
    fn undo(&mut self) -> Vec<String> {
        let mut leftovers = Vec::new();
        for done in self.done.drain(..).rev() {
            let result = match &done {
                Done::Created(path) => remove_if_present(path).map_err(|e| e.to_string()),
                Done::Replaced(path, original) => restore(path, original).map_err(|e| e.to_string()),
            };
            if let Err(e) = result {
                let path = match &done {
                    Done::Created(p) | Done::Replaced(p, _) => p,
                };
                leftovers.push(format!("{} ({e})", path.display()));
            }
        }
        for temp in self.temps.drain(..) {
            if let Err(e) = remove_if_present(&temp) {
                leftovers.push(format!("{} ({e})", temp.display()));
            }
        }
        for dir in self.created_dirs.drain(..).rev() {
            if let Err(e) = fs::remove_dir(&dir) {
                leftovers.push(format!("{} ({e})", dir.display()));
            }
        }
        leftovers
    }
}

/// Creates the missing directories above `path`, journalling each one so
/// undo removes exactly those.
fn create_parents(root: &Path, path: &RelPath, journal: &mut Journal) -> Result<(), ChangeError> {
    for ancestor in path.ancestors() {
        let dir = ancestor.to_path(root);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(ChangeError::SymlinkEscape {
                    path: path.clone(),
                    link: ancestor,
                    target: fs::read_link(&dir).unwrap_or_default(),
                });
            }
            Ok(_) => {
                return Err(ChangeError::NotADirectory {
                    path: path.clone(),
                    component: ancestor,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&dir).map_err(|e| ChangeError::io(&dir, "create directory", e))?;
                journal.created_dirs.push(dir);
            }
            Err(e) => return Err(ChangeError::io(&dir, "inspect", e)),
        }
    }
    Ok(())
}

/// Writes `content` to a new temp file beside `dest`. `mode` maps the
/// permissions a fresh file gets (the umask applied) to the ones wanted.
fn stage(
    dest: &Path,
    content: &[u8],
    mode: impl Fn(u32) -> u32,
    journal: &mut Journal,
) -> Result<PathBuf, ChangeError> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = dest.parent().expect("a destination under the root");
    let name = dest.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    // Keep the temp name within NAME_MAX even for a long file name.
    let short: String = name.chars().take(64).collect();
    let temp = dir.join(format!(
        ".{short}.graft-{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o666);
    let mut file = options
        .open(&temp)
        .map_err(|e| ChangeError::io(&temp, "create", e))?;
    journal.temps.push(temp.clone());
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .map_err(|e| ChangeError::io(&temp, "write", e))?;
    set_mode(&file, mode).map_err(|e| ChangeError::io(&temp, "set permissions of", e))?;
    Ok(temp)
}

/// Puts `original` back at `path`, atomically where it can.
fn restore(path: &Path, original: &OnDisk) -> Result<(), ChangeError> {
    let mut scratch = Journal::default();
    let temp = stage(path, &original.content, |_| original.mode, &mut scratch);
    let temp = match temp {
        Ok(t) => t,
        Err(e) => {
            scratch.undo();
            return Err(e);
        }
    };
    fs::rename(&temp, path).map_err(|e| {
        let _ = fs::remove_file(&temp);
        ChangeError::io(path, "restore", e)
    })
}

fn remove_if_present(path: &Path) -> Result<(), io::Error> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `mode` with its execute bits set where it may be read, or cleared;
/// unchanged when it already says what is wanted.
fn with_executable(mode: u32, executable: bool) -> u32 {
    if (mode & 0o111 != 0) == executable {
        mode
    } else if executable {
        mode | ((mode & 0o444) >> 2)
    } else {
        mode & !0o111
    }
}

#[cfg(unix)]
fn set_mode(file: &fs::File, mode: impl Fn(u32) -> u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = file.metadata()?.permissions().mode() & 0o7777;
    let wanted = mode(current);
    if wanted != current {
        file.set_permissions(fs::Permissions::from_mode(wanted))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn set_mode(_file: &fs::File, _mode: impl Fn(u32) -> u32) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
pub(super) type StepHook = Box<dyn FnMut(usize, &Path)>;

#[cfg(test)]
thread_local! {
    /// Runs before each move-into-place or removal step with the step's
    /// number, so tests can make a real filesystem operation fail midway.
    pub(super) static BEFORE_STEP: std::cell::RefCell<Option<StepHook>> =
        const { std::cell::RefCell::new(None) };
}

fn before_step(_step: usize, _dest: &Path) {
    #[cfg(test)]
    BEFORE_STEP.with(|hook| {
        if let Some(hook) = hook.borrow_mut().as_mut() {
            hook(_step, _dest);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executable_bits_follow_read_bits() {
        assert_eq!(with_executable(0o644, true), 0o755);
        assert_eq!(with_executable(0o600, true), 0o700);
        assert_eq!(with_executable(0o755, false), 0o644);
        assert_eq!(with_executable(0o744, true), 0o744);
        assert_eq!(with_executable(0o640, false), 0o640);
    }
}
