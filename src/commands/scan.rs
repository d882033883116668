//! `graft scan [PATH]`: analyse the repo (or part of it), store the scan and
//! its suggestions in the ledger, and print a summary, the whole result
//! (`--json`) or SARIF (`--sarif`). `--fail-on RISK` makes the exit code
//! say whether a finding at or above that risk exists.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use console::style;
use graft_config::Config;
use graft_ledger::Ledger;
use graft_pipeline::workspace::GRAFT_DIR;
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
    let target = Target::of(ctx, args.path.as_deref())?;
    let root = target.root.clone();
    let config = if Config::path_in(&root).exists() {
        Config::load(&root).map_err(|e| CliError::new(EXIT_PRECONDITION, "invalid_config", e.to_string()))?
    } else {
        Config::default()
    };
    let scope = target.scope.clone();
    let state = target.state_dir();

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
            target.git.then(|| {
                graft_pipeline::git::Git::new(&root)
                    .try_rev_parse("HEAD")
                    .ok()
                    .flatten()
            })
        });
        let opening = s.spawn(|| {
            let ledger = state.open_ledger(&target, config)?;
            let commit = head
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
                .flatten();
            Ok::<_, CliError>((ledger, commit))
        });
        let report = graft_scan::scan_with(
            &root,
            &scan_config,
            &ScanOptions {
                scope: scope.as_deref(),
                cache: !args.no_cache && !matches!(state, State::Nowhere),
                graft_dir: state.dir(),
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

    let (ledger, commit) = opened?;
    trace("scanned, ledger open");
    if let Some(ledger) = &ledger {
        graft_scan::store(ledger, &report, commit, &scan_config)?;
    }
    trace("stored");

    if args.sarif {
        print_json(&graft_scan::to_sarif(&report));
    } else if ctx.json {
        print_json(&report);
    } else {
        print_summary(&report, &target);
        print_where(&target, &state);
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

fn print_summary(r: &ScanReport, target: &Target) {
    let s = &r.summary;
    let scope = r.scope.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
    // Paths are relative to the root: named when it is not where we are.
    let root = if target.is_here() {
        String::new()
    } else {
        format!(" of {}", target.root.display())
    };
    println!(
        "{} {}{root}{scope}  {} files, {} lines in {}",
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
        let place = sug
            .files
            .first()
            .map(|f| format!("{f}:{}  ", sug.start_line))
            .unwrap_or_default();
        println!(
            "  {}  p{:<2} {:<6}  {place}{}",
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
}

/// Where the scan went, and how a suggestion becomes an upgrade from here.
fn print_where(target: &Target, state: &State) {
    let kept = match state {
        State::Repo if target.git => "the ledger keeps them all".to_string(),
        State::Repo => format!("the ledger in {} keeps them all", target.root.join(GRAFT_DIR).display()),
        State::Elsewhere(dir) => format!("the ledger in {} keeps them all", dir.display()),
        State::Nowhere => "this scan was not stored: the folder is read-only and there is no user cache folder ($XDG_CACHE_HOME or $HOME)".to_string(),
    };
    if target.git {
        let repo = if target.is_here() {
            String::new()
        } else {
            format!("-C {} ", target.root.display())
        };
        println!(
            "{} graft {repo}upgrade --suggestion ID turns one into an upgrade; {kept}",
            style("next:").dim()
        );
    } else {
        println!(
            "{} {} is not in a git repository, so a suggestion cannot become an upgrade here (`git init` and a first commit make it one); {kept}",
            style("note:").dim(),
            target.root.display()
        );
    }
}

/// What a scan is of: a git repo (or part of it), or a folder without git.
pub struct Target {
    /// The repo's root, or, outside git, the folder itself (a file's
    /// folder for a file).
    pub root: PathBuf,
    /// The file or folder given, absolute.
    pub scope: Option<PathBuf>,
    /// Whether `root` is a git work tree (only then can a suggestion
    /// become an upgrade).
    pub git: bool,
}

impl Target {
    /// PATH (relative to the current directory), else `-C DIR` or the
    /// current directory: in the git repo that holds it, whichever repo
    /// that is, or, outside git, as itself.
    fn of(ctx: &Ctx, path: Option<&Path>) -> Result<Target, CliError> {
        let (given, at) = match path {
            Some(p) => {
                let abs = std::env::current_dir()
                    .unwrap_or_else(|_| PathBuf::from("."))
                    .join(p);
                (Some(p), abs)
            }
            None => (None, ctx.repo.clone()),
        };
        let at = at.canonicalize().map_err(|e| {
            let shown = given.unwrap_or(&ctx.repo).display();
            CliError::new(
                EXIT_USAGE,
                "no_such_path",
                match e.kind() {
                    std::io::ErrorKind::NotFound => format!("{shown}: no such file or folder"),
                    _ => format!("{shown}: cannot be read ({e})"),
                },
            )
        })?;
        let folder = if at.is_dir() {
            at.clone()
        } else {
            at.parent().map_or_else(|| at.clone(), Path::to_path_buf)
        };
        let scope = given.map(|_| at.clone());
        Ok(match graft_pipeline::workspace::find_root(&folder) {
            Ok(root) => Target {
                root,
                scope,
                git: true,
            },
            Err(_) => Target {
                root: folder,
                scope,
                git: false,
            },
        })
    }

    /// Whether the current directory is in the root (paths of the report
    /// then read as they are, and `graft upgrade` acts on its repo).
    fn is_here(&self) -> bool {
        std::env::current_dir()
            .ok()
            .and_then(|d| d.canonicalize().ok())
            .is_some_and(|d| d.starts_with(&self.root))
    }

    /// Where the cache and the ledger go: the root's `.graft/`, else (a
    /// root that cannot be written) a folder of the user's cache.
    fn state_dir(&self) -> State {
        let own = self.root.join(GRAFT_DIR);
        if writable(&own) {
            return State::Repo;
        }
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
        let name = self
            .root
            .file_name()
            .map_or_else(|| "root".into(), |n| n.to_string_lossy());
        let hash = xxhash_rust::xxh3::xxh3_64(self.root.as_os_str().as_encoded_bytes());
        match cache.map(|c| c.join("graft").join("scan").join(format!("{name}-{hash:016x}"))) {
            Some(dir) if writable(&dir) => State::Elsewhere(dir),
            _ => State::Nowhere,
        }
    }
}

/// Where a scan keeps its cache and its ledger.
enum State {
    /// The root's own `.graft/`.
    Repo,
    /// A folder of the user's cache: the root cannot be written.
    Elsewhere(PathBuf),
    /// Nowhere: the scan runs without a cache and is not stored.
    Nowhere,
}

impl State {
    /// The folder to cache in (None: the root's `.graft/`, or no cache).
    fn dir(&self) -> Option<&Path> {
        match self {
            State::Elsewhere(d) => Some(d),
            _ => None,
        }
    }

    /// The ledger to store the scan in: the repo's (its `.graft/` kept out
    /// of git as every command keeps it), one beside the cache, or none.
    fn open_ledger(&self, target: &Target, config: Config) -> Result<Option<Ledger>, CliError> {
        let root = &target.root;
        match self {
            State::Repo if target.git => Ok(Some(
                graft_pipeline::Workspace::open_with(root.clone(), config)?.ledger,
            )),
            State::Repo => Ok(Some(Ledger::open(&root.join(GRAFT_DIR).join("ledger.db"))?)),
            State::Elsewhere(dir) => Ok(Some(Ledger::open(&dir.join("ledger.db"))?)),
            State::Nowhere => Ok(None),
        }
    }
}

/// Whether files can be made in `dir` (made if missing).
fn writable(dir: &Path) -> bool {
    std::fs::create_dir_all(dir).is_ok() && tempfile::tempfile_in(dir).is_ok()
}
