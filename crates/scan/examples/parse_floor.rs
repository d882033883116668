//! The floor a scan is measured against: read and parse every file a scan
//! would analyse, with tree-sitter alone and the same number of threads,
//! and do nothing else. Used by `bench/scan/run.py`.
//!
//! Usage: parse_floor DIR [THREADS]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rayon::prelude::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: parse_floor DIR [THREADS]");
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(2);
    let started = Instant::now();
    let files: Vec<_> = ignore::WalkBuilder::new(&dir)
        .follow_links(true)
        .require_git(false)
        .build()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .filter_map(|e| graft_lang::Lang::of_path(e.path()).map(|l| (e.into_path(), l)))
        .collect();
    let bytes = AtomicU64::new(0);
    let nodes = AtomicU64::new(0);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        files
            .par_iter()
            .for_each_init(std::collections::HashMap::new, |parsers, (path, lang)| {
                let Ok(text) = std::fs::read_to_string(path) else {
                    return;
                };
                // The same files a scan analyses: no minified bundles.
                if text.len() >= 4096 && text.len() / text.lines().count().max(1) > 300 {
                    return;
                }
                if text.len() > 1024 * 1024 {
                    return;
                }
                let parser = parsers
                    .entry(*lang)
                    .or_insert_with(|| graft_lang::parser_for(*lang));
                if let Some(tree) = parser.parse(&text, None) {
                    bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
                    nodes.fetch_add(tree.root_node().descendant_count() as u64, Ordering::Relaxed);
                }
            })
    });
    println!(
        "{{\"files\": {}, \"bytes\": {}, \"nodes\": {}, \"seconds\": {:.4}}}",
        files.len(),
        bytes.load(Ordering::Relaxed),
        nodes.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}
