//! `graft init`: write a commented graft.toml that suits the repo, and say
//! what the user must still do.

mod python;

use graft_config::{Config, NodeProbe, Probe, cargo_package, detect_ecosystems, recipes, render_template};
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
    let python = if ecosystems.contains(&graft_config::Ecosystem::Python) {
        python::probe(&root, &on_path)
    } else {
        Default::default()
    };
    let probe = Probe {
        ecosystems: &ecosystems,
        branch: &branch,
        python,
        node: NodeProbe::read(&root),
        cargo_bin: cargo_package(&root),
        installed: &on_path,
    };
    let file = render_template(&probe);
    // What we write must be what we can read.
    let config = Config::parse(&path, &file.text)
        .map_err(|e| CliError::new(1, "internal", format!("the generated graft.toml is invalid: {e}")))?;
    std::fs::write(&path, &file.text)
        .map_err(|e| CliError::new(1, "io", format!("cannot write {}: {e}", path.display())))?;
    // Creates .graft/, excludes it from git and opens the ledger.
    graft_pipeline::Workspace::open_with(root.clone(), config.clone())?;
    let recipes: Vec<&str> = recipes::recipes(&ecosystems, &probe.python.env, None, None)
        .iter()
        .map(|r| r.name)
        .collect();
    if ctx.json {
        print_json(&json!({
            "config": path,
            "ecosystems": ecosystems.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
            "branch": branch,
            "python_env": probe.python.env.describe(),
            "gates": config.gates.iter().map(|g| json!({"name": g.name.as_str(), "kind": g.kind, "command": g.command, "required": g.required})).collect::<Vec<_>>(),
            "recipes": recipes,
            "notes": file.notes,
        }));
        return Ok(EXIT_OK);
    }
    println!("wrote {}", path.display());
    if ecosystems.is_empty() {
        println!("no known ecosystem found: add your gates to graft.toml");
    } else {
        let names: Vec<&str> = ecosystems.iter().map(|e| e.as_str()).collect();
        println!("detected: {}", names.join(", "));
    }
    println!("upgrades land on: {branch}");
    let gates: Vec<String> = config
        .gates
        .iter()
        .map(|g| format!("{} ({})", g.name, g.command))
        .collect();
    println!(
        "gates: parse (built in){}{}",
        if gates.is_empty() { "" } else { ", " },
        gates.join(", ")
    );
    for note in &file.notes {
        println!("{note}");
    }
    println!(
        "to serve it with `graft run`: uncomment a [run] recipe in graft.toml ({})",
        recipes.join(", ")
    );
    println!("next: commit graft.toml, then try `graft upgrade --patch FILE --dry-run`");
    Ok(EXIT_OK)
}

/// Whether a program is on PATH.
fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(paths) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&paths).any(|dir| {
        std::fs::metadata(dir.join(tool)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}
