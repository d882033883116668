//! `bench/edits`: run the corpus of model replies through Graft's reply →
//! change → policy → files path and print, for the hand-written part and
//! the recorded part apart, the share of well-formed replies applied
//! exactly and of bad ones refused for the right reason. Usage:
//! `edits [CORPUS_DIR]`.

use std::path::PathBuf;

use graft_provider::corpus::{self, Expect, Share};

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
    println!(
        "{:<44} {:<15} {:<22} {:<42} result",
        "case", "format", "expected", "provenance"
    );
    for o in &outcomes {
        let expected = match &o.expect {
            Expect::Apply => "apply".to_string(),
            Expect::Refuse(code) => format!("refuse {code}"),
        };
        println!(
            "{:<44} {:<15} {:<22} {:<42} {}",
            o.name,
            o.format,
            expected,
            o.provenance.to_string(),
            if o.ok {
                "ok".to_string()
            } else {
                format!("WRONG: {}", o.detail)
            }
        );
    }
    println!();
    print!("{}", corpus::summary(&outcomes));
    if !Share::of(&outcomes).all_right() {
        std::process::exit(1);
    }
}
