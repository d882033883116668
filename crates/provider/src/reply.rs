//! Reading a model's reply into edit blocks, in any of the three formats a
//! prompt can ask for:
//!
//! - **SEARCH/REPLACE blocks**: a file path line, then
//!   `<<<<<<< SEARCH` / `=======` / `>>>>>>> REPLACE` (an empty SEARCH
//!   creates a file);
//! - **unified diffs**: `--- a/x` / `+++ b/x` and hunks, whose line numbers
//!   are ignored (models miscount them; the context places the hunk);
//! - **whole files**: a path line, then the file's full text in a fence.
//!
//! Usual slips are tolerated: ``` or ~~~ fences of any length, a language
//! or the path in the fence's info string, markers of 5 to 9 characters
//! with trailing spaces or lowercase words, the path wrapped in backticks
//! or bold, a diff context line that lost its leading space.
//!
//! A reply that is cut off (an open block or fence at the end), holds no
//! edit, names a path outside the repo, or is too big, is refused whole:
//! nothing of it is applied. Where a block goes is decided in [`crate::edits`].

use graft_change::RelPath;

/// Replies above this are refused unread (a model looping on output).
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// One edit as the reply gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// Replace `search` by `replace` in `path`; an empty `search` creates
    /// the file.
    SearchReplace {
        path: RelPath,
        search: String,
        replace: String,
    },
    /// The whole new content of `path`.
    Whole { path: RelPath, content: String },
    /// A file's diff: hunks placed by their context, a new file, or a
    /// deletion.
    Diff {
        path: RelPath,
        hunks: Vec<DiffHunk>,
        kind: DiffKind,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffKind {
    Modify,
    Create,
    Delete,
}

/// A hunk as text: what the file holds (context and removed lines) and
/// what it should hold (context and added lines), each line without its
/// marker and its line ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffHunk {
    pub before: Vec<String>,
    pub after: Vec<String>,
}

impl Block {
    pub fn path(&self) -> &RelPath {
        match self {
            Block::SearchReplace { path, .. } | Block::Whole { path, .. } | Block::Diff { path, .. } => path,
        }
    }
}

/// Why a reply cannot be used. `code` is stable (ledger reason, tests);
/// `message` is what the model is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyError {
    pub code: &'static str,
    pub message: String,
}

impl ReplyError {
    pub fn new(code: &'static str, message: impl Into<String>) -> ReplyError {
        ReplyError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Which format a reply is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    SearchReplace,
    Diff,
    Whole,
}

/// Parse a reply into blocks, in reply order.
pub fn parse_reply(text: &str) -> Result<Vec<Block>, ReplyError> {
    if text.len() > MAX_REPLY_BYTES {
        return Err(ReplyError::new(
            "reply_too_large",
            format!(
                "the reply is {} bytes, over the limit of {MAX_REPLY_BYTES}; answer with the edits only, not whole unrelated files",
                text.len()
            ),
        ));
    }
    let lines: Vec<&str> = text.lines().collect();
    let blocks = match detect(&lines) {
        Format::SearchReplace => search_replace(&lines)?,
        Format::Diff => diff(&lines)?,
        Format::Whole => whole(&lines)?,
    };
    if blocks.is_empty() {
        return Err(ReplyError::new(
            "no_edits",
            "the reply holds no edit: no SEARCH/REPLACE block, no unified diff, and no file path followed by the file in a fenced block",
        ));
    }
    Ok(blocks)
}

pub fn detect(lines: &[&str]) -> Format {
    if lines.iter().any(|l| marker(l, '<', "search")) {
        Format::SearchReplace
    } else if lines
        .windows(2)
        .any(|w| w[0].starts_with("--- ") && w[1].starts_with("+++ "))
    {
        Format::Diff
    } else {
        Format::Whole
    }
}

/// `<<<<<<< SEARCH`, `=======`, `>>>>>>> REPLACE`: 5 to 9 of `c`, then
/// `word` (any case), nothing else but spaces.
fn marker(line: &str, c: char, word: &str) -> bool {
    let t = line.trim();
    let n = t.chars().take_while(|&x| x == c).count();
    if !(5..=9).contains(&n) {
        return false;
    }
    t[n..].trim().eq_ignore_ascii_case(word)
}

/// A fence opener: its character, length and info string.
fn fence_open(line: &str) -> Option<(char, usize, &str)> {
    let t = line.trim_start();
    let c = t.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let n = t.chars().take_while(|&x| x == c).count();
    if n < 3 {
        return None;
    }
    let info = t[n..].trim();
    if c == '`' && info.contains('`') {
        return None;
    }
    Some((c, n, info))
}

fn fence_closes(line: &str, c: char, n: usize) -> bool {
    let t = line.trim();
    let m = t.chars().take_while(|&x| x == c).count();
    m >= n && m == t.chars().count()
}

/// The path a line names, if it is a path line: `app.py`, `src/a.rs:`,
/// `` `src/a.rs` ``, `**src/a.rs**`, `### File: src/a.rs`.
fn path_line(line: &str) -> Option<String> {
    let mut t = line.trim();
    t = t.trim_start_matches('#').trim();
    for prefix in [
        "File:",
        "file:",
        "FILE:",
        "Path:",
        "path:",
        "Filename:",
        "filename:",
    ] {
        if let Some(rest) = t.strip_prefix(prefix) {
            t = rest.trim();
        }
    }
    let t = t
        .trim_matches(|c| c == '*' || c == '`' || c == '"' || c == '\'')
        .trim_end_matches(':')
        .trim_matches(|c| c == '*' || c == '`');
    looks_like_path(t).then(|| t.to_string())
}

fn looks_like_path(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 4096
        && !t.contains(char::is_whitespace)
        && !t.starts_with("<<<")
        && !t.starts_with("===")
        && !t.starts_with(">>>")
        && (t.contains('.')
            || t.contains('/')
            || matches!(t, "Makefile" | "Dockerfile" | "Procfile" | "LICENSE"))
        && !t.ends_with('.')
        && t.chars().any(|c| c.is_alphanumeric())
}

/// A path in a fence's info string: ```` ```python app.py ```` or
/// ```` ```app.py ````.
fn info_path(info: &str) -> Option<String> {
    info.split_whitespace().find_map(|w| {
        let w = w.trim_start_matches("path=").trim_start_matches("file=");
        (looks_like_path(w) && (w.contains('/') || w.contains('.'))).then(|| w.to_string())
    })
}

fn rel(path: &str, what: &str) -> Result<RelPath, ReplyError> {
    RelPath::new(path).map_err(|e| ReplyError::new(e.code(), format!("{what}: {e}")))
}

fn search_replace(lines: &[&str]) -> Result<Vec<Block>, ReplyError> {
    let mut blocks = Vec::new();
    let mut path: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if marker(line, '<', "search") {
            let n = blocks.len() + 1;
            let Some(p) = path.clone() else {
                return Err(ReplyError::new(
                    "no_path",
                    format!(
                        "SEARCH/REPLACE block {n} has no file path: put the path alone on the line before the block (or before its fence)"
                    ),
                ));
            };
            let what = format!("SEARCH/REPLACE block {n} (`{p}`)");
            let mut search = Vec::new();
            i += 1;
            loop {
                let Some(l) = lines.get(i) else {
                    return Err(cut_off(&what, "`=======`"));
                };
                if marker(l, '<', "search") || marker(l, '>', "replace") {
                    return Err(ReplyError::new(
                        "malformed_block",
                        format!(
                            "{what}: expected `=======` between SEARCH and REPLACE, found `{}`",
                            l.trim()
                        ),
                    ));
                }
                if divider(l) {
                    break;
                }
                search.push(*l);
                i += 1;
            }
            let mut replace = Vec::new();
            i += 1;
            loop {
                let Some(l) = lines.get(i) else {
                    return Err(cut_off(&what, "`>>>>>>> REPLACE`"));
                };
                if marker(l, '>', "replace") {
                    break;
                }
                if marker(l, '<', "search") {
                    return Err(ReplyError::new(
                        "malformed_block",
                        format!("{what}: a new SEARCH starts before this block's `>>>>>>> REPLACE`"),
                    ));
                }
                replace.push(*l);
                i += 1;
            }
            blocks.push(Block::SearchReplace {
                path: rel(&p, &what)?,
                search: join(&search),
                replace: join(&replace),
            });
            i += 1;
            continue;
        }
        if let Some((_, _, info)) = fence_open(line) {
            if let Some(p) = info_path(info) {
                path = Some(p);
            }
        } else if let Some(p) = path_line(line) {
            path = Some(p);
        }
        i += 1;
    }
    Ok(blocks)
}

fn divider(l: &str) -> bool {
    let t = l.trim();
    (5..=9).contains(&t.len()) && t.chars().all(|c| c == '=')
}

fn cut_off(what: &str, missing: &str) -> ReplyError {
    ReplyError::new(
        "truncated_reply",
        format!(
            "{what} is cut off: the reply ends before its {missing} (was the reply truncated? answer again, shorter)"
        ),
    )
}

/// Lines joined with `\n`, with a final newline when there are any.
fn join(lines: &[&str]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

fn diff(lines: &[&str]) -> Result<Vec<Block>, ReplyError> {
    let mut blocks = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some((c, n)) = fence {
            if fence_closes(line, c, n) {
                fence = None;
                i += 1;
                continue;
            }
        } else if let Some((c, n, _)) = fence_open(line) {
            fence = Some((c, n));
            i += 1;
            continue;
        }
        if !(line.starts_with("--- ") && lines.get(i + 1).is_some_and(|l| l.starts_with("+++ "))) {
            i += 1;
            continue;
        }
        let old = diff_path(&line[4..]);
        let new = diff_path(&lines[i + 1][4..]);
        let n = blocks.len() + 1;
        let (path, kind) = match (&old, &new) {
            (None, Some(p)) => (p.clone(), DiffKind::Create),
            (Some(p), None) => (p.clone(), DiffKind::Delete),
            (Some(o), Some(p)) if o == p => (p.clone(), DiffKind::Modify),
            (Some(o), Some(p)) => {
                return Err(ReplyError::new(
                    "unsupported_diff",
                    format!("diff {n} renames `{o}` to `{p}`; give a rename as a deletion and a new file"),
                ));
            }
            (None, None) => {
                return Err(ReplyError::new(
                    "malformed_diff",
                    format!("diff {n} names no file (`--- /dev/null` and `+++ /dev/null`)"),
                ));
            }
        };
        let what = format!("diff {n} (`{path}`)");
        let path = rel(&path, &what)?;
        i += 2;
        let mut hunks: Vec<DiffHunk> = Vec::new();
        let mut current: Option<DiffHunk> = None;
        while i < lines.len() {
            let l = lines[i];
            if l.starts_with("--- ") && lines.get(i + 1).is_some_and(|n| n.starts_with("+++ ")) {
                break;
            }
            if let Some((c, n)) = fence
                && fence_closes(l, c, n)
            {
                break;
            }
            if l.starts_with("@@") {
                hunks.extend(current.take());
                current = Some(DiffHunk {
                    before: Vec::new(),
                    after: Vec::new(),
                });
                i += 1;
                continue;
            }
            let hunk = current.get_or_insert_with(|| DiffHunk {
                before: Vec::new(),
                after: Vec::new(),
            });
            if let Some(rest) = l.strip_prefix('+') {
                hunk.after.push(rest.to_string());
            } else if let Some(rest) = l.strip_prefix('-') {
                hunk.before.push(rest.to_string());
            } else if let Some(rest) = l.strip_prefix(' ') {
                hunk.before.push(rest.to_string());
                hunk.after.push(rest.to_string());
            } else if l.starts_with('\\') {
                // "\ No newline at end of file"
            } else if l.is_empty() || fence.is_some() {
                // A context line that lost its leading space: inside a
                // fence everything up to the closing fence is the diff.
                hunk.before.push(l.to_string());
                hunk.after.push(l.to_string());
            } else {
                break;
            }
            i += 1;
        }
        hunks.extend(current.take());
        // Blank lines that merely separate the diff from what follows.
        for h in &mut hunks {
            while h.before.last().is_some_and(|l| l.is_empty())
                && h.after.last().is_some_and(|l| l.is_empty())
            {
                h.before.pop();
                h.after.pop();
            }
        }
        hunks.retain(|h| !(h.before.is_empty() && h.after.is_empty()));
        if hunks.is_empty() && kind != DiffKind::Delete {
            return Err(ReplyError::new(
                "truncated_reply",
                format!("{what} has no hunk: the reply ends, or the diff stops, right after its file names"),
            ));
        }
        if fence.is_some() && i >= lines.len() {
            return Err(ReplyError::new(
                "truncated_reply",
                format!(
                    "{what} is cut off: its fence is never closed (was the reply truncated? answer again, shorter)"
                ),
            ));
        }
        blocks.push(Block::Diff { path, hunks, kind });
    }
    Ok(blocks)
}

/// `a/src/x.py` → `src/x.py`; `/dev/null` → None; a trailing timestamp
/// (`\t2024-...`) dropped.
fn diff_path(raw: &str) -> Option<String> {
    let p = raw.split('\t').next().unwrap_or(raw).trim();
    if p == "/dev/null" {
        return None;
    }
    let p = p.strip_prefix("a/").or_else(|| p.strip_prefix("b/")).unwrap_or(p);
    Some(p.to_string())
}

fn whole(lines: &[&str]) -> Result<Vec<Block>, ReplyError> {
    let mut blocks = Vec::new();
    let mut path: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let Some((c, n, info)) = fence_open(line) else {
            path = path_line(line).or_else(|| if line.trim().is_empty() { path.take() } else { None });
            i += 1;
            continue;
        };
        let named = info_path(info).or(path.take());
        let start = i + 1;
        let mut end = start;
        while end < lines.len() && !fence_closes(lines[end], c, n) {
            end += 1;
        }
        if end >= lines.len() {
            let what = match &named {
                Some(p) => format!("the file `{p}`"),
                None => "a fenced block".into(),
            };
            return Err(ReplyError::new(
                "truncated_reply",
                format!(
                    "{what} is cut off: its fence is never closed (was the reply truncated? answer again, shorter)"
                ),
            ));
        }
        // A fence with no path is an illustration (a command to run, an
        // example), not an edit.
        if let Some(p) = named {
            let what = format!("the file `{p}`");
            blocks.push(Block::Whole {
                path: rel(&p, &what)?,
                content: join(&lines[start..end]),
            });
        }
        i = end + 1;
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sr(path: &str, search: &str, replace: &str) -> Block {
        Block::SearchReplace {
            path: RelPath::new(path).unwrap(),
            search: search.into(),
            replace: replace.into(),
        }
    }

    #[test]
    fn search_replace_with_fences_and_slips() {
        let reply = "Here is the fix.\n\n**app.py**\n```python\n<<<<<<< SEARCH  \n    return a + b\n=======\n    return b + a\n>>>>>>> REPLACE\n```\n\n`src/b.py`:\n~~~~\n<<<<<< search\nx = 1\n========\nx = 2\n>>>>>>>> replace\n<<<<<<< SEARCH\ny = 1\n=======\n>>>>>>> REPLACE\n~~~~\n";
        let blocks = parse_reply(reply).unwrap();
        assert_eq!(
            blocks,
            [
                sr("app.py", "    return a + b\n", "    return b + a\n"),
                sr("src/b.py", "x = 1\n", "x = 2\n"),
                sr("src/b.py", "y = 1\n", ""),
            ]
        );
    }

    #[test]
    fn path_in_the_fence_info() {
        let reply = "```python app/main.py\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n```\n";
        assert_eq!(parse_reply(reply).unwrap(), [sr("app/main.py", "a\n", "b\n")]);
    }

    #[test]
    fn refusals() {
        let code = |r: &str| parse_reply(r).unwrap_err().code;
        assert_eq!(code("I think the code looks fine."), "no_edits");
        assert_eq!(code("app.py\n<<<<<<< SEARCH\na\n=======\nb\n"), "truncated_reply");
        assert_eq!(code("app.py\n<<<<<<< SEARCH\na\n"), "truncated_reply");
        assert_eq!(
            code("<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n"),
            "no_path"
        );
        assert_eq!(
            code("../etc/passwd\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n"),
            "path_traversal"
        );
        assert_eq!(code("/etc/passwd\n```\nroot\n```\n"), "path_absolute");
        assert_eq!(code("app.py\n```python\ndef f():\n    pass\n"), "truncated_reply");
        assert_eq!(code(&"x".repeat(MAX_REPLY_BYTES + 1)), "reply_too_large");
        let e = parse_reply("a.py\n<<<<<<< SEARCH\na\n=======\nb\n").unwrap_err();
        assert_eq!(
            e.message,
            "SEARCH/REPLACE block 1 (`a.py`) is cut off: the reply ends before its `>>>>>>> REPLACE` (was the reply truncated? answer again, shorter)"
        );
    }

    #[test]
    fn unified_diff_ignores_line_numbers() {
        let reply = "```diff\n--- a/app.py\n+++ b/app.py\n@@ -10,7 +10,7 @@ def f():\n def greet(name):\n-    return \"Hello, \" + name\n+    return \"Hi, \" + name\n\n```\n";
        let blocks = parse_reply(reply).unwrap();
        assert_eq!(
            blocks,
            [Block::Diff {
                path: RelPath::new("app.py").unwrap(),
                kind: DiffKind::Modify,
                hunks: vec![DiffHunk {
                    before: vec!["def greet(name):".into(), "    return \"Hello, \" + name".into()],
                    after: vec!["def greet(name):".into(), "    return \"Hi, \" + name".into()],
                }],
            }]
        );
    }

    #[test]
    fn diff_new_and_deleted_files() {
        let reply = "--- /dev/null\n+++ b/version.py\n@@ -0,0 +1,2 @@\n+VERSION = \"1\"\n+\n--- a/old.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x = 1\n";
        let blocks = parse_reply(reply).unwrap();
        assert!(
            matches!(&blocks[0], Block::Diff { kind: DiffKind::Create, hunks, .. } if hunks[0].after == ["VERSION = \"1\"", ""])
        );
        assert!(matches!(
            &blocks[1],
            Block::Diff {
                kind: DiffKind::Delete,
                ..
            }
        ));
    }

    #[test]
    fn whole_files_and_illustrations() {
        let reply = "Run the tests with:\n```sh\npython -m unittest\n```\nThe new file:\n\n### version.py\n```python\nVERSION = \"1\"\n```\n";
        assert_eq!(
            parse_reply(reply).unwrap(),
            [Block::Whole {
                path: RelPath::new("version.py").unwrap(),
                content: "VERSION = \"1\"\n".into()
            }]
        );
        assert_eq!(parse_reply("```sh\nls\n```\n").unwrap_err().code, "no_edits");
    }
}
