//! `bench/edits`: run the corpus of recorded LLM replies through Graft's
//! reply → change → policy → files path and print the share of
//! well-formed replies applied exactly and of bad ones refused for the
//! right reason. Usage: `edits [CORPUS_DIR]`.

use std::path::PathBuf;

use graft_provider::corpus::{self, Expect};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/edits/corpus"));
    let cases = match corpus::load(&dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edits: {e}");
            std::process::exit(2);
        }
    };
    let outcomes: Vec<_> = cases.iter().map(corpus::run_case).collect();
    println!("{:<44} {:<15} {:<22} result", "case", "format", "expected");
    for o in &outcomes {
        let expected = match &o.expect {
            Expect::Apply => "apply".to_string(),
            Expect::Refuse(code) => format!("refuse {code}"),
        };
        println!(
            "{:<44} {:<15} {:<22} {}",
            o.name,
            o.format,
            expected,
            if o.ok {
                "ok".to_string()
            } else {
                format!("WRONG: {}", o.detail)
            }
        );
    }
    let share = |apply: bool| {
        let of: Vec<_> = outcomes
            .iter()
            .filter(|o| (o.expect == Expect::Apply) == apply)
            .collect();
        let ok = of.iter().filter(|o| o.ok).count();
        (ok, of.len())
    };
    let (a_ok, a_n) = share(true);
    let (r_ok, r_n) = share(false);
    let pct = |ok: usize, n: usize| if n == 0 { 0.0 } else { ok as f64 * 100.0 / n as f64 };
    println!();
    println!(
        "{} replies: {} search-replace, {} diff, {} whole-file",
        outcomes.len(),
        outcomes.iter().filter(|o| o.format == "search-replace").count(),
        outcomes.iter().filter(|o| o.format == "diff").count(),
        outcomes.iter().filter(|o| o.format == "whole").count()
    );
    println!(
        "well-formed replies applied correctly: {a_ok}/{a_n} ({:.0} %)",
        pct(a_ok, a_n)
    );
    println!(
        "ambiguous or hostile replies refused correctly: {r_ok}/{r_n} ({:.0} %)",
        pct(r_ok, r_n)
    );
    if a_ok < a_n || r_ok < r_n {
        std::process::exit(1);
    }
}
