//! The edit corpus (`bench/edits/corpus`): recorded model replies in the
//! three formats, each with the files it applies to and what must come
//! of it, run through the same path an LLM round takes: reply → blocks →
//! change → `graft_change::resolve` (paths, policy, limits) → files.
//!
//! A case file:
//!
//! ```text
//! expect: apply                 (or: refuse <reason code>)
//! format: search-replace        (or: diff, whole)
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

/// How one case went.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub expect: Expect,
    pub format: String,
    pub ok: bool,
    pub detail: String,
}

pub fn parse_case(name: &str, text: &str) -> Result<Case, String> {
    let mut case = Case {
        name: name.to_string(),
        expect: Expect::Apply,
        format: String::new(),
        slip: String::new(),
        files: BTreeMap::new(),
        reply: String::new(),
        after: BTreeMap::new(),
        gone: Vec::new(),
    };
    let mut crlf = Vec::new();
    let mut junk = None;
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
    Ok(case)
}

/// Run one case in a fresh directory.
pub fn run_case(case: &Case) -> Outcome {
    let outcome = |ok: bool, detail: String| Outcome {
        name: case.name.clone(),
        expect: case.expect.clone(),
        format: case.format.clone(),
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

/// Every case under `dir` (`*.txt`, sorted by name).
pub fn load(dir: &Path) -> Result<Vec<Case>, String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let name = p.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            parse_case(&name, &text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole corpus: every well-formed reply applied exactly, every
    /// ambiguous or hostile one refused for the stated reason.
    #[test]
    fn the_edit_corpus_is_applied_and_refused_entirely() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/edits/corpus");
        let cases = load(&dir).unwrap();
        assert!(cases.len() >= 40, "the corpus holds {} cases", cases.len());
        for format in ["search-replace", "diff", "whole"] {
            for expect in ["apply", "refuse"] {
                let n = cases
                    .iter()
                    .filter(|c| c.format == format && (c.expect == Expect::Apply) == (expect == "apply"))
                    .count();
                assert!(n >= 3, "only {n} `{expect}` cases in format {format}");
            }
        }
        let failed: Vec<String> = cases
            .iter()
            .map(run_case)
            .filter(|o| !o.ok)
            .map(|o| format!("{}: {}", o.name, o.detail))
            .collect();
        assert!(failed.is_empty(), "{}", failed.join("\n\n"));
    }
}
