//! `graft run`: supervise the target until Ctrl-C or SIGTERM.

use console::style;

use super::Ctx;
use crate::output::{CliError, EXIT_INTERNAL, EXIT_OK, EXIT_PRECONDITION};
use graft_supervisor::SupervisorError;

pub fn run(ctx: &Ctx) -> Result<i32, CliError> {
    let root = graft_pipeline::workspace::find_root(&ctx.repo)?;
    let json = ctx.json;
    let generators = generator_factory();
    // The control plane: webhooks told of every upgrade, and the HTTP API.
    // (Opening the workspace makes `.graft/` and the ledger on a first run.)
    let config = graft_pipeline::Workspace::open(&root)?.config.clone();
    let notifier = graft_api::webhooks::Notifier::open(&root, &config)
        .map_err(|e| CliError::new(EXIT_INTERNAL, "webhooks", e))?;
    let wake = notifier.as_ref().map(|n| n.wake());
    let observer: std::sync::Arc<dyn graft_pipeline::Observer> = match notifier {
        Some(n) => n,
        None => std::sync::Arc::new(graft_pipeline::NullObserver),
    };
    let logins = graft_api::dashboard::LoginLinks::new();
    let stdout = json.then(JsonLines::start);
    let say: graft_supervisor::report::Say = {
        let stdout = stdout.clone();
        std::sync::Arc::new(move |e: &graft_supervisor::report::RunEvent| {
            eprintln!("{}", e.line());
            if let Some(out) = &stdout {
                out.event(serde_json::to_string(e).unwrap_or_default());
            }
        })
    };
    let ext = graft_supervisor::daemon::Extensions {
        generators,
        observer,
        analyzer: super::analyzer_sync(),
        mount: Some(graft_api::mount(
            root.clone(),
            config,
            super::analyzer::scan_hook(),
            wake,
            logins.clone(),
        )),
        say: Some(say),
    };
    let result = graft_supervisor::daemon::run(&root, ext, |s| {
        // The dashboard's one-time sign-in link: printed, never in
        // `endpoints` (which `GET /v1/status` shows to anyone).
        let login = s.endpoints.get("api").map(|api| logins.link(api));
        for r in &s.recovered {
            eprintln!("graft run: recovered {} ({})", r.id, r.action);
        }
        eprintln!(
            "{} serving {} (pid {}){}",
            style("graft run:").bold(),
            &s.live_commit[..s.live_commit.len().min(10)],
            s.instance_pid,
            if s.plain_mode {
                " in plain mode".to_string()
            } else {
                format!(" on {}", s.sockets.join(", "))
            }
        );
        if s.plain_mode {
            eprintln!(
                "  plain mode (no [[run.listen]]): each switch stops the old release before starting the new one, so nothing serves for that moment (its drain and the new one's start); give Graft the listening sockets with [[run.listen]] for switches with no gap"
            );
        }
        eprintln!(
            "  control socket {}; agent API {}",
            s.control_socket.display(),
            s.agent_url
        );
        if let Some(api) = s.endpoints.get("api") {
            eprintln!(
                "  HTTP API {api} (OpenAPI at {api}/openapi.json; requests signed with the secret in {})",
                s.endpoints.get("api_secret").map(String::as_str).unwrap_or("?")
            );
            eprintln!("  dashboard {api}/ (sign in with the secret)");
        }
        if let Some(link) = &login {
            eprintln!("  one-time dashboard sign-in link (10 minutes): {link}");
        }
        eprintln!(
            "  upgrades from another shell go through it: `graft upgrade --patch FILE`; `graft logs -f`"
        );
        eprintln!("  Ctrl-C stops it (releases drain first)");
        if let Some(out) = &stdout {
            // One line, so a script can wait for it; written after the
            // lines above, so that a script that waited for it finds them.
            let mut v = serde_json::to_value(s).unwrap_or_default();
            if let Some(link) = &login {
                v["dashboard_login"] = serde_json::json!(link);
            }
            out.started(serde_json::to_string(&v).unwrap_or_default());
        }
    });
    match result {
        Ok(()) => {
            if let Some(out) = stdout {
                out.event(serde_json::json!({ "stopped": true }).to_string());
                out.finish();
            }
            Ok(EXIT_OK)
        }
        Err(e @ (SupervisorError::Setup(_) | SupervisorError::Release(_))) => {
            Err(CliError::new(EXIT_PRECONDITION, "run_setup", e.to_string()))
        }
        Err(SupervisorError::Pipeline(e)) => Err(e.into()),
        Err(e) => Err(CliError::new(EXIT_INTERNAL, "run", e.to_string())),
    }
}

/// Builds the provider of a request that is not a patch or edits, the way
/// `graft upgrade` does, with this process's environment (API keys). For
/// `graft run` and `graft mcp`.
pub fn generator_factory() -> graft_supervisor::wire::GeneratorFactory {
    std::sync::Arc::new(super::provider::CliGenerators)
}

/// `graft run --json`'s standard output: the start object first (a
/// script waits for that line), then one JSON object per line for each
/// thing reported, in order. A thread writes them, so a reader that is
/// slow (or gone) never holds up the supervisor; events reported before
/// the start line (the first release's switch, recovery) wait for it.
#[derive(Clone)]
struct JsonLines {
    tx: std::sync::mpsc::Sender<Line>,
    done: std::sync::Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

enum Line {
    Started(String),
    Event(String),
    End,
}

impl JsonLines {
    fn start() -> JsonLines {
        let (tx, rx) = std::sync::mpsc::channel::<Line>();
        let writer = std::thread::spawn(move || {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let mut waiting = Some(Vec::new());
            for line in rx {
                let text = match (line, &mut waiting) {
                    (Line::Event(e), Some(early)) => {
                        early.push(e);
                        continue;
                    }
                    (Line::Started(s), w) => {
                        let early = w.take().unwrap_or_default();
                        std::iter::once(s).chain(early).collect::<Vec<_>>().join("\n")
                    }
                    (Line::Event(e), None) => e,
                    (Line::End, _) => return,
                };
                // A reader that went away is not graft run's problem.
                let _ = writeln!(out, "{text}").and_then(|_| out.flush());
            }
        });
        JsonLines {
            tx,
            done: std::sync::Arc::new(std::sync::Mutex::new(Some(writer))),
        }
    }

    fn started(&self, line: String) {
        let _ = self.tx.send(Line::Started(line));
    }

    fn event(&self, line: String) {
        let _ = self.tx.send(Line::Event(line));
    }

    /// Write what is left (the last line included), then return.
    fn finish(self) {
        let _ = self.tx.send(Line::End);
        if let Some(h) = self.done.lock().expect("lock").take() {
            let _ = h.join();
        }
    }
}
