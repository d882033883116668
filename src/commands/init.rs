//! `graft init`: write a commented graft.toml that suits the repo.

use graft_config::{Config, detect_ecosystems, render_template};
use serde_json::json;

use super::Ctx;
use crate::output::{CliError, EXIT_OK, EXIT_PRECONDITION, print_json};

pub fn run(ctx: &Ctx, force: bool) -> Result<i32, CliError> {
    let root = graft_pipeline::workspace::find_root(&ctx.repo)?;
    let path = Config::path_in(&root);
    if path.exists() && !force {
        return Err(CliError::new(
            EXIT_PRECONDITION,
            "config_exists",
            format!("{} already exists; pass --force to overwrite it", path.display()),
        ));
    }
    let ecosystems = detect_ecosystems(&root);
    let git = graft_pipeline::git::Git::new(&root);
    let branch = git.current_branch()?.unwrap_or_else(|| "main".to_string());
    let scripts = node_scripts(&root);
    let text = render_template(&ecosystems, &branch, &scripts, &installed);
    // What we write must be what we can read.
    let config = Config::parse(&path, &text)
        .map_err(|e| CliError::new(1, "internal", format!("the generated graft.toml is invalid: {e}")))?;
    std::fs::write(&path, &text)
        .map_err(|e| CliError::new(1, "io", format!("cannot write {}: {e}", path.display())))?;
    // Creates .graft/, excludes it from git and opens the ledger.
    graft_pipeline::Workspace::open_with(root.clone(), config.clone())?;
    let gates: Vec<String> = config
        .gates
        .iter()
        .map(|g| format!("{} ({})", g.name, g.command))
        .collect();
    if ctx.json {
        print_json(&json!({
            "config": path,
            "ecosystems": ecosystems.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
            "branch": branch,
            "gates": config.gates.iter().map(|g| json!({"name": g.name.as_str(), "kind": g.kind, "command": g.command, "required": g.required})).collect::<Vec<_>>(),
        }));
    } else {
        println!("wrote {}", path.display());
        if ecosystems.is_empty() {
            println!("no known ecosystem found: add your gates to graft.toml");
        } else {
            let names: Vec<&str> = ecosystems.iter().map(|e| e.as_str()).collect();
            println!("detected: {}", names.join(", "));
        }
        println!("upgrades land on: {branch}");
        println!(
            "gates: parse (built in){}{}",
            if gates.is_empty() { "" } else { ", " },
            gates.join(", ")
        );
        println!("next: commit graft.toml, then try `graft upgrade --patch FILE --dry-run`");
    }
    Ok(EXIT_OK)
}

/// Whether a tool a gate needs is installed.
fn installed(tool: &str) -> bool {
    match tool {
        // Run as `python3 -m pytest`, so it must be importable, not on PATH.
        "pytest" => std::process::Command::new("python3")
            .args(["-c", "import pytest"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        _ => on_path(tool),
    }
}

fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(paths) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&paths).any(|dir| {
        std::fs::metadata(dir.join(tool)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The `scripts` keys of package.json, if there is one.
fn node_scripts(root: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(root.join("package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            v.get("scripts")
                .and_then(|s| s.as_object())
                .map(|o| o.keys().cloned().collect())
        })
        .unwrap_or_default()
}
