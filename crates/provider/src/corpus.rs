//! The edit corpus (`bench/edits/corpus`): model replies in the three
//! formats, each with the files it applies to and what must come of it,
//! run through the same path an LLM round takes: reply → blocks → change
//! → `graft_change::resolve` (paths, policy, limits) → files.
//!
//! Every case says how its reply was made, and the two parts are reported
//! apart: `hand-written` replies were written for the corpus in the shape
//! of the slips models make; `recorded:<model>` replies are what that
//! model answered, taken from a published log with its `source` named
//! (`bench/edits/recorded/extract.py` writes them).
//!
//! A case file (`*.txt`, in the directory or one below it):
//!
//! ```text
//! expect: apply                 (or: refuse <reason code>)
//! format: search-replace        (or: diff, whole)
//! provenance: hand-written      (or: recorded:<model>)
//! source: where a recorded reply was taken from (required for recorded)
//! slip: what this reply gets wrong, in words
//! crlf: app.py                  (optional: this file has CRLF line endings)
//! junk: 2000000                 (optional: the reply is this many bytes of junk)
//! @@@ file app.py
//! …the file before…
//! @@@ reply
//! …the model's reply…
//! @@@ after app.py
//! …the file after (apply cases)…
//! @@@ gone old.py               (a file the reply deletes)
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use graft_change::{Limits, Policy};

use crate::edits::change_from_reply;

/// One case, as read.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub expect: Expect,
    pub format: String,
    pub provenance: Provenance,
    pub source: String,
    pub slip: String,
    pub files: BTreeMap<String, String>,
    pub reply: String,
    pub after: BTreeMap<String, String>,
    pub gone: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Apply,
    Refuse(String),
}

/// How a case's reply was made.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Provenance {
    /// Written for the corpus, in the shape of a slip models make.
    HandWritten,
    /// What the named model answered, as published.
    Recorded { model: String },
}

impl Provenance {
    fn parse(value: &str) -> Option<Provenance> {
        match value.split_once(':') {
            None if value == "hand-written" => Some(Provenance::HandWritten),
            Some(("recorded", model)) if !model.trim().is_empty() => Some(Provenance::Recorded {
                model: model.trim().to_string(),
            }),
            _ => None,
        }
    }

    /// The part of the corpus the case belongs to: `hand-written` or
    /// `recorded`.
    pub fn part(&self) -> &'static str {
        match self {
            Provenance::HandWritten => "hand-written",
            Provenance::Recorded { .. } => "recorded",
        }
    }
}

impl std::fmt::Display for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Provenance::HandWritten => f.write_str("hand-written"),
            Provenance::Recorded { model } => write!(f, "recorded:{model}"),
        }
    }
}

/// How one case went.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub expect: Expect,
    pub format: String,
    pub provenance: Provenance,
    pub ok: bool,
    pub detail: String,
}

pub fn parse_case(name: &str, text: &str) -> Result<Case, String> {
    let mut case = Case {
        name: name.to_string(),
        expect: Expect::Apply,
        format: String::new(),
        provenance: Provenance::HandWritten,
        source: String::new(),
        slip: String::new(),
        files: BTreeMap::new(),
        reply: String::new(),
        after: BTreeMap::new(),
        gone: Vec::new(),
    };
    let mut crlf = Vec::new();
    let mut junk = None;
    let mut provenance = None;
    let mut section: Option<(String, String)> = None;
    let mut body = String::new();
    let close = |case: &mut Case, section: &Option<(String, String)>, body: &mut String| {
        if let Some((kind, path)) = section {
            let text = std::mem::take(body);
            match kind.as_str() {
                "file" => {
                    case.files.insert(path.clone(), text);
                }
                "after" => {
                    case.after.insert(path.clone(), text);
                }
                "reply" => case.reply = text,
                _ => {}
            }
        }
    };
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("@@@ ") {
            close(&mut case, &section, &mut body);
            let mut parts = rest.trim().splitn(2, ' ');
            let kind = parts.next().unwrap_or("").to_string();
            let path = parts.next().unwrap_or("").to_string();
            match kind.as_str() {
                "file" | "after" | "reply" => section = Some((kind, path)),
                "gone" => {
                    case.gone.push(path);
                    section = None;
                }
                other => return Err(format!("{name}: unknown section `@@@ {other}`")),
            }
            continue;
        }
        if section.is_some() {
            body.push_str(line);
            continue;
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| format!("{name}: expected `key: value` in the header, found `{line}`"))?;
        let value = value.trim();
        match key {
            "expect" => {
                case.expect = match value.split_once(' ') {
                    None if value == "apply" => Expect::Apply,
                    Some(("refuse", code)) => Expect::Refuse(code.trim().to_string()),
                    _ => return Err(format!("{name}: `expect` is `apply` or `refuse <code>`")),
                }
            }
            "format" => case.format = value.to_string(),
            "provenance" => {
                provenance = Some(Provenance::parse(value).ok_or_else(|| {
                    format!("{name}: `provenance` is `hand-written` or `recorded:<model>`, found `{value}`")
                })?)
            }
            "source" => case.source = value.to_string(),
            "slip" => case.slip = value.to_string(),
            "crlf" => crlf.push(value.to_string()),
            "junk" => junk = Some(value.parse::<usize>().map_err(|e| format!("{name}: junk: {e}"))?),
            other => return Err(format!("{name}: unknown header `{other}`")),
        }
    }
    close(&mut case, &section, &mut body);
    for p in crlf {
        for map in [&mut case.files, &mut case.after] {
            if let Some(t) = map.get_mut(&p) {
                *t = t.replace('\n', "\r\n");
            }
        }
    }
    if let Some(n) = junk {
        case.reply = "lorem ipsum dolor sit amet ".repeat(n / 27 + 1);
    }
    if case.format.is_empty() {
        return Err(format!("{name}: no `format`"));
    }
    case.provenance =
        provenance.ok_or_else(|| format!("{name}: no `provenance` (how the reply was made)"))?;
    if matches!(case.provenance, Provenance::Recorded { .. }) && case.source.is_empty() {
        return Err(format!("{name}: a recorded reply names its `source`"));
    }
    Ok(case)
}

/// Run one case in a fresh directory.
pub fn run_case(case: &Case) -> Outcome {
    let outcome = |ok: bool, detail: String| Outcome {
        name: case.name.clone(),
        expect: case.expect.clone(),
        format: case.format.clone(),
        provenance: case.provenance.clone(),
        ok,
        detail,
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return outcome(false, format!("no temp dir: {e}")),
    };
    for (p, t) in &case.files {
        let full = dir.path().join(p);
        let _ = std::fs::create_dir_all(full.parent().expect("a file has a parent"));
        if let Err(e) = std::fs::write(&full, t) {
            return outcome(false, format!("cannot write {p}: {e}"));
        }
    }
    let result = apply(&case.reply, dir.path());
    match (&case.expect, result) {
        (Expect::Refuse(code), Err((got, message))) if *code == got => outcome(true, message),
        (Expect::Refuse(code), Err((got, message))) => {
            outcome(false, format!("refused as `{got}`, expected `{code}`: {message}"))
        }
        (Expect::Refuse(code), Ok(())) => outcome(false, format!("applied, expected a refusal (`{code}`)")),
        (Expect::Apply, Err((got, message))) => outcome(false, format!("refused (`{got}`): {message}")),
        (Expect::Apply, Ok(())) => match compare(case, dir.path()) {
            Ok(()) => outcome(true, String::new()),
            Err(e) => outcome(false, e),
        },
    }
}

/// The reply through the provider's path: parse, place, resolve under the
/// default policy, write.
fn apply(reply: &str, root: &Path) -> Result<(), (String, String)> {
    let (change, _, _) =
        change_from_reply(reply, root, &BTreeMap::new()).map_err(|e| (e.code.to_string(), e.message))?;
    let policy = Policy::new(
        &[],
        Limits {
            max_change_bytes: 1024 * 1024,
            max_file_bytes: 512 * 1024,
            max_files: 1000,
            allow_binary: false,
        },
        false,
    )
    .map_err(|e| (e.code().to_string(), e.to_string()))?;
    let resolved =
        graft_change::resolve(&change, root, &policy).map_err(|e| (e.code().to_string(), e.to_string()))?;
    resolved
        .write_to(root)
        .map_err(|e| (e.code().to_string(), e.to_string()))
}

fn compare(case: &Case, root: &Path) -> Result<(), String> {
    let mut paths: Vec<&String> = case
        .files
        .keys()
        .chain(case.after.keys())
        .chain(case.gone.iter())
        .collect();
    paths.sort();
    paths.dedup();
    for p in paths {
        let got = std::fs::read_to_string(root.join(p)).ok();
        let want = if case.gone.contains(p) {
            None
        } else {
            case.after.get(p).or(case.files.get(p)).cloned()
        };
        if got != want {
            return Err(format!(
                "`{p}` differs:\n--- expected\n{}\n--- got\n{}",
                want.as_deref().unwrap_or("(no file)"),
                got.as_deref().unwrap_or("(no file)")
            ));
        }
    }
    Ok(())
}

/// Every case under `dir` and the directories directly in it (`*.txt`
/// but `LICENSE*`, sorted by path; a case in a subdirectory is named
/// `subdir/stem`).
pub fn load(dir: &Path) -> Result<Vec<Case>, String> {
    let list = |d: &Path| -> Result<Vec<std::path::PathBuf>, String> {
        Ok(std::fs::read_dir(d)
            .map_err(|e| format!("cannot read {}: {e}", d.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect())
    };
    let mut paths = Vec::new();
    for p in list(dir)? {
        if p.is_dir() {
            paths.extend(list(&p)?);
        } else {
            paths.push(p);
        }
    }
    paths.retain(|p| {
        p.extension().is_some_and(|x| x == "txt")
            && !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("LICENSE"))
    });
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let name = p
                .strip_prefix(dir)
                .unwrap_or(p)
                .with_extension("")
                .to_string_lossy()
                .into_owned();
            parse_case(&name, &text)
        })
        .collect()
}

/// The shares of one part of the corpus (or of one model's replies):
/// well-formed replies applied exactly, bad ones refused for the right
/// reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Share {
    pub applied: usize,
    pub to_apply: usize,
    pub refused: usize,
    pub to_refuse: usize,
}

impl Share {
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Share {
        let mut s = Share::default();
        for o in outcomes {
            match o.expect {
                Expect::Apply => {
                    s.to_apply += 1;
                    s.applied += usize::from(o.ok);
                }
                Expect::Refuse(_) => {
                    s.to_refuse += 1;
                    s.refused += usize::from(o.ok);
                }
            }
        }
        s
    }

    pub fn all_right(&self) -> bool {
        self.applied == self.to_apply && self.refused == self.to_refuse
    }
}

/// The report's closing lines: each part apart (hand-written, then
/// recorded, with each model's replies), never one figure over both.
pub fn summary(outcomes: &[Outcome]) -> String {
    let pct = |ok: usize, n: usize| {
        if n == 0 {
            "none".to_string()
        } else {
            format!("{ok}/{n} ({:.0} %)", ok as f64 * 100.0 / n as f64)
        }
    };
    let formats = |of: &[&Outcome]| {
        ["search-replace", "diff", "whole"]
            .iter()
            .map(|f| format!("{} {f}", of.iter().filter(|o| o.format == *f).count()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::new();
    for part in ["hand-written", "recorded"] {
        let of: Vec<&Outcome> = outcomes.iter().filter(|o| o.provenance.part() == part).collect();
        let share = Share::of(of.iter().copied());
        let what = match part {
            "hand-written" => "written for the corpus in the shape of model slips",
            _ => "what real models answered, from a published log",
        };
        out.push_str(&format!(
            "{part} replies ({what}): {} ({})\n",
            of.len(),
            formats(&of)
        ));
        out.push_str(&format!(
            "  well-formed replies applied correctly: {}\n",
            pct(share.applied, share.to_apply)
        ));
        out.push_str(&format!(
            "  ambiguous or hostile replies refused correctly: {}\n",
            pct(share.refused, share.to_refuse)
        ));
        if part == "recorded" {
            let mut models: Vec<&Provenance> = of.iter().map(|o| &o.provenance).collect();
            models.sort();
            models.dedup();
            for p in models {
                let mine: Vec<&Outcome> = of.iter().copied().filter(|o| &o.provenance == p).collect();
                let share = Share::of(mine.iter().copied());
                out.push_str(&format!(
                    "  {p}: applied {}, refused {}\n",
                    pct(share.applied, share.to_apply),
                    pct(share.refused, share.to_refuse)
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<Case> {
        load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/edits/corpus")).unwrap()
    }

    fn failures(outcomes: &[Outcome]) -> Vec<String> {
        outcomes
            .iter()
            .filter(|o| !o.ok)
            .map(|o| format!("{}: {}", o.name, o.detail))
            .collect()
    }

    /// The hand-written part: every well-formed reply applied exactly,
    /// every ambiguous or hostile one refused for the stated reason, in
    /// each of the three formats.
    #[test]
    fn the_edit_corpus_is_applied_and_refused_entirely() {
        let cases: Vec<Case> = corpus()
            .into_iter()
            .filter(|c| c.provenance == Provenance::HandWritten)
            .collect();
        assert!(
            cases.len() >= 40,
            "the corpus holds {} hand-written cases",
            cases.len()
        );
        for format in ["search-replace", "diff", "whole"] {
            for expect in ["apply", "refuse"] {
                let n = cases
                    .iter()
                    .filter(|c| c.format == format && (c.expect == Expect::Apply) == (expect == "apply"))
                    .count();
                assert!(n >= 3, "only {n} `{expect}` cases in format {format}");
            }
        }
        let outcomes: Vec<Outcome> = cases.iter().map(run_case).collect();
        let failed = failures(&outcomes);
        assert!(failed.is_empty(), "{}", failed.join("\n\n"));
    }

    /// The recorded part: replies real models gave, each naming its model
    /// and where it was published, with the licence of that log beside
    /// them; every one is applied exactly.
    #[test]
    fn recorded_replies_name_their_model_and_source_and_are_applied() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/edits/corpus/recorded");
        assert!(
            dir.join("LICENSE-aider.txt").is_file(),
            "the recorded replies' licence is beside them"
        );
        let cases: Vec<Case> = corpus()
            .into_iter()
            .filter(|c| matches!(c.provenance, Provenance::Recorded { .. }))
            .collect();
        assert!(cases.len() >= 20, "only {} recorded cases", cases.len());
        for c in &cases {
            assert!(
                c.name.starts_with("recorded/"),
                "{}: recorded cases live in recorded/",
                c.name
            );
            assert!(
                c.source.contains("chat-history.md line "),
                "{}: source `{}`",
                c.name,
                c.source
            );
        }
        let mut models: Vec<String> = cases.iter().map(|c| c.provenance.to_string()).collect();
        models.sort();
        models.dedup();
        assert!(models.len() >= 3, "replies from only {models:?}");
        let outcomes: Vec<Outcome> = cases.iter().map(run_case).collect();
        let failed = failures(&outcomes);
        assert!(failed.is_empty(), "{}", failed.join("\n\n"));
    }

    /// A case that does not say how its reply was made is not read, and
    /// the report never gives one figure over both parts.
    #[test]
    fn every_case_says_how_its_reply_was_made_and_the_parts_are_reported_apart() {
        let bare = "expect: apply\nformat: whole\n@@@ reply\nx\n";
        assert_eq!(
            parse_case("bare", bare).unwrap_err(),
            "bare: no `provenance` (how the reply was made)"
        );
        let unsourced = "expect: apply\nformat: whole\nprovenance: recorded:gpt-4o\n@@@ reply\nx\n";
        assert_eq!(
            parse_case("unsourced", unsourced).unwrap_err(),
            "unsourced: a recorded reply names its `source`"
        );
        let vague = "expect: apply\nformat: whole\nprovenance: recorded\n@@@ reply\nx\n";
        assert!(parse_case("vague", vague).is_err());

        let cases = corpus();
        let hand = cases
            .iter()
            .filter(|c| c.provenance == Provenance::HandWritten)
            .count();
        let recorded = cases.len() - hand;
        assert!(
            hand > 0 && recorded > 0,
            "{hand} hand-written, {recorded} recorded"
        );
        let outcomes: Vec<Outcome> = cases.iter().map(run_case).collect();
        let summary = summary(&outcomes);
        let lines: Vec<&str> = summary.lines().collect();
        assert!(
            lines[0].starts_with(&format!(
                "hand-written replies (written for the corpus in the shape of model slips): {hand} ("
            )),
            "{summary}"
        );
        assert!(
            summary.contains(&format!(
                "\nrecorded replies (what real models answered, from a published log): {recorded} ("
            )),
            "{summary}"
        );
        assert!(
            summary.contains("  recorded:claude-3-5-sonnet-20240620: applied "),
            "{summary}"
        );
    }
}
