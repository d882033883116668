//! The analyzer behind `graft scan`: one parallel pass over a repository
//! that measures every function (lines, cyclomatic complexity as lizard
//! counts it, cognitive complexity, parameters, nesting), every class or
//! type (methods, lines, fields), resolves imports into a graph (cycles,
//! fan-in, fan-out, instability) and finds duplicated code, then turns
//! each finding into a [`Suggestion`] the pipeline can act on.
//!
//! ```no_run
//! let config = graft_config::ScanConfig::default();
//! let report = graft_scan::scan(std::path::Path::new("."), &config, None, &|_| {}).unwrap();
//! println!("{} suggestions", report.suggestions.len());
//! ```
//!
//! Languages: Python, Rust, JavaScript, TypeScript, TSX and Go, parsed with
//! tree-sitter ([`graft_lang`]). Files are walked with `.gitignore` and the
//! `[scan] exclude` globs honoured, then read, parsed and reduced to
//! [`FileFacts`] in parallel; each tree is dropped as soon as its file is
//! measured, so memory holds facts, not trees. Facts are cached by content
//! hash under `.graft/`, so a re-scan parses only changed files.
//!
//! Bad input never stops a scan: files that are not UTF-8, too large,
//! minified, unreadable or symbolic-link loops are counted and reported as
//! [`Problem`]s; files with syntax errors are analysed as far as the
//! parser recovered and reported too.
//!
//! This crate knows nothing of the upgrade pipeline; it stores a scan in
//! the ledger through [`store`].

mod analyze;
mod cache;
mod clones;
mod graph;
mod model;
mod rules;
mod sarif;
mod suggest;
mod walk;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use graft_lang::{Lang, parser_for};
use rayon::prelude::*;

pub use graft_config::ScanConfig;
pub use model::*;
pub use sarif::to_sarif;
pub use suggest::{risk, scan_of_suggestion};

/// Where a scan is, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanProgress {
    /// Listing files.
    Discovering,
    /// `done` of `total` files read and parsed.
    Parsing { done: u64, total: u64 },
    /// Resolving imports, finding clones, making suggestions.
    Linking,
}

/// A scan that could not start. Everything that goes wrong with a single
/// file is a [`Problem`] in the report instead.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{0} does not exist")]
    NoSuchPath(PathBuf),
    #[error("{path} is outside the repository {root}; give a file or folder inside it")]
    OutsideRoot { path: PathBuf, root: PathBuf },
    #[error("[scan] exclude: {0}")]
    Exclude(String),
}

/// What to scan beyond the config.
pub struct ScanOptions<'a> {
    /// Limit the scan to this file or folder (absolute, or relative to the root).
    pub scope: Option<&'a Path>,
    /// Read and write the per-file cache (in `scan-cache/` under
    /// `graft_dir`).
    pub cache: bool,
    /// The folder that holds the cache: `<root>/.graft` when None; a
    /// user cache folder for a root that cannot be written.
    pub graft_dir: Option<&'a Path>,
    pub progress: &'a (dyn Fn(ScanProgress) + Sync),
}

/// Scan `root` (optionally only `scope` inside it) with the cache on.
pub fn scan(
    root: &Path,
    config: &ScanConfig,
    scope: Option<&Path>,
    progress: &(dyn Fn(ScanProgress) + Sync),
) -> Result<ScanReport, ScanError> {
    scan_with(
        root,
        config,
        &ScanOptions {
            scope,
            cache: true,
            graft_dir: None,
            progress,
        },
    )
}

/// Below this, a file is never called minified.
const MINIFIED_MIN_BYTES: usize = 4096;
/// Average line length above which a file is taken for a minified bundle.
const MINIFIED_AVG_LINE: usize = 300;

enum Outcome {
    Facts {
        key: u128,
        facts: Box<FileFacts>,
        cached: bool,
        /// What the file looked like, when it can be trusted next time.
        stamp: Option<cache::Stamp>,
    },
    Problem(Problem),
}

thread_local! {
    static PARSERS: RefCell<HashMap<Lang, tree_sitter::Parser>> = RefCell::new(HashMap::new());
}

pub fn scan_with(root: &Path, config: &ScanConfig, opts: &ScanOptions<'_>) -> Result<ScanReport, ScanError> {
    let started = Instant::now();
    let started_wall = std::time::SystemTime::now();
    let now = chrono::Utc::now();
    let id = format!(
        "scan_{}_{:06x}",
        now.format("%Y%m%d_%H%M%S"),
        rand::random::<u32>() & 0x00ff_ffff
    );
    let root = root
        .canonicalize()
        .map_err(|_| ScanError::NoSuchPath(root.to_path_buf()))?;
    let (start, scope) = match opts.scope {
        None => (root.clone(), None),
        Some(s) => {
            let abs = if s.is_absolute() {
                s.to_path_buf()
            } else {
                root.join(s)
            };
            let abs = abs
                .canonicalize()
                .map_err(|_| ScanError::NoSuchPath(s.to_path_buf()))?;
            let rel = abs.strip_prefix(&root).map_err(|_| ScanError::OutsideRoot {
                path: abs.clone(),
                root: root.clone(),
            })?;
            let rel = rel.to_string_lossy().replace('\\', "/");
            (abs.clone(), (!rel.is_empty()).then_some(rel))
        }
    };
    let threads = if config.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        config.threads
    };
    let exclude = walk::excludes(&config.exclude.0).map_err(ScanError::Exclude)?;

    (opts.progress)(ScanProgress::Discovering);
    let graft_dir = opts
        .graft_dir
        .map_or_else(|| root.join(".graft"), Path::to_path_buf);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool");
    // The walk waits on the file system; it runs on its own threads and
    // hands each file over as it finds it, so reading and parsing start at
    // once. The cache is loaded (on the pool) meanwhile; files found wait
    // in the channel until it is ready.
    let total = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let max_bytes = config.max_file_bytes.get();
    let min_tokens = config.clone_min_tokens.get() as usize;
    let (tx, rx) = std::sync::mpsc::channel::<walk::Candidate>();
    let (discovery, mut outcomes, cache) = std::thread::scope(|s| {
        let walking = s.spawn(|| {
            let tx = tx;
            let send = |c: walk::Candidate| {
                total.fetch_add(1, Ordering::Relaxed);
                let _ = tx.send(c);
            };
            let listing_dir = graft_dir.join(cache::DIR_NAME);
            let d = walk::discover(
                &walk::Walk {
                    root: &root,
                    start: &start,
                    exclude_globs: &config.exclude.0,
                    exclude: &exclude,
                    threads,
                    keep_in: opts.cache.then_some(listing_dir.as_path()),
                },
                &send,
            );
            trace(if d.reused { "listed (walk kept)" } else { "walked" }, started);
            d
        });
        let cache = opts
            .cache
            .then(|| pool.install(|| cache::Cache::load(&graft_dir)));
        trace("cache loaded", started);
        // Read, hash, parse: in parallel, one tree alive per thread at a time.
        let outcomes: Vec<(walk::Candidate, Outcome)> = pool.install(|| {
            rx.into_iter()
                .par_bridge()
                .map(|c| {
                    let o = read_and_analyse(&c, max_bytes, min_tokens, cache.as_ref(), started_wall);
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_multiple_of(64) {
                        let total = total.load(Ordering::Relaxed);
                        (opts.progress)(ScanProgress::Parsing { done: n, total });
                    }
                    (c, o)
                })
                .collect()
        });
        let discovery = walking.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (discovery, outcomes, cache)
    });
    outcomes.sort_unstable_by(|a, b| a.0.rel.cmp(&b.0.rel));
    let n = outcomes.len() as u64;
    (opts.progress)(ScanProgress::Parsing { done: n, total: n });
    (opts.progress)(ScanProgress::Linking);
    trace("parsed", started);

    let mut problems = discovery.problems;
    let mut summary = Summary {
        files_seen: discovery.seen + problems.len() as u64,
        listing_reused: discovery.reused,
        ..Summary::default()
    };
    let mut analysed: Vec<(walk::Candidate, u128, FileFacts)> = Vec::new();
    let mut stamps: Vec<(String, cache::Stamp)> = Vec::new();
    for (c, o) in outcomes {
        match o {
            Outcome::Facts {
                key,
                facts,
                cached,
                stamp,
            } => {
                summary.cache_hits += u64::from(cached);
                if let Some(s) = stamp {
                    stamps.push((c.rel.clone(), s));
                }
                if let Some(e) = &facts.syntax_error {
                    problems.push(Problem {
                        path: c.rel.clone(),
                        kind: "syntax_error",
                        message: format!("{}:{}: {}", e.line, e.column, e.message),
                        line: Some(e.line),
                    });
                }
                analysed.push((c, key, *facts));
            }
            Outcome::Problem(p) => problems.push(p),
        }
    }
    finish_types(&mut analysed);

    // The import graph and the clone index need nothing of each other:
    // they run side by side.
    let sources: Vec<graph::SourceFile<'_>> = analysed
        .iter()
        .map(|(c, _, f)| graph::SourceFile {
            rel: &c.rel,
            lang: c.lang,
            facts: f,
        })
        .collect();
    let mut by_lang: BTreeMap<Lang, Vec<clones::Stream<'_>>> = BTreeMap::new();
    for (c, _, f) in &analysed {
        by_lang.entry(c.lang).or_default().push(clones::Stream {
            path: &c.rel,
            tokens: &f.tokens,
            exact: &f.exact_tokens,
            prints: f.prints.as_ref(),
            lines: &f.token_lines,
        });
    }
    // Writing the cache needs only the facts: it overlaps the linking.
    let used: Vec<(u128, &FileFacts)> = analysed.iter().map(|(_, k, f)| (*k, f)).collect();
    let save = || {
        if let Some(cache) = cache {
            cache.save(&used, stamps, scope.is_none());
            trace("cache saved", started);
        }
    };
    let ((graph, clone_groups), ()) = pool.install(|| {
        rayon::join(
            || {
                rayon::join(
                    || {
                        let g = graph::build(&root, &sources);
                        trace("graph", started);
                        g
                    },
                    || {
                        let per_lang: Vec<Vec<CloneGroup>> = by_lang
                            .par_iter()
                            .map(|(lang, streams)| {
                                clones::detect(
                                    lang.name(),
                                    streams,
                                    min_tokens,
                                    config.clone_min_lines.get() as u32,
                                )
                            })
                            .collect();
                        trace("clones", started);
                        per_lang.into_iter().flatten().collect::<Vec<_>>()
                    },
                )
            },
            save,
        )
    });
    drop(sources);
    drop(by_lang);
    drop(used);
    trace("graph, clones, cache saved", started);

    // Go methods live anywhere in their package.
    let mut package_functions: HashMap<String, Vec<(&str, &[FunctionMetrics])>> = HashMap::new();
    for (c, _, f) in &analysed {
        if c.lang == Lang::Go {
            package_functions
                .entry(parent_dir(&c.rel))
                .or_default()
                .push((&c.rel, &f.functions));
        }
    }
    let modules: Vec<suggest::Module<'_>> = analysed
        .iter()
        .map(|(c, _, f)| suggest::Module {
            path: &c.rel,
            lines: f.lines,
            definitions: f.definitions,
            functions: &f.functions,
            types: &f.types,
            method_sources: if c.lang == Lang::Go {
                package_functions
                    .get(&parent_dir(&c.rel))
                    .cloned()
                    .unwrap_or_default()
            } else {
                vec![(&c.rel, &f.functions)]
            },
        })
        .collect();
    let mut suggestions = pool
        .install(|| suggest::suggestions(config, &modules, &graph.cycles, &clone_groups, &graph.coupling));
    drop(modules);
    suggest::number(&mut suggestions, &id);

    for (c, _, f) in &analysed {
        summary.modules_analysed += 1;
        summary.lines += f.lines as u64;
        summary.functions += f.functions.len() as u64;
        summary.types += f.types.len() as u64;
        *summary.by_language.entry(c.lang.name()).or_default() += 1;
    }
    for p in &problems {
        let s = &mut summary.skipped;
        match p.kind {
            "syntax_error" => summary.syntax_errors += 1,
            "not_utf8" => s.not_utf8 += 1,
            "too_large" => s.too_large += 1,
            "minified" => s.minified += 1,
            "symlink_loop" => s.symlink_loops += 1,
            _ => s.unreadable += 1,
        }
    }
    summary.import_edges = graph.edges;
    summary.circular_imports = graph.cycles.len() as u64;
    summary.clone_groups = clone_groups.len() as u64;
    summary.duplicated_lines = clone_groups
        .iter()
        .map(|g| g.lines as u64 * (g.fragments.len() as u64 - 1))
        .sum();
    summary.suggestions = suggestions.len() as u64;
    for s in &suggestions {
        *summary.by_kind.entry(s.kind.as_str()).or_default() += 1;
    }

    let mut spent = Vec::with_capacity(analysed.len());
    let files = analysed
        .into_iter()
        .map(|(c, _, mut f)| {
            let report = FileReport {
                path: c.rel.clone(),
                language: c.lang.name(),
                lines: f.lines,
                nloc: f.nloc,
                functions: std::mem::take(&mut f.functions),
                types: std::mem::take(&mut f.types),
            };
            spent.push(f);
            report
        })
        .collect();
    // The token streams and fingerprints (13 MB on syn + tokio, in a few
    // thousand blocks) are freed on another thread: handing the pages
    // back took longer than a re-scan's clone detection.
    std::thread::spawn(move || drop(spent));
    trace("suggestions, files", started);
    // The parsers' threads end with the pool: what their trees freed goes
    // back to the system now, not whenever the allocator next runs (a
    // long-lived process may not parse again for hours).
    pool.broadcast(|_| graft_lang::release_memory());
    trace("done", started);
    problems.sort_by(|a, b| a.path.cmp(&b.path).then(a.kind.cmp(b.kind)));
    summary.duration_ms = started.elapsed().as_millis() as u64;
    Ok(ScanReport {
        id,
        created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        root: root.to_string_lossy().into_owned(),
        scope,
        summary,
        suggestions,
        cycles: graph.cycles,
        clones: clone_groups,
        coupling: graph.coupling,
        problems,
        files,
    })
}

fn read_and_analyse(
    c: &walk::Candidate,
    max_bytes: u64,
    min_tokens: usize,
    cache: Option<&cache::Cache>,
    started: std::time::SystemTime,
) -> Outcome {
    let problem = |kind: &'static str, message: String| {
        Outcome::Problem(Problem {
            path: c.rel.clone(),
            kind,
            message,
            line: None,
        })
    };
    // A file whose stat is what it was when its key was taken is not read.
    if let Some(cache) = cache
        && let Some(stamp) = cache.stamp(&c.rel)
        && let Ok(meta) = std::fs::metadata(&c.abs)
        && meta.len() <= max_bytes
        && stamp.matches(&meta)
        && let Some(facts) = cache.take(stamp.key)
    {
        return Outcome::Facts {
            key: stamp.key,
            facts: Box::new(facts),
            cached: true,
            stamp: Some(stamp),
        };
    }
    // One open: the size comes from the open file, not a second lookup
    // of its path, and is taken before reading (a write during the read
    // changes the mtime after it).
    let read = || -> std::io::Result<Result<(Vec<u8>, std::fs::Metadata), u64>> {
        use std::io::Read as _;
        let mut file = std::fs::File::open(&c.abs)?;
        let meta = file.metadata()?;
        if meta.len() > max_bytes {
            return Ok(Err(meta.len()));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
        file.read_to_end(&mut bytes)?;
        Ok(Ok((bytes, meta)))
    };
    let (bytes, meta) = match read() {
        Ok(Ok(b)) => b,
        Ok(Err(len)) => {
            return problem(
                "too_large",
                format!(
                    "{len} bytes, over the {max_bytes}-byte limit ([scan] max_file_bytes); generated code?"
                ),
            );
        }
        Err(e) => return problem("unreadable", format!("cannot read: {e}")),
    };
    let key = cache::key(&bytes, c.lang);
    let stamp = cache.and_then(|_| cache::Stamp::of(&meta, key, started));
    if let Some(facts) = cache.and_then(|c| c.take(key)) {
        return Outcome::Facts {
            key,
            facts: Box::new(facts),
            cached: true,
            stamp,
        };
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            return problem("not_utf8", format!("not valid UTF-8 (byte {})", e.valid_up_to()));
        }
    };
    if text.len() >= MINIFIED_MIN_BYTES {
        let lines = text.lines().count().max(1);
        if text.len() / lines > MINIFIED_AVG_LINE {
            return problem(
                "minified",
                format!(
                    "{} bytes in {lines} line(s): a minified or generated bundle, not analysed",
                    text.len()
                ),
            );
        }
    }
    let mut facts = PARSERS.with(|p| {
        let mut parsers = p.borrow_mut();
        let parser = parsers.entry(c.lang).or_insert_with(|| parser_for(c.lang));
        analyze::analyze(c.lang, text, parser)
    });
    facts.prints = Some(ClonePrints {
        min_tokens: min_tokens as u32,
        exact: clones::fingerprints(&facts.exact_tokens, min_tokens),
        folded: clones::fingerprints(&facts.tokens, min_tokens),
    });
    Outcome::Facts {
        key,
        facts: Box::new(facts),
        cached: false,
        stamp,
    }
}

/// Methods written outside their type (Rust impls, Go receivers) and the
/// lines they add.
fn finish_types(analysed: &mut [(walk::Candidate, u128, FileFacts)]) {
    // Go: a package's methods, by receiver type: (count, lines outside).
    let mut go: HashMap<(String, String), (u32, u32)> = HashMap::new();
    for (c, _, f) in analysed.iter() {
        if c.lang == Lang::Go {
            for func in &f.functions {
                if let Some(o) = &func.owner {
                    let e = go.entry((parent_dir(&c.rel), o.clone())).or_default();
                    e.0 += 1;
                    e.1 += func.end_line - func.line + 1;
                }
            }
        }
    }
    for (c, _, f) in analysed.iter_mut() {
        match c.lang {
            Lang::Rust => {
                let mut owned: HashMap<&str, (u32, u32)> = HashMap::new();
                for func in &f.functions {
                    if let Some(o) = &func.owner {
                        let e = owned.entry(o.as_str()).or_default();
                        e.0 += 1;
                        e.1 += func.end_line - func.line + 1;
                    }
                }
                let owned: HashMap<String, (u32, u32)> =
                    owned.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                for t in &mut f.types {
                    if t.kind != "trait"
                        && let Some((n, lines)) = owned.get(&t.name)
                    {
                        t.methods = *n;
                        t.lines = t.end_line - t.line + 1 + lines;
                    }
                }
            }
            Lang::Go => {
                let dir = parent_dir(&c.rel);
                for t in &mut f.types {
                    if t.kind == "struct"
                        && let Some((n, lines)) = go.get(&(dir.clone(), t.name.clone()))
                    {
                        t.methods = *n;
                        t.lines = t.end_line - t.line + 1 + lines;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Phase timings on stderr when `GRAFT_SCAN_TRACE` is set (for the
/// bench); `graft scan` adds its own phases with it.
pub fn trace(phase: &str, started: Instant) {
    if std::env::var_os("GRAFT_SCAN_TRACE").is_some() {
        eprintln!("graft-scan: {phase} at {:.3} s", started.elapsed().as_secs_f64());
    }
}

fn parent_dir(rel: &str) -> String {
    rel.rsplit_once('/').map_or(String::new(), |(d, _)| d.to_string())
}

/// Store a scan and its suggestions in the ledger, in one transaction;
/// only the newest `config.suggestion_history` scans keep their
/// suggestions.
pub fn store(
    ledger: &graft_ledger::Ledger,
    report: &ScanReport,
    commit: Option<String>,
    config: &ScanConfig,
) -> graft_ledger::Result<()> {
    let scan = graft_ledger::Scan {
        id: report.id.clone(),
        created_at: report.created_at.clone(),
        root: report.root.clone(),
        scope: report.scope.clone(),
        commit_id: commit,
        duration_ms: report.summary.duration_ms,
        summary: serde_json::to_value(&report.summary).unwrap_or_default(),
        suggestions_pruned_at: None,
    };
    let suggestions = report.suggestions.iter().map(|s| graft_ledger::NewSuggestion {
        id: &s.id,
        kind: s.kind.as_str(),
        title: &s.title,
        files: &s.files,
        risk: s.risk.as_str(),
        priority: s.priority as i64,
        instruction: &s.instruction,
        detail: &s.detail,
    });
    ledger.insert_scan(&scan, suggestions, config.suggestion_history.get())
}
