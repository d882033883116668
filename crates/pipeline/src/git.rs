//! Git, through the `git` command line.
//!
//! The CLI is git's reference implementation of worktrees, fast-forward
//! merges and reverts, and it is already on every machine that has a repo;
//! linking libgit2 would add a large C build for no gain.
//!
//! Every call runs with a fixed environment: `LC_ALL=C` (stable messages),
//! no terminal prompts, hooks disabled (gates are Graft's checks, and a hook
//! that blocks would hang an upgrade), no signing (it would prompt), no
//! automatic maintenance, and `GIT_DIR`/`GIT_WORK_TREE` cleared so that
//! `-C` means what it says.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::error::PipelineError;

/// A git working tree (the main checkout or the staging worktree).
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
    /// With the identity fallback: the `-c` settings that supply the
    /// identity the repo lacks, looked up by the first command that
    /// records one (most commands never do, and each git run costs
    /// milliseconds on every command that opens a workspace).
    identity: Option<OnceLock<Vec<String>>>,
}

/// The git commands that write an author or committer (and refuse to run
/// without one): the identity fallback applies to these.
const RECORD_IDENTITY: &[&str] = &[
    "am",
    "cherry-pick",
    "commit",
    "commit-tree",
    "merge",
    "notes",
    "pull",
    "rebase",
    "revert",
    "stash",
    "tag",
];

impl Git {
    pub fn new(dir: &Path) -> Git {
        Git {
            dir: dir.to_path_buf(),
            identity: None,
        }
    }

    /// Commit as the repo's configured identity, or as Graft when none is
    /// set (found out when first needed).
    pub fn with_identity_fallback(mut self) -> Git {
        self.identity = Some(OnceLock::new());
        self
    }

    /// The `-c` settings for the identity the repo lacks.
    fn identity_fallback(&self) -> Vec<String> {
        // One git run for both keys.
        let set = self
            .output(&["config", "--get-regexp", r"^user\.(name|email)$"])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let has = |key: &str| set.lines().any(|l| l.split_whitespace().next() == Some(key));
        let mut extra = Vec::new();
        if !has("user.email") {
            extra.push("user.email=graft@localhost".into());
        }
        if !has("user.name") {
            extra.push("user.name=Graft".into());
        }
        extra
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(&self.dir);
        for c in [
            "core.hooksPath=/dev/null",
            "commit.gpgSign=false",
            "tag.gpgSign=false",
            "core.quotePath=false",
            "advice.detachedHead=false",
            // Housekeeping belongs to the user's own git runs, not to an
            // upgrade's critical path (it costs tens of ms per commit).
            "maintenance.auto=false",
            "gc.auto=0",
        ] {
            cmd.arg("-c").arg(c);
        }
        if let Some(identity) = &self.identity
            && args.first().is_some_and(|a| RECORD_IDENTITY.contains(a))
        {
            for c in identity.get_or_init(|| self.identity_fallback()) {
                cmd.arg("-c").arg(c);
            }
        }
        cmd.args(args)
            .env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_EDITOR", "true")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// Run and return the raw output, success or not.
    pub fn output(&self, args: &[&str]) -> Result<Output, PipelineError> {
        self.command(args).output().map_err(|e| {
            PipelineError::Environment(format!("cannot run git: {e}; is git installed and on PATH?"))
        })
    }

    /// Run; a non-zero exit is an error carrying git's own message.
    pub fn run(&self, args: &[&str]) -> Result<String, PipelineError> {
        let out = self.output(args)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(PipelineError::Git {
                command: format!("git {}", args.join(" ")),
                dir: self.dir.clone(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// Run with `GIT_INDEX_FILE` set to `index` (to check out a tree
    /// somewhere without touching this worktree's index).
    pub fn run_with_index(&self, index: &Path, args: &[&str]) -> Result<String, PipelineError> {
        let out = self
            .command(args)
            .env("GIT_INDEX_FILE", index)
            .output()
            .map_err(|e| PipelineError::Environment(format!("cannot run git: {e}")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(PipelineError::Git {
                command: format!("git {}", args.join(" ")),
                dir: self.dir.clone(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// Run and return trimmed stdout.
    pub fn run_trim(&self, args: &[&str]) -> Result<String, PipelineError> {
        Ok(self.run(args)?.trim().to_string())
    }

    /// Whether the command succeeds (for yes/no questions to git).
    pub fn ok(&self, args: &[&str]) -> Result<bool, PipelineError> {
        Ok(self.output(args)?.status.success())
    }

    pub fn rev_parse(&self, rev: &str) -> Result<String, PipelineError> {
        self.run_trim(&["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")])
    }

    /// The commit `rev` names, or None when it names nothing.
    pub fn try_rev_parse(&self, rev: &str) -> Result<Option<String>, PipelineError> {
        let out = self.output(&["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")])?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()))
    }

    pub fn head(&self) -> Result<String, PipelineError> {
        self.rev_parse("HEAD")
    }

    /// The branch checked out here, or None when HEAD is detached.
    pub fn current_branch(&self) -> Result<Option<String>, PipelineError> {
        let out = self.output(&["symbolic-ref", "--quiet", "--short", "HEAD"])?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()))
    }

    /// Tracked files with changes (staged or not), as `git status` short lines.
    pub fn tracked_changes(&self) -> Result<Vec<String>, PipelineError> {
        let out = self.run(&["status", "--porcelain=v1", "--untracked-files=no", "-z"])?;
        Ok(out
            .split('\0')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect())
    }

    pub fn is_ancestor(&self, ancestor: &str, of: &str) -> Result<bool, PipelineError> {
        self.ok(&["merge-base", "--is-ancestor", ancestor, of])
    }

    /// The blob id of `path` at `rev`, or None when it does not exist there.
    pub fn blob_id(&self, rev: &str, path: &str) -> Result<Option<String>, PipelineError> {
        let out = self.output(&["rev-parse", "--verify", "--quiet", &format!("{rev}:{path}")])?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()))
    }

    /// The content of `path` at `rev`.
    pub fn show_file(&self, rev: &str, path: &str) -> Result<Vec<u8>, PipelineError> {
        let out = self.output(&["show", &format!("{rev}:{path}")])?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(PipelineError::Git {
                command: format!("git show {rev}:{path}"),
                dir: self.dir.clone(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// Paths that differ between two commits.
    pub fn changed_paths(&self, from: &str, to: &str) -> Result<Vec<String>, PipelineError> {
        let out = self.run(&["diff", "--name-only", "--no-renames", "-z", from, to])?;
        Ok(out
            .split('\0')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect())
    }

    pub fn ref_exists(&self, name: &str) -> Result<bool, PipelineError> {
        self.ok(&["show-ref", "--verify", "--quiet", name])
    }

    /// The path git uses for `name` inside the repository's git dir
    /// (`info/exclude`, say), absolute.
    pub fn git_path(&self, name: &str) -> Result<PathBuf, PipelineError> {
        let p = PathBuf::from(self.run_trim(&["rev-parse", "--git-path", name])?);
        Ok(if p.is_absolute() { p } else { self.dir.join(p) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_looked_up_only_when_a_command_records_one() {
        let dir = tempfile::tempdir().unwrap();
        let git = Git::new(dir.path()).with_identity_fallback();
        git.run(&["init", "-q", "-b", "main"]).unwrap();
        git.run(&["config", "user.name", "Ada Lovelace"]).unwrap();
        git.run(&["config", "user.email", "ada@example.org"]).unwrap();
        std::fs::write(dir.path().join("a.txt"), "a\n").unwrap();
        git.run(&["add", "a.txt"]).unwrap();
        git.tracked_changes().unwrap();
        assert!(git.try_rev_parse("HEAD").unwrap().is_none());
        let cell = || git.identity.as_ref().unwrap().get();
        assert_eq!(cell(), None, "nothing so far records an identity");
        git.run(&["commit", "-q", "-m", "first"]).unwrap();
        // The repo has an identity: nothing is added, and it is used.
        assert_eq!(cell(), Some(&Vec::new()));
        assert_eq!(
            git.run_trim(&["log", "-1", "--format=%an <%ae> / %cn <%ce>"])
                .unwrap(),
            "Ada Lovelace <ada@example.org> / Ada Lovelace <ada@example.org>"
        );
    }
}
