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
    match cfg.ready {
        ReadyCheck::Http => http(inst.health_addr, &cfg.http_path, cfg.timeout.0).await,
        ReadyCheck::Tcp => tcp(inst.health_addr, cfg.timeout.0).await,
        ReadyCheck::Command => command(cfg, inst).await,
        // Notify readiness is a state, not a probe; liveness for it comes
        // from the watchdog and heartbeat.
        ReadyCheck::Notify | ReadyCheck::None => Ok(()),
    }
}

pub async fn http(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), String> {
    let attempt = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(conn);
        let req = hyper::Request::get(path)
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
            Err(format!("GET {path} answered {status}"))
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("GET {path} took longer than {timeout:?}")))
}

pub async fn tcp(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("connect to the health socket: {e}")),
        Err(_) => Err(format!("connect took longer than {timeout:?}")),
    }
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
