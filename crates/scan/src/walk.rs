//! Which files a scan reads: a parallel, `.gitignore`-aware walk (the
//! `ignore` crate, ripgrep's) from the root or the scope, minus the
//! `[scan] exclude` globs. Symbolic links are followed so linked source is
//! analysed; a link that loops or dangles is counted and reported.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use globset::{Glob, GlobSet, GlobSetBuilder};
use graft_lang::Lang;

use crate::model::Problem;

/// A source file to analyse.
pub(crate) struct Candidate {
    /// Relative to the root, `/`-separated.
    pub rel: String,
    pub abs: PathBuf,
    pub lang: Lang,
}

pub(crate) struct Discovery {
    pub files: Vec<Candidate>,
    pub problems: Vec<Problem>,
    /// Files looked at, whether or not Graft has a grammar for them.
    pub seen: u64,
}

pub(crate) fn excludes(globs: &[String]) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(Glob::new(g).map_err(|e| format!("`{g}` is not a valid glob: {}", e.kind()))?);
    }
    b.build().map_err(|e| e.to_string())
}

pub(crate) fn discover(root: &Path, start: &Path, exclude: &GlobSet, threads: usize) -> Discovery {
    let out = Mutex::new(Discovery {
        files: Vec::new(),
        problems: Vec::new(),
        seen: 0,
    });
    let rel_of = |p: &Path| -> String {
        let r = p.strip_prefix(root).unwrap_or(p);
        r.to_string_lossy().replace('\\', "/")
    };
    let walker = ignore::WalkBuilder::new(start)
        .follow_links(true)
        .require_git(false)
        .threads(threads)
        .filter_entry({
            let exclude = exclude.clone();
            let root = root.to_path_buf();
            move |e| {
                let name = e.file_name();
                if name == ".git" || name == ".graft" {
                    return false;
                }
                // A link out of the repository is not part of it (a
                // dangling one is, to be reported).
                if e.path_is_symlink()
                    && let Ok(target) = std::fs::canonicalize(e.path())
                    && !target.starts_with(&root)
                {
                    return false;
                }
                let rel = e.path().strip_prefix(&root).unwrap_or(e.path());
                exclude.is_empty() || rel.as_os_str().is_empty() || !exclude.is_match(rel)
            }
        })
        .build_parallel();
    walker.run(|| {
        let out = &out;
        let rel_of = &rel_of;
        Box::new(move |entry| {
            match entry {
                Ok(e) => {
                    let is_file = e.file_type().is_some_and(|t| t.is_file());
                    if is_file {
                        let lang = Lang::of_path(e.path());
                        let mut d = out.lock().unwrap_or_else(|p| p.into_inner());
                        d.seen += 1;
                        if let Some(lang) = lang {
                            d.files.push(Candidate {
                                rel: rel_of(e.path()),
                                abs: e.path().to_path_buf(),
                                lang,
                            });
                        }
                    }
                }
                Err(err) => {
                    let problem = classify(&err, None);
                    let mut d = out.lock().unwrap_or_else(|p| p.into_inner());
                    d.problems.push(Problem {
                        path: problem.0.map(|p| rel_of(&p)).unwrap_or_default(),
                        kind: problem.1,
                        message: problem.2,
                        line: None,
                    });
                }
            }
            ignore::WalkState::Continue
        })
    });
    let mut d = out.into_inner().unwrap_or_else(|p| p.into_inner());
    d.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    d.problems.sort_by(|a, b| a.path.cmp(&b.path));
    d
}

/// A walk error as (path, kind, message).
fn classify(err: &ignore::Error, path: Option<PathBuf>) -> (Option<PathBuf>, &'static str, String) {
    match err {
        ignore::Error::WithPath { path, err } => classify(err, Some(path.clone())),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            classify(err, path)
        }
        ignore::Error::Partial(errs) if !errs.is_empty() => classify(&errs[0], path),
        ignore::Error::Loop { ancestor, child } => (
            Some(child.clone()),
            "symlink_loop",
            format!(
                "symbolic link loop: {} leads back to {}",
                child.display(),
                ancestor.display()
            ),
        ),
        ignore::Error::Io(e) => (path, "unreadable", format!("cannot read: {e}")),
        other => (path, "unreadable", other.to_string()),
    }
}
