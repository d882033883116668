//! The supervisor: which release process serves, and how that changes.
//!
//! **A switch** (deploy, rollback, restart) starts the new process beside
//! the old one on the same listening sockets and waits until it is ready
//! by its own channel. Only then does it become live, and the old process
//! gets its stop signal; the switch is done once the old one no longer
//! accepts (it said `STOPPING=1`, it ended, or none of its processes holds
//! a shared listening socket any more; 1 s at most), so a request sent
//! after a switch, a rollback above all, reaches the new release. The old
//! one then drains in the background: a drain timeout, then SIGKILL to its
//! group. A new
//! process that exits or is not ready in time is killed and the old one
//! never noticed anything. Switches are serialised by a fair mutex, so
//! concurrent requests run one at a time, in the order they came.
//!
//! **The watch window** after a deploy watches the new process's exit, its
//! health checks, its watchdog and its heartbeats. On the first failure it
//! switches straight back to the last known good release (kept and built,
//! so no rebuild), and only then reports: the git revert and the data
//! restore that the pipeline does next are off the critical path.
//!
//! **Outside a window**, a process that dies is restarted with exponential
//! backoff; meanwhile its listening sockets, held by Graft, queue new
//! connections rather than refuse them. Too many crashes in a short time
//! is a crash loop: the daemon is told, and rolls back the upgrade that
//! brought the crashing release.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use graft_config::{HealthConfig, ReadyCheck, RunConfig, WatchConfig};
use graft_ledger::Ledger;
use graft_pipeline::git::Git;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::SupervisorError;
use crate::health;
use crate::instance::{Instance, Spawn};
use crate::release::{Release, ReleaseStore, short};
use crate::report::{self, RunEvent, Say};
use crate::sockets::{self, PassedSocket};

/// How long a replaced release may go on accepting on the shared sockets
/// after its stop signal before a switch is reported done anyway.
const STOP_ACCEPTING_WITHIN: Duration = Duration::from_secs(1);

/// Where things live, and how the target is run.
pub struct Settings {
    pub run: RunConfig,
    pub health: HealthConfig,
    pub watch: WatchConfig,
    /// The main checkout's root (`GRAFT_REPO_ROOT` for the build and the
    /// releases).
    pub repo_root: PathBuf,
    pub graft_dir: PathBuf,
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
    /// Private (0700) directory for notify sockets.
    pub run_dir: PathBuf,
}

/// Why a switch happens, and the upgrade it serves, if any.
#[derive(Debug, Clone)]
pub struct Cause {
    /// `start`, `deploy`, `rollback` or `restart` (what the ledger's
    /// `live` table records).
    pub kind: &'static str,
    pub upgrade: Option<String>,
}

impl Cause {
    pub fn new(kind: &'static str, upgrade: Option<&str>) -> Cause {
        Cause {
            kind,
            upgrade: upgrade.map(str::to_string),
        }
    }
}

/// A successful switch.
#[derive(Debug, Clone, Serialize)]
pub struct Switched {
    pub commit: String,
    pub instance: i64,
    pub pid: i32,
    /// From starting the process to it being ready.
    pub ready_ms: u64,
    /// The process it replaced, now draining, and its commit.
    pub replaced: Option<i64>,
    pub replaced_commit: Option<String>,
    /// Whether the replaced release confirmed it saved its state, when
    /// `[run]` asks it to (`prepare_signal`, `prepare_path`).
    pub prepared: Option<Prepared>,
}

/// What asking the live release to save its state gave.
#[derive(Debug, Clone, Serialize)]
pub struct Prepared {
    pub ok: bool,
    /// `state saved`, or what was missing.
    pub message: String,
}

/// A switch that did not happen: the old process still serves.
#[derive(Debug, Clone, Serialize)]
pub struct NotSwitched {
    /// `exited`, `not_ready` or `start_failed`.
    pub cause: String,
    pub message: String,
    /// The failed process's last output lines.
    pub output: String,
    /// From the first sign of failure (its exit, or the readiness
    /// deadline) to the decision to keep the old release.
    pub decided_ms: u64,
    /// What serves now, said for people ("the old release kept serving");
    /// None when nothing was live.
    pub serving: Option<String>,
}

const KEPT_SERVING: &str = "the old release kept serving";

/// A failure in the watch window.
#[derive(Debug, Clone, Serialize)]
pub struct WatchFailed {
    /// `crashed`, `unhealthy`, `watchdog` or `heartbeat`.
    pub cause: String,
    pub message: String,
    /// The release serving now (the last known good one, if the switch
    /// back worked).
    pub switched_back_to: Option<String>,
    /// From detecting the failure to the last known good release serving.
    pub switch_back_ms: Option<u64>,
}

/// What the daemon's status shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub live_commit: Option<String>,
    pub instance: Option<i64>,
    pub pid: Option<i32>,
    pub ready: bool,
    pub status: String,
    pub last_good: Option<String>,
    pub in_watch_window: bool,
    pub uptime_ms: Option<u64>,
    pub log: Option<String>,
    pub sockets: Vec<String>,
}

pub struct Supervisor {
    pub settings: Settings,
    sockets: Vec<PassedSocket>,
    /// The listening sockets' inodes, as a release's `/proc/<pid>/fd`
    /// names its copies of them.
    socket_inodes: Arc<[u64]>,
    pub releases: ReleaseStore,
    pub ledger: Mutex<Ledger>,
    git: Git,
    agent_url: Mutex<Option<String>>,
    live: Mutex<Option<Arc<Instance>>>,
    /// Processes started and not yet stopped (live, starting, draining).
    instances: Mutex<Vec<Arc<Instance>>>,
    last_good: Mutex<Option<String>>,
    in_window: AtomicBool,
    switch_lock: tokio::sync::Mutex<()>,
    crashes: Mutex<VecDeque<Instant>>,
    /// Tells the daemon: the release of this commit is in a crash loop.
    crash_loop: mpsc::UnboundedSender<String>,
    pub shutting_down: AtomicBool,
    /// Where graft run reports switches and failures.
    say: Mutex<Say>,
}

impl Supervisor {
    pub fn new(
        settings: Settings,
        sockets: Vec<PassedSocket>,
        ledger: Ledger,
        git: Git,
    ) -> (Arc<Supervisor>, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let releases = ReleaseStore::new(&settings.repo_root, &settings.graft_dir, &settings.run);
        let socket_inodes = sockets.iter().filter_map(|s| sockets::inode(&s.fd)).collect();
        let sup = Supervisor {
            settings,
            sockets,
            socket_inodes,
            releases,
            ledger: Mutex::new(ledger),
            git,
            agent_url: Mutex::new(None),
            live: Mutex::new(None),
            instances: Mutex::new(Vec::new()),
            last_good: Mutex::new(None),
            in_window: AtomicBool::new(false),
            switch_lock: tokio::sync::Mutex::new(()),
            crashes: Mutex::new(VecDeque::new()),
            crash_loop: tx,
            shutting_down: AtomicBool::new(false),
            say: Mutex::new(report::to_stderr()),
        };
        (Arc::new(sup), rx)
    }

    /// Report to `say` from now on (the default prints on stderr).
    pub fn set_say(&self, say: Say) {
        *self.say.lock().expect("lock") = say;
    }

    /// Report one event.
    pub fn say(&self, event: RunEvent) {
        let say = self.say.lock().expect("lock").clone();
        say(&event);
    }

    pub fn set_agent_url(&self, url: String) {
        *self.agent_url.lock().expect("lock") = Some(url);
    }

    pub fn sockets(&self) -> &[PassedSocket] {
        &self.sockets
    }

    pub fn git(&self) -> &Git {
        &self.git
    }

    pub fn live(&self) -> Option<Arc<Instance>> {
        self.live.lock().expect("lock").clone()
    }

    pub fn last_good(&self) -> Option<String> {
        self.last_good.lock().expect("lock").clone()
    }

    pub fn set_last_good(&self, commit: &str) {
        *self.last_good.lock().expect("lock") = Some(commit.to_string());
    }

    /// The instance that a request with this agent token comes from.
    pub fn instance_by_token(&self, token: &str) -> Option<Arc<Instance>> {
        self.instances
            .lock()
            .expect("lock")
            .iter()
            .find(|i| i.token == token)
            .cloned()
    }

    pub fn status(&self) -> Status {
        let live = self.live();
        Status {
            live_commit: live.as_ref().map(|i| i.commit.clone()),
            instance: live.as_ref().map(|i| i.id),
            pid: live.as_ref().map(|i| i.pid),
            ready: live.as_ref().is_some_and(|i| i.exited().is_none()),
            status: live
                .as_ref()
                .map(|i| i.notify.status.lock().expect("lock").clone())
                .unwrap_or_default(),
            last_good: self.last_good(),
            in_watch_window: self.in_window.load(Ordering::SeqCst),
            uptime_ms: live.as_ref().map(|i| i.started.elapsed().as_millis() as u64),
            log: live.as_ref().map(|i| i.log_path.display().to_string()),
            sockets: self
                .sockets
                .iter()
                .map(|s| format!("{}={}", s.name, s.address))
                .collect(),
        }
    }

    /// Start a process for `release` (not yet live).
    async fn start(self: &Arc<Self>, release: &Release) -> Result<Arc<Instance>, SupervisorError> {
        let log_name = format!("{}-pending.log", short(&release.commit));
        let id =
            self.ledger
                .lock()
                .expect("lock")
                .insert_instance(&release.commit, &release.tree, &log_name)?;
        let agent_url = self.agent_url.lock().expect("lock").clone();
        let inst = Instance::spawn(Spawn {
            id,
            release,
            run: &self.settings.run,
            health: &self.settings.health,
            sockets: &self.sockets,
            repo_root: &self.settings.repo_root,
            state_dir: &self.settings.state_dir,
            run_dir: &self.settings.run_dir,
            log_dir: &self.settings.log_dir,
            agent_url: agent_url.as_deref(),
        })
        .await
        .map_err(|e| SupervisorError::io(format!("cannot start release {}", short(&release.commit)), e))?;
        if let Err(e) = self.ledger.lock().expect("lock").instance_started(
            id,
            inst.pid as i64,
            inst.start_ticks(),
            &inst.log_path.display().to_string(),
        ) {
            // A process the ledger does not know could outlive a crash of
            // graft run unseen: it does not run.
            inst.kill_group();
            return Err(e.into());
        }
        self.instances.lock().expect("lock").push(inst.clone());
        let me = self.clone();
        let watched = inst.clone();
        tokio::spawn(async move { me.on_exit(watched).await });
        Ok(inst)
    }

    /// Blue/green: start `release` beside the live process, make it live
    /// once ready, then drain the old one.
    pub async fn switch_to(
        self: &Arc<Self>,
        release: &Release,
        cause: &Cause,
    ) -> Result<Switched, NotSwitched> {
        let _one_at_a_time = self.switch_lock.lock().await;
        let result = self.switch_locked(release, cause.kind).await;
        self.say(match &result {
            Ok(s) => RunEvent::Switched {
                cause: cause.kind.into(),
                upgrade: cause.upgrade.clone(),
                commit: s.commit.clone(),
                pid: s.pid,
                ready_ms: s.ready_ms,
                replaced: s.replaced_commit.clone(),
            },
            Err(n) => RunEvent::NotSwitched {
                cause: cause.kind.into(),
                upgrade: cause.upgrade.clone(),
                commit: release.commit.clone(),
                reason: n.cause.clone(),
                message: n.message.clone(),
            },
        });
        result
    }

    /// `switch_to` as a boxed `Send` future: the restart path calls it
    /// from the exit watcher that `start` spawns, a cycle the compiler
    /// cannot see through otherwise.
    fn switch_boxed<'a>(
        self: &'a Arc<Self>,
        release: &'a Release,
        cause: &'a Cause,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Switched, NotSwitched>> + Send + 'a>> {
        Box::pin(self.switch_to(release, cause))
    }

    async fn switch_locked(
        self: &Arc<Self>,
        release: &Release,
        cause: &str,
    ) -> Result<Switched, NotSwitched> {
        // The live release checkpoints its state first, so that the new
        // one starts from the freshest copy.
        let started = Instant::now();
        let old = self.live().filter(|o| o.exited().is_none());
        let prepared = match &old {
            Some(old) => self.prepare(old).await,
            None => None,
        };
        if let Some(p) = prepared.as_ref().filter(|p| !p.ok) {
            // Only a deploy waits for it: a rollback or a restart must not
            // be held by the release it replaces.
            if cause == "deploy" && self.settings.run.prepare_required {
                return Err(NotSwitched {
                    cause: "not_prepared".into(),
                    message: format!(
                        "the live release did not confirm it saved its state ({}); with [run] prepare_required = true the new release was not started",
                        p.message
                    ),
                    output: String::new(),
                    decided_ms: started.elapsed().as_millis() as u64,
                    serving: Some(KEPT_SERVING.into()),
                });
            }
            eprintln!(
                "graft: warning: the live release did not confirm it saved its state ({}); switching anyway ([run] prepare_required = true would hold the deploy)",
                p.message
            );
        }
        // Plain mode: Graft holds no socket to hand over, so the old
        // release stops before the new one starts (a port it binds itself
        // must be free for the next); nothing serves in between.
        let stopped_first = old.filter(|_| self.plain_mode());
        if let Some(old) = &stopped_first {
            self.stop(old, true).await;
        }
        let inst = match self.start(release).await {
            Ok(i) => i,
            Err(e) => {
                let failed = NotSwitched {
                    cause: "start_failed".into(),
                    message: e.to_string(),
                    output: String::new(),
                    decided_ms: started.elapsed().as_millis() as u64,
                    serving: None,
                };
                return Err(self.not_switched(failed, stopped_first.as_ref()).await);
            }
        };
        match health::wait_ready(&self.settings.health, &inst).await {
            Err(not_ready) => {
                // The old release never stopped serving: keeping it is
                // decided here. The failed one may have accepted
                // connections already, so it is stopped like any release
                // (stop signal, drain, then SIGKILL), in the background.
                let decided_ms = not_ready.at().elapsed().as_millis() as u64;
                let output = log_tail(&inst.log_path, 20);
                let mut message = not_ready.message();
                if let Some(hint) = self.address_in_use_hint(&output) {
                    message.push_str(&format!("; {hint}"));
                }
                let me = self.clone();
                tokio::spawn(async move { me.stop(&inst, true).await });
                let failed = NotSwitched {
                    cause: not_ready.cause().into(),
                    message,
                    output,
                    decided_ms,
                    serving: None,
                };
                Err(self.not_switched(failed, stopped_first.as_ref()).await)
            }
            Ok(ready_after) => {
                let r = self.ledger.lock().expect("lock").instance_ready(inst.id);
                self.recorded("its readiness", r);
                let old = self.live.lock().expect("lock").replace(inst.clone());
                self.record_live(&inst.commit, Some(inst.id), cause);
                let replaced = old.as_ref().map(|o| o.id);
                let replaced_commit = old.as_ref().map(|o| o.commit.clone());
                if let Some(old) = old {
                    self.retire(old).await;
                }
                Ok(Switched {
                    commit: inst.commit.clone(),
                    instance: inst.id,
                    pid: inst.pid,
                    ready_ms: ready_after.as_millis() as u64,
                    replaced,
                    replaced_commit,
                    prepared,
                })
            }
        }
    }

    /// Plain mode: no `[[run.listen]]` sockets for Graft to hold.
    pub fn plain_mode(&self) -> bool {
        self.sockets.is_empty()
    }

    /// A failed switch, with what serves now. In plain mode the old
    /// release was stopped first (`stopped_first`): it is started again.
    async fn not_switched(
        self: &Arc<Self>,
        mut n: NotSwitched,
        stopped_first: Option<&Arc<Instance>>,
    ) -> NotSwitched {
        n.serving = match stopped_first {
            None => self.live().map(|_| KEPT_SERVING.to_string()),
            Some(old) => Some(match self.start_again(&old.commit).await {
                Ok(pid) => format!(
                    "release {} was started again (pid {pid}): in plain mode the old release stops before the new one starts",
                    short(&old.commit)
                ),
                Err(e) => format!(
                    "starting release {} again failed too ({e}): nothing serves until a release starts",
                    short(&old.commit)
                ),
            }),
        };
        n
    }

    /// Start the kept release of `commit` and make it live once ready (in
    /// plain mode, after a failed switch stopped it): its pid.
    async fn start_again(self: &Arc<Self>, commit: &str) -> Result<i32, String> {
        let release = self
            .releases
            .get(&self.git, commit)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "its release is no longer kept".to_string())?;
        let inst = self.start(&release).await.map_err(|e| e.to_string())?;
        match health::wait_ready(&self.settings.health, &inst).await {
            Ok(ready_after) => {
                let r = self.ledger.lock().expect("lock").instance_ready(inst.id);
                self.recorded("its readiness", r);
                *self.live.lock().expect("lock") = Some(inst.clone());
                self.record_live(&inst.commit, Some(inst.id), "restart");
                self.say(RunEvent::Switched {
                    cause: "restart".into(),
                    upgrade: None,
                    commit: inst.commit.clone(),
                    pid: inst.pid,
                    ready_ms: ready_after.as_millis() as u64,
                    replaced: None,
                });
                Ok(inst.pid)
            }
            Err(not_ready) => {
                let me = self.clone();
                let failed = inst.clone();
                tokio::spawn(async move { me.stop(&failed, true).await });
                Err(not_ready.message())
            }
        }
    }

    /// What to tell a user whose release could not bind its address.
    fn address_in_use_hint(&self, output: &str) -> Option<String> {
        let lower = output.to_ascii_lowercase();
        if !(lower.contains("address already in use") || lower.contains("eaddrinuse")) {
            return None;
        }
        Some(if self.plain_mode() {
            "its output says its address is already in use: another program holds that port (`ss -ltnp` shows which); with [[run.listen]] Graft would hold the port and pass it to each release instead".to_string()
        } else {
            let names: Vec<String> = self
                .sockets
                .iter()
                .map(|s| format!("{} ({})", s.name, s.address))
                .collect();
            format!(
                "its output says its address is already in use: Graft holds the listening sockets of [[run.listen]] ({}) and passes them to each release as fd 3 onward (LISTEN_FDS, LISTEN_FDNAMES), so the program must take its socket from there instead of binding the port itself; the README's \"Recipes: taking the socket from Graft\" shows how for gunicorn, uvicorn, Node, Go and Rust",
                names.join(", ")
            )
        })
    }

    /// Record the live commit in the ledger and in `refs/graft/live`, so
    /// git and the ledger agree on it.
    pub fn record_live(&self, commit: &str, instance: Option<i64>, cause: &str) {
        let r = self
            .ledger
            .lock()
            .expect("lock")
            .set_live(commit, instance, cause);
        self.recorded(&format!("{} as the live commit", short(commit)), r);
        if let Err(e) = self.git.run(&["update-ref", "refs/graft/live", commit]) {
            eprintln!(
                "graft run: warning: refs/graft/live could not be moved to {}: {e}",
                short(commit)
            );
        }
    }

    /// Say on graft run's output that `what` could not be recorded in the
    /// ledger, with why.
    fn recorded<E: std::fmt::Display>(&self, what: &str, r: Result<(), E>) {
        if let Err(e) = r {
            eprintln!("graft run: warning: {what} could not be recorded in the ledger: {e}");
        }
    }

    /// Stop a process: stop signal, drain, then SIGKILL to its group.
    /// `graceful = false` skips straight to SIGKILL.
    pub async fn stop(&self, inst: &Arc<Instance>, graceful: bool) {
        let deadline = self.ask_to_stop(inst, graceful);
        self.drain(inst, deadline).await;
    }

    /// Mark `inst` as stopping and, when `graceful` and it still runs,
    /// send its stop signal: the drain's deadline counts from then.
    fn ask_to_stop(&self, inst: &Instance, graceful: bool) -> Option<tokio::time::Instant> {
        inst.stopping.store(true, Ordering::SeqCst);
        (graceful && inst.exited().is_none()).then(|| {
            inst.signal(self.settings.run.stop_signal.0);
            tokio::time::Instant::now() + self.settings.run.drain_timeout.0
        })
    }

    /// A replaced release: its stop signal, then a wait until it no longer
    /// accepts on the shared sockets (bounded by `STOP_ACCEPTING_WITHIN`);
    /// its drain goes on in the background.
    async fn retire(self: &Arc<Self>, old: Arc<Instance>) {
        // The drain timeout counts from the signal, this wait included.
        let drain_until = self.ask_to_stop(&old, true);
        if drain_until.is_some() {
            let mut said = old.notify.stopping.subscribe();
            let deadline = tokio::time::Instant::now() + STOP_ACCEPTING_WITHIN;
            loop {
                let group = old.pid;
                let inodes = self.socket_inodes.clone();
                let holds =
                    tokio::task::spawn_blocking(move || crate::instance::group_holds_socket(group, &inodes))
                        .await
                        .unwrap_or(false);
                if !holds || *said.borrow_and_update() || old.exited().is_some() {
                    break;
                }
                tokio::select! {
                    _ = said.changed() => {}
                    _ = old.wait_exit() => {}
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
        }
        let me = self.clone();
        tokio::spawn(async move { me.drain(&old, drain_until).await });
    }

    /// The end of a stop: wait for the release to end until `deadline`
    /// (none: not graceful), then SIGKILL to the group, and forget it.
    async fn drain(&self, inst: &Arc<Instance>, deadline: Option<tokio::time::Instant>) {
        if let Some(deadline) = deadline
            && inst.exited().is_none()
        {
            let drained = tokio::time::timeout_at(deadline, inst.wait_exit()).await.is_ok();
            if !drained {
                eprintln!(
                    "graft: release {} (pid {}) did not stop within {:?} of {}; killing its process group",
                    short(&inst.commit),
                    inst.pid,
                    self.settings.run.drain_timeout.0,
                    self.settings.run.stop_signal.name()
                );
            }
        }
        inst.kill_group();
        let how = inst.wait_exit().await;
        self.forget(inst, &how);
    }

    /// Let the release save its state (bounded): before a new release
    /// starts in its place, and before graft run stops. None when `[run]`
    /// asks for nothing.
    async fn prepare(&self, inst: &Arc<Instance>) -> Option<Prepared> {
        let run = &self.settings.run;
        if run.prepare_signal.is_none() && run.prepare_path.is_none() {
            return None;
        }
        let limit = run.prepare_timeout.0;
        let mut missing = Vec::new();
        if let Some(sig) = run.prepare_signal {
            // Registered before the signal is sent, so an answer that
            // comes at once is not missed.
            let prepared = inst.notify.prepared.notified();
            inst.signal(sig.0);
            if tokio::time::timeout(limit, prepared).await.is_err() {
                missing.push(format!("no PREPARED=1 within {limit:?} of {}", sig.name()));
            }
        }
        if let Some(path) = &run.prepare_path
            && let Err(e) = health::request(inst.health_addr, hyper::Method::POST, path, limit).await
        {
            missing.push(e);
        }
        Some(Prepared {
            ok: missing.is_empty(),
            message: if missing.is_empty() {
                "state saved".into()
            } else {
                missing.join("; ")
            },
        })
    }

    fn forget(&self, inst: &Arc<Instance>, how: &str) {
        let r = self.ledger.lock().expect("lock").instance_stopped(inst.id, how);
        self.recorded(&format!("the end of process {} ({how})", inst.pid), r);
        self.instances.lock().expect("lock").retain(|i| i.id != inst.id);
    }

    /// Start `release` as the first live process (at `graft run` start).
    pub async fn start_first(self: &Arc<Self>, release: &Release) -> Result<Switched, NotSwitched> {
        let r = self.switch_to(release, &Cause::new("start", None)).await;
        if r.is_ok() && self.last_good().is_none() {
            self.set_last_good(&release.commit);
        }
        r
    }

    /// Watch the live process of `commit` for the watch window.
    pub async fn watch(self: &Arc<Self>, commit: &str, upgrade: Option<&str>) -> Result<(), WatchFailed> {
        let window = self.settings.watch.window.0;
        let Some(inst) = self.live().filter(|i| i.commit == commit) else {
            return Err(WatchFailed {
                cause: "not_live".into(),
                message: format!("release {} is not the live one", short(commit)),
                switched_back_to: None,
                switch_back_ms: None,
            });
        };
        self.in_window.store(true, Ordering::SeqCst);
        let result = self.watch_instance(&inst, window).await;
        match result {
            Ok(()) => {
                self.set_last_good(commit);
                self.in_window.store(false, Ordering::SeqCst);
                Ok(())
            }
            Err((cause, message)) => {
                // Still "in the window" until the switch back is done: the
                // exit watcher must not restart the failing release meanwhile.
                let detected = Instant::now();
                self.say(RunEvent::WatchFailed {
                    upgrade: upgrade.map(str::to_string),
                    commit: commit.to_string(),
                    reason: cause.clone(),
                    message: message.clone(),
                });
                let back = self.switch_back(commit, upgrade).await;
                self.in_window.store(false, Ordering::SeqCst);
                let switch_back_ms = back.as_ref().ok().map(|_| detected.elapsed().as_millis() as u64);
                let mut message = message;
                if let Err(e) = &back {
                    message.push_str(&format!("\nswitching back failed too: {e}"));
                }
                Err(WatchFailed {
                    cause,
                    message,
                    switched_back_to: back.ok(),
                    switch_back_ms,
                })
            }
        }
    }

    /// Start the last known good release in place of the live one. Runs
    /// inside a pipeline operation (the watch step), which holds the lock.
    async fn switch_back(self: &Arc<Self>, failing: &str, upgrade: Option<&str>) -> Result<String, String> {
        let good = self
            .last_good()
            .filter(|g| g != failing)
            .ok_or_else(|| "there is no last known good release to go back to".to_string())?;
        let release = self
            .release_or_rebuild(&good, true)
            .await
            .map_err(|e| e.to_string())?;
        self.switch_to(&release, &Cause::new("rollback", upgrade))
            .await
            .map(|s| s.commit)
            .map_err(|e| e.message)
    }

    /// The kept release of `commit`; if its files vanished, rebuild it in
    /// the staging worktree (taking the pipeline lock unless `locked`:
    /// the caller already holds it). Slower than a switch should be, but
    /// better than no release at all; it is said in graft run's output.
    pub async fn release_or_rebuild(
        self: &Arc<Self>,
        commit: &str,
        locked: bool,
    ) -> Result<Release, SupervisorError> {
        if let Some(r) = self.releases.get(&self.git, commit)? {
            return Ok(r);
        }
        eprintln!(
            "graft: the release of {} is missing from .graft/releases (deleted?); rebuilding it",
            short(commit)
        );
        let (me, commit) = (self.clone(), commit.to_string());
        tokio::task::spawn_blocking(move || {
            let graft_dir = me.settings.graft_dir.clone();
            let _lock = if locked {
                None
            } else {
                let root = graft_dir.parent().unwrap_or(&graft_dir).to_path_buf();
                let ws = graft_pipeline::Workspace::open(&root)?;
                ws.lock(true)?
            };
            let staging = Git::new(&graft_dir.join("staging"));
            staging.run(&["checkout", "--quiet", "--detach", "--force", &commit])?;
            let ledger = me.ledger.lock().expect("lock");
            me.releases.make(&ledger, &staging, &commit)
        })
        .await
        .map_err(|e| SupervisorError::Release(e.to_string()))?
    }

    async fn watch_instance(&self, inst: &Arc<Instance>, window: Duration) -> Result<(), (String, String)> {
        let h = &self.settings.health;
        let deadline = tokio::time::Instant::now() + window;
        let since = Instant::now();
        let mut failures = 0u32;
        let mut exit = inst.exit.clone();
        let mut tick = tokio::time::interval(h.interval.0);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
                _ = exit.changed() => {
                    let how = inst.exited().unwrap_or_default();
                    let tail = log_tail(&inst.log_path, 20);
                    return Err(("crashed".into(), format!(
                        "release {} crashed in its watch window ({how}) after {:.1} s{}",
                        short(&inst.commit),
                        since.elapsed().as_secs_f64(),
                        if tail.is_empty() { String::new() } else { format!("; its last output:\n{tail}") }
                    )));
                }
                _ = tick.tick() => {
                    if let Some(problem) = self.problem(inst, &mut failures).await {
                        return Err(problem);
                    }
                }
            }
        }
    }

    /// One round of liveness checks: health checks (a problem after
    /// `failures` in a row), the watchdog and the heartbeat.
    async fn problem(&self, inst: &Arc<Instance>, failures: &mut u32) -> Option<(String, String)> {
        let h = &self.settings.health;
        if matches!(h.ready, ReadyCheck::Http | ReadyCheck::Tcp | ReadyCheck::Command) {
            match health::check(h, inst).await {
                Ok(()) => *failures = 0,
                Err(e) => {
                    *failures += 1;
                    if *failures >= h.failures {
                        return Some((
                            "unhealthy".into(),
                            format!(
                                "release {} failed {failures} health checks in a row: {e}",
                                short(&inst.commit)
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(w) = &h.watchdog {
            let last = inst
                .notify
                .last_watchdog
                .lock()
                .expect("lock")
                .unwrap_or(inst.started);
            if last.elapsed() > w.0 {
                return Some((
                    "watchdog".into(),
                    format!(
                        "release {} sent no WATCHDOG=1 for {:.1} s (limit {:?})",
                        short(&inst.commit),
                        last.elapsed().as_secs_f64(),
                        w.0
                    ),
                ));
            }
        }
        if let Some(hb) = &h.heartbeat {
            let last = inst.heartbeat.lock().expect("lock").unwrap_or(inst.started);
            if last.elapsed() > hb.0 {
                return Some((
                    "heartbeat".into(),
                    format!(
                        "release {} sent no heartbeat for {:.1} s (limit {:?})",
                        short(&inst.commit),
                        last.elapsed().as_secs_f64(),
                        hb.0
                    ),
                ));
            }
        }
        None
    }

    /// Outside watch windows, a live release that fails its liveness
    /// checks is killed, and restarted like one that crashed (what the
    /// systemd watchdog does).
    pub async fn liveness(self: Arc<Self>) {
        let mut failures = 0u32;
        loop {
            tokio::time::sleep(self.settings.health.interval.0).await;
            if self.shutting_down.load(Ordering::SeqCst) {
                return;
            }
            if self.in_window.load(Ordering::SeqCst) {
                failures = 0;
                continue;
            }
            let Some(inst) = self.live().filter(|i| i.exited().is_none()) else {
                continue;
            };
            if let Some((reason, message)) = self.problem(&inst, &mut failures).await {
                *inst.killed_for.lock().expect("lock") = Some(format!("{reason}: {message}"));
                self.say(RunEvent::Unhealthy {
                    commit: inst.commit.clone(),
                    pid: inst.pid,
                    reason,
                    message,
                });
                failures = 0;
                inst.kill_group();
            }
        }
    }

    /// Restart the live release after the longest backoff (a crash loop
    /// that nothing can roll back).
    pub fn restart_live_later(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            let Some(inst) = me.live().filter(|i| i.exited().is_some()) else {
                return;
            };
            // A failure is reported by the switch itself.
            if let Ok(Some(release)) = me.releases.get(&me.git, &inst.commit) {
                let _ = me.switch_boxed(&release, &Cause::new("restart", None)).await;
            }
        });
    }

    /// A process ended. If it was live and nobody asked it to stop, and no
    /// watch window is watching it, restart it with backoff; a crash loop
    /// goes to the daemon.
    async fn on_exit(self: Arc<Self>, inst: Arc<Instance>) {
        let mut how = inst.wait_exit().await;
        if let Some(why) = inst.killed_for.lock().expect("lock").as_deref() {
            how = format!("{how} (killed by graft run: {why})");
        }
        let was_live = self.live().is_some_and(|l| l.id == inst.id);
        if inst.stopping.load(Ordering::SeqCst) || !was_live || self.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        self.forget(&inst, &how);
        if self.in_window.load(Ordering::SeqCst) {
            // The watch window reports it and rolls back.
            return;
        }
        // Each failed restart counts as one more crash, until it works or
        // is a crash loop.
        let mut died = Some(how);
        loop {
            let (count, crash_loop) = {
                let mut c = self.crashes.lock().expect("lock");
                let now = Instant::now();
                c.push_back(now);
                while c
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > self.settings.run.crash_window.0)
                {
                    c.pop_front();
                }
                (c.len() as u32, c.len() as u32 >= self.settings.run.crash_loop)
            };
            let backoff = self
                .settings
                .run
                .restart_backoff
                .0
                .saturating_mul(1 << count.saturating_sub(1).min(5))
                .min(Duration::from_secs(30));
            if let Some(how) = died.take() {
                self.say(RunEvent::Died {
                    commit: inst.commit.clone(),
                    pid: inst.pid,
                    how,
                    restart_in_ms: (!crash_loop).then_some(backoff.as_millis() as u64),
                });
            }
            if crash_loop {
                self.crashes.lock().expect("lock").clear();
                let _ = self.crash_loop.send(inst.commit.clone());
                return;
            }
            tokio::time::sleep(backoff).await;
            if self.shutting_down.load(Ordering::SeqCst) || self.live().is_none_or(|l| l.id != inst.id) {
                return;
            }
            let release = Box::pin(self.release_or_rebuild(&inst.commit, false)).await;
            match release {
                // A failed restart is reported by the switch itself.
                Ok(release) => {
                    if self
                        .switch_boxed(&release, &Cause::new("restart", None))
                        .await
                        .is_ok()
                    {
                        return;
                    }
                }
                Err(e) => {
                    self.say(RunEvent::NotSwitched {
                        cause: "restart".into(),
                        upgrade: None,
                        commit: inst.commit.clone(),
                        reason: "no_release".into(),
                        message: format!("its release cannot be made: {e}"),
                    });
                    return;
                }
            }
        }
    }

    /// Stop everything (graft run is shutting down).
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let all: Vec<Arc<Instance>> = self.instances.lock().expect("lock").clone();
        for inst in all {
            self.prepare(&inst).await;
            self.stop(&inst, true).await;
        }
    }
}

/// The last `lines` lines of a log file.
pub fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
