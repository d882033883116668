//! `graft scan [PATH]`: analyse the repo (or part of it), store the scan and
//! its suggestions in the ledger, and print a summary, the whole result
//! (`--json`) or SARIF (`--sarif`). `--fail-on RISK` makes the exit code
//! say whether a finding at or above that risk exists.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use console::style;
use graft_config::Config;
use graft_scan::{Risk, ScanOptions, ScanProgress, ScanReport};
use indicatif::{ProgressBar, ProgressStyle};

use super::Ctx;
use crate::cli::ScanArgs;
use crate::commands::status::truncate;
use crate::output::{CliError, EXIT_FINDINGS, EXIT_OK, EXIT_PRECONDITION, EXIT_USAGE, print_json, seconds};

/// How many suggestions the human summary lists.
const LISTED: usize = 15;

pub fn run(ctx: &Ctx, args: &ScanArgs) -> Result<i32, CliError> {
    let started = std::time::Instant::now();
    let trace = |phase: &str| graft_scan::trace(phase, started);
    let fail_on =
        match &args.fail_on {
            None => None,
            Some(r) => Some(Risk::parse(r).ok_or_else(|| {
                CliError::usage(format!("--fail-on {r}: expected one of low, medium, high"))
            })?),
        };
    let root = graft_pipeline::workspace::find_root(&ctx.repo)?;
    let config = if Config::path_in(&root).exists() {
        Config::load(&root).map_err(|e| CliError::new(EXIT_PRECONDITION, "invalid_config", e.to_string()))?
    } else {
        Config::default()
    };
    let scope = match &args.path {
        None => None,
        Some(p) => {
            let abs = if p.is_absolute() {
                p.clone()
            } else {
                std::env::current_dir()
                    .unwrap_or_else(|_| PathBuf::from("."))
                    .join(p)
            };
            if !abs.exists() {
                return Err(CliError::new(
                    EXIT_USAGE,
                    "no_such_path",
                    format!("{}: no such file or folder", p.display()),
                ));
            }
            Some(abs)
        }
    };

    let machine = ctx.json || args.sarif;
    // A spinner while files are listed, a bar once their number is known.
    let spinner = || {
        ProgressStyle::with_template("  {spinner:.cyan} {msg} {elapsed:.dim}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
    };
    let bar = (!machine && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(spinner());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar.set_message("listing files");
        bar
    });
    let counting = AtomicBool::new(false);
    let progress = |p: ScanProgress| {
        let Some(bar) = &bar else { return };
        match p {
            ScanProgress::Discovering => bar.set_message("listing files"),
            ScanProgress::Parsing { done, total } => {
                if !counting.swap(true, Ordering::Relaxed) {
                    bar.set_style(
                        ProgressStyle::with_template(
                            "  {spinner:.cyan} parsing {bar:30.cyan/dim} {pos}/{len} files {elapsed:.dim}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                }
                bar.set_length(total);
                bar.set_position(done);
            }
            ScanProgress::Linking => {
                bar.set_style(spinner());
                bar.set_message("imports, clones, suggestions");
            }
        }
    };
    // The ledger is opened and HEAD read (git runs as child processes,
    // each on its own thread) while the scan runs: on a warm scan that
    // was a third of the time.
    trace("root and config found");
    let scan_config = config.scan.clone();
    let (report, opened) = std::thread::scope(|s| {
        let head = s.spawn(|| {
            graft_pipeline::git::Git::new(&root)
                .try_rev_parse("HEAD")
                .ok()
                .flatten()
        });
        let opening = s.spawn(|| {
            let ws = graft_pipeline::Workspace::open_with(root.clone(), config)?;
            let commit = head.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            Ok::<_, CliError>((ws, commit))
        });
        let report = graft_scan::scan_with(
            &root,
            &scan_config,
            &ScanOptions {
                scope: scope.as_deref(),
                cache: !args.no_cache,
                progress: &progress,
            },
        );
        let opened = opening.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (report, opened)
    });
    let report = report.map_err(|e| CliError::new(EXIT_USAGE, "bad_scope", e.to_string()))?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }

    let (ws, commit) = opened?;
    trace("scanned, ledger open");
    graft_scan::store(&ws.ledger, &report, commit, &ws.config.scan)?;
    trace("stored");

    if args.sarif {
        print_json(&graft_scan::to_sarif(&report));
    } else if ctx.json {
        print_json(&report);
    } else {
        print_summary(&report);
    }
    let failing = fail_on.map(|level| report.suggestions.iter().filter(|s| s.risk >= level).count());
    // The process ends when this command returns: freeing the report's
    // many small allocations one by one would only delay that (~5 ms of
    // a re-scan of syn + tokio).
    std::mem::forget(report);
    match (fail_on, failing) {
        (Some(level), Some(n)) if n > 0 => {
            if !machine {
                eprintln!(
                    "{} {n} finding(s) at or above risk {}",
                    style("fail:").red().bold(),
                    level.as_str()
                );
            }
            Ok(EXIT_FINDINGS)
        }
        _ => Ok(EXIT_OK),
    }
}

fn print_summary(r: &ScanReport) {
    let s = &r.summary;
    let scope = r.scope.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
    println!(
        "{} {}{scope}  {} files, {} lines in {}",
        style("scan").bold(),
        r.id,
        s.modules_analysed,
        s.lines,
        seconds(s.duration_ms)
    );
    println!(
        "modules analysed {}, functions {}, circular imports {}, clone groups {}, suggestions {}",
        s.modules_analysed, s.functions, s.circular_imports, s.clone_groups, s.suggestions
    );
    let k = &s.skipped;
    let mut skipped = Vec::new();
    for (n, what) in [
        (k.not_utf8, "not UTF-8"),
        (k.too_large, "too large"),
        (k.minified, "minified"),
        (k.unreadable, "unreadable"),
        (k.symlink_loops, "symbolic link loop"),
    ] {
        if n > 0 {
            skipped.push(format!("{n} {what}"));
        }
    }
    if !skipped.is_empty() {
        println!("skipped {}", skipped.join(", "));
    }
    if s.syntax_errors > 0 {
        println!(
            "syntax errors in {} file(s), analysed as far as they parse",
            s.syntax_errors
        );
    }
    for p in r.problems.iter().take(5) {
        println!(
            "  {} {}  {}",
            style("!").yellow(),
            p.path,
            style(&p.message).dim()
        );
    }
    if r.problems.len() > 5 {
        println!("  … and {} more (graft scan --json)", r.problems.len() - 5);
    }
    if r.suggestions.is_empty() {
        println!("nothing to suggest: every figure is within its limit");
        return;
    }
    println!("{}", style("suggestions, highest priority first").bold());
    for sug in r.suggestions.iter().take(LISTED) {
        let risk = match sug.risk {
            Risk::High => style(sug.risk.as_str()).red(),
            Risk::Medium => style(sug.risk.as_str()).yellow(),
            Risk::Low => style(sug.risk.as_str()).dim(),
        };
        println!(
            "  {}  p{:<2} {:<6}  {}",
            sug.id,
            sug.priority,
            risk,
            truncate(&sug.title, 90)
        );
    }
    if r.suggestions.len() > LISTED {
        println!(
            "  … and {} more (graft scan --json)",
            r.suggestions.len() - LISTED
        );
    }
    println!(
        "{} graft upgrade --suggestion ID turns one into an upgrade; the ledger keeps them all",
        style("next:").dim()
    );
}
