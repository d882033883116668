//! Health checks of one release, on its own channel.
//!
//! A check sent to the shared port would be answered by whichever release
//! accepts it, old or new, so it proves nothing about the new one. Each
//! release therefore has a private `health` socket (its address is in
//! `GRAFT_HEALTH_ADDR`), and the notify socket; the checks here use those.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use graft_config::{HealthConfig, ReadyCheck};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use tokio::net::TcpStream;

use crate::instance::Instance;

/// One check, as configured; `Err` says why it failed.
pub async fn check(cfg: &HealthConfig, inst: &Instance) -> Result<(), String> {
    // In plain mode the program may be checked where it listens itself.
    let addr = cfg.address.map_or(inst.health_addr, |a| a.0);
    match cfg.ready {
        ReadyCheck::Http => http(addr, &cfg.http_path, cfg.timeout.0).await,
        // A socket the program bound itself accepts only once it serves;
        // on the private health socket, which Graft bound, see `tcp`.
        ReadyCheck::Tcp if cfg.address.is_some() => connect(addr, cfg.timeout.0).await,
        ReadyCheck::Tcp => tcp(addr, cfg.timeout.0).await,
        ReadyCheck::Command => command(cfg, inst).await,
        // Notify readiness is a state, not a probe; liveness for it comes
        // from the watchdog and heartbeat.
        ReadyCheck::Notify | ReadyCheck::None => Ok(()),
    }
}

pub async fn http(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), String> {
    request(addr, hyper::Method::GET, path, timeout).await
}

/// `method path` on `addr` with an empty body: `Ok` on a 2xx answer
/// within `timeout`, else what went wrong.
pub async fn request(
    addr: SocketAddr,
    method: hyper::Method,
    path: &str,
    timeout: Duration,
) -> Result<(), String> {
    let attempt = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method.clone())
            .uri(path)
            .header("host", addr.to_string())
            .header("user-agent", "graft-health")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status();
        let _ = resp.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{method} {path} answered {status}"))
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("{method} {path} got no answer within {timeout:?}")))
}

/// A connection to `addr` is accepted by the kernel within `timeout`.
async fn connect(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("connect to {addr}: {e}")),
        Err(_) => Err(format!("connect to {addr} took longer than {timeout:?}")),
    }
}

/// The release accepted a connection on its health socket within
/// `timeout`. Connecting alone proves nothing: the kernel completes the
/// handshake on any listening socket, accepted or not, so a release that
/// never calls `accept()` would pass. The kernel's table of TCP sockets
/// says whether the release took ours: the server side of a connection
/// still waiting in the accept queue belongs to no file (inode 0); once
/// accepted it has one, and once the release closed it, it leaves the
/// established state.
pub async fn tcp(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let attempt = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to the health socket: {e}"))?;
        let client = stream.local_addr().map_err(|e| e.to_string())?;
        loop {
            let seen = tokio::task::spawn_blocking(move || accepted(addr, client))
                .await
                .unwrap_or(Accepted::Unknown);
            if seen == Accepted::Yes || closed_by_server(&stream) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(timeout, attempt).await.unwrap_or_else(|_| {
        Err(format!(
            "it did not accept a connection on its health socket within {timeout:?}"
        ))
    })
}

/// The release accepted our connection and wrote to it or closed it (an
/// orderly end of stream: a connection still queued is never closed that
/// way, only reset).
fn closed_by_server(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    stream.try_read(&mut byte).is_ok()
}

#[derive(Debug, PartialEq, Eq)]
enum Accepted {
    Yes,
    /// Still in the accept queue.
    Waiting,
    /// Not in the table (yet): the handshake may still be on its way.
    Unknown,
}

/// Whether the server side of the connection from `client` to `server`
/// was accepted, read from `/proc/net/tcp` (the health socket is always
/// IPv4 loopback).
fn accepted(server: SocketAddr, client: SocketAddr) -> Accepted {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return Accepted::Unknown;
    };
    server_side(&table, server, client)
}

fn server_side(table: &str, server: SocketAddr, client: SocketAddr) -> Accepted {
    const ESTABLISHED: &str = "01";
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
        if f.len() < 10 || parse_addr(f[1]) != Some(server) || parse_addr(f[2]) != Some(client) {
            continue;
        }
        return if f[3] != ESTABLISHED || f[9] != "0" {
            Accepted::Yes
        } else {
            Accepted::Waiting
        };
    }
    Accepted::Unknown
}

/// `0100007F:1F90` → 127.0.0.1:8080 (the address as the kernel holds it
/// in memory, printed as a native-endian word; the port in hex).
fn parse_addr(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    if ip.len() != 8 {
        return None;
    }
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::from((ip.to_ne_bytes(), port)))
}

async fn command(cfg: &HealthConfig, inst: &Instance) -> Result<(), String> {
    let Some(cmd) = &cfg.command else {
        return Err("no health command configured".into());
    };
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(&inst.release_dir)
        .env("GRAFT_HEALTH_ADDR", inst.health_addr.to_string())
        .env("GRAFT_RELEASE", &inst.commit)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run `{cmd}`: {e}"))?;
    match tokio::time::timeout(cfg.timeout.0, child.wait_with_output()).await {
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(format!(
            "`{cmd}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(Err(e)) => Err(format!("`{cmd}`: {e}")),
        Err(_) => Err(format!("`{cmd}` took longer than {:?}", cfg.timeout.0)),
    }
}

/// Why a release did not become ready, and when that became so.
#[derive(Debug, Clone)]
pub enum NotReady {
    Exited(String, Instant),
    Timeout(String, Instant),
}

impl NotReady {
    pub fn cause(&self) -> &'static str {
        match self {
            NotReady::Exited(..) => "exited",
            NotReady::Timeout(..) => "not_ready",
        }
    }

    pub fn message(&self) -> String {
        match self {
            NotReady::Exited(how, _) => format!("the new release exited before it was ready ({how})"),
            NotReady::Timeout(why, _) => format!("the new release was not ready in time ({why})"),
        }
    }

    /// When it failed: its exit, or the readiness deadline.
    pub fn at(&self) -> Instant {
        match self {
            NotReady::Exited(_, at) | NotReady::Timeout(_, at) => *at,
        }
    }
}

/// Wait until `inst` is ready by the configured check, it exits, or
/// `start_timeout` passes. Returns as soon as any of these happens.
pub async fn wait_ready(cfg: &HealthConfig, inst: &Instance) -> Result<Duration, NotReady> {
    let started = Instant::now();
    let deadline = started + cfg.start_timeout.0;
    let mut ready_rx = inst.notify.ready.subscribe();
    let mut passes = 0u32;
    let mut last_error = String::from("no check has passed yet");
    loop {
        if let Some(how) = inst.exited() {
            let at = inst.exited_at.lock().expect("lock").unwrap_or_else(Instant::now);
            return Err(NotReady::Exited(how, at));
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(NotReady::Timeout(
                format!(
                    "{} after {:?}: {last_error}",
                    match cfg.ready {
                        ReadyCheck::Notify => "no READY=1 on NOTIFY_SOCKET",
                        _ => "health check not passing",
                    },
                    cfg.start_timeout.0
                ),
                deadline,
            ));
        }
        match cfg.ready {
            ReadyCheck::None => return Ok(started.elapsed()),
            ReadyCheck::Notify => {
                if *ready_rx.borrow_and_update() {
                    return Ok(started.elapsed());
                }
                // Wake on READY=1, on exit, or at the deadline.
                let mut exit = inst.exit.clone();
                tokio::select! {
                    _ = ready_rx.changed() => {}
                    _ = exit.changed() => {}
                    _ = tokio::time::sleep_until(deadline.into()) => {}
                }
            }
            _ => {
                match check(cfg, inst).await {
                    Ok(()) => {
                        passes += 1;
                        if passes >= cfg.successes {
                            return Ok(started.elapsed());
                        }
                    }
                    Err(e) => {
                        passes = 0;
                        last_error = e;
                    }
                }
                // Poll often while starting: readiness found 10 ms late is
                // 10 ms of both releases running for nothing.
                let pause = cfg.interval.0.min(Duration::from_millis(50));
                let mut exit = inst.exit.clone();
                tokio::select! {
                    _ = exit.changed() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the table says of one connection, once it is in it.
    fn seen(server: SocketAddr, client: SocketAddr) -> Accepted {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let a = accepted(server, client);
            if a != Accepted::Unknown || Instant::now() > deadline {
                return a;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_queued_connection_is_waiting_and_an_accepted_one_is_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let c1 = std::net::TcpStream::connect(server).unwrap();
        assert_eq!(seen(server, c1.local_addr().unwrap()), Accepted::Waiting);
        let (kept, _) = listener.accept().unwrap();
        assert_eq!(seen(server, c1.local_addr().unwrap()), Accepted::Yes);
        // Accepted and closed by the server: no longer established.
        let c2 = std::net::TcpStream::connect(server).unwrap();
        let (closed, _) = listener.accept().unwrap();
        drop(closed);
        assert_eq!(seen(server, c2.local_addr().unwrap()), Accepted::Yes);
        drop(kept);
    }

    #[test]
    fn the_check_fails_on_a_socket_nobody_accepts_on_and_passes_once_someone_does() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let refused = rt.block_on(tcp(addr, Duration::from_millis(300)));
        assert_eq!(
            refused.unwrap_err(),
            "it did not accept a connection on its health socket within 300ms"
        );
        let acceptor = std::thread::spawn(move || {
            // The queued connection of the failed check first, then ours.
            let a = listener.accept().unwrap();
            let b = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(200));
            drop((a, b));
        });
        rt.block_on(tcp(addr, Duration::from_secs(5))).unwrap();
        acceptor.join().unwrap();
    }

    #[test]
    fn addresses_read_as_the_kernel_prints_them() {
        assert_eq!(
            parse_addr("0100007F:1F90"),
            Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
        );
        assert_eq!(parse_addr("00000000000000000000000001000000:0016"), None);
    }
}
