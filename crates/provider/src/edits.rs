//! Placing a reply's blocks in the files, all in memory.
//!
//! A SEARCH text (or a diff hunk's old side) is looked for, in order:
//! exactly; then line by line ignoring trailing whitespace and line
//! endings; then line by line ignoring a consistent difference of
//! indentation (the replacement is re-indented by the same amount). At
//! each stage one match wins and several are an error: Graft never guesses
//! between places. A text found nowhere is an error that says so. Any
//! error refuses the whole reply, so a reply never half-applies.

use std::collections::BTreeMap;
use std::path::Path;

use graft_change::{Change, Edit, RelPath};

use crate::reply::{self, Block, DiffKind, ReplyError};

/// What the files a reply touches become: `None` for a deletion.
pub type NewContents = BTreeMap<RelPath, Option<String>>;

/// A reply as a change relative to the tree at `root`, on top of `prior`
/// (what earlier rounds' edits made of some files). Returns the change,
/// the number of blocks, and every file's new content (prior included).
pub fn change_from_reply(
    text: &str,
    root: &Path,
    prior: &NewContents,
) -> Result<(Change, usize, NewContents), ReplyError> {
    let blocks = reply::parse_reply(text)?;
    let read = |p: &RelPath| -> Result<Option<String>, ReplyError> {
        match prior.get(p) {
            Some(c) => Ok(c.clone()),
            None => read_base(root, p),
        }
    };
    let new = apply_blocks(&blocks, &read)?;
    let mut all = prior.clone();
    all.extend(new);
    let mut edits = Vec::new();
    for (path, after) in &all {
        match (read_base(root, path)?, after) {
            (None, Some(c)) => edits.push(Edit::Create {
                path: path.clone(),
                content: c.clone().into_bytes(),
                executable: false,
            }),
            (Some(b), Some(c)) if b != *c => edits.push(Edit::Replace {
                path: path.clone(),
                content: c.clone().into_bytes(),
            }),
            (Some(_), None) => edits.push(Edit::Delete {
                path: path.clone(),
                expect: None,
            }),
            _ => {}
        }
    }
    if edits.is_empty() {
        return Err(ReplyError::new(
            "empty_change",
            "the reply's edits change nothing (each replacement equals what it replaces)",
        ));
    }
    Ok((Change { edits }, blocks.len(), all))
}

/// A file of the tree at `root`, never read through a symlink.
pub fn read_base(root: &Path, path: &RelPath) -> Result<Option<String>, ReplyError> {
    let mut here = root.to_path_buf();
    for part in path.components() {
        here.push(part);
        match std::fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(ReplyError::new(
                    "symlink_escape",
                    format!("`{path}` goes through a symbolic link; Graft never edits through symlinks"),
                ));
            }
            Ok(_) => {}
            Err(_) => return Ok(None),
        }
    }
    if here.is_dir() {
        return Err(ReplyError::new(
            "is_a_directory",
            format!("`{path}` is a directory, not a file"),
        ));
    }
    let bytes =
        std::fs::read(&here).map_err(|e| ReplyError::new("io", format!("cannot read `{path}`: {e}")))?;
    String::from_utf8(bytes).map(Some).map_err(|_| {
        ReplyError::new(
            "binary",
            format!("`{path}` is not UTF-8 text; it cannot be edited by a reply"),
        )
    })
}

/// Apply `blocks` in order over the files `read` gives (`Ok(None)`: no
/// such file).
pub fn apply_blocks(
    blocks: &[Block],
    read: &dyn Fn(&RelPath) -> Result<Option<String>, ReplyError>,
) -> Result<NewContents, ReplyError> {
    let mut files: NewContents = BTreeMap::new();
    let mut counts: BTreeMap<&RelPath, usize> = BTreeMap::new();
    for block in blocks {
        let path = block.path();
        if !files.contains_key(path) {
            files.insert(path.clone(), read(path)?);
        }
        let n = counts.entry(path).or_default();
        *n += 1;
        let current = files.get_mut(path).expect("loaded");
        match block {
            Block::SearchReplace { search, replace, .. } => {
                let what = format!("SEARCH/REPLACE block {n} for `{path}`");
                *current = Some(search_replace(&what, current.as_deref(), search, replace)?);
            }
            Block::Whole { content, .. } => *current = Some(content.clone()),
            Block::Diff { hunks, kind, .. } => {
                let what = format!("the diff of `{path}`");
                match kind {
                    DiffKind::Delete => {
                        if current.is_none() {
                            return Err(ReplyError::new(
                                "file_missing",
                                format!("{what} deletes it, but there is no such file"),
                            ));
                        }
                        *current = None;
                    }
                    DiffKind::Create => {
                        if current.is_some() {
                            return Err(ReplyError::new(
                                "file_exists",
                                format!(
                                    "{what} creates it (`--- /dev/null`), but it already exists; give a diff against its current content"
                                ),
                            ));
                        }
                        let mut text = String::new();
                        for h in hunks {
                            for l in &h.after {
                                text.push_str(l);
                                text.push('\n');
                            }
                        }
                        *current = Some(text);
                    }
                    DiffKind::Modify => {
                        let Some(mut text) = current.clone() else {
                            return Err(missing(&what));
                        };
                        for (k, h) in hunks.iter().enumerate() {
                            let hw = format!("hunk {} of {what}", k + 1);
                            if h.before.iter().all(|l| l.trim().is_empty()) {
                                return Err(ReplyError::new(
                                    "no_context",
                                    format!(
                                        "{hw} has no context lines, so its place in the file is unknown; include the 3 lines around the change"
                                    ),
                                ));
                            }
                            let search = lines_text(&h.before);
                            let replace = lines_text(&h.after);
                            text = search_replace(&hw, Some(&text), &search, &replace)?;
                        }
                        *current = Some(text);
                    }
                }
            }
        }
    }
    Ok(files)
}

fn lines_text(lines: &[String]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

fn missing(what: &str) -> ReplyError {
    ReplyError::new(
        "file_missing",
        format!(
            "{what}: the file does not exist; to create a file, give it with an empty SEARCH section (or as a new file)"
        ),
    )
}

/// Replace the one place `search` matches in `content`.
pub fn search_replace(
    what: &str,
    content: Option<&str>,
    search: &str,
    replace: &str,
) -> Result<String, ReplyError> {
    if search.trim().is_empty() {
        return match content {
            None => Ok(replace.to_string()),
            Some(c) if c.trim().is_empty() => Ok(replace.to_string()),
            Some(_) => Err(ReplyError::new(
                "empty_search",
                format!(
                    "{what} has an empty SEARCH section, but the file exists and is not empty; copy the lines to change into SEARCH"
                ),
            )),
        };
    }
    let Some(content) = content else {
        return Err(missing(what));
    };
    // 1. Exactly.
    let exact = find_all(content, search);
    match exact.as_slice() {
        [at] => {
            let mut out = String::with_capacity(content.len() + replace.len());
            out.push_str(&content[..*at]);
            out.push_str(replace);
            out.push_str(&content[at + search.len()..]);
            return Ok(out);
        }
        [] => {}
        many => {
            let lines: Vec<usize> = many.iter().map(|&at| line_of(content, at)).collect();
            return Err(ambiguous(what, search, &lines, ""));
        }
    }
    // 2. and 3. Line by line.
    let file: Vec<&str> = content.split_inclusive('\n').collect();
    let want = trim_blank_ends(search.lines().collect());
    let mut with = trim_blank_ends(replace.lines().collect());
    if want.is_empty() {
        return Err(not_found(what, search));
    }
    if with.iter().all(|l| l.trim().is_empty()) {
        with.clear();
    }
    for (how, fuzzy) in [
        ("ignoring trailing whitespace", false),
        ("ignoring indentation", true),
    ] {
        let mut found: Vec<(usize, Indent)> = Vec::new();
        for start in 0..file.len().saturating_sub(want.len() - 1) {
            if let Some(indent) = matches_at(&file[start..start + want.len()], &want, fuzzy) {
                found.push((start, indent));
            }
        }
        match found.as_slice() {
            [] => continue,
            [(start, indent)] => return Ok(splice(&file, *start, want.len(), &with, indent)),
            many => {
                let lines: Vec<usize> = many.iter().map(|(s, _)| s + 1).collect();
                return Err(ambiguous(what, search, &lines, &format!(" ({how})")));
            }
        }
    }
    Err(not_found(what, search))
}

/// How the file's indentation differs from the SEARCH text's.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Indent {
    Same,
    /// The file has this much more on every line.
    Add(String),
    /// The file has this many fewer leading whitespace characters.
    Remove(usize),
}

fn matches_at(window: &[&str], want: &[&str], fuzzy: bool) -> Option<Indent> {
    let mut indent: Option<Indent> = None;
    for (have, want) in window.iter().zip(want) {
        let have = have.trim_end();
        let want = want.trim_end();
        if !fuzzy {
            if have != want {
                return None;
            }
            continue;
        }
        if have.is_empty() || want.is_empty() {
            if have.is_empty() != want.is_empty() {
                return None;
            }
            continue;
        }
        let (hi, wi) = (leading(have), leading(want));
        if have[hi..] != want[wi..] {
            return None;
        }
        let this = if hi >= wi && have[..hi].ends_with(&want[..wi]) {
            if hi == wi {
                Indent::Same
            } else {
                Indent::Add(have[..hi - wi].to_string())
            }
        } else if wi > hi && want[..wi].ends_with(&have[..hi]) {
            Indent::Remove(wi - hi)
        } else {
            return None;
        };
        match &indent {
            None => indent = Some(this),
            Some(i) if *i == this => {}
            Some(_) => return None,
        }
    }
    Some(indent.unwrap_or(Indent::Same))
}

fn leading(s: &str) -> usize {
    s.len() - s.trim_start().len()
}

fn trim_blank_ends(mut lines: Vec<&str>) -> Vec<&str> {
    while lines.first().is_some_and(|l| l.trim().is_empty()) {
        lines.remove(0);
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    lines
}

/// `file` with lines `start..start+len` replaced by `with`, re-indented,
/// in the file's line endings.
fn splice(file: &[&str], start: usize, len: usize, with: &[&str], indent: &Indent) -> String {
    let last = file[start + len - 1];
    let eol = if last.ends_with("\r\n") || file[start].ends_with("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let ends_file_without_newline = start + len == file.len() && !last.ends_with('\n');
    let mut out = String::new();
    file[..start].iter().for_each(|l| out.push_str(l));
    for (k, l) in with.iter().enumerate() {
        let l = l.trim_end();
        if !l.is_empty() {
            match indent {
                Indent::Same => out.push_str(l),
                Indent::Add(extra) => {
                    out.push_str(extra);
                    out.push_str(l);
                }
                Indent::Remove(n) => {
                    let strip = leading(l).min(*n);
                    out.push_str(&l[strip..]);
                }
            }
        }
        if !(ends_file_without_newline && k + 1 == with.len()) {
            out.push_str(eol);
        }
    }
    file[start + len..].iter().for_each(|l| out.push_str(l));
    out
}

fn find_all(hay: &str, needle: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = hay[from..].find(needle) {
        out.push(from + i);
        from += i + hay[from + i..].chars().next().map_or(1, char::len_utf8);
        if from > hay.len() {
            break;
        }
    }
    out
}

fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

fn first_line(text: &str) -> String {
    let l = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    let mut s: String = l.chars().take(80).collect();
    if s.len() < l.len() {
        s.push('…');
    }
    s
}

fn ambiguous(what: &str, search: &str, lines: &[usize], how: &str) -> ReplyError {
    let list: Vec<String> = lines.iter().map(usize::to_string).collect();
    ReplyError::new(
        "search_ambiguous",
        format!(
            "{what}: the SEARCH text starting `{}` matches {} places{how} (lines {}); Graft never guesses between them: include more surrounding lines so it matches exactly one",
            first_line(search),
            lines.len(),
            list.join(", ")
        ),
    )
}

fn not_found(what: &str, search: &str) -> ReplyError {
    ReplyError::new(
        "search_not_found",
        format!(
            "{what}: the SEARCH text starting `{}` is not in the file (not even ignoring whitespace and indentation); copy the lines exactly as the file holds them now",
            first_line(search)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sr(content: &str, search: &str, replace: &str) -> Result<String, ReplyError> {
        search_replace("block 1 for `a.py`", Some(content), search, replace)
    }

    const SRC: &str = "def add(a, b):\n    return a + b\n\n\nclass G:\n    def greet(self, name):\n        return \"Hello, \" + name\n";

    #[test]
    fn exact() {
        let out = sr(SRC, "    return a + b\n", "    return b + a\n").unwrap();
        assert!(out.contains("return b + a"));
    }

    #[test]
    fn trailing_whitespace_and_crlf() {
        let out = sr(
            SRC,
            "def add(a, b):   \n    return a + b  \n",
            "def add(a, b):\n    return a - b\n",
        )
        .unwrap();
        assert!(out.starts_with("def add(a, b):\n    return a - b\n\n"), "{out}");
        let crlf = SRC.replace('\n', "\r\n");
        let out = sr(
            &crlf,
            "def add(a, b):\n    return a + b\n",
            "def add(a, b):\n    return 0\n",
        )
        .unwrap();
        assert!(
            out.starts_with("def add(a, b):\r\n    return 0\r\n\r\n"),
            "{out:?}"
        );
    }

    #[test]
    fn indentation_is_restored() {
        // The model dropped the class's indentation.
        let out = sr(
            SRC,
            "def greet(self, name):\n    return \"Hello, \" + name\n",
            "def greet(self, name):\n    if not name:\n        return \"Hello\"\n    return \"Hello, \" + name\n",
        )
        .unwrap();
        assert!(
            out.ends_with("    def greet(self, name):\n        if not name:\n            return \"Hello\"\n        return \"Hello, \" + name\n"),
            "{out}"
        );
        // Or added some.
        let out = sr(
            SRC,
            "        def add(a, b):\n            return a + b\n",
            "        def add(a, b):\n            return a * b\n",
        )
        .unwrap();
        assert!(out.starts_with("def add(a, b):\n    return a * b\n"), "{out}");
    }

    #[test]
    fn ambiguity_is_never_guessed() {
        let src = "x = 1\ny = 2\nx = 1\n";
        let e = sr(src, "x = 1\n", "x = 3\n").unwrap_err();
        assert_eq!(e.code, "search_ambiguous");
        assert_eq!(
            e.message,
            "block 1 for `a.py`: the SEARCH text starting `x = 1` matches 2 places (lines 1, 3); Graft never guesses between them: include more surrounding lines so it matches exactly one"
        );
        // Ambiguous only modulo indentation.
        let src = "if a:\n    go()\nif b:\n        go()\n";
        let e = sr(src, "go()\n", "stop()\n").unwrap_err();
        assert_eq!(e.code, "search_ambiguous", "{}", e.message);
    }

    #[test]
    fn not_found_and_empty_search() {
        assert_eq!(
            sr(SRC, "return a * b\n", "x\n").unwrap_err().code,
            "search_not_found"
        );
        assert_eq!(sr(SRC, "", "x\n").unwrap_err().code, "empty_search");
        assert_eq!(search_replace("b", None, "", "new\n").unwrap(), "new\n");
        assert_eq!(
            search_replace("b for `n.py`", None, "x", "y").unwrap_err().code,
            "file_missing"
        );
    }

    #[test]
    fn blocks_apply_in_order_or_not_at_all() {
        let read = |p: &RelPath| -> Result<Option<String>, ReplyError> {
            Ok((p.as_str() == "a.py").then(|| SRC.to_string()))
        };
        let path = RelPath::new("a.py").unwrap();
        let good = [
            Block::SearchReplace {
                path: path.clone(),
                search: "return a + b\n".into(),
                replace: "return a - b\n".into(),
            },
            Block::SearchReplace {
                path: path.clone(),
                search: "return a - b\n".into(),
                replace: "return a * b\n".into(),
            },
        ];
        let out = apply_blocks(&good, &read).unwrap();
        assert!(out[&path].as_deref().unwrap().contains("a * b"));
        let bad = [
            good[0].clone(),
            Block::SearchReplace {
                path: path.clone(),
                search: "nowhere\n".into(),
                replace: "x\n".into(),
            },
        ];
        let e = apply_blocks(&bad, &read).unwrap_err();
        assert!(
            e.message.starts_with("SEARCH/REPLACE block 2 for `a.py`"),
            "{}",
            e.message
        );
    }
}
