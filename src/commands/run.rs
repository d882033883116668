//! `graft run`: supervise the target until Ctrl-C or SIGTERM.

use console::style;

use super::Ctx;
use crate::output::{CliError, EXIT_INTERNAL, EXIT_OK, EXIT_PRECONDITION, print_json};
use graft_supervisor::SupervisorError;

pub fn run(ctx: &Ctx) -> Result<i32, CliError> {
    let root = graft_pipeline::workspace::find_root(&ctx.repo)?;
    let json = ctx.json;
    // Requests that need a provider reach graft run too; it builds them the
    // way `graft upgrade` does, with graft run's environment (API keys).
    let generators: graft_supervisor::wire::GeneratorFactory = std::sync::Arc::new(|ws, q, body| {
        let spec = super::provider::Spec {
            autofix: q.kind == "autofix",
            suggestion: q.suggestion.clone(),
            instruction: (q.kind == "instruction").then(|| String::from_utf8_lossy(body).into_owned()),
            provider: q.provider.clone(),
        };
        super::provider::generator(ws, &spec).map_err(|e| graft_supervisor::wire::ErrorLine {
            code: e.reason.clone(),
            class: None,
            message: e.message,
        })
    });
    let result = graft_supervisor::daemon::run(&root, graft_supervisor::daemon::Extensions::generators(generators), |s| {
        if json {
            // One line, so a script can wait for it.
            println!("{}", serde_json::to_string(s).unwrap_or_default());
            return;
        }
        for r in &s.recovered {
            eprintln!("graft run: recovered {} ({})", r.id, r.action);
        }
        eprintln!(
            "{} serving {} (pid {}){}",
            style("graft run:").bold(),
            &s.live_commit[..s.live_commit.len().min(10)],
            s.instance_pid,
            if s.sockets.is_empty() {
                " in plain mode (no sockets)".to_string()
            } else {
                format!(" on {}", s.sockets.join(", "))
            }
        );
        eprintln!(
            "  control socket {}; agent API {}",
            s.control_socket.display(),
            s.agent_url
        );
        eprintln!(
            "  upgrades from another shell go through it: `graft upgrade --patch FILE`; `graft logs -f`"
        );
        eprintln!("  Ctrl-C stops it (releases drain first)");
    });
    match result {
        Ok(()) => {
            if ctx.json {
                print_json(&serde_json::json!({ "stopped": true }));
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
