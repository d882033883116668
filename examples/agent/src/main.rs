//! An example agent for Graft: a small HTTP service that shows what a
//! program needs to do to be upgraded without dropping a request.
//!
//! - **Sockets** come from its supervisor the systemd way (`LISTEN_FDS`,
//!   `LISTEN_PID`, `LISTEN_FDNAMES`, fds from 3), so the listening socket
//!   outlives every release; `--listen ADDR` binds one itself instead (a
//!   plain restart, for comparison).
//! - **Readiness and liveness** go over its own channel: `READY=1` and
//!   `WATCHDOG=1` on `NOTIFY_SOCKET`, `GET /health` on the socket named
//!   `health`, and heartbeats to `GRAFT_AGENT_URL` when set. A check on the
//!   shared port could not tell this release from the one it replaces.
//! - **State** lives in `GRAFT_STATE_DIR`, which survives every restart,
//!   upgrade and rollback; it is saved every second, on `SIGUSR1` (Graft's
//!   prepare signal, sent just before the next release starts, so that it
//!   reads a fresh checkpoint), and on exit. For a moment both releases
//!   serve; state both write must be merged, or kept in the daemon's task
//!   and history store.
//! - **The drain** on `SIGTERM`, in this order: stop accepting (connections
//!   still queued on the shared socket go to the next release), finish the
//!   requests in flight, answer each kept-alive connection's next request
//!   with `Connection: close`, close connections that stay idle, then exit.
//!   Closing an idle keep-alive connection at once would reset a client
//!   whose request is already on the wire.
//!
//! It uses only the standard library (and four libc calls declared below),
//! so it builds offline in about a second.
//!
//! Files read from the working directory at start, so that an upgrade can
//! change behaviour without a rebuild: `VERSION` (the version it reports)
//! and `behavior` (`key=value` lines): `start_delay_ms`, `ready=never`,
//! `exit_at_start=CODE`, `crash_after_ms`, `unhealthy_after_ms`,
//! `ignore_sigterm=1`, `accept_after_term_ms` (go on accepting that
//! long after `SIGTERM`, as a slow server would), `fork_grandchild=1`,
//! `no_heartbeat=1`, `no_watchdog=1`, `heartbeat_stops_after_ms`,
//! `watchdog_stops_after_ms`, `health_when_ready=1` (accept on
//! the health socket only once ready, as a program checked with
//! `ready = "tcp"` does), `save_state=prepare` (save the state only when
//! Graft POSTs `/prepare` on the health socket), `prepare_status=500`
//! (answer that POST with 500 or 503, saving nothing).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static TERM: AtomicBool = AtomicBool::new(false);
static PREPARE: AtomicBool = AtomicBool::new(false);

const SIGUSR1: i32 = 10;
const SIGTERM: i32 = 15;
const POLLIN: i16 = 1;

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

unsafe extern "C" {
    fn signal(sig: i32, handler: extern "C" fn(i32)) -> usize;
    fn poll(fds: *mut PollFd, nfds: u64, timeout: i32) -> i32;
}

extern "C" fn on_signal(sig: i32) {
    // Only async-signal-safe work here: set a flag.
    match sig {
        SIGTERM => TERM.store(true, Ordering::SeqCst),
        SIGUSR1 => PREPARE.store(true, Ordering::SeqCst),
        _ => {}
    }
}

/// Wait until `fd` is readable or `timeout_ms` passes.
fn readable(fd: RawFd, timeout_ms: i32) -> bool {
    let mut p = PollFd {
        fd,
        events: POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, nfds = 1.
    unsafe { poll(&mut p, 1, timeout_ms) > 0 }
}

/// Write a line to stderr, ignoring failure: if the supervisor died, the
/// pipe is gone, and a program must not die of its own logging
/// (`eprintln!` panics on a failed write).
fn log(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Knobs read from the `behavior` file.
#[derive(Default)]
struct Behavior {
    start_delay: Duration,
    never_ready: bool,
    exit_at_start: Option<i32>,
    crash_after: Option<Duration>,
    unhealthy_after: Option<Duration>,
    ignore_sigterm: bool,
    accept_after_term: Option<Duration>,
    fork_grandchild: bool,
    no_heartbeat: bool,
    no_watchdog: bool,
    /// Stop sending heartbeats / `WATCHDOG=1` this long after start (a
    /// release that hangs later, past its watch window).
    heartbeat_stops_after: Option<Duration>,
    watchdog_stops_after: Option<Duration>,
    health_when_ready: bool,
    save_only_on_prepare: bool,
    prepare_status: Option<u16>,
}

impl Behavior {
    fn load() -> Behavior {
        let text = std::fs::read_to_string("behavior").unwrap_or_default();
        let kv: HashMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let ms = |k: &str| kv.get(k).and_then(|v| v.parse().ok()).map(Duration::from_millis);
        Behavior {
            start_delay: ms("start_delay_ms").unwrap_or_default(),
            never_ready: kv.get("ready") == Some(&"never"),
            exit_at_start: kv.get("exit_at_start").and_then(|v| v.parse().ok()),
            crash_after: ms("crash_after_ms"),
            unhealthy_after: ms("unhealthy_after_ms"),
            ignore_sigterm: kv.get("ignore_sigterm") == Some(&"1"),
            accept_after_term: ms("accept_after_term_ms"),
            fork_grandchild: kv.get("fork_grandchild") == Some(&"1"),
            no_heartbeat: kv.get("no_heartbeat") == Some(&"1"),
            no_watchdog: kv.get("no_watchdog") == Some(&"1"),
            heartbeat_stops_after: ms("heartbeat_stops_after_ms"),
            watchdog_stops_after: ms("watchdog_stops_after_ms"),
            health_when_ready: kv.get("health_when_ready") == Some(&"1"),
            save_only_on_prepare: kv.get("save_state") == Some(&"prepare"),
            prepare_status: kv.get("prepare_status").and_then(|v| v.parse().ok()),
        }
    }
}

/// The sockets passed by the supervisor, by name (`sd_listen_fds`).
fn listen_fds() -> Vec<(String, RawFd)> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let n: usize = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    // Not for our children: they are not who the sockets were meant for.
    for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY: still single-threaded at this point.
        unsafe { std::env::remove_var(k) };
    }
    if !pid_ok {
        return Vec::new();
    }
    let mut names = names.split(':');
    (0..n)
        .map(|i| (names.next().unwrap_or("").to_string(), 3 + i as RawFd))
        .collect()
}

/// `NOTIFY_SOCKET` messages (systemd's sd_notify).
struct Notify(
    Option<std::os::unix::net::UnixDatagram>,
    Option<std::os::unix::net::SocketAddr>,
);

impl Notify {
    fn from_env() -> Notify {
        let Ok(path) = std::env::var("NOTIFY_SOCKET") else {
            return Notify(None, None);
        };
        let addr = if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()
        } else {
            std::os::unix::net::SocketAddr::from_pathname(&path).ok()
        };
        Notify(std::os::unix::net::UnixDatagram::unbound().ok(), addr)
    }

    fn send(&self, msg: &str) {
        if let (Some(sock), Some(addr)) = (&self.0, &self.1) {
            let _ = sock.send_to_addr(msg.as_bytes(), addr);
        }
    }
}

struct State {
    dir: Option<std::path::PathBuf>,
    served: AtomicU64,
    boots: u64,
}

impl State {
    fn load() -> State {
        let dir = std::env::var_os("GRAFT_STATE_DIR").map(std::path::PathBuf::from);
        let text = dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join("agent-state")).ok())
            .unwrap_or_default();
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('=')?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        State {
            dir,
            served: AtomicU64::new(get("served")),
            boots: get("boots") + 1,
        }
    }

    /// Write to a temp file and rename: a crash never leaves half a file.
    fn save(&self) {
        let Some(dir) = &self.dir else { return };
        let _ = std::fs::create_dir_all(dir);
        let tmp = dir.join("agent-state.tmp");
        let text = format!(
            "served={}\nboots={}\n",
            self.served.load(Ordering::SeqCst),
            self.boots
        );
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(tmp, dir.join("agent-state"));
        }
    }
}

/// A passed listening socket: TCP or Unix.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Take fd as whichever kind of socket it is.
    ///
    /// SAFETY: `fd` is an open listening socket passed to us, used once.
    unsafe fn from_fd(fd: RawFd) -> Listener {
        // SAFETY: as above; a Unix socket has no inet address.
        let tcp = unsafe { TcpListener::from_raw_fd(fd) };
        if tcp.local_addr().is_ok() {
            return Listener::Tcp(tcp);
        }
        let fd = std::os::fd::IntoRawFd::into_raw_fd(tcp);
        // SAFETY: the same fd, handed over.
        Listener::Unix(unsafe { UnixListener::from_raw_fd(fd) })
    }

    fn set_nonblocking(&self) -> std::io::Result<()> {
        match self {
            Listener::Tcp(l) => l.set_nonblocking(true),
            Listener::Unix(l) => l.set_nonblocking(true),
        }
    }

    fn raw_fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l) => l.as_raw_fd(),
        }
    }

    fn accept(&self) -> Option<Stream> {
        match self {
            Listener::Tcp(l) => l.accept().ok().map(|(s, _)| Stream::Tcp(s)),
            Listener::Unix(l) => l.accept().ok().map(|(s, _)| Stream::Unix(s)),
        }
    }
}

/// An accepted connection.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn try_clone(&self) -> std::io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }

    fn prepare(&self) {
        match self {
            Stream::Tcp(s) => {
                let _ = s.set_nonblocking(false);
                let _ = s.set_nodelay(true);
            }
            Stream::Unix(s) => {
                let _ = s.set_nonblocking(false);
            }
        }
    }

    fn raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

impl Shared {
    /// The agent's own checkpoints (at start, every second, on the
    /// prepare signal, on exit), unless it saves only when asked over
    /// `POST /prepare`.
    fn checkpoint(&self) {
        if !self.behavior.save_only_on_prepare {
            self.state.save();
        }
    }
}

struct Shared {
    /// The names of the sockets we were given, for `/info`.
    fd_names: String,
    version: String,
    state: State,
    started: Instant,
    ready: AtomicBool,
    behavior: Behavior,
    open_connections: AtomicUsize,
}

fn main() {
    let behavior = Behavior::load();
    if let Some(code) = behavior.exit_at_start {
        log(format_args!(
            "agent: exiting at start with {code} (behavior file)"
        ));
        std::process::exit(code);
    }
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        signal(SIGTERM, on_signal);
        signal(SIGUSR1, on_signal);
    }
    let fds = listen_fds();
    let notify = Notify::from_env();
    let version = std::fs::read_to_string("VERSION")
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|_| "v0".into());

    let fd_names = fds.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(",");
    let http = match fds.iter().find(|(n, _)| n != "health") {
        // SAFETY: the supervisor passed us this fd for exactly this use.
        Some((_, fd)) => unsafe { Listener::from_fd(*fd) },
        None => {
            let addr = std::env::args()
                .skip_while(|a| a != "--listen")
                .nth(1)
                .unwrap_or_else(|| "127.0.0.1:8080".into());
            Listener::Tcp(TcpListener::bind(&addr).unwrap_or_else(|e| {
                log(format_args!("agent: cannot bind {addr}: {e}"));
                std::process::exit(1)
            }))
        }
    };
    // SAFETY: as above.
    let health = fds
        .iter()
        .find(|(n, _)| n == "health")
        .map(|(_, fd)| unsafe { TcpListener::from_raw_fd(*fd) });

    if behavior.fork_grandchild {
        // A helper process in our group, as many programs have; it must go
        // when we are stopped.
        let _ = std::process::Command::new("sleep").arg("3600").spawn();
    }
    let shared = Arc::new(Shared {
        fd_names,
        version,
        state: State::load(),
        started: Instant::now(),
        ready: AtomicBool::new(false),
        behavior,
        open_connections: AtomicUsize::new(0),
    });
    shared.checkpoint();
    log(format_args!(
        "agent {} starting (boot {}, {} requests served so far)",
        shared.version,
        shared.state.boots,
        shared.state.served.load(Ordering::SeqCst)
    ));

    // Serving health checks at once lets an `http` check see 503 while
    // starting; a program checked with `tcp` accepts on its health socket
    // only once it can serve.
    let mut health = health;
    if !shared.behavior.health_when_ready {
        start_health(health.take(), &shared);
    }
    // The simulated start: loading a model, warming a cache.
    std::thread::sleep(shared.behavior.start_delay);
    if shared.behavior.never_ready {
        // Stuck starting up: it never serves, and leaves when told to.
        while !TERM.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        log(format_args!(
            "agent {} stopped before it was ready",
            shared.version
        ));
        return;
    }
    shared.ready.store(true, Ordering::SeqCst);
    start_health(health.take(), &shared);
    notify.send(&format!("READY=1\nSTATUS=serving {}", shared.version));
    start_heartbeats(shared.clone());

    let watchdog = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        // A quarter of the limit (systemd asks for at most half): a loaded
        // machine that stalls this loop for a moment does not miss one.
        .map(|us| Duration::from_micros(us / 4));
    let mut last_watchdog = Instant::now();
    let mut last_save = Instant::now();
    http.set_nonblocking().expect("nonblocking listener");
    let fd = http.raw_fd();
    let mut term_at: Option<Instant> = None;
    loop {
        if TERM.load(Ordering::SeqCst) {
            if shared.behavior.ignore_sigterm {
                TERM.store(false, Ordering::SeqCst);
                log(format_args!("agent: ignoring SIGTERM (behavior file)"));
            } else {
                let linger = shared.behavior.accept_after_term.unwrap_or_default();
                if term_at.get_or_insert_with(Instant::now).elapsed() >= linger {
                    break;
                }
            }
        }
        // A checkpoint every second bounds what a crash can lose.
        if last_save.elapsed() >= Duration::from_secs(1) {
            shared.checkpoint();
            last_save = Instant::now();
        }
        if PREPARE.swap(false, Ordering::SeqCst) {
            shared.checkpoint();
            notify.send("PREPARED=1\nSTATUS=state saved");
        }
        if let Some(after) = shared.behavior.crash_after
            && shared.started.elapsed() >= after
        {
            log(format_args!("agent: crashing (behavior file)"));
            std::process::exit(101);
        }
        if let Some(every) = watchdog
            && !shared.behavior.no_watchdog
            && !stopped_after(&shared, shared.behavior.watchdog_stops_after)
            && last_watchdog.elapsed() >= every
        {
            notify.send("WATCHDOG=1");
            last_watchdog = Instant::now();
        }
        if !readable(fd, 50) {
            continue;
        }
        // Accept everything that is queued, then poll again.
        while let Some(stream) = http.accept() {
            let s = shared.clone();
            s.open_connections.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                serve_connection(stream, &s);
                s.open_connections.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }

    // The drain. We no longer accept: our copy of the listening socket is
    // closed, and what is queued on it is for the next release.
    drop(http);
    notify.send("STOPPING=1\nSTATUS=draining");
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared.open_connections.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    shared.checkpoint();
    log(format_args!("agent {} stopped", shared.version));
}

/// How long a kept-alive connection may stay idle once we are stopping:
/// long enough for a client's request already in flight to arrive.
const IDLE_AFTER_TERM: Duration = Duration::from_millis(500);
const IDLE: Duration = Duration::from_secs(30);

fn serve_connection(stream: Stream, s: &Shared) {
    stream.prepare();
    let fd = stream.raw_fd();
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(r) => r,
        Err(_) => return,
    });
    let mut writer = stream;
    let mut idle_since = Instant::now();
    loop {
        // Wait for the next request, in slices, so we notice SIGTERM.
        if reader.buffer().is_empty() && !readable(fd, 50) {
            let limit = if TERM.load(Ordering::SeqCst) {
                IDLE_AFTER_TERM
            } else {
                IDLE
            };
            if idle_since.elapsed() >= limit {
                return;
            }
            continue;
        }
        let Some(request) = read_request(&mut reader) else {
            return;
        };
        // Once stopping, answer and ask the client to reconnect: its next
        // connection lands on the new release.
        let closing = TERM.load(Ordering::SeqCst) || !request.keep_alive;
        let (status, body) = route(&request.path, s);
        s.state.served.fetch_add(1, Ordering::SeqCst);
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Agent-Version: {}\r\nConnection: {}\r\n\r\n{body}",
            body.len(),
            s.version,
            if closing { "close" } else { "keep-alive" }
        );
        if writer.write_all(response.as_bytes()).is_err() || closing {
            return;
        }
        idle_since = Instant::now();
    }
}

struct Request {
    method: String,
    path: String,
    keep_alive: bool,
}

fn read_request<R: Read>(reader: &mut BufReader<R>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path, version) = (
        parts.next()?.to_string(),
        parts.next()?.to_string(),
        parts.next().unwrap_or("HTTP/1.1"),
    );
    let mut keep_alive = version != "HTTP/1.0";
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
            if k == "connection" {
                keep_alive = v != "close";
            } else if k == "content-length" {
                length = v.parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        keep_alive,
    })
}

fn route(path: &str, s: &Shared) -> (&'static str, String) {
    match path {
        "/" => ("200 OK", format!("hello from {}\n", s.version)),
        "/version" => ("200 OK", format!("{}\n", s.version)),
        "/info" => (
            "200 OK",
            format!(
                "version={} pid={} fds={}\n",
                s.version,
                std::process::id(),
                s.fd_names
            ),
        ),
        "/state" => (
            "200 OK",
            format!(
                "served={} boots={}\n",
                s.state.served.load(Ordering::SeqCst),
                s.state.boots
            ),
        ),
        _ => ("404 Not Found", "not found\n".into()),
    }
}

/// A behaviour set to stop `after` start has stopped.
fn stopped_after(s: &Shared, after: Option<Duration>) -> bool {
    after.is_some_and(|after| s.started.elapsed() >= after)
}

fn healthy(s: &Shared) -> bool {
    s.ready.load(Ordering::SeqCst)
        && !TERM.load(Ordering::SeqCst)
        && !stopped_after(s, s.behavior.unhealthy_after)
}

fn start_health(listener: Option<TcpListener>, s: &Arc<Shared>) {
    if let Some(h) = listener {
        let s = s.clone();
        std::thread::spawn(move || serve_health(h, s));
    }
}

/// `GET /health` on the private health socket.
fn serve_health(listener: TcpListener, s: Arc<Shared>) {
    for stream in listener.incoming().flatten() {
        let mut reader = match stream.try_clone() {
            Ok(r) => BufReader::new(r),
            Err(_) => continue,
        };
        let mut writer = stream;
        let Some(request) = read_request(&mut reader) else {
            continue;
        };
        let (status, body) = if request.method == "POST" && request.path == "/prepare" {
            // Graft's `prepare_path`: save the state now, and say so.
            match s.behavior.prepare_status {
                Some(code) => (
                    if code == 500 {
                        "500 Internal Server Error"
                    } else {
                        "503 Service Unavailable"
                    },
                    "not saved\n",
                ),
                None => {
                    s.state.save();
                    ("200 OK", "saved\n")
                }
            }
        } else if healthy(&s) {
            ("200 OK", "ok\n")
        } else {
            ("503 Service Unavailable", "not ready\n")
        };
        let _ = write!(
            writer,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

/// POST `GRAFT_AGENT_URL/agent/heartbeat` every second while healthy.
fn start_heartbeats(s: Arc<Shared>) {
    let (Ok(url), Ok(token)) = (
        std::env::var("GRAFT_AGENT_URL"),
        std::env::var("GRAFT_AGENT_TOKEN"),
    ) else {
        return;
    };
    if s.behavior.no_heartbeat {
        return;
    }
    let Some(addr) = url
        .strip_prefix("http://")
        .map(|a| a.trim_end_matches('/').to_string())
    else {
        return;
    };
    std::thread::spawn(move || {
        while !TERM.load(Ordering::SeqCst) {
            if healthy(&s)
                && !stopped_after(&s, s.behavior.heartbeat_stops_after)
                && let Ok(mut c) = TcpStream::connect(&addr)
            {
                let _ = write!(
                    c,
                    "POST /agent/heartbeat HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let mut sink = Vec::new();
                let _ = c.read_to_end(&mut sink);
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
}
