//! A target repo as Graft sees it: the main checkout, its `graft.toml`, the
//! `.graft/` directory (ledger, staging worktree, backups) and the lock that
//! keeps to one pipeline run at a time.
//!
//! `.graft/` is kept out of git through `.git/info/exclude`, which changes
//! no tracked file of the target.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use graft_config::Config;
use graft_ledger::Ledger;
use nix::fcntl::{Flock, FlockArg};

use crate::error::PipelineError;
use crate::git::Git;

pub const GRAFT_DIR: &str = ".graft";

/// An opened target repo.
pub struct Workspace {
    /// The main checkout's root.
    pub root: PathBuf,
    pub config: Config,
    pub git: Git,
    pub ledger: Ledger,
}

impl Workspace {
    /// Find the repo containing `start`, read its `graft.toml` and open its
    /// ledger (creating `.graft/` on first use).
    pub fn open(start: &Path) -> Result<Workspace, PipelineError> {
        let root = find_root(start)?;
        let config = Config::load(&root)?;
        Workspace::open_with(root, config)
    }

    /// Open with a config already read (and checked) by the caller.
    pub fn open_with(root: PathBuf, config: Config) -> Result<Workspace, PipelineError> {
        let git = Git::new(&root).with_identity_fallback();
        let graft_dir = root.join(GRAFT_DIR);
        std::fs::create_dir_all(&graft_dir)
            .map_err(|e| PipelineError::io(format!("cannot create {}", graft_dir.display()), e))?;
        exclude_graft_dir(&git)?;
        let ledger = Ledger::open(&graft_dir.join("ledger.db"))?;
        Ok(Workspace {
            root,
            config,
            git,
            ledger,
        })
    }

    pub fn graft_dir(&self) -> PathBuf {
        self.root.join(GRAFT_DIR)
    }

    /// The persistent staging worktree (reset between upgrades so build
    /// caches inside it survive).
    pub fn staging_dir(&self) -> PathBuf {
        self.graft_dir().join("staging")
    }

    pub fn backups_dir(&self, id: &graft_ledger::UpgradeId) -> PathBuf {
        self.graft_dir().join("backups").join(id.as_str())
    }

    /// The branch upgrades land on: `[target] branch`, else the branch
    /// checked out now.
    pub fn target_branch(&self) -> Result<String, PipelineError> {
        if let Some(b) = &self.config.target.branch {
            return Ok(b.clone());
        }
        self.git.current_branch()?.ok_or_else(|| {
            PipelineError::Environment(
                "HEAD is detached: check out the branch upgrades should land on, or set `[target] branch` in graft.toml"
                    .into(),
            )
        })
    }

    /// Take the pipeline lock, waiting for a running upgrade if `wait`.
    /// Returns None when not waiting and someone else holds it.
    pub fn lock(&self, wait: bool) -> Result<Option<PipelineLock>, PipelineError> {
        PipelineLock::acquire(&self.graft_dir(), wait)
    }
}

/// The root of the git checkout containing `start`.
pub fn find_root(start: &Path) -> Result<PathBuf, PipelineError> {
    if let Some(root) = discover_plainly(start) {
        return Ok(root);
    }
    let out = Git::new(start).output(&["rev-parse", "--show-toplevel"])?;
    if !out.status.success() {
        return Err(PipelineError::Environment(format!(
            "{} is not inside a git repository: Graft works on git repos (run `git init` and commit first)",
            start.display()
        )));
    }
    let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    Ok(root.canonicalize().unwrap_or(root))
}

/// The git directory of the work tree at `root`: its `.git` directory, or
/// where its `.git` file points (a worktree, a submodule). Read without
/// starting git; `None` if neither is there.
pub fn git_dir(root: &Path) -> Option<PathBuf> {
    let dot = root.join(".git");
    if dot.is_dir() {
        return Some(dot);
    }
    let pointer = std::fs::read_to_string(&dot).ok()?;
    let dir = pointer.trim().strip_prefix("gitdir:")?.trim();
    Some(root.join(dir))
}

/// The top of the work tree holding `start`, found as git finds it, in the
/// plain case only: an ancestor (or `start`) with a `.git` directory that
/// holds `HEAD`, or a `.git` file pointing elsewhere (a worktree, a
/// submodule). Anything unusual (inside a `.git` directory, a bare repo,
/// `core.worktree`, a symbolic-link `.git`, a file-system boundary, a
/// ceiling in the environment) is left to git: `None`. Every graft command
/// starts here, and a git process costs milliseconds.
fn discover_plainly(start: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt as _;
    if ["GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
    {
        return None;
    }
    let start = start.canonicalize().ok()?;
    let device = std::fs::metadata(&start).ok()?.dev();
    for dir in start.ancestors() {
        if dir.file_name().is_some_and(|n| n == ".git") {
            return None;
        }
        let dot = dir.join(".git");
        match std::fs::symlink_metadata(&dot) {
            Ok(m) if m.is_dir() => {
                let config = std::fs::read_to_string(dot.join("config")).unwrap_or_default();
                let plain = dot.join("HEAD").is_file() && !config.contains("worktree");
                return plain.then(|| dir.to_path_buf());
            }
            Ok(m) if m.is_file() => return git_dir(dir).map(|_| dir.to_path_buf()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            _ => return None,
        }
        let meta = std::fs::metadata(dir).ok()?;
        let bare = dir.join("HEAD").is_file() && dir.join("objects").is_dir();
        if meta.dev() != device || bare {
            return None;
        }
    }
    None
}

/// Add `/.graft/` to `.git/info/exclude` unless it is there.
fn exclude_graft_dir(git: &Git) -> Result<(), PipelineError> {
    // A `.git` directory holds it; a worktree's is in the common one.
    let dot = git.dir().join(".git");
    let exclude = if dot.is_dir() && std::env::var_os("GIT_COMMON_DIR").is_none() {
        dot.join("info").join("exclude")
    } else {
        git.git_path("info/exclude")?
    };
    let line = format!("/{GRAFT_DIR}/");
    let current = std::fs::read_to_string(&exclude).unwrap_or_default();
    if current.lines().any(|l| l.trim() == line) {
        return Ok(());
    }
    if let Some(parent) = exclude.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| PipelineError::io(format!("cannot create {}", parent.display()), e))?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&exclude)
        .map_err(|e| PipelineError::io(format!("cannot open {}", exclude.display()), e))?;
    let sep = if current.is_empty() || current.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    writeln!(f, "{sep}# Graft's ledger and staging worktree\n{line}")
        .map_err(|e| PipelineError::io(format!("cannot write {}", exclude.display()), e))
}

/// Held while an upgrade, rollback or recovery runs. An advisory `flock`:
/// the kernel drops it when the holder dies, even by SIGKILL, so a crashed
/// run never leaves the repo locked.
pub struct PipelineLock {
    _lock: Flock<File>,
    owner_file: PathBuf,
}

impl PipelineLock {
    fn acquire(graft_dir: &Path, wait: bool) -> Result<Option<PipelineLock>, PipelineError> {
        let path = graft_dir.join("pipeline.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| PipelineError::io(format!("cannot open {}", path.display()), e))?;
        let arg = if wait {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockExclusiveNonblock
        };
        match Flock::lock(file, arg) {
            Ok(lock) => {
                let owner_file = graft_dir.join("pipeline.owner");
                let _ = std::fs::write(&owner_file, format!("pid {}\n", std::process::id()));
                Ok(Some(PipelineLock {
                    _lock: lock,
                    owner_file,
                }))
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(PipelineError::io(
                format!("cannot lock {}", path.display()),
                std::io::Error::from(e),
            )),
        }
    }

    /// Note what the holder is doing, for messages to those who wait.
    pub fn describe(&self, what: &str) {
        let _ = std::fs::write(&self.owner_file, format!("pid {} {what}\n", std::process::id()));
    }

    /// What the current holder said it is doing.
    pub fn holder(graft_dir: &Path) -> Option<String> {
        std::fs::read_to_string(graft_dir.join("pipeline.owner"))
            .ok()
            .map(|s| s.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    }

    fn by_git(start: &Path) -> Option<PathBuf> {
        let out = Git::new(start).output(&["rev-parse", "--show-toplevel"]).unwrap();
        out.status.success().then(|| {
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
                .canonicalize()
                .unwrap()
        })
    }

    #[test]
    fn the_root_is_found_as_git_finds_it_or_left_to_git() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(repo.join("src/deep")).unwrap();
        git(&repo, &["init", "-q"]);
        std::fs::write(repo.join("a"), "a").unwrap();
        git(&repo, &["add", "a"]);
        git(
            &repo,
            &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a"],
        );
        git(&repo, &["worktree", "add", "-q", "--detach", "wt"]);
        std::fs::create_dir_all(repo.join("wt/sub")).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(repo.join("src"), &link).unwrap();

        // The plain cases: answered without git, with git's answer.
        for start in [
            repo.clone(),
            repo.join("src/deep"),
            repo.join("wt/sub"),
            link.clone(),
        ] {
            let quick = discover_plainly(&start);
            assert!(quick.is_some(), "{} is a plain case", start.display());
            assert_eq!(quick, by_git(&start), "{}", start.display());
            assert_eq!(find_root(&start).unwrap(), by_git(&start).unwrap());
        }
        // Inside .git, or outside any repo: git decides (and refuses).
        assert_eq!(discover_plainly(&repo.join(".git/refs")), None);
        assert!(find_root(&repo.join(".git/refs")).is_err());
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        assert_eq!(discover_plainly(&outside), by_git(&outside));
        assert!(find_root(&outside).is_err());
        // A directory named .git that is no repo is not taken for one.
        let fake = tmp.path().join("fake");
        std::fs::create_dir_all(fake.join(".git")).unwrap();
        assert_eq!(discover_plainly(&fake), None);
    }
}
