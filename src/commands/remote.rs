//! `--url`: upgrade, rollback, cancel, status and show against a `graft run`
//! reached through its HTTP API, every changing request signed with the
//! shared secret.
//!
//! The secret is `$GRAFT_API_SECRET`, else the file `$GRAFT_API_SECRET_FILE`
//! (mode 0600), else, inside a repo, the same one `graft run` uses there.

use console::style;
use graft_api::client::{ClientError, HttpClient};
use graft_api::secret::{self, Secret};
use graft_supervisor::wire::Line;
use serde_json::{Value, json};

use super::Ctx;
use crate::output::{
    self, CliError, EXIT_INTERNAL, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, Progress, print_json,
};

pub fn client(ctx: &Ctx, url: &str) -> Result<HttpClient, CliError> {
    let secret = find_secret(ctx)?;
    HttpClient::new(url, secret).map_err(CliError::usage)
}

fn find_secret(ctx: &Ctx) -> Result<Secret, CliError> {
    let bad = |e: String| CliError::new(EXIT_USAGE, "no_secret", e);
    if let Ok(v) = std::env::var("GRAFT_API_SECRET")
        && !v.trim().is_empty()
    {
        return Secret::new(&v, "$GRAFT_API_SECRET").map_err(bad);
    }
    if let Ok(p) = std::env::var("GRAFT_API_SECRET_FILE")
        && !p.trim().is_empty()
    {
        return secret::read_file(std::path::Path::new(&p)).map_err(bad);
    }
    let local = graft_pipeline::workspace::find_root(&ctx.repo)
        .ok()
        .and_then(|root| graft_config::Config::load(&root).ok().map(|c| (root, c)));
    match local {
        Some((root, config)) => secret::load(&root, &config.api, false).map(|(s, _)| s).map_err(bad),
        None => Err(bad(
            "--url needs the API's shared secret: set GRAFT_API_SECRET, or GRAFT_API_SECRET_FILE (a file with mode 0600)"
                .into(),
        )),
    }
}

fn cli_error(e: ClientError) -> CliError {
    match e {
        ClientError::Api {
            status,
            code,
            message,
            class,
            ..
        } => {
            let class: Option<graft_pipeline::FailureClass> =
                class.and_then(|c| serde_json::from_value(json!(c)).ok());
            let exit = match (status, class) {
                (_, Some(c)) => output::exit_code(c),
                (404, _) => EXIT_NOT_FOUND,
                (400 | 413 | 422, _) => EXIT_USAGE,
                (409, _) => output::EXIT_PRECONDITION,
                _ => EXIT_INTERNAL,
            };
            CliError::new(exit, &code, message)
        }
        other => CliError::new(EXIT_INTERNAL, "daemon", other.to_string()),
    }
}

/// `graft upgrade …` through the API: streams progress, then the report.
pub fn upgrade(ctx: &Ctx, http: &HttpClient, request: Value) -> Result<i32, CliError> {
    let progress = Progress::new(ctx.json);
    if !ctx.json {
        eprintln!("graft: sending the upgrade to graft run at {}", http.base());
    }
    let mut report = None;
    let mut error = None;
    http.stream("POST", "/v1/upgrades", &request, &mut |line| match line {
        Line::Event(e) => graft_pipeline::Observer::on_event(&progress, &e),
        Line::Report(v) => report = serde_json::from_value::<graft_pipeline::UpgradeReport>(v).ok(),
        Line::Error(e) => error = Some(e),
        Line::Rollback(_) => {}
    })
    .map_err(cli_error)?;
    progress.finish();
    if let Some(e) = error {
        return Err(CliError::new(
            e.class.map_or(EXIT_INTERNAL, output::exit_code),
            &e.code,
            e.message,
        ));
    }
    let report = report.ok_or_else(|| {
        CliError::new(
            EXIT_INTERNAL,
            "daemon",
            "graft run ended the answer without a report",
        )
    })?;
    if ctx.json {
        print_json(&report);
    } else {
        super::upgrade::print_report(&report);
    }
    Ok(report
        .failure
        .as_ref()
        .map_or(EXIT_OK, |f| output::exit_code(f.class)))
}

/// `graft rollback ID` through the API.
pub fn rollback(
    ctx: &Ctx,
    http: &HttpClient,
    id: &str,
) -> Result<graft_pipeline::rollback::RollbackReport, CliError> {
    let progress = Progress::new(ctx.json);
    let mut report = None;
    let mut error = None;
    let body = json!({ "requested_by": super::upgrade::requested_by() });
    http.stream(
        "POST",
        &format!("/v1/upgrades/{id}/rollback"),
        &body,
        &mut |line| match line {
            Line::Event(e) => graft_pipeline::Observer::on_event(&progress, &e),
            Line::Rollback(v) => report = serde_json::from_value(v).ok(),
            Line::Error(e) => error = Some(e),
            Line::Report(_) => {}
        },
    )
    .map_err(cli_error)?;
    progress.finish();
    if let Some(e) = error {
        return Err(CliError::new(
            e.class.map_or(EXIT_INTERNAL, output::exit_code),
            &e.code,
            e.message,
        ));
    }
    report.ok_or_else(|| {
        CliError::new(
            EXIT_INTERNAL,
            "daemon",
            "graft run ended the answer without a report",
        )
    })
}

/// `graft show ID` through the API: the record `GET /v1/upgrades/{id}`
/// answers.
pub fn show(
    http: &HttpClient,
    id: &graft_ledger::UpgradeId,
) -> Result<graft_ledger::UpgradeRecord, CliError> {
    let v = http
        .json("GET", &format!("/v1/upgrades/{id}"), None)
        .map_err(cli_error)?;
    serde_json::from_value(v).map_err(|e| {
        CliError::new(
            EXIT_INTERNAL,
            "daemon",
            format!(
                "the upgrade graft run at {} sent is not one this graft reads ({e}); are both the same version?",
                http.base()
            ),
        )
    })
}

/// `graft cancel ID` through the API.
pub fn cancel(ctx: &Ctx, http: &HttpClient, id: &str) -> Result<i32, CliError> {
    let body = json!({ "requested_by": super::upgrade::requested_by() });
    let v = http
        .json("POST", &format!("/v1/upgrades/{id}/cancel"), Some(&body))
        .map_err(cli_error)?;
    if ctx.json {
        print_json(&v["cancel"]);
    } else {
        println!(
            "{} {id}: {} ({})",
            style("cancel").bold(),
            v["cancel"]["state"].as_str().unwrap_or("?"),
            v["cancel"]["note"].as_str().unwrap_or("")
        );
    }
    Ok(EXIT_OK)
}

/// `graft status` through the API.
pub fn status(ctx: &Ctx, http: &HttpClient) -> Result<i32, CliError> {
    let v = http.json("GET", "/v1/status", None).map_err(cli_error)?;
    if ctx.json {
        print_json(&v);
        return Ok(EXIT_OK);
    }
    let s = &v["supervisor"];
    println!(
        "{} {}  at {}",
        style("target").bold(),
        v["target"].as_str().unwrap_or("?"),
        http.base()
    );
    println!(
        "{} release {} pid {}{}",
        style("running").bold(),
        s["live_commit"].as_str().map(output::short).unwrap_or("?"),
        s["pid"],
        if s["in_watch_window"].as_bool() == Some(true) {
            "  (in its watch window)"
        } else {
            ""
        }
    );
    for (label, key) in [
        ("in progress", "in_progress"),
        ("pending", "pending"),
        ("recent", "recent"),
    ] {
        let list = v[key].as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            continue;
        }
        println!("{}", style(label).bold());
        for u in list {
            println!(
                "  {}  {:<40}  {}",
                u["id"].as_str().unwrap_or("?"),
                super::status::truncate(u["title"].as_str().unwrap_or(""), 40),
                u["state"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(EXIT_OK)
}
