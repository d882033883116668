//! Running a gate's command: in its own process group, with a timeout, its
//! output streamed line by line and only a bounded tail kept.
//!
//! Why a process group: a gate is usually a tree (`sh` → `cargo` → `rustc`,
//! or a test runner's workers). Killing only the direct child leaves the
//! grandchildren running, still holding the output pipe open, so the reader
//! never sees end-of-file. We kill the whole group on timeout or cancel,
//! and again after a normal exit to sweep up stragglers.
//!
//! Why `PR_SET_PDEATHSIG`: if Graft itself is killed (SIGKILL included),
//! the kernel kills the gate's shell with it; crash recovery then kills the
//! rest of the group by the id recorded in the journal.

use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// What to run.
pub struct CommandSpec<'a> {
    /// A shell command line, run with `sh -c`.
    pub command: &'a str,
    pub cwd: &'a Path,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
}

/// How a command ended.
#[derive(Debug, Clone)]
pub struct CommandResult {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub cancelled: bool,
    pub duration: Duration,
    /// The last lines of combined stdout and stderr (bounded).
    pub tail: String,
}

impl CommandResult {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && !self.cancelled
    }
}

/// Most output kept per command, and longest line kept.
const TAIL_LINES: usize = 200;
const TAIL_BYTES: usize = 16 * 1024;
const MAX_LINE: usize = 4 * 1024;
/// How long a timed-out or cancelled group gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// Run `spec`. `on_start` gets the process group id as soon as it exists
/// (to journal it, so that recovery can kill the group if Graft dies); if
/// it fails, the group is killed at once and `run` fails with its message:
/// a command whose group nobody could find again must not run. `on_line`
/// sees each output line; `cancelled` is polled.
pub fn run(
    spec: &CommandSpec<'_>,
    on_start: &mut dyn FnMut(i32) -> Result<(), String>,
    on_line: &mut dyn FnMut(&str),
    cancelled: &mut dyn FnMut() -> bool,
) -> std::io::Result<CommandResult> {
    let (reader, writer) = std::io::pipe()?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(spec.command)
        .current_dir(spec.cwd)
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child
    // between fork and exec.
    unsafe {
        cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from));
    }
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    // The write ends now live only in the child: drop ours so EOF can come.
    drop(cmd);
    let pgid = child.id() as i32;
    if let Err(e) = on_start(pgid) {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        let _ = child.wait();
        return Err(std::io::Error::other(e));
    }

    let (tx, rx) = mpsc::channel::<String>();
    let reader_thread = std::thread::spawn(move || read_lines(reader, tx));

    let mut tail = Tail::default();
    let mut timed_out = false;
    let mut was_cancelled = false;
    let mut kill_sent_at: Option<Instant> = None;
    let mut reader_done = false;
    let status = loop {
        if reader_done {
            std::thread::sleep(Duration::from_millis(20));
        } else {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    on_line(&line);
                    tail.push(line);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => reader_done = true,
            }
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if kill_sent_at.is_none() {
            if start.elapsed() >= spec.timeout {
                timed_out = true;
            } else if cancelled() {
                was_cancelled = true;
            }
            if timed_out || was_cancelled {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
                kill_sent_at = Some(Instant::now());
            }
        } else if kill_sent_at.is_some_and(|t| t.elapsed() >= KILL_GRACE) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    };
    // Sweep up anything the command left behind in its group.
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    let drain_until = Instant::now() + Duration::from_secs(2);
    while let Ok(line) = rx.recv_timeout(drain_until.saturating_duration_since(Instant::now())) {
        on_line(&line);
        tail.push(line);
    }
    drop(rx);
    let _ = reader_thread.join();

    use std::os::unix::process::ExitStatusExt as _;
    Ok(CommandResult {
        exit_code: status.code(),
        signal: status.signal(),
        timed_out,
        cancelled: was_cancelled,
        duration: start.elapsed(),
        tail: tail.into_string(),
    })
}

/// Split the pipe into lines, lossy UTF-8, each at most MAX_LINE bytes.
fn read_lines(mut reader: std::io::PipeReader, tx: mpsc::Sender<String>) {
    let mut buf = [0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    let send = |line: &mut Vec<u8>| {
        let text = String::from_utf8_lossy(line)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        line.clear();
        tx.send(text).is_ok()
    };
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if line.len() < MAX_LINE {
                line.push(b);
            }
            if b == b'\n' && !send(&mut line) {
                return;
            }
        }
    }
    if !line.is_empty() {
        send(&mut line);
    }
}

/// The last lines of output, bounded by count and bytes.
#[derive(Default)]
struct Tail {
    lines: std::collections::VecDeque<String>,
    bytes: usize,
    dropped: usize,
}

impl Tail {
    fn push(&mut self, line: String) {
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.lines.len() > TAIL_LINES || (self.bytes > TAIL_BYTES && self.lines.len() > 1) {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= old.len() + 1;
                self.dropped += 1;
            }
        }
    }

    fn into_string(self) -> String {
        let mut s = String::new();
        if self.dropped > 0 {
            s.push_str(&format!("[… {} earlier lines not kept]\n", self.dropped));
        }
        for l in self.lines {
            s.push_str(&l);
            s.push('\n');
        }
        s
    }
}

/// Kill a process group left behind by a crashed run (crash recovery).
pub fn kill_group(pgid: i32) {
    if pgid > 1 {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_simple(command: &str, timeout: Duration) -> (CommandResult, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let mut lines = Vec::new();
        let r = run(
            &CommandSpec {
                command,
                cwd: dir.path(),
                env: vec![("GREETING".into(), "hi".into())],
                timeout,
            },
            &mut |_| Ok(()),
            &mut |l| lines.push(l.to_string()),
            &mut || false,
        )
        .unwrap();
        (r, lines)
    }

    #[test]
    fn captures_both_streams_and_exit_code() {
        let (r, lines) = run_simple(
            "echo out; echo err >&2; echo $GREETING; exit 3",
            Duration::from_secs(10),
        );
        assert_eq!(r.exit_code, Some(3));
        assert!(!r.success());
        assert_eq!(lines, ["out", "err", "hi"]);
        assert_eq!(r.tail, "out\nerr\nhi\n");
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild-alive");
        // A grandchild that would outlive a kill of only the shell.
        let cmd = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let (r, _) = run_simple(&cmd, Duration::from_millis(300));
        assert!(r.timed_out);
        assert!(!r.success());
        assert!(r.duration < Duration::from_secs(10), "{:?}", r.duration);
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the grandchild survived the timeout");
    }

    #[test]
    fn background_grandchild_does_not_hang_the_reader() {
        // Exits at once but leaves a child holding stdout open.
        let (r, lines) = run_simple("sleep 30 & echo done", Duration::from_secs(20));
        assert_eq!(r.exit_code, Some(0));
        assert!(r.duration < Duration::from_secs(10), "{:?}", r.duration);
        assert_eq!(lines, ["done"]);
    }

    #[test]
    fn tail_is_bounded() {
        let (r, lines) = run_simple(
            "i=0; while [ $i -lt 500 ]; do echo line$i; i=$((i+1)); done",
            Duration::from_secs(20),
        );
        assert_eq!(lines.len(), 500);
        assert!(
            r.tail.starts_with("[… 300 earlier lines not kept]\n"),
            "{}",
            &r.tail[..60]
        );
        assert!(r.tail.ends_with("line499\n"));
    }

    #[test]
    fn cancel_stops_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let mut polls = 0;
        let r = run(
            &CommandSpec {
                command: "sleep 30",
                cwd: dir.path(),
                env: vec![],
                timeout: Duration::from_secs(60),
            },
            &mut |_| Ok(()),
            &mut |_| {},
            &mut || {
                polls += 1;
                polls > 3
            },
        )
        .unwrap();
        assert!(r.cancelled);
        assert!(r.duration < Duration::from_secs(10));
    }

    #[test]
    fn a_group_that_cannot_be_recorded_is_killed_before_it_runs_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut group = 0;
        let err = run(
            &CommandSpec {
                command: "sleep 30 & sleep 30",
                cwd: dir.path(),
                env: vec![],
                timeout: Duration::from_secs(60),
            },
            &mut |pgid| {
                group = pgid;
                Err("the ledger is full".into())
            },
            &mut |_| {},
            &mut || false,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "the ledger is full");
        let deadline = Instant::now() + Duration::from_secs(5);
        while killpg(Pid::from_raw(group), None).is_ok() {
            assert!(Instant::now() < deadline, "the group outlived the failed record");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
