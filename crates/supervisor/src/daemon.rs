//! `graft run`: bring the target up under supervision and serve the
//! control and agent APIs until told to stop.
//!
//! Start-up order matters:
//! 1. one daemon per repo (`.graft/daemon.lock`, a flock);
//! 2. kill processes a previous `graft run` left running (it was killed:
//!    the ledger lists its instances, recognised by pid and start time),
//!    so none of them holds a port;
//! 3. bind the listen sockets;
//! 4. under the pipeline lock, start the release of the branch tip (every
//!    commit there passed its gates; one landed while `graft run` was down
//!    goes live now), then run crash recovery with the supervisor as deploy
//!    backend: an upgrade interrupted before its watch window ended is
//!    rolled back, on the real processes;
//! 5. serve.
//!
//! If `graft run` itself is killed (SIGKILL), its releases receive SIGTERM
//! from the kernel (`PR_SET_PDEATHSIG`) and drain: requests in flight are
//! answered, and new connections are refused until `graft run` starts
//! again, since the listening socket dies with its last holder. Run it
//! under a service manager that restarts it (systemd `Restart=always`).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use graft_ledger::{Ledger, UpgradeState};
use graft_pipeline::git::Git;
use graft_pipeline::rollback::{self, Why};
use graft_pipeline::{Workspace, recover, staging};
use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;

use crate::control::{self, Ops};
use crate::deploy::SupervisorDeploy;
use crate::error::SupervisorError;
use crate::release::short;
use crate::supervisor::{Settings, Supervisor};
use crate::{agent_api, instance, sockets};

/// What `graft run` reports once it serves.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    pub pid: u32,
    pub live_commit: String,
    pub instance_pid: i32,
    pub sockets: Vec<String>,
    /// No `[[run.listen]]`: a switch stops the old release before the new
    /// one starts, so nothing serves in between.
    pub plain_mode: bool,
    pub agent_url: String,
    pub control_socket: PathBuf,
    pub recovered: Vec<graft_pipeline::recover::Recovered>,
    /// What the mounted servers serve, by name (`api` → its URL).
    pub endpoints: std::collections::BTreeMap<String, String>,
}

/// Starts more servers on the daemon's operations once it serves (the
/// HTTP API); returns what it serves as (name, URL) pairs, or why it
/// could not start. Supplied by the binary, so that this crate does not
/// depend on the servers built on it.
pub type Mount = Box<
    dyn FnOnce(
            Arc<Ops>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Vec<(String, String)>, String>> + Send>,
        > + Send,
>;

/// What the binary adds to the daemon.
pub struct Extensions {
    /// Builds the providers of requests that are not patches.
    pub generators: crate::wire::GeneratorFactory,
    /// Told of every event of every operation, on the thread that runs it.
    pub observer: Arc<dyn graft_pipeline::Observer>,
    /// Figures of files and scheduled scans, when the binary has them.
    pub analyzer: Option<&'static (dyn graft_orchestrate::Analyzer + Sync)>,
    pub mount: Option<Mount>,
    /// Where switches, failures and upgrade ends are reported (default:
    /// a line on stderr).
    pub say: Option<crate::report::Say>,
}

/// Run until SIGTERM or SIGINT. `on_started` is called once serving.
pub fn run(root: &Path, ext: Extensions, on_started: impl FnOnce(&Started)) -> Result<(), SupervisorError> {
    let Extensions {
        generators,
        observer,
        analyzer,
        mount,
        say,
    } = ext;
    let say = say.unwrap_or_else(crate::report::to_stderr);
    // Every upgrade's end is reported too, whichever way it came in.
    let observer: Arc<dyn graft_pipeline::Observer> =
        Arc::new(crate::report::Ends::new(observer, say.clone()));
    let ws = Workspace::open(root)?;
    let root = ws.root.clone();
    let config = ws.config.clone();
    let run = config.run.clone().ok_or_else(|| {
        SupervisorError::Setup(format!(
            "{} has no [run] section: add one with `command = \"...\"` (the program to supervise) and, for a server, `[[run.listen]]` sockets",
            graft_config::Config::path_in(&root).display()
        ))
    })?;
    let graft_dir = ws.graft_dir();
    let _one_daemon = daemon_lock(&graft_dir)?;
    kill_orphans(&ws.ledger);
    drop(ws);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("graft-run")
        .build()
        .map_err(|e| SupervisorError::io("cannot start the async runtime", e))?;
    rt.block_on(async move {
        let sockets = sockets::bind_all(&run.listen)?;
        let run_dir = tempfile::Builder::new()
            .prefix("graft-run-")
            .tempdir()
            .map_err(|e| SupervisorError::io("cannot create a private run directory", e))?;
        let settings = Settings {
            run: run.clone(),
            health: config.health.clone(),
            watch: config.watch.clone(),
            repo_root: root.clone(),
            graft_dir: graft_dir.clone(),
            state_dir: graft_dir.join("state"),
            log_dir: graft_dir.join("logs"),
            run_dir: run_dir.path().to_path_buf(),
        };
        let ledger_path = graft_dir.join("ledger.db");
        let (sup, mut crash_rx) = Supervisor::new(settings, sockets, Ledger::open(&ledger_path)?, Git::new(&root));

        let agent_addr: SocketAddr = run.agent_listen.parse().map_err(|_| {
            SupervisorError::Setup(format!("[run] agent_listen `{}` is not an address like 127.0.0.1:0", run.agent_listen))
        })?;
        if !agent_addr.ip().is_loopback() {
            return Err(SupervisorError::Setup(format!(
                "[run] agent_listen `{agent_addr}` is not a loopback address; the agent API only serves this machine"
            )));
        }
        let agent_listener = tokio::net::TcpListener::bind(agent_addr)
            .await
            .map_err(|e| SupervisorError::Setup(format!("cannot listen on {agent_addr} for the agent API: {e}")))?;
        let agent_url = format!("http://{}", agent_listener.local_addr().map_err(|e| SupervisorError::io("agent API", e))?);
        sup.set_agent_url(agent_url.clone());
        sup.set_say(say.clone());
        let agent_router = agent_api::router(sup.clone(), Ledger::open(&ledger_path)?);
        tokio::spawn(async move { axum::serve(agent_listener, agent_router).await });

        let no_restart = globs(&config.target.no_restart.0);
        let deploy = Arc::new(SupervisorDeploy::new(sup.clone(), tokio::runtime::Handle::current(), no_restart));

        // The first release and recovery, under the pipeline lock.
        let (root2, sup2) = (root.clone(), sup.clone());
        let (lock, release) = tokio::task::spawn_blocking(move || -> Result<_, SupervisorError> {
            let ws = Workspace::open(&root2)?;
            let lock = ws.lock(true)?.expect("a blocking lock is always taken");
            // The branch tip: every commit on it passed its gates. Recovery
            // (below) rolls back one whose watch window was cut short.
            let commit = ws.git.rev_parse(&format!("refs/heads/{}", ws.target_branch()?))?;
            let release = match sup2.releases.get(sup2.git(), &commit)? {
                Some(r) => r,
                None => {
                    let staging = staging::prepare(&ws, &commit)?;
                    sup2.releases.make(&ws.ledger, &staging, &commit)?
                }
            };
            Ok((lock, release))
        })
        .await
        .map_err(|e| SupervisorError::Setup(e.to_string()))??;
        let first = sup.start_first(&release).await.map_err(|n| {
            let output = if n.output.is_empty() { String::new() } else { format!("\nits last output:\n{}", n.output) };
            SupervisorError::Release(format!("release {} did not start: {}{output}", short(&release.commit), n.message))
        })?;
        let (root3, deploy3, observer3) = (root.clone(), deploy.clone(), observer.clone());
        let recovered = tokio::task::spawn_blocking(move || -> Result<_, SupervisorError> {
            let ws = Workspace::open(&root3)?;
            let recovered = recover::recover_locked(&ws, &*deploy3)?;
            recover::announce(&ws, &recovered, &*observer3);
            Ok(recovered)
        })
        .await
        .map_err(|e| SupervisorError::Setup(e.to_string()))??;
        drop(lock);

        let socket_path = crate::client::socket_path(&root);
        let _ = std::fs::remove_file(&socket_path);
        let control_listener = tokio::net::UnixListener::bind(&socket_path)
            .map_err(|e| SupervisorError::Setup(format!("cannot create the control socket {}: {e}", socket_path.display())))?;
        let _ = std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o600));
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let ops = Arc::new(Ops {
            root: root.clone(),
            sup: sup.clone(),
            deploy: deploy.clone(),
            queue: tokio::sync::Mutex::new(()),
            events,
            observer,
            generators,
            analyzer,
            wake: tokio::sync::Notify::new(),
            endpoints: std::sync::Mutex::new(Vec::new()),
        });
        let control_router = control::router(ops.clone(), graft_pipeline::upgrade::limits(&config));
        tokio::spawn(async move { axum::serve(control_listener, control_router).await });
        if let Some(mount) = mount {
            let served = match mount(ops.clone()).await {
                Ok(served) => served,
                Err(e) => {
                    let _ = std::fs::remove_file(&socket_path);
                    sup.shutdown().await;
                    sockets::cleanup(sup.sockets());
                    return Err(SupervisorError::Setup(e));
                }
            };
            ops.endpoints.lock().expect("lock").extend(served);
        }

        let ops2 = ops.clone();
        tokio::spawn(async move {
            while let Some(commit) = crash_rx.recv().await {
                crash_loop(&ops2, &commit).await;
            }
        });
        tokio::spawn(sup.clone().liveness());
        tokio::spawn(control::runner(ops.clone()));

        let live = sup.live();
        on_started(&Started {
            pid: std::process::id(),
            live_commit: first.commit.clone(),
            instance_pid: live.map(|i| i.pid).unwrap_or(first.pid),
            sockets: sup.status().sockets,
            plain_mode: sup.plain_mode(),
            agent_url,
            control_socket: socket_path.clone(),
            recovered,
            endpoints: ops.endpoints.lock().expect("lock").iter().cloned().collect(),
        });

        wait_for_stop().await;
        eprintln!("graft run: stopping; releases drain first");
        let _ = std::fs::remove_file(&socket_path);
        sup.shutdown().await;
        sockets::cleanup(sup.sockets());
        drop(run_dir);
        Ok(())
    })
}

async fn wait_for_stop() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// The release of `commit` keeps crashing: roll back the upgrade that
/// brought it, if one did.
async fn crash_loop(ops: &Arc<Ops>, commit: &str) {
    let _turn = ops.queue.lock().await;
    let (root, deploy, looping) = (ops.root.clone(), ops.deploy.clone(), commit.to_string());
    let relay = ops.relay(None);
    let result = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let ws = Workspace::open(&root).map_err(|e| e.to_string())?;
        let held = recover::exclusive(&ws, &*deploy, true, &relay).map_err(|e| e.to_string())?;
        let upgrade = ws
            .ledger
            .upgrades(&[UpgradeState::Promoted], 1000)
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|u| u.landed_commit.as_deref() == Some(looping.as_str()));
        let Some(u) = upgrade else {
            return Err(format!(
                "release {} is in a crash loop, and no upgrade brought it, so there is nothing to roll back; it keeps being restarted",
                short(&looping)
            ));
        };
        let _ = held;
        rollback::roll_back_landed(
            &ws,
            &*deploy,
            &u.id,
            &Why {
                cause: "crash_loop",
                message: "the release kept crashing after its watch window; rolled back to the last known good release",
                requested_by: "graft",
                switch_back: true,
            },
            &relay,
        )
        .map(|r| {
            format!("rolled back {} (revert {})", u.id, r.revert_commit.as_deref().map(short).unwrap_or("-"))
        })
        .map_err(|f| f.message)
    })
    .await;
    let message = match result {
        Ok(Ok(msg)) => msg,
        Ok(Err(msg)) => {
            ops.sup.restart_live_later();
            msg
        }
        Err(e) => format!("handling it failed: {e}"),
    };
    ops.sup.say(crate::report::RunEvent::CrashLoop {
        commit: commit.to_string(),
        message,
    });
}

/// One `graft run` per repo.
fn daemon_lock(graft_dir: &Path) -> Result<Flock<std::fs::File>, SupervisorError> {
    let path = graft_dir.join("daemon.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SupervisorError::io(format!("cannot open {}", path.display()), e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => {
            let _ = std::fs::write(graft_dir.join("daemon.pid"), std::process::id().to_string());
            Ok(lock)
        }
        Err(_) => {
            let pid = std::fs::read_to_string(graft_dir.join("daemon.pid")).unwrap_or_default();
            Err(SupervisorError::Setup(format!(
                "graft run is already running for this repo (pid {}); use `graft status`, or stop it first",
                pid.trim()
            )))
        }
    }
}

/// Kill what a killed `graft run` left: instances with no recorded end
/// whose pid still runs the same process (same start time), with their
/// process groups; return once they are gone.
fn kill_orphans(ledger: &Ledger) {
    let Ok(running) = ledger.running_instances() else {
        return;
    };
    let mut groups = Vec::new();
    for i in running {
        if let (Some(pid), Some(ticks)) = (i.pid, i.start_ticks)
            && instance::is_running(pid as i32, ticks)
        {
            eprintln!(
                "graft run: stopping release {} (pid {pid}) left by a previous graft run",
                short(&i.commit_id)
            );
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            groups.push(pid as i32);
        }
        if let Err(e) = ledger.instance_stopped(i.id, "killed: left by a previous graft run") {
            eprintln!(
                "graft run: warning: the end of process {:?} could not be recorded in the ledger: {e}",
                i.pid
            );
        }
    }
    // A kill is delivered, not done: the listening sockets close only as
    // the processes exit, and they are about to be bound again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while groups.iter().any(|g| instance::group_running(*g)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn globs(patterns: &[String]) -> globset::GlobSet {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        if let Ok(g) = globset::GlobBuilder::new(p).literal_separator(true).build() {
            b.add(g);
        }
    }
    b.build().unwrap_or_else(|_| globset::GlobSet::empty())
}
