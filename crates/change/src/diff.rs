//! Reading unified diffs into a [`Change`].
//!
//! Accepts what people and models actually send: `git diff` and
//! `git format-patch` output (with its email preamble and signature), and
//! plain `diff -u` output with or without `a/` `b/` prefixes and timestamps.
//! Anything this crate cannot apply faithfully (binary patches, symlinks,
//! submodules, copies) or that is damaged (truncated hunks, stray lines) is
//! refused with the patch's name and line, because a patch half-understood
//! is worse than one refused (design invariant 7).
//!
//! Mode changes on existing files (`old mode`/`new mode`) carry no content
//! and have no [`Edit`] to express them, so they are ignored; the content
//! part of such a file diff still applies.

use crate::error::{ChangeError, quote};
use crate::path::RelPath;
use crate::{Change, Edit, Hunk, HunkLine, ModifyOp};

/// Parses a unified diff. `source_name` (a file name, `stdin`, an upgrade
/// id) prefixes every error, with the 1-based line in `bytes`.
pub fn parse_unified_diff(source_name: &str, bytes: &[u8]) -> Result<Change, ChangeError> {
    let text = utf8(source_name, bytes)?;
    if text.trim().is_empty() {
        return Err(ChangeError::EmptyChange {
            source_name: source_name.to_string(),
            reason: "the patch is empty",
        });
    }
    let mut parser = Parser {
        src: source_name,
        lines: text.split_inclusive('\n').collect(),
        pos: 0,
        edits: Vec::new(),
        seen_file: false,
    };
    parser.run()?;
    if parser.edits.is_empty() && parser.seen_file {
        return Err(ChangeError::EmptyChange {
            source_name: source_name.to_string(),
            reason: "the patch changes no file content (file modes alone are not applied)",
        });
    }
    if parser.edits.is_empty() {
        // Text, but nothing a diff is made of: malformed rather than empty.
        return Err(ChangeError::MalformedPatch {
            source_name: source_name.to_string(),
            line: 1,
            reason: "no file diffs found; expected a unified diff with `--- a/path`, `+++ b/path` and `@@ -start,count +start,count @@` lines".into(),
        });
    }
    Ok(Change { edits: parser.edits })
}

/// Shared with the JSON reader: input must be UTF-8, and the error says
/// where it stops being so.
pub(crate) fn utf8<'a>(source_name: &str, bytes: &'a [u8]) -> Result<&'a str, ChangeError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        ChangeError::NotUtf8 {
            source_name: source_name.to_string(),
            offset,
            line: bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1,
        }
    })
}

struct Parser<'a> {
    src: &'a str,
    /// Lines with their endings kept, so CRLF survives into hunk text.
    lines: Vec<&'a str>,
    pos: usize,
    edits: Vec<Edit>,
    /// Whether a file diff was read: after one, a lone `---` line is a
    /// broken header rather than commit-message prose.
    seen_file: bool,
}

/// A file name read from the patch, with the line it came from.
#[derive(Clone)]
struct Name {
    text: String,
    line: usize,
}

impl Name {
    fn is_dev_null(&self) -> bool {
        self.text == "/dev/null"
    }
}

/// What the extended header lines of a git file diff said.
#[derive(Default)]
struct GitHeader {
    new_file: Option<String>,
    deleted: bool,
    rename_from: Option<Name>,
    rename_to: Option<Name>,
}

impl<'a> Parser<'a> {
    fn run(&mut self) -> Result<(), ChangeError> {
        while let Some(line) = self.line(0) {
            if line.starts_with("diff --git ") {
                self.git_file()?;
            } else if line.starts_with("--- ") && self.line(1).is_some_and(|l| l.starts_with("+++ ")) {
                self.plain_file()?;
            } else if line.starts_with("--- ")
                && (self.seen_file || self.line(1).is_some_and(|l| l.starts_with("@@")))
            {
                return Err(self.missing_plus_plus_plus());
            } else if line.starts_with("@@ -") {
                return Err(self.malformed(
                    "hunk without a file header; put `--- a/path` and `+++ b/path` lines before it"
                        .to_string(),
                ));
            } else if line.starts_with("Binary files ") && trim_eol(line).ends_with(" differ") {
                return Err(self.binary(binary_files_name(line)));
            } else {
                // Commit message, email headers, diffstat, signature, or
                // `Only in …` lines from `diff -r`: not ours to read.
                self.pos += 1;
            }
        }
        Ok(())
    }

    fn line(&self, ahead: usize) -> Option<&'a str> {
        self.lines.get(self.pos + ahead).copied()
    }

    /// 1-based line number of the current line.
    fn lineno(&self) -> usize {
        self.pos + 1
    }

    fn malformed(&self, reason: String) -> ChangeError {
        ChangeError::MalformedPatch {
            source_name: self.src.to_string(),
            line: self.lineno(),
            reason,
        }
    }

    fn missing_plus_plus_plus(&self) -> ChangeError {
        let line = trim_eol(self.line(0).unwrap_or_default());
        self.malformed(format!(
            "`{}` is not followed by a `+++` line; each file diff needs both `--- old` and `+++ new`",
            quote(line)
        ))
    }

    fn binary(&self, path: String) -> ChangeError {
        ChangeError::BinaryPatch {
            source_name: self.src.to_string(),
            line: self.lineno(),
            path,
        }
    }

    fn unsupported(&self, what: String) -> ChangeError {
        ChangeError::UnsupportedPatch {
            source_name: self.src.to_string(),
            line: self.lineno(),
            what,
        }
    }

    fn rel(&self, name: &Name) -> Result<RelPath, ChangeError> {
        RelPath::new(&name.text).map_err(|error| ChangeError::InPatch {
            source_name: self.src.to_string(),
            line: name.line,
            error: Box::new(error),
        })
    }

    /// One `diff --git` file diff: extended headers, then optionally
    /// `---`/`+++` and hunks.
    fn git_file(&mut self) -> Result<(), ChangeError> {
        self.seen_file = true;
        let header_line = self.lineno();
        let rest = trim_eol(&self.line(0).unwrap_or_default()["diff --git ".len()..]);
        let header_names = git_header_names(rest);
        let display = header_names
            .as_ref()
            .map(|(_, b)| strip_letter_prefix(b).to_string())
            .unwrap_or_else(|| rest.to_string());
        self.pos += 1;

        let mut head = GitHeader::default();
        while let Some(line) = self.line(0) {
            let l = trim_eol(line);
            if let Some(mode) = l.strip_prefix("new file mode ") {
                self.check_mode(mode, &display)?;
                head.new_file = Some(mode.to_string());
            } else if let Some(mode) = l.strip_prefix("deleted file mode ") {
                self.check_mode(mode, &display)?;
                head.deleted = true;
            } else if let Some(mode) = l.strip_prefix("new mode ") {
                self.check_mode(mode, &display)?;
            } else if let Some(mode) = l.strip_prefix("old mode ") {
                self.check_mode(mode, &display)?;
            } else if let Some(index) = l.strip_prefix("index ") {
                if let Some((_, mode)) = index.split_once(' ') {
                    self.check_mode(mode, &display)?;
                }
            } else if let Some(name) = l
                .strip_prefix("rename from ")
                .or_else(|| l.strip_prefix("rename old "))
            {
                head.rename_from = Some(self.name_at(name)?);
            } else if let Some(name) = l
                .strip_prefix("rename to ")
                .or_else(|| l.strip_prefix("rename new "))
            {
                head.rename_to = Some(self.name_at(name)?);
            } else if l.starts_with("copy from ") || l.starts_with("copy to ") {
                return Err(self.unsupported(format!(
                    "copying a file (`{display}`) is not supported: send the copy as a new file instead"
                )));
            } else if l.starts_with("similarity index ") || l.starts_with("dissimilarity index ") {
                // Informational only.
            } else if l == "GIT binary patch" || (l.starts_with("Binary files ") && l.ends_with(" differ")) {
                return Err(self.binary(display));
            } else {
                break;
            }
            self.pos += 1;
        }

        let mut old: Option<Name> = None;
        let mut new: Option<Name> = None;
        let mut hunks = Vec::new();
        if self.line(0).is_some_and(|l| l.starts_with("--- ")) {
            let (o, n, _, _) = self.file_names()?;
            let prefixed = match &header_names {
                Some((a, b)) => has_letter_prefixes(Some(a), Some(b)),
                None => has_letter_prefixes(
                    (!o.is_dev_null()).then_some(o.text.as_str()),
                    (!n.is_dev_null()).then_some(n.text.as_str()),
                ),
            };
            old = Some(strip_name(o, prefixed));
            new = Some(strip_name(n, prefixed));
            let shown = new
                .as_ref()
                .filter(|n| !n.is_dev_null())
                .or(old.as_ref())
                .map(|n| n.text.clone())
                .unwrap_or_default();
            hunks = self.hunks(&shown)?;
        } else if self.line(0).is_some_and(|l| l.starts_with("@@")) {
            return Err(self.malformed(format!(
                "hunk for `{display}` without `---`/`+++` lines before it"
            )));
        }

        // Where the names come from, most specific first: rename lines,
        // then `---`/`+++`, then the `diff --git` line (the only name a
        // header-only diff, like a new empty file, has).
        let from_header = |second: bool| {
            header_names.as_ref().map(|(a, b)| {
                let prefixed = has_letter_prefixes(Some(a), Some(b));
                let raw = if second { b } else { a };
                strip_name(
                    Name {
                        text: raw.clone(),
                        line: header_line,
                    },
                    prefixed,
                )
            })
        };
        let is_new = head.new_file.is_some() || old.as_ref().is_some_and(Name::is_dev_null);
        let is_deleted = head.deleted || new.as_ref().is_some_and(Name::is_dev_null);
        let old_name = head
            .rename_from
            .clone()
            .or_else(|| old.clone().filter(|n| !n.is_dev_null()))
            .or_else(|| from_header(false));
        let new_name = head
            .rename_to
            .clone()
            .or_else(|| new.clone().filter(|n| !n.is_dev_null()))
            .or_else(|| from_header(true));
        let missing_name = || ChangeError::MalformedPatch {
            source_name: self.src.to_string(),
            line: header_line,
            reason: format!(
                "cannot tell which file `diff --git {}` changes; add `--- a/path` and `+++ b/path` lines",
                quote(rest)
            ),
        };

        let edit = if is_new && is_deleted {
            return Err(ChangeError::MalformedPatch {
                source_name: self.src.to_string(),
                line: header_line,
                reason: format!("`{display}` is both created and deleted by one file diff"),
            });
        } else if is_new {
            let name = new_name.ok_or_else(missing_name)?;
            let path = self.rel(&name)?;
            let content = created_content(self.src, &name.text, &hunks)?;
            let executable = head.new_file.as_deref() == Some("100755");
            Some(Edit::Create {
                path,
                content,
                executable,
            })
        } else if is_deleted {
            let name = old_name.ok_or_else(missing_name)?;
            let path = self.rel(&name)?;
            let expect = deleted_content(self.src, &name.text, &hunks)?;
            Some(Edit::Delete {
                path,
                expect: Some(expect),
            })
        } else if let (Some(from), Some(to)) = (&head.rename_from, &head.rename_to) {
            Some(Edit::Rename {
                from: self.rel(from)?,
                to: self.rel(to)?,
                ops: into_ops(hunks),
            })
        } else if hunks.is_empty() {
            // A mode change alone: nothing this crate can express.
            None
        } else {
            let name = new_name.or(old_name).ok_or_else(missing_name)?;
            Some(Edit::Modify {
                path: self.rel(&name)?,
                ops: into_ops(hunks),
            })
        };
        self.edits.extend(edit);
        Ok(())
    }

    /// A file diff without a `diff --git` line: `--- old` / `+++ new`
    /// (each perhaps with a timestamp) and hunks.
    fn plain_file(&mut self) -> Result<(), ChangeError> {
        self.seen_file = true;
        let (old, new, old_time, new_time) = self.file_names()?;
        let prefixed = has_letter_prefixes(
            (!old.is_dev_null()).then_some(old.text.as_str()),
            (!new.is_dev_null()).then_some(new.text.as_str()),
        );
        let old = strip_name(old, prefixed);
        let new = strip_name(new, prefixed);
        let shown = if new.is_dev_null() { &old } else { &new }.text.clone();
        let hunks = self.hunks(&shown)?;

        // GNU `diff -N` writes a missing side as the real name with the
        // epoch as its time, where git would write /dev/null.
        let only_hunk_is = |old_side: bool| {
            hunks.len() == 1
                && if old_side {
                    hunks[0].1.old_len == 0
                } else {
                    hunks[0].1.new_len == 0
                }
        };
        let is_new = old.is_dev_null() || (is_epoch(old_time.as_deref()) && only_hunk_is(true));
        let is_deleted = new.is_dev_null() || (is_epoch(new_time.as_deref()) && only_hunk_is(false));

        let edit = if is_new && !new.is_dev_null() {
            Edit::Create {
                path: self.rel(&new)?,
                content: created_content(self.src, &new.text, &hunks)?,
                executable: false,
            }
        } else if is_deleted && !old.is_dev_null() {
            Edit::Delete {
                path: self.rel(&old)?,
                expect: Some(deleted_content(self.src, &old.text, &hunks)?),
            }
        } else if old.is_dev_null() {
            return Err(ChangeError::MalformedPatch {
                source_name: self.src.to_string(),
                line: old.line,
                reason: "both sides of the file diff are /dev/null".to_string(),
            });
        } else {
            // Plain diffs cannot rename, so differing names are two copies
            // of one file (`diff -u a.py.orig a.py`); like `patch`, pick
            // the simpler name.
            let name = if old.text == new.text {
                new
            } else {
                simpler_name(old, new)
            };
            Edit::Modify {
                path: self.rel(&name)?,
                ops: into_ops(hunks),
            }
        };
        self.edits.push(edit);
        Ok(())
    }

    /// Reads the `--- old` and `+++ new` lines at the current position,
    /// returning the names (unstripped) and any timestamps.
    #[allow(clippy::type_complexity)]
    fn file_names(&mut self) -> Result<(Name, Name, Option<String>, Option<String>), ChangeError> {
        let old_line = self.line(0).unwrap_or_default();
        if !self.line(1).is_some_and(|l| l.starts_with("+++ ")) {
            return Err(self.missing_plus_plus_plus());
        }
        let (old, old_time) = self.file_name_at(&old_line[4..])?;
        self.pos += 1;
        let new_line = self.line(0).unwrap_or_default();
        let (new, new_time) = self.file_name_at(&new_line[4..])?;
        self.pos += 1;
        Ok((old, new, old_time, new_time))
    }

    /// The name on a `---`/`+++` line: quoted, or up to a tab (after which
    /// `diff -u` puts a timestamp and git puts nothing).
    fn file_name_at(&self, rest: &str) -> Result<(Name, Option<String>), ChangeError> {
        let rest = trim_eol(rest);
        let (text, time) = if rest.starts_with('"') {
            let (name, after) = unquote(rest).ok_or_else(|| self.bad_quote(rest))?;
            (name, after.strip_prefix('\t').map(str::to_string))
        } else {
            match rest.split_once('\t') {
                Some((name, time)) => (name.to_string(), Some(time.to_string())),
                None => (rest.to_string(), None),
            }
        };
        Ok((
            Name {
                text,
                line: self.lineno(),
            },
            time,
        ))
    }

    /// A name on a `rename from`/`rename to` line.
    fn name_at(&self, rest: &str) -> Result<Name, ChangeError> {
        let text = if rest.starts_with('"') {
            unquote(rest).ok_or_else(|| self.bad_quote(rest))?.0
        } else {
            rest.to_string()
        };
        Ok(Name {
            text,
            line: self.lineno(),
        })
    }

    fn bad_quote(&self, text: &str) -> ChangeError {
        self.malformed(format!("cannot read the quoted file name `{}`", quote(text)))
    }

    fn check_mode(&self, mode: &str, display: &str) -> Result<(), ChangeError> {
        match mode.trim() {
            "100644" | "100755" | "100664" => Ok(()),
            "120000" => Err(self.unsupported(format!(
                "`{display}` is a symbolic link (mode 120000): a change may not create or change symlinks, Graft writes regular files only"
            ))),
            "160000" => Err(self.unsupported(format!(
                "`{display}` is a submodule (mode 160000): a change may not touch submodules, Graft writes regular files only"
            ))),
            other => Err(self.malformed(format!(
                "unknown file mode `{other}` for `{display}`; expected 100644 or 100755"
            ))),
        }
    }

    /// Every hunk at the current position, for the file shown as `path`,
    /// each with the line of its header.
    fn hunks(&mut self, path: &str) -> Result<Vec<(usize, Hunk)>, ChangeError> {
        let mut hunks = Vec::new();
        loop {
            // Blank lines between hunks are a common hand-editing slip.
            if !hunks.is_empty() {
                let blanks = (0..)
                    .take_while(|&i| self.line(i).is_some_and(|l| trim_eol(l).is_empty()))
                    .count();
                if self.line(blanks).is_some_and(|l| l.starts_with("@@")) {
                    self.pos += blanks;
                }
            }
            if !self.line(0).is_some_and(|l| l.starts_with("@@")) {
                break;
            }
            let line = self.lineno();
            hunks.push((line, self.hunk(path)?));
        }
        if hunks.is_empty() {
            return Err(self.malformed(format!(
                "the file diff for `{path}` has no hunks; expected a `@@ -start,count +start,count @@` line"
            )));
        }
        self.check_no_stray_lines(path, &hunks.last().expect("non-empty").1)?;
        Ok(hunks)
    }

    fn hunk(&mut self, path: &str) -> Result<Hunk, ChangeError> {
        let header_lineno = self.lineno();
        let line = trim_eol(self.line(0).unwrap_or_default());
        let Some(mut hunk) = parse_hunk_header(line) else {
            return Err(self.malformed(format!(
                "cannot read the hunk header `{}`; expected `@@ -start,count +start,count @@`",
                quote(line)
            )));
        };
        self.pos += 1;
        let (mut old_left, mut new_left) = (hunk.old_len, hunk.new_len);
        let truncated = |old_left: usize, new_left: usize, hunk: &Hunk| {
            let (side, want, left) = if old_left > 0 {
                ("old", hunk.old_len, old_left)
            } else {
                ("new", hunk.new_len, new_left)
            };
            ChangeError::TruncatedHunk {
                source_name: self.src.to_string(),
                line: header_lineno,
                path: path.to_string(),
                header: hunk.header.clone(),
                side,
                got: want - left,
                want,
            }
        };
        let too_many = |what: &str, hunk: &Hunk, at: usize| ChangeError::MalformedPatch {
            source_name: self.src.to_string(),
            line: at,
            reason: format!(
                "hunk `{}` of `{path}` has more {what} lines than its header counts; fix the counts in the header",
                hunk.header
            ),
        };
        while old_left > 0 || new_left > 0 {
            let Some(raw) = self.line(0) else {
                return Err(truncated(old_left, new_left, &hunk));
            };
            let at = self.lineno();
            // The next file diff or hunk starting early means this one was
            // cut short, not that it holds garbage.
            // A `--- x`/`+++ y` pair is also valid hunk content (removing
            // `-- x`, adding `++ y`); like `git apply`, trust the counts and
            // take it as the next file only when the counts rule content out.
            let next_header = raw.starts_with("@@")
                || raw.starts_with("diff ")
                || ((old_left == 0 || new_left == 0)
                    && raw.starts_with("--- ")
                    && self.line(1).is_some_and(|l| l.starts_with("+++ ")));
            if next_header {
                return Err(truncated(old_left, new_left, &hunk));
            }
            let (marker, text) = match raw.as_bytes()[0] {
                // Editors strip the lone space of an empty context line.
                b'\n' | b'\r' if trim_eol(raw).is_empty() => (b' ', raw),
                m if m.is_ascii() => (m, &raw[1..]),
                // Not a marker; `raw[1..]` would split a character.
                m => (m, ""),
            };
            match marker {
                b' ' => {
                    if old_left == 0 || new_left == 0 {
                        return Err(too_many("context", &hunk, at));
                    }
                    old_left -= 1;
                    new_left -= 1;
                    hunk.lines.push(HunkLine::Context(text.to_string()));
                }
                b'-' => {
                    if old_left == 0 {
                        if raw.trim_end() == "--" {
                            // A format-patch signature right after a
                            // hunk that lost its last added lines.
                            return Err(truncated(old_left, new_left, &hunk));
                        }
                        return Err(too_many("removed", &hunk, at));
                    }
                    old_left -= 1;
                    hunk.lines.push(HunkLine::Remove(text.to_string()));
                }
                b'+' => {
                    if new_left == 0 {
                        return Err(too_many("added", &hunk, at));
                    }
                    new_left -= 1;
                    hunk.lines.push(HunkLine::Add(text.to_string()));
                }
                b'\\' => self.no_newline(&mut hunk)?,
                _ => {
                    return Err(ChangeError::MalformedPatch {
                        source_name: self.src.to_string(),
                        line: at,
                        reason: format!(
                            "unexpected line in hunk `{}` of `{path}`: `{}`; every hunk line starts with ` `, `+`, `-` or `\\`",
                            hunk.header,
                            quote(raw)
                        ),
                    });
                }
            }
            self.pos += 1;
        }
        if self.line(0).is_some_and(|l| l.starts_with('\\')) {
            self.no_newline(&mut hunk)?;
            self.pos += 1;
        }
        Ok(hunk)
    }

    /// `\ No newline at end of file`: the line before it has no `\n`.
    fn no_newline(&self, hunk: &mut Hunk) -> Result<(), ChangeError> {
        let text = match hunk.lines.last_mut() {
            Some(HunkLine::Context(t) | HunkLine::Remove(t) | HunkLine::Add(t)) => t,
            None => {
                return Err(self.malformed(format!(
                    "`\\ No newline at end of file` before any line of hunk `{}`",
                    hunk.header
                )));
            }
        };
        // Only the `\n`: a `\r` before it belongs to the file's text.
        if text.ends_with('\n') {
            text.pop();
        }
        Ok(())
    }

    /// After a hunk's counted lines, more hunk-looking lines mean the
    /// header undercounts; applying only part of it would be wrong.
    fn check_no_stray_lines(&self, path: &str, last: &Hunk) -> Result<(), ChangeError> {
        let Some(line) = self.line(0) else {
            return Ok(());
        };
        let next_plain_header =
            line.starts_with("--- ") && self.line(1).is_some_and(|l| l.starts_with("+++ "));
        let signature = line.trim_end() == "--";
        let hunk_like = line.starts_with(' ') || line.starts_with('+') || line.starts_with('-');
        if hunk_like && !next_plain_header && !signature {
            return Err(self.malformed(format!(
                "hunk `{}` of `{path}` has more lines than its header counts; fix the counts in the header",
                last.header
            )));
        }
        Ok(())
    }
}

/// Parses `@@ -a[,b] +c[,d] @@[ section]`; an omitted count is 1.
fn parse_hunk_header(line: &str) -> Option<Hunk> {
    let rest = line.strip_prefix("@@ -")?;
    let end = rest.find(" @@")?;
    let (old, new) = rest[..end].split_once(" +")?;
    let range = |s: &str| -> Option<(usize, usize)> {
        let (start, len) = match s.split_once(',') {
            Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
            None => (s.parse().ok()?, 1),
        };
        // Line 0 only exists as "before the first line" of an empty side.
        (start > 0 || len == 0).then_some((start, len))
    };
    let (old_start, old_len) = range(old)?;
    let (new_start, new_len) = range(new)?;
    Some(Hunk {
        header: line[..4 + end + 3].to_string(),
        old_start,
        old_len,
        new_start,
        new_len,
        lines: Vec::new(),
    })
}

fn created_content(src: &str, path: &str, hunks: &[(usize, Hunk)]) -> Result<Vec<u8>, ChangeError> {
    side_content(src, path, hunks, true)
}

fn deleted_content(src: &str, path: &str, hunks: &[(usize, Hunk)]) -> Result<Vec<u8>, ChangeError> {
    side_content(src, path, hunks, false)
}

fn into_ops(hunks: Vec<(usize, Hunk)>) -> Vec<ModifyOp> {
    hunks.into_iter().map(|(_, h)| ModifyOp::Hunk(h)).collect()
}

/// The whole text of a new (or deleted) file: a creation may only add
/// lines and a deletion only remove them.
fn side_content(src: &str, path: &str, hunks: &[(usize, Hunk)], added: bool) -> Result<Vec<u8>, ChangeError> {
    let mut out = Vec::new();
    for (lineno, hunk) in hunks {
        for line in &hunk.lines {
            match (line, added) {
                (HunkLine::Add(t), true) | (HunkLine::Remove(t), false) => {
                    out.extend_from_slice(t.as_bytes())
                }
                _ => {
                    return Err(ChangeError::MalformedPatch {
                        source_name: src.to_string(),
                        line: *lineno,
                        reason: format!(
                            "hunk `{}` of `{path}` {} but the file diff {} the file",
                            hunk.header,
                            if added {
                                "keeps or removes lines"
                            } else {
                                "keeps or adds lines"
                            },
                            if added { "creates" } else { "deletes" }
                        ),
                    });
                }
            }
        }
    }
    Ok(out)
}

fn trim_eol(line: &str) -> &str {
    line.trim_end_matches(['\n', '\r'])
}

/// `Binary files a/x and b/x differ` names the file twice; keep the second.
fn binary_files_name(line: &str) -> String {
    let l = trim_eol(line);
    let inner = l
        .strip_prefix("Binary files ")
        .and_then(|s| s.strip_suffix(" differ"))
        .unwrap_or(l);
    inner
        .rsplit_once(" and ")
        .map(|(_, b)| strip_letter_prefix(b).to_string())
        .unwrap_or_else(|| inner.to_string())
}

/// The two names of `diff --git A B`, quoted or not. Unquoted names may
/// hold spaces, so when both are plain the split is the one where the two
/// sides name the same file (true unless it is a rename, which has its
/// own `rename from`/`rename to` lines anyway).
fn git_header_names(rest: &str) -> Option<(String, String)> {
    if rest.starts_with('"') {
        let (a, after) = unquote(rest)?;
        let after = after.strip_prefix(' ')?;
        let b = if after.starts_with('"') {
            unquote(after)?.0
        } else {
            after.to_string()
        };
        return Some((a, b));
    }
    if let Some(i) = rest.find(" \"") {
        return Some((rest[..i].to_string(), unquote(&rest[i + 1..])?.0));
    }
    rest.match_indices(' ').find_map(|(i, _)| {
        let (a, b) = (&rest[..i], &rest[i + 1..]);
        (strip_letter_prefix(a) == strip_letter_prefix(b)).then(|| (a.to_string(), b.to_string()))
    })
}

/// git's `a/` `b/` (or `i/` `w/` and friends with mnemonic prefixes).
fn letter_prefix(name: &str) -> Option<u8> {
    let b = name.as_bytes();
    (b.len() > 2 && b[0].is_ascii_lowercase() && b[1] == b'/').then(|| b[0])
}

fn strip_letter_prefix(name: &str) -> &str {
    if letter_prefix(name).is_some() {
        &name[2..]
    } else {
        name
    }
}

/// Whether the names carry diff prefixes to strip: two different
/// one-letter prefixes (`a/x b/x`, never `d/x d/x`), or, with one side
/// missing, `a/` on the old or `b/` on the new side.
fn has_letter_prefixes(old: Option<&str>, new: Option<&str>) -> bool {
    match (old, new) {
        (Some(o), Some(n)) => match (letter_prefix(o), letter_prefix(n)) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        },
        (Some(o), None) => o.starts_with("a/"),
        (None, Some(n)) => n.starts_with("b/"),
        (None, None) => false,
    }
}

fn strip_name(name: Name, prefixed: bool) -> Name {
    if prefixed && !name.is_dev_null() && letter_prefix(&name.text).is_some() {
        Name {
            text: name.text[2..].to_string(),
            line: name.line,
        }
    } else {
        name
    }
}

/// Fewer directories, then a shorter file name, then a shorter path; on a
/// tie the new side, which is what the patch produces.
fn simpler_name(old: Name, new: Name) -> Name {
    let key = |n: &Name| {
        let t = n.text.as_str();
        (
            t.matches('/').count(),
            t.rsplit('/').next().unwrap_or(t).len(),
            t.len(),
        )
    };
    if key(&old) < key(&new) { old } else { new }
}

/// GNU diff writes a missing file's time as the epoch, in local time.
fn is_epoch(time: Option<&str>) -> bool {
    time.is_some_and(|t| {
        let t = t.trim_start();
        t.starts_with("1970-01-01") || t.starts_with("1969-12-31")
    })
}

/// Reads a C-style quoted name as git writes it (`"a/caf\303\251.txt"`),
/// returning it and what follows the closing quote.
fn unquote(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let bytes = body.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let name = String::from_utf8(out).ok()?;
                return Some((name, &body[i + 1..]));
            }
            b'\\' => {
                let c = *bytes.get(i + 1)?;
                let (byte, used) = match c {
                    b'a' => (7, 2),
                    b'b' => (8, 2),
                    b'f' => (12, 2),
                    b'n' => (b'\n', 2),
                    b'r' => (b'\r', 2),
                    b't' => (b'\t', 2),
                    b'v' => (11, 2),
                    b'\\' | b'"' => (c, 2),
                    b'0'..=b'3' => {
                        let digits = bytes.get(i + 1..i + 4)?;
                        let text = std::str::from_utf8(digits).ok()?;
                        (u8::from_str_radix(text, 8).ok()?, 4)
                    }
                    _ => return None,
                };
                out.push(byte);
                i += used;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
