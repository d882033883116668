//! The test harness: a real git repo in a temp dir, the real `graft`
//! binary run against it, and snapshots that prove "nothing changed".

#![allow(dead_code)]

pub mod agent;
pub mod api;
pub mod llm;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub const GRAFT: &str = env!("CARGO_BIN_EXE_graft");

/// A small Python target: a module, its unittest suite, a data file that
/// git ignores, and a graft.toml with a test gate.
pub const APP_PY: &str =
    "def add(a, b):\n    return a + b\n\n\ndef greet(name):\n    return \"Hello, \" + name\n";
pub const TEST_PY: &str = "import unittest\n\nimport app\n\n\nclass AppTest(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(app.add(2, 3), 5)\n\n    def test_greet(self):\n        self.assertTrue(app.greet(\"Ada\").endswith(\"Ada\"))\n\n\nif __name__ == \"__main__\":\n    unittest.main()\n";
pub const CONFIG: &str = "[target]\nbranch = \"main\"\ndata = [\"data/state.json\"]\n\n[[gates]]\nname = \"test\"\nkind = \"test\"\ncommand = \"python3 -m unittest -q\"\ntimeout = \"2m\"\n";

pub struct Target {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Target {
    /// An empty git repo with one commit holding `files`.
    pub fn with_files(files: &[(&str, &str)]) -> Target {
        let dir = tempfile::Builder::new()
            .prefix("graft-test-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().join("repo");
        std::fs::create_dir_all(&root).unwrap();
        let t = Target { _dir: dir, root };
        t.git(&["init", "--quiet", "--initial-branch=main"]);
        for (path, text) in files {
            t.write(path, text);
        }
        t.git(&["add", "-A"]);
        t.git(&["commit", "--quiet", "-m", "initial"]);
        t
    }

    /// The standard Python target, with its data file written (untracked).
    pub fn python() -> Target {
        let t = Target::with_files(&[
            ("app.py", APP_PY),
            ("test_app.py", TEST_PY),
            ("graft.toml", CONFIG),
            (".gitignore", "__pycache__/\ndata/\n"),
        ]);
        t.write("data/state.json", "{\"visits\": 1}\n");
        t
    }

    /// The Python target with `config` as its graft.toml (committed).
    pub fn python_with_config(config: &str) -> Target {
        let t = Target::python();
        t.write("graft.toml", config);
        t.commit("config");
        t
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        self.write_bytes(rel, text.as_bytes());
    }

    pub fn write_bytes(&self, rel: &str, bytes: &[u8]) {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.head()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = git_command(&self.root).args(args).output().expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// Write `text` to a file outside the repo and return its path.
    pub fn input(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self._dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Run graft in the repo.
    pub fn graft(&self, args: &[&str]) -> Run {
        self.graft_env(args, &[])
    }

    pub fn graft_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = self.graft_command(args, env).output().expect("run graft");
        Run::from(out, args)
    }

    pub fn graft_command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(GRAFT);
        cmd.current_dir(&self.root)
            .args(args)
            .env_remove("GRAFT_TEST_KILL_AT")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `graft upgrade --patch FILE` with `patch` written to a file.
    pub fn upgrade_patch(&self, patch: &str, extra: &[&str]) -> Run {
        let p = self.input("change.diff", patch.as_bytes());
        let mut args = vec!["upgrade", "--patch", p.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.graft(&args)
    }

    pub fn upgrade_edits(&self, edits: &str, extra: &[&str]) -> Run {
        let p = self.input("edits.json", edits.as_bytes());
        let mut args = vec!["upgrade", "--edits", p.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.graft(&args)
    }

    /// Everything a change could touch, to compare before and after.
    pub fn snapshot(&self) -> Snapshot {
        let mut files = BTreeMap::new();
        walk(&self.root, &self.root, &mut files);
        Snapshot {
            files,
            refs: self.git(&["for-each-ref", "--format=%(refname) %(objectname)"]),
            head: self.head(),
            status: self.git(&["status", "--porcelain", "--untracked-files=all"]),
        }
    }

    pub fn ledger(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.root.join(".graft/ledger.db")).expect("open ledger")
    }

    /// One upgrade's row as JSON, through `graft status`-independent SQL.
    pub fn upgrade_row(&self, id: &str) -> (String, Option<String>, Option<String>) {
        self.ledger()
            .query_row(
                "SELECT state, reason, error FROM upgrades WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap_or_else(|e| panic!("upgrade {id}: {e}"))
    }

    /// An upgrade awaiting approval, written straight into the ledger (as
    /// a schedule would have left it), to approve or reject.
    pub fn insert_awaiting_approval(&self, id: &str) {
        self.ledger()
            .execute(
                "INSERT INTO upgrades (id, kind, title, request, requested_by, state, created_at, updated_at)
                 VALUES (?1, 'instruction', 'Refactor', '{}', 'schedule', 'awaiting_approval', '2026-11-21T10:30:01.000Z', '2026-11-21T10:30:01.000Z')",
                [id],
            )
            .unwrap_or_else(|e| panic!("insert upgrade {id}: {e}"));
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.ledger().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Steps of `id` that began and never ended.
    pub fn open_steps(&self, id: &str) -> Vec<String> {
        let conn = self.ledger();
        let mut stmt = conn
            .prepare("SELECT step, phase FROM steps WHERE upgrade_id = ?1 ORDER BY id")
            .unwrap();
        let rows: Vec<(String, String)> = stmt
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let mut open: Vec<String> = Vec::new();
        for (step, phase) in rows {
            if phase == "begin" {
                open.push(step);
            } else if let Some(i) = open.iter().rposition(|s| *s == step) {
                open.remove(i);
            }
        }
        open
    }

    /// The id of the newest upgrade in the ledger.
    /// After a kill at `point`: the next command recovers, upgrade `id`
    /// ended `failed`/`interrupted` with no open step, and the repo is as
    /// in `before`.
    pub fn assert_recovered_interrupted(&self, id: &str, before: &Snapshot, point: &str) {
        self.graft(&["status"]).success().stderr_has("graft: recovered");
        assert!(
            self.open_steps(id).is_empty(),
            "{point}: open steps after recovery"
        );
        let (state, reason, _) = self.upgrade_row(id);
        assert_eq!(
            (state.as_str(), reason.as_deref()),
            ("failed", Some("interrupted")),
            "{point}"
        );
        self.snapshot().assert_same(before, point);
    }

    pub fn last_upgrade(&self) -> String {
        self.ledger()
            .query_row(
                "SELECT id FROM upgrades ORDER BY created_at DESC, rowid DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .expect("an upgrade")
    }
}

pub fn git_command(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@localhost")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@localhost")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    cmd
}

/// The bytes of every file under `dir` (none there: 0), to see how much
/// something stored.
pub fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => bytes_under(&p),
            Ok(m) => m.len(),
            // Gone since it was listed (a WAL checkpointed, say).
            Err(_) => 0,
        })
        .sum()
}

fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if dir == root && (name == ".git" || name == ".graft") {
            continue;
        }
        let path = e.path();
        let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            files.insert(rel, format!("symlink -> {}", target.display()).into_bytes());
        } else if meta.is_dir() {
            if name == "__pycache__" {
                continue;
            }
            walk(root, &path, files);
        } else {
            files.insert(rel, std::fs::read(&path).unwrap());
        }
    }
}

/// The state of a target repo outside `.graft/`.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub files: BTreeMap<String, Vec<u8>>,
    pub refs: String,
    pub head: String,
    pub status: String,
}

impl Snapshot {
    /// Assert `other` equals this one, naming what differs.
    pub fn assert_same(&self, other: &Snapshot, context: &str) {
        assert_eq!(self.head, other.head, "{context}: HEAD moved");
        let refs = |s: &str| {
            s.lines()
                .filter(|l| !l.contains("refs/heads/graft/"))
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(refs(&self.refs), refs(&other.refs), "{context}: refs changed");
        assert_eq!(self.status, other.status, "{context}: git status changed");
        let keys: Vec<_> = self.files.keys().collect();
        let other_keys: Vec<_> = other.files.keys().collect();
        assert_eq!(keys, other_keys, "{context}: the set of files changed");
        for (k, v) in &self.files {
            assert!(v == &other.files[k], "{context}: {k} changed");
        }
    }
}

/// A finished graft run.
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output, args: &[&str]) -> Run {
        use std::os::unix::process::ExitStatusExt as _;
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: out.status.code(),
            signal: out.status.signal(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "graft {:?}\nexit {:?} signal {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args, self.code, self.signal, self.stdout, self.stderr
        )
    }

    pub fn code(&self, expected: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(expected),
            "unexpected exit code\n{}",
            self.describe()
        );
        self
    }

    pub fn success(&self) -> &Run {
        self.code(0)
    }

    pub fn stdout_has(&self, needle: &str) -> &Run {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }

    pub fn stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }

    /// Either stream.
    pub fn says(&self, needle: &str) -> &Run {
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "output lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.describe()))
    }

    pub fn killed(&self) -> &Run {
        assert_eq!(self.signal, Some(9), "expected SIGKILL\n{}", self.describe());
        self
    }
}

/// A file system mounted for a test (a small tmpfs, a read-only bind),
/// unmounted when dropped. Mounting needs root, as CI has.
pub struct Mount(pub PathBuf);

impl Mount {
    /// `from`'s files at `at` (which must exist), read-only.
    pub fn read_only(from: &Path, at: &Path) -> Mount {
        let mount = |args: &[&std::ffi::OsStr]| {
            let out = Command::new("mount").args(args).output().expect("run mount");
            assert!(
                out.status.success(),
                "this test mounts a read-only folder for real, which needs root: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        mount(&["--bind".as_ref(), from.as_os_str(), at.as_os_str()]);
        let m = Mount(at.to_path_buf());
        mount(&["-o".as_ref(), "remount,ro,bind".as_ref(), at.as_os_str()]);
        m
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A patch changing `greet` in APP_PY to return `new_body`.
pub fn greet_patch(new_body: &str) -> String {
    format!(
        "--- a/app.py\n+++ b/app.py\n@@ -3,4 +3,4 @@ def add(a, b):\n \n \n def greet(name):\n-    return \"Hello, \" + name\n+    {new_body}\n"
    )
}

/// A good change: still ends with the name.
pub fn good_patch() -> String {
    greet_patch("return \"Welcome, \" + name")
}

/// Breaks test_greet.
pub fn failing_patch() -> String {
    greet_patch("return \"Hello, \" + name.upper() + \"!\"")
}

/// Breaks test_add, whatever `greet` looks like.
pub fn failing_add_patch() -> String {
    "--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a + b\n+    return a - b\n"
        .to_string()
}

/// Whether any live (not zombie) process belongs to process group `pgid`.
/// (Signal 0 is no test: it succeeds on zombies, and a container's PID 1
/// may never reap them.)
pub fn group_alive(pgid: i32) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
    })
}
