//! Which files a scan reads: a parallel, `.gitignore`-aware walk (the
//! `ignore` crate, ripgrep's) from the root or the scope, minus the
//! `[scan] exclude` globs. Symbolic links are followed so linked source is
//! analysed; a link that loops or dangles is counted and reported.
//!
//! A full walk lists every directory (Django's sources sit in ~2,500 of
//! them, most holding only translations), which made it the longest part
//! of a re-scan. So a walk's answer is kept as a [`Listing`] with the
//! modification time of every directory it read and of every ignore file
//! that shaped it; the next scan stats those instead of reading them, and
//! reuses the answer when none changed (adding, removing or renaming an
//! entry changes its directory's time). A walk that met a symbolic link, an
//! error, or a directory changed in the last seconds (a time that could
//! still move within the clock's granularity) is not kept.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

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

/// What the walk found besides the files it handed over.
pub(crate) struct Discovery {
    pub problems: Vec<Problem>,
    /// Files looked at, whether or not Graft has a grammar for them.
    pub seen: u64,
    /// Taken from a kept [`Listing`], not walked.
    pub reused: bool,
}

pub(crate) fn excludes(globs: &[String]) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(Glob::new(g).map_err(|e| format!("`{g}` is not a valid glob: {}", e.kind()))?);
    }
    b.build().map_err(|e| e.to_string())
}

/// When a file or directory was last changed, and which one it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    secs: i64,
    nanos: i64,
    inode: u64,
    size: u64,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt as _;
        Stamp {
            secs: m.mtime(),
            nanos: m.mtime_nsec(),
            inode: m.ino(),
            size: if m.is_dir() { 0 } else { m.len() },
        }
    }

    /// The stamp of `path` now (not following a final link); `None` if
    /// it does not exist or cannot be read.
    fn now(path: &Path) -> Option<Stamp> {
        std::fs::symlink_metadata(path).ok().map(|m| Stamp::of(&m))
    }

    /// Changed so recently that a further change might keep this time.
    fn settling(&self, since: SystemTime) -> bool {
        let t = SystemTime::UNIX_EPOCH
            + Duration::new(self.secs.max(0) as u64, self.nanos.clamp(0, 999_999_999) as u32);
        t + Duration::from_secs(2) > since
    }
}

/// Bumped when what a [`Listing`] holds changes.
const LISTING_VERSION: u64 = 2;
const LISTING_FILE: &str = "walk.bin";

/// A full walk's answer and what it depended on.
#[derive(Serialize, Deserialize)]
pub(crate) struct Listing {
    version: u64,
    /// The walk's start and exclude globs, hashed.
    question: u64,
    /// The names in the start directory but `.graft`, hashed: its time
    /// changes whenever `.graft` is made or removed.
    start_names: u64,
    /// Every directory read below the start.
    dirs: Vec<(PathBuf, Stamp)>,
    /// Ignore files that shaped the answer, or could if they appeared
    /// outside the directories read (`None`: absent).
    ignores: Vec<(PathBuf, Option<Stamp>)>,
    /// The source files found, relative to the root.
    files: Vec<String>,
    seen: u64,
}

/// The names in `dir` but `.graft`, hashed in order.
fn names_of(dir: &Path) -> Option<u64> {
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
        .ok()?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .ok()?;
    names.retain(|n| n != ".graft");
    names.sort_unstable();
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for n in &names {
        h.update(n.as_encoded_bytes());
        h.update(b"\0");
    }
    Some(h.digest())
}

/// Ignore files a walk reads in each directory.
const IGNORE_FILES: [&str; 2] = [".gitignore", ".ignore"];

/// What the walk was asked, as a number.
fn question(start: &Path, exclude_globs: &[String]) -> u64 {
    let mut text = start.to_string_lossy().into_owned();
    for g in exclude_globs {
        text.push('\0');
        text.push_str(g);
    }
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

/// Files outside the walked directories that change what git ignores:
/// the ignore files of `start`'s ancestors, the repository's exclude file
/// and the user's and system's git configuration and excludes.
fn outside_ignores(root: &Path, start: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for dir in start.ancestors().skip(1) {
        out.extend(IGNORE_FILES.iter().map(|f| dir.join(f)));
    }
    out.push(root.join(".git").join("info").join("exclude"));
    out.push(root.join(".git").join("config"));
    out.push(PathBuf::from("/etc/gitconfig"));
    if let Some(home) = std::env::var_os("HOME") {
        let home = PathBuf::from(home);
        out.push(home.join(".gitconfig"));
        out.push(home.join(".config/git/config"));
        out.push(home.join(".config/git/ignore"));
    }
    if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME") {
        let xdg = PathBuf::from(xdg);
        out.push(xdg.join("git/config"));
        out.push(xdg.join("git/ignore"));
    }
    out
}

impl Listing {
    /// The listing kept under `dir` for `question`, if there is one.
    fn load(dir: &Path, question: u64) -> Option<Listing> {
        let bytes = std::fs::read(dir.join(LISTING_FILE)).ok()?;
        let l: Listing = postcard::from_bytes(&bytes).ok()?;
        (l.version == LISTING_VERSION && l.question == question).then_some(l)
    }

    /// The files, if nothing the listing depended on changed (checked on
    /// `threads` threads of its own: the scan's pool is busy waiting for
    /// these very files).
    fn still_true(self, root: &Path, start: &Path, threads: usize) -> Option<(Vec<Candidate>, u64)> {
        if names_of(start) != Some(self.start_names) {
            return None;
        }
        let stamps: Vec<(&Path, Option<Stamp>)> = (self.dirs.iter().map(|(p, s)| (p.as_path(), Some(*s))))
            .chain(self.ignores.iter().map(|(p, s)| (p.as_path(), *s)))
            .collect();
        let chunk = stamps.len().div_ceil(threads.max(1)).max(1);
        let same = std::thread::scope(|s| {
            let checks: Vec<_> = stamps
                .chunks(chunk)
                .map(|part| s.spawn(move || part.iter().all(|(p, stamp)| Stamp::now(p) == *stamp)))
                .collect();
            checks.into_iter().all(|c| c.join().unwrap_or(false))
        });
        if !same {
            return None;
        }
        let files = self
            .files
            .into_iter()
            .filter_map(|rel| {
                let lang = Lang::of_path(Path::new(&rel))?;
                Some(Candidate {
                    abs: root.join(&rel),
                    rel,
                    lang,
                })
            })
            .collect();
        Some((files, self.seen))
    }
}

/// What a walk notes to make a [`Listing`].
#[derive(Default)]
struct Notes {
    start_names: Option<u64>,
    dirs: Vec<(PathBuf, Stamp)>,
    ignores: Vec<(PathBuf, Option<Stamp>)>,
    files: Vec<String>,
    /// A link, an error or an unreadable stamp: the walk is not kept.
    unkeepable: bool,
}

/// What to walk.
pub(crate) struct Walk<'a> {
    pub root: &'a Path,
    pub start: &'a Path,
    /// The `[scan] exclude` globs, as written and compiled.
    pub exclude_globs: &'a [String],
    pub exclude: &'a GlobSet,
    pub threads: usize,
    /// Where a [`Listing`] is kept and looked for (`None`: never).
    pub keep_in: Option<&'a Path>,
}

/// Hand each source file under `w.start` to `found`: from the kept
/// listing when nothing it read has changed, else from a new walk (kept
/// in turn when it can be trusted).
pub(crate) fn discover(w: &Walk<'_>, found: &(dyn Fn(Candidate) + Sync)) -> Discovery {
    let question = question(w.start, w.exclude_globs);
    if let Some(dir) = w.keep_in
        && let Some(listing) = Listing::load(dir, question)
        && let Some((files, seen)) = listing.still_true(w.root, w.start, w.threads)
    {
        files.into_iter().for_each(found);
        return Discovery {
            problems: Vec::new(),
            seen,
            reused: true,
        };
    }
    walk(
        w.root,
        w.start,
        w.exclude,
        w.threads,
        w.keep_in.map(|d| (d, question)),
        found,
    )
}

/// Walk from `start`, handing each source file to `found` as soon as it
/// is seen (from the walk's own threads, in no particular order), so
/// reading and parsing need not wait for the whole listing. With
/// `keep_in`, the answer is kept there as a [`Listing`] for `question`.
fn walk(
    root: &Path,
    start: &Path,
    exclude: &GlobSet,
    threads: usize,
    keep_in: Option<(&Path, u64)>,
    found: &(dyn Fn(Candidate) + Sync),
) -> Discovery {
    let started = SystemTime::now();
    // Read before the walk reads it: an entry added meanwhile shows as a
    // difference next time.
    let notes = std::sync::Arc::new(Mutex::new(Notes {
        start_names: keep_in.and_then(|_| names_of(start)),
        ..Notes::default()
    }));
    let out = Mutex::new(Discovery {
        problems: Vec::new(),
        seen: 0,
        reused: false,
    });
    let seen = std::sync::atomic::AtomicU64::new(0);
    let rel_of = |p: &Path| -> String {
        let r = p.strip_prefix(root).unwrap_or(p);
        r.to_string_lossy().replace('\\', "/")
    };
    let keeping = keep_in.is_some();
    let walker = ignore::WalkBuilder::new(start)
        .follow_links(true)
        .require_git(false)
        // Hidden entries are skipped below, with the links noted.
        .hidden(false)
        .threads(threads)
        .filter_entry({
            let exclude = exclude.clone();
            let root = root.to_path_buf();
            let notes = notes.clone();
            move |e| {
                let name = e.file_name();
                if e.depth() > 0 && name.as_encoded_bytes().first() == Some(&b'.') {
                    return false;
                }
                if keeping && e.path_is_symlink() {
                    notes.lock().unwrap_or_else(|p| p.into_inner()).unkeepable = true;
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
        let seen = &seen;
        let notes = &notes;
        Box::new(move |entry| {
            match entry {
                Ok(e) => {
                    let is_file = e.file_type().is_some_and(|t| t.is_file());
                    if is_file {
                        seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if let Some(lang) = Lang::of_path(e.path()) {
                            let rel = rel_of(e.path());
                            if keeping {
                                let mut n = notes.lock().unwrap_or_else(|p| p.into_inner());
                                n.files.push(rel.clone());
                            }
                            found(Candidate {
                                rel,
                                abs: e.into_path(),
                                lang,
                            });
                        }
                    } else if keeping && e.depth() > 0 && e.file_type().is_some_and(|t| t.is_dir()) {
                        // Stamped before the walk reads it: a change made
                        // while it is read shows as a newer time.
                        let stamp = Stamp::now(e.path());
                        let mut n = notes.lock().unwrap_or_else(|p| p.into_inner());
                        match stamp {
                            Some(s) => n.dirs.push((e.path().to_path_buf(), s)),
                            None => n.unkeepable = true,
                        }
                    }
                }
                Err(err) => {
                    notes.lock().unwrap_or_else(|p| p.into_inner()).unkeepable = true;
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
    d.seen = seen.into_inner();
    d.problems.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some((dir, question)) = keep_in {
        let notes = std::mem::take(&mut *notes.lock().unwrap_or_else(|p| p.into_inner()));
        keep(dir, question, root, start, notes, d.seen, started);
    }
    d
}

/// Write the listing of a walk that began at `started`, unless something
/// makes it untrustworthy; a failed write only costs the next scan a walk.
fn keep(
    dir: &Path,
    question: u64,
    root: &Path,
    start: &Path,
    mut notes: Notes,
    seen: u64,
    started: SystemTime,
) {
    let path = dir.join(LISTING_FILE);
    let Some(start_names) = notes.start_names else {
        return;
    };
    // The ignore files in the directories read (one appearing changes its
    // directory's time; one edited in place does not), then those outside.
    // This runs while the files found are parsed.
    for d in std::iter::once(start).chain(notes.dirs.iter().map(|(d, _)| d.as_path())) {
        for f in IGNORE_FILES {
            let p = d.join(f);
            if let Some(stamp) = Stamp::now(&p) {
                notes.ignores.push((p, Some(stamp)));
            }
        }
    }
    notes
        .ignores
        .extend(outside_ignores(root, start).into_iter().map(|p| {
            let stamp = Stamp::now(&p);
            (p, stamp)
        }));
    let settling = notes
        .dirs
        .iter()
        .map(|(_, s)| Some(s))
        .chain(notes.ignores.iter().map(|(_, s)| s.as_ref()));
    if notes.unkeepable || settling.flatten().any(|s| s.settling(started)) {
        let _ = std::fs::remove_file(&path);
        return;
    }
    notes.files.sort_unstable();
    let listing = Listing {
        version: LISTING_VERSION,
        question,
        start_names,
        dirs: notes.dirs,
        ignores: notes.ignores,
        files: notes.files,
        seen,
    };
    if let Ok(bytes) = postcard::to_stdvec(&listing) {
        crate::cache::write_whole(&path, &bytes);
    }
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
