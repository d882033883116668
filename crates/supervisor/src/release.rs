//! Releases: a commit's tree plus its build output, kept under
//! `.graft/releases/<tree-id>/`, startable without a rebuild.
//!
//! Keyed by git tree, not commit: a revert commit has exactly the tree of
//! the release before the reverted upgrade, so rolling back maps onto a
//! release that already exists (design invariant 3: rollback never needs a
//! rebuild).
//!
//! A release is made in a temp directory next to its final place and
//! renamed into place only when complete, so a crash or a full disk never
//! leaves half a release that looks whole. A marker file lists its
//! artifacts; a release whose artifacts vanished is rebuilt, not started.

use std::path::{Path, PathBuf};
use std::time::Duration;

use graft_config::RunConfig;
use graft_ledger::{Ledger, ReleaseRow};
use graft_pipeline::git::Git;
use graft_pipeline::process::{self, CommandSpec};
use serde::{Deserialize, Serialize};

use crate::error::SupervisorError;

const MARKER: &str = ".graft-release.json";

/// A release ready to start.
#[derive(Debug, Clone, Serialize)]
pub struct Release {
    pub tree: String,
    pub commit: String,
    pub dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Marker {
    tree: String,
    commit: String,
    artifacts: Vec<String>,
}

pub struct ReleaseStore {
    root: PathBuf,
    /// The main checkout's root, `GRAFT_REPO_ROOT` for the build command.
    repo_root: PathBuf,
    run: RunConfig,
}

impl ReleaseStore {
    pub fn new(repo_root: &Path, graft_dir: &Path, run: &RunConfig) -> ReleaseStore {
        ReleaseStore {
            root: graft_dir.join("releases"),
            repo_root: repo_root.to_path_buf(),
            run: run.clone(),
        }
    }

    /// The kept release of `commit`'s tree, if it is intact.
    pub fn get(&self, git: &Git, commit: &str) -> Result<Option<Release>, SupervisorError> {
        let tree = tree_of(git, commit)?;
        let dir = self.root.join(&tree);
        Ok(intact(&dir, &self.run).then(|| Release {
            tree,
            commit: commit.to_string(),
            dir,
        }))
    }

    /// Make the release of `commit` from `staging`, which has `commit`
    /// checked out: run `[run] build` there, export the tree, copy the
    /// artifacts. Reuses an intact release of the same tree.
    pub fn make(&self, ledger: &Ledger, staging: &Git, commit: &str) -> Result<Release, SupervisorError> {
        if let Some(r) = self.get(staging, commit)? {
            return Ok(r);
        }
        let tree = tree_of(staging, commit)?;
        if let Some(build) = &self.run.build {
            let result = process::run(
                &CommandSpec {
                    command: build,
                    cwd: staging.dir(),
                    env: vec![
                        ("GRAFT_RELEASE_COMMIT".into(), commit.into()),
                        ("GRAFT_REPO_ROOT".into(), self.repo_root.display().to_string()),
                    ],
                    timeout: self.run.build_timeout.0,
                },
                &mut |_| Ok(()),
                &mut |_| {},
                &mut || false,
            )
            .map_err(|e| SupervisorError::io(format!("cannot run the build command `{build}`"), e))?;
            if !result.success() {
                return Err(SupervisorError::Release(format!(
                    "the build command `{build}` failed for {}:\n{}",
                    short(commit),
                    result.tail
                )));
            }
        }
        std::fs::create_dir_all(&self.root)
            .map_err(|e| SupervisorError::io(format!("cannot create {}", self.root.display()), e))?;
        let suffix: u32 = rand::random();
        let tmp = self.root.join(format!(".tmp-{tree}-{suffix:08x}"));
        let result = self.fill(staging, commit, &tree, &tmp);
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let dir = self.root.join(&tree);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).map_err(|e| {
            let _ = std::fs::remove_dir_all(&tmp);
            SupervisorError::io(format!("cannot move the release into {}", dir.display()), e)
        })?;
        ledger.upsert_release(&ReleaseRow {
            tree_id: tree.clone(),
            commit_id: commit.to_string(),
            path: dir.to_string_lossy().into_owned(),
            created_at: graft_ledger::now(),
            size_bytes: dir_size(&dir),
            state: "ready".into(),
        })?;
        Ok(Release {
            tree,
            commit: commit.to_string(),
            dir,
        })
    }

    fn fill(&self, staging: &Git, commit: &str, tree: &str, tmp: &Path) -> Result<(), SupervisorError> {
        let full = |e: std::io::Error| {
            let hint = if e.raw_os_error() == Some(28) {
                "; the disk is full: free space (old releases live in .graft/releases) and retry"
            } else {
                ""
            };
            SupervisorError::Release(format!(
                "cannot write release {} in {}: {e}{hint}",
                short(commit),
                tmp.display()
            ))
        };
        std::fs::create_dir_all(tmp).map_err(full)?;
        // Export the tree through a private index: staging's own index and
        // files stay as they are.
        let index = tmp.with_extension("index");
        let prefix = format!("{}/", tmp.display());
        let exported = staging
            .run_with_index(&index, &["read-tree", commit])
            .and_then(|_| {
                staging.run_with_index(
                    &index,
                    &["checkout-index", "-a", "-f", &format!("--prefix={prefix}")],
                )
            });
        let _ = std::fs::remove_file(&index);
        exported.map_err(|e| SupervisorError::Release(format!("cannot export {}: {e}", short(commit))))?;
        let mut artifacts = Vec::new();
        for a in &self.run.artifacts {
            let from = staging.dir().join(a.as_str());
            if !from.exists() {
                return Err(SupervisorError::Release(format!(
                    "artifact `{}` does not exist after the build of {}: check `[run] build` and `artifacts`",
                    a.as_str(),
                    short(commit)
                )));
            }
            copy_tree(&from, &tmp.join(a.as_str())).map_err(full)?;
            artifacts.push(a.as_str().to_string());
        }
        let marker = Marker {
            tree: tree.to_string(),
            commit: commit.to_string(),
            artifacts,
        };
        std::fs::write(
            tmp.join(MARKER),
            serde_json::to_vec_pretty(&marker).unwrap_or_default(),
        )
        .map_err(full)?;
        Ok(())
    }

    /// Keep the newest `keep` releases and every tree in `always`.
    pub fn prune(&self, ledger: &Ledger, always: &[&str]) -> Result<Vec<String>, SupervisorError> {
        let mut removed = Vec::new();
        for (i, r) in ledger.releases()?.into_iter().enumerate() {
            if i < self.run.keep_releases || always.contains(&r.tree_id.as_str()) {
                continue;
            }
            let _ = std::fs::remove_dir_all(self.root.join(&r.tree_id));
            ledger.set_release_state(&r.tree_id, "pruned")?;
            removed.push(r.tree_id);
        }
        Ok(removed)
    }
}

/// Whether `dir` holds a complete release (its marker and every artifact).
fn intact(dir: &Path, run: &RunConfig) -> bool {
    let Ok(text) = std::fs::read(dir.join(MARKER)) else {
        return false;
    };
    let Ok(marker) = serde_json::from_slice::<Marker>(&text) else {
        return false;
    };
    let wanted: Vec<&str> = run.artifacts.iter().map(|a| a.as_str()).collect();
    wanted.iter().all(|a| marker.artifacts.iter().any(|m| m == a))
        && marker.artifacts.iter().all(|a| dir.join(a).exists())
}

pub fn tree_of(git: &Git, commit: &str) -> Result<String, SupervisorError> {
    Ok(git.run_trim(&["rev-parse", &format!("{commit}^{{tree}}")])?)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let meta = std::fs::symlink_metadata(from)?;
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
    } else {
        std::fs::copy(from, to).map(|_| ())
    }
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(10)]
}

/// How long a release may take to build, for messages.
pub fn build_timeout(run: &RunConfig) -> Duration {
    run.build_timeout.0
}
