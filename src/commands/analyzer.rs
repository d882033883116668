//! The analyzer as orchestration and the control plane use it: figures of
//! the files an upgrade touches (before and after), scheduled scans, and
//! scans started over the API or MCP. Built on `graft-scan`.

use std::collections::BTreeMap;
use std::path::Path;

use graft_config::Config;
use graft_ledger::FileMetrics;
use graft_pipeline::Workspace;
use graft_scan::{ScanOptions, ScanReport};

/// `graft-scan` behind [`graft_orchestrate::Analyzer`].
pub struct ScanAnalyzer;

/// The one analyzer of this binary.
pub static ANALYZER: ScanAnalyzer = ScanAnalyzer;

fn quiet(_: graft_scan::ScanProgress) {}

/// Repos up to this many tracked files get whole-repo figures per upgrade.
const WHOLE_REPO_FILES: usize = 2000;

/// How many files git tracks at `root`: the entry count in the header of
/// its index (a worktree's `.git` file names its git dir), read without
/// starting git. `usize::MAX` when it cannot be read, so that the cheap
/// way is taken.
fn tracked_files(root: &Path) -> usize {
    let Some(git_dir) = graft_pipeline::workspace::git_dir(root) else {
        return usize::MAX;
    };
    let mut header = [0u8; 12];
    let read = std::fs::File::open(git_dir.join("index"))
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header));
    match read {
        Ok(()) if &header[..4] == b"DIRC" => {
            u32::from_be_bytes([header[8], header[9], header[10], header[11]]) as usize
        }
        _ => usize::MAX,
    }
}

/// The `[scan]` settings of the repo at `root` (the defaults without a
/// readable `graft.toml`: figures are best effort).
fn config_at(root: &Path) -> Config {
    Config::load(root).unwrap_or_default()
}

impl graft_orchestrate::Analyzer for ScanAnalyzer {
    fn metrics(&self, root: &Path, files: &[String]) -> BTreeMap<String, FileMetrics> {
        if files.is_empty() {
            return BTreeMap::new();
        }
        let config = config_at(root);
        let scan = |scope: Option<&Path>, cache: bool| {
            graft_scan::scan_with(
                root,
                &config.scan,
                &ScanOptions {
                    scope,
                    cache,
                    graft_dir: None,
                    progress: &quiet,
                },
            )
            .ok()
        };
        // Duplicates and cycles need the whole repo: scanned whole (with
        // the per-file cache in the tree's own `.graft/`, the staging
        // worktree's persisting between upgrades) up to a size where that
        // stays a small part of an upgrade. Beyond it, only the touched
        // files are scanned (without the cache, whose entries a partial
        // scan would prune), so their duplicates and cycles count among
        // themselves; the scheduled scans measure the whole.
        if tracked_files(root) <= WHOLE_REPO_FILES {
            return scan(None, true).map_or_else(BTreeMap::new, |r| figures(&r, files));
        }
        let mut out = BTreeMap::new();
        for f in files {
            if let Some(r) = scan(Some(&root.join(f)), false) {
                out.extend(figures(&r, files));
            }
        }
        out
    }

    fn scan(&self, ws: &Workspace) -> Result<Vec<graft_ledger::Suggestion>, String> {
        let report = graft_scan::scan(&ws.root, &ws.config.scan, None, &quiet).map_err(|e| e.to_string())?;
        let commit = ws.git.try_rev_parse("HEAD").ok().flatten();
        graft_scan::store(&ws.ledger, &report, commit, &ws.config.scan).map_err(|e| e.to_string())?;
        ws.ledger.suggestions(&report.id).map_err(|e| e.to_string())
    }
}

/// The figures of `files` in a scan report; a file the scan did not
/// analyse (not code, or not there) has none.
pub fn figures(report: &ScanReport, files: &[String]) -> BTreeMap<String, FileMetrics> {
    let mut out = BTreeMap::new();
    for f in &report.files {
        if !files.iter().any(|p| p == &f.path) {
            continue;
        }
        let duplicates = report
            .clones
            .iter()
            .filter(|g| g.fragments.iter().any(|fr| fr.path == f.path))
            .count();
        let cycles = report
            .cycles
            .iter()
            .filter(|c| {
                c.modules
                    .iter()
                    .any(|m| m == &f.path || f.path.starts_with(&format!("{m}/")))
            })
            .count();
        out.insert(
            f.path.clone(),
            FileMetrics {
                loc: i64::from(f.nloc),
                functions: f.functions.len() as i64,
                complexity: f.functions.iter().map(|x| i64::from(x.cyclomatic)).sum(),
                max_complexity: f
                    .functions
                    .iter()
                    .map(|x| i64::from(x.cyclomatic))
                    .max()
                    .unwrap_or(0),
                duplicates: duplicates as i64,
                cycles: cycles as i64,
            },
        );
    }
    out
}

/// Runs a scan for the daemon's API and the MCP server and stores it.
pub fn scan_hook() -> graft_api::ScanHook {
    std::sync::Arc::new(|root: &Path, scope: Option<&str>| {
        let fail = |code: &str, message: String| graft_api::ScanFailure {
            code: code.into(),
            message,
        };
        let ws = Workspace::open(root).map_err(|e| fail("unavailable", e.to_string()))?;
        let scope = scope.map(|s| root.join(s));
        let report =
            graft_scan::scan(&ws.root, &ws.config.scan, scope.as_deref(), &quiet).map_err(|e| match e {
                graft_scan::ScanError::NoSuchPath(_) => fail("not_found", e.to_string()),
                _ => fail("bad_scope", e.to_string()),
            })?;
        let commit = ws.git.try_rev_parse("HEAD").ok().flatten();
        graft_scan::store(&ws.ledger, &report, commit, &ws.config.scan)
            .map_err(|e| fail("ledger", e.to_string()))?;
        Ok(report.id)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn tracked_files_reads_the_index_of_a_repo_and_of_a_worktree() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str], cwd: &std::path::Path| {
            let ok = std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .current_dir(cwd)
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        git(&["init", "-q"], &repo);
        for i in 0..3 {
            std::fs::write(repo.join(format!("f{i}.txt")), "x").unwrap();
        }
        git(&["add", "-A"], &repo);
        git(&["commit", "-qm", "three"], &repo);
        assert_eq!(super::tracked_files(&repo), 3);
        let wt = dir.path().join("wt");
        git(&["worktree", "add", "-q", wt.to_str().unwrap()], &repo);
        assert_eq!(super::tracked_files(&wt), 3);
        assert_eq!(super::tracked_files(dir.path()), usize::MAX, "not a repo");
    }
}
