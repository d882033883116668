//! One running process of a release: how it is started, what it is told,
//! how it talks back, and how it is stopped.
//!
//! The program is started as `sh -c 'export LISTEN_PID=$$; exec <command>'`
//! in the release directory: `exec` keeps the shell's pid, so `LISTEN_PID`
//! names the program itself, as the systemd protocol requires; setting it
//! in the child after fork any other way is not async-signal-safe. It runs
//! in its own process group, so a stop ends its helpers too.
//!
//! Each instance is spawned from, and waited on by, an OS thread of its
//! own that lives exactly as long as the child. That matters because
//! `PR_SET_PDEATHSIG` (the child gets SIGTERM if Graft dies) fires when the
//! *thread* that forked it ends: a pooled thread that exits while idle
//! would stop the program for no reason.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use command_fds::{CommandFdExt, FdMapping};
use graft_config::{HealthConfig, RunConfig};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::sync::watch;

use crate::release::Release;
use crate::sockets::{self, PassedSocket};

/// What a release process reports on `NOTIFY_SOCKET`.
pub struct NotifyState {
    pub ready: watch::Sender<bool>,
    pub last_watchdog: Mutex<Option<Instant>>,
    pub status: Mutex<String>,
    pub prepared: tokio::sync::Notify,
    /// `STOPPING=1`: it no longer accepts connections.
    pub stopping: watch::Sender<bool>,
}

/// A started release process.
pub struct Instance {
    /// The ledger's id for this process.
    pub id: i64,
    pub commit: String,
    pub tree: String,
    pub pid: i32,
    pub started: Instant,
    /// The private address its health checks go to.
    pub health_addr: SocketAddr,
    /// Authenticates its calls to the agent API.
    pub token: String,
    pub release_dir: PathBuf,
    pub log_path: PathBuf,
    pub notify: Arc<NotifyState>,
    /// When it last called `POST /agent/heartbeat`.
    pub heartbeat: Mutex<Option<Instant>>,
    /// Set once Graft asked it to stop: its exit is then not a crash.
    pub stopping: AtomicBool,
    /// Why Graft killed it when it failed a liveness check.
    pub killed_for: Mutex<Option<String>>,
    /// `None` while it runs, then how it ended.
    pub exit: watch::Receiver<Option<String>>,
    /// When it ended (as its waiting thread saw it).
    pub exited_at: Arc<Mutex<Option<Instant>>>,
    notify_path: PathBuf,
}

/// Everything needed to start one.
pub struct Spawn<'a> {
    pub id: i64,
    pub release: &'a Release,
    pub run: &'a RunConfig,
    pub health: &'a HealthConfig,
    pub sockets: &'a [PassedSocket],
    pub repo_root: &'a Path,
    pub state_dir: &'a Path,
    /// A private (0700) directory for notify sockets.
    pub run_dir: &'a Path,
    pub log_dir: &'a Path,
    pub agent_url: Option<&'a str>,
}

impl Instance {
    pub async fn spawn(s: Spawn<'_>) -> std::io::Result<Arc<Instance>> {
        let (health_fd, health_addr) = sockets::health_listener()?;
        let notify_path = s.run_dir.join(format!("notify-{}.sock", s.id));
        let _ = std::fs::remove_file(&notify_path);
        let notify_sock = tokio::net::UnixDatagram::bind(&notify_path)?;
        let (ready_tx, _) = watch::channel(false);
        let notify = Arc::new(NotifyState {
            ready: ready_tx,
            last_watchdog: Mutex::new(None),
            status: Mutex::new(String::new()),
            prepared: tokio::sync::Notify::new(),
            stopping: watch::channel(false).0,
        });
        tokio::spawn(read_notify(notify_sock, notify.clone()));

        let token = format!("{:032x}", rand::random::<u128>());
        let short = &s.release.commit[..s.release.commit.len().min(10)];
        std::fs::create_dir_all(s.log_dir)?;
        std::fs::create_dir_all(s.state_dir)?;
        let log_path = s.log_dir.join(format!("{short}-{}.log", s.id));

        let mut env: Vec<(String, String)> = s.run.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        env.push(("GRAFT_REPO_ROOT".into(), s.repo_root.display().to_string()));
        env.push(("GRAFT_STATE_DIR".into(), s.state_dir.display().to_string()));
        env.push(("GRAFT_RELEASE".into(), s.release.commit.clone()));
        env.push(("GRAFT_HEALTH_ADDR".into(), health_addr.to_string()));
        env.push(("NOTIFY_SOCKET".into(), notify_path.display().to_string()));
        if let Some(w) = &s.health.watchdog {
            env.push(("WATCHDOG_USEC".into(), w.0.as_micros().to_string()));
        }
        if let Some(url) = s.agent_url {
            env.push(("GRAFT_AGENT_URL".into(), url.to_string()));
            env.push(("GRAFT_AGENT_TOKEN".into(), token.clone()));
        }
        let mut mappings = Vec::new();
        let mut names = Vec::new();
        for (i, sock) in s.sockets.iter().enumerate() {
            mappings.push(FdMapping {
                parent_fd: sockets::dup(&sock.fd)?,
                child_fd: 3 + i as i32,
            });
            names.push(sock.name.clone());
        }
        mappings.push(FdMapping {
            parent_fd: health_fd,
            child_fd: 3 + s.sockets.len() as i32,
        });
        names.push("health".into());
        env.push(("LISTEN_FDS".into(), mappings.len().to_string()));
        env.push(("LISTEN_FDNAMES".into(), names.join(":")));

        let command = s.run.command.clone();
        let cwd = s.release.dir.clone();
        let (max_bytes, keep) = (s.run.log_max_bytes, s.run.log_keep);
        let log = log_path.clone();
        let (pid_tx, pid_rx) = std::sync::mpsc::channel::<std::io::Result<i32>>();
        let (exit_tx, exit_rx) = watch::channel(None);
        let exited_at = Arc::new(Mutex::new(None));
        let exited_at_thread = exited_at.clone();
        std::thread::Builder::new()
            .name(format!("release-{}", s.id))
            .spawn(move || {
                let mut cmd = Command::new("sh");
                cmd.arg("-c")
                    .arg(format!("export LISTEN_PID=$$; exec {command}"))
                    .current_dir(&cwd)
                    .env_remove("LISTEN_PID")
                    .env_remove("GRAFT_TEST_KILL_AT")
                    .envs(env)
                    .stdin(Stdio::null())
                    .process_group(0);
                let (reader, writer) = match std::io::pipe() {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = pid_tx.send(Err(e));
                        return;
                    }
                };
                let spawned = writer
                    .try_clone()
                    .map(|w2| {
                        cmd.stdout(w2).stderr(writer);
                    })
                    .and_then(|_| {
                        cmd.fd_mappings(mappings)
                            .map_err(|e| std::io::Error::other(e.to_string()))?;
                        // SAFETY: prctl is async-signal-safe.
                        unsafe {
                            cmd.pre_exec(|| {
                                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
                            });
                        }
                        cmd.spawn()
                    });
                let mut child = match spawned {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = pid_tx.send(Err(e));
                        return;
                    }
                };
                // Our copies of the pipe's write end and of the passed fds
                // go with the Command.
                drop(cmd);
                let pid = child.id() as i32;
                let _ = pid_tx.send(Ok(pid));
                let pump = std::thread::spawn(move || pump_log(reader, &log, max_bytes, keep));
                let status = child.wait();
                *exited_at_thread.lock().expect("lock") = Some(Instant::now());
                // Helpers it left in its group go too (and release the pipe).
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = pump.join();
                use std::os::unix::process::ExitStatusExt as _;
                let text = match status {
                    Ok(st) => match (st.code(), st.signal()) {
                        (Some(c), _) => format!("exit {c}"),
                        (_, Some(sig)) => format!("killed by signal {sig}"),
                        _ => "ended".into(),
                    },
                    Err(e) => format!("wait failed: {e}"),
                };
                exit_tx.send_replace(Some(text));
            })?;
        let pid = pid_rx
            .recv()
            .map_err(|_| std::io::Error::other("the release thread ended before starting the program"))??;
        let (commit, tree) = (s.release.commit.clone(), s.release.tree.clone());
        Ok(Arc::new(Instance {
            id: s.id,
            commit,
            tree,
            pid,
            started: Instant::now(),
            health_addr,
            token,
            release_dir: s.release.dir.clone(),
            log_path,
            notify,
            heartbeat: Mutex::new(None),
            stopping: AtomicBool::new(false),
            killed_for: Mutex::new(None),
            exit: exit_rx,
            exited_at,
            notify_path,
        }))
    }

    pub fn exited(&self) -> Option<String> {
        self.exit.borrow().clone()
    }

    /// Wait until the process has ended; returns how.
    pub async fn wait_exit(&self) -> String {
        let mut rx = self.exit.clone();
        loop {
            if let Some(e) = rx.borrow_and_update().clone() {
                return e;
            }
            if rx.changed().await.is_err() {
                return "ended".into();
            }
        }
    }

    pub fn signal(&self, sig: i32) {
        if let Ok(sig) = Signal::try_from(sig) {
            let _ = kill(Pid::from_raw(self.pid), sig);
        }
    }

    /// SIGKILL to the whole process group.
    pub fn kill_group(&self) {
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
    }

    /// The kernel's start time of the process (to recognise it later).
    pub fn start_ticks(&self) -> Option<i64> {
        start_ticks(self.pid)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.notify_path);
    }
}

/// What `/proc/<pid>/stat` says of a process.
struct Stat {
    /// The state letter is `Z` (zombie) or `X` (dead) and no other thread
    /// of it is left: it has closed its files.
    exited: bool,
    group: i32,
    /// When it started, in clock ticks (field 22), to recognise it later.
    ticks: i64,
}

fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) may hold spaces and parentheses: fields are
    // counted after its closing one.
    let mut fields = text.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?;
    let group = fields.nth(1)?.parse().ok()?;
    let ticks = fields.nth(16)?.parse().ok()?;
    Some(Stat {
        exited: (state == "Z" || state == "X") && threads_ended(pid),
        group,
        ticks,
    })
}

/// Only the thread-group leader is left. A process's files (its copies of
/// the listening sockets) close when its last thread ends, and the
/// leader can be a zombie while other threads of a killed process are
/// still ending.
fn threads_ended(pid: i32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(true, |tasks| tasks.count() <= 1)
}

/// When process `pid` started, in clock ticks.
pub fn start_ticks(pid: i32) -> Option<i64> {
    stat(pid).map(|s| s.ticks)
}

/// The process `pid` that started at `ticks` still runs: it exists and
/// has not exited.
pub fn is_running(pid: i32, ticks: i64) -> bool {
    stat(pid).is_some_and(|s| s.ticks == ticks && !s.exited)
}

/// A process of group `group` that has not exited holds one of the
/// sockets whose inodes are `inodes`: a release that still accepts on a
/// shared listening socket has a copy of it (as do its forked helpers).
pub fn group_holds_socket(group: i32, inodes: &[u64]) -> bool {
    live_members(group).any(|pid| holds_socket(pid, inodes))
}

fn holds_socket(pid: i32, inodes: &[u64]) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|e| sockets::socket_inode(&std::fs::read_link(e.ok()?.path()).ok()?))
        .any(|ino| inodes.contains(&ino))
}

/// A process of group `group` has not exited yet: a release's forked
/// helpers hold copies of its listening sockets too.
pub fn group_running(group: i32) -> bool {
    live_members(group).next().is_some()
}

/// The pids of group `group` that have not exited.
fn live_members(group: i32) -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(move |pid| stat(*pid).is_some_and(|s| s.group == group && !s.exited))
}

/// Parse `NOTIFY_SOCKET` datagrams (`KEY=value` lines).
async fn read_notify(sock: tokio::net::UnixDatagram, state: Arc<NotifyState>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok(n) = sock.recv(&mut buf).await else {
            return;
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("READY", "1")) => {
                    // Not `send`: with no receiver yet (READY=1 can come
                    // before anyone waits for it) it drops the value.
                    state.ready.send_replace(true);
                }
                Some(("WATCHDOG", "1")) => {
                    *state.last_watchdog.lock().expect("lock") = Some(Instant::now());
                }
                Some(("STOPPING", "1")) => {
                    state.stopping.send_replace(true);
                }
                Some(("PREPARED", "1")) => state.prepared.notify_waiters(),
                Some(("STATUS", s)) => *state.status.lock().expect("lock") = s.to_string(),
                _ => {}
            }
        }
    }
}

/// Copy the program's output to its log file, rotating past `max_bytes`.
fn pump_log(mut reader: std::io::PipeReader, path: &Path, max_bytes: u64, keep: usize) {
    let open = |p: &Path| std::fs::OpenOptions::new().create(true).append(true).open(p);
    let Ok(mut file) = open(path) else {
        // Nowhere to write: still drain the pipe so the program never blocks.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
        return;
    };
    let mut written = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut buf = [0u8; 8192];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            let room = max_bytes.saturating_sub(written) as usize;
            // Split at the last line end that fits, so files hold whole
            // lines and stay within the limit (a single longer line gets a
            // file of its own).
            let take = if chunk.len() <= room {
                chunk.len()
            } else {
                match chunk[..room].iter().rposition(|b| *b == b'\n') {
                    Some(i) => i + 1,
                    None if written == 0 => chunk.len(),
                    None => 0,
                }
            };
            if take > 0 && file.write_all(&chunk[..take]).is_ok() {
                written += take as u64;
            }
            chunk = &chunk[take..];
            if !chunk.is_empty() {
                rotate(path, keep);
                match open(path) {
                    Ok(f) => file = f,
                    Err(_) => break,
                }
                written = 0;
            }
        }
    }
}

/// `log` → `log.1` → `log.2` ...; the oldest beyond `keep` is dropped.
fn rotate(path: &Path, keep: usize) {
    let name = |i: usize| PathBuf::from(format!("{}.{i}", path.display()));
    if keep == 0 {
        let _ = std::fs::remove_file(path);
        return;
    }
    let _ = std::fs::remove_file(name(keep));
    for i in (1..keep).rev() {
        let _ = std::fs::rename(name(i), name(i + 1));
    }
    let _ = std::fs::rename(path, name(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("r.log");
        let (reader, mut writer) = std::io::pipe().unwrap();
        let l = log.clone();
        let t = std::thread::spawn(move || pump_log(reader, &l, 100, 2));
        for i in 0..10 {
            writer.write_all(format!("{i:0>59}\n").as_bytes()).unwrap();
        }
        drop(writer);
        t.join().unwrap();
        let sizes: Vec<u64> = [
            log.clone(),
            dir.path().join("r.log.1"),
            dir.path().join("r.log.2"),
        ]
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
        assert!(sizes.iter().all(|s| *s <= 120), "{sizes:?}");
        assert!(!dir.path().join("r.log.3").exists());
        assert!(
            std::fs::read_to_string(&log)
                .unwrap()
                .ends_with(&format!("{:0>59}\n", 9))
        );
    }

    #[test]
    fn a_process_runs_until_it_exits_even_unreaped() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        let ticks = start_ticks(pid).unwrap();
        assert!(is_running(pid, ticks));
        assert!(!is_running(pid, ticks + 1), "another process with that pid");
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        // Not reaped yet: a zombie, whose sockets are closed.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while is_running(pid, ticks) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!is_running(pid, ticks));
        child.wait().unwrap();
        assert!(!is_running(pid, ticks));
    }

    #[test]
    fn a_group_runs_while_any_of_its_processes_does() {
        use std::os::unix::process::CommandExt as _;
        // A leader that forks a child and exits at once: the child keeps
        // the group alive.
        let mut leader = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & exit 0"])
            .process_group(0)
            .spawn()
            .unwrap();
        let group = leader.id() as i32;
        leader.wait().unwrap();
        assert!(group_running(group), "the forked sleep still runs");
        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while group_running(group) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!group_running(group));
    }
}
