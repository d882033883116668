//! Applying [`ModifyOp`]s to one file's bytes.
//!
//! Hunks apply the way `patch` and `git apply` do without fuzz: at the
//! stated line if the context and removed lines match there exactly, else
//! at the nearest place they do, never dropping a context line to make a
//! hunk fit. Search/replace must find its text exactly once, so a
//! replacement can never land somewhere the author did not mean.

use std::borrow::Cow;

use crate::error::ChangeError;
use crate::path::RelPath;
use crate::{Hunk, HunkLine, ModifyOp};

pub(super) fn apply_ops(path: &RelPath, content: &[u8], ops: &[ModifyOp]) -> Result<Vec<u8>, ChangeError> {
    let mut content = content.to_vec();
    let mut cursor = HunkCursor::default();
    for op in ops {
        content = match op {
            ModifyOp::Hunk(hunk) => apply_hunk(path, &content, hunk, &mut cursor)?,
            ModifyOp::SearchReplace { search, replace } => search_replace(path, &content, search, replace)?,
        };
    }
    Ok(content)
}

/// Where the hunks of one file diff stand relative to the file. Hunk
/// headers count lines in the old file; after earlier hunks applied (and
/// perhaps applied away from their stated place), later ones move too.
#[derive(Default)]
struct HunkCursor {
    /// Lines to add to a hunk's stated position to get its expected one.
    shift: isize,
    /// The line where the last applied hunk ended: hunks apply in order,
    /// so a later one may not match before it.
    floor: usize,
}

fn apply_hunk(
    path: &RelPath,
    content: &[u8],
    hunk: &Hunk,
    cursor: &mut HunkCursor,
) -> Result<Vec<u8>, ChangeError> {
    let lines: Vec<&[u8]> = content.split_inclusive(|&b| b == b'\n').collect();
    let old: Vec<&[u8]> = hunk
        .lines
        .iter()
        .filter_map(|l| match l {
            HunkLine::Context(t) | HunkLine::Remove(t) => Some(t.as_bytes()),
            HunkLine::Add(_) => None,
        })
        .collect();
    let new: Vec<&[u8]> = hunk
        .lines
        .iter()
        .filter_map(|l| match l {
            HunkLine::Context(t) | HunkLine::Add(t) => Some(t.as_bytes()),
            HunkLine::Remove(_) => None,
        })
        .collect();
    // `-5,0` means "after line 5"; `-5,3` means "starting at line 5".
    let stated = if old.is_empty() {
        hunk.old_start
    } else {
        hunk.old_start.saturating_sub(1)
    };
    // Saturating: a header can claim any line number.
    let stated = isize::try_from(stated).unwrap_or(isize::MAX);
    let expected = stated.saturating_add(cursor.shift).max(0) as usize;
    let Some(at) = find_block(&lines, &old, expected, cursor.floor) else {
        return Err(mismatch(path, hunk, &lines, &old, expected));
    };

    let mut out = Vec::with_capacity(content.len() + new.iter().map(|l| l.len()).sum::<usize>());
    lines[..at].iter().for_each(|l| out.extend_from_slice(l));
    new.iter().for_each(|l| out.extend_from_slice(l));
    lines[at + old.len()..]
        .iter()
        .for_each(|l| out.extend_from_slice(l));

    // Where the file's lines now stand relative to the old numbering.
    cursor.shift = (at as isize + new.len() as isize - old.len() as isize).saturating_sub(stated);
    cursor.floor = at + new.len();
    Ok(out)
}

/// The start of the match of `block` nearest to `expected`, at or after
/// `floor`.
fn find_block(lines: &[&[u8]], block: &[&[u8]], expected: usize, floor: usize) -> Option<usize> {
    let max_start = lines.len().checked_sub(block.len())?;
    if floor > max_start {
        return None;
    }
    let guess = expected.clamp(floor, max_start);
    if block.is_empty() {
        return Some(guess);
    }
    let matches_at = |at: usize| lines[at..at + block.len()] == *block;
    for distance in 0..=(max_start - floor) {
        let after = guess + distance;
        if after <= max_start && matches_at(after) {
            return Some(after);
        }
        if distance > 0
            && let Some(before) = guess.checked_sub(distance)
            && before >= floor
            && matches_at(before)
        {
            return Some(before);
        }
    }
    None
}

/// Names the first line that differs at the hunk's expected place.
fn mismatch(path: &RelPath, hunk: &Hunk, lines: &[&[u8]], old: &[&[u8]], expected: usize) -> ChangeError {
    let first_bad = (0..old.len())
        .find(|&i| lines.get(expected + i) != Some(&old[i]))
        .unwrap_or(0);
    let want = String::from_utf8_lossy(old[first_bad]).into_owned();
    let have = lines
        .get(expected + first_bad)
        .map(|l| String::from_utf8_lossy(l).into_owned());
    // When only the line ending differs, the trimmed quotes would look
    // identical; show the endings.
    let same_text = have
        .as_deref()
        .is_some_and(|h| h.trim_end_matches(['\r', '\n']) == want.trim_end_matches(['\r', '\n']));
    let (want, have) = if same_text {
        (
            want.escape_debug().to_string(),
            have.map(|h| h.escape_debug().to_string()),
        )
    } else {
        (want, have)
    };
    ChangeError::HunkMismatch {
        path: path.clone(),
        header: hunk.header.clone(),
        line: expected + first_bad + 1,
        expected: want,
        found: have,
    }
}

fn search_replace(
    path: &RelPath,
    content: &[u8],
    search: &str,
    replace: &str,
) -> Result<Vec<u8>, ChangeError> {
    let mut search_text = Cow::Borrowed(search);
    let mut replace_text = Cow::Borrowed(replace);
    let mut found = find_all(content, search.as_bytes());
    // Models write `\n`; a CRLF file holds `\r\n`. Matching with the
    // file's line ending is still an exact, single match.
    if found.is_empty()
        && search.contains('\n')
        && !search.contains('\r')
        && content.windows(2).any(|w| w == b"\r\n")
    {
        let crlf = search.replace('\n', "\r\n");
        found = find_all(content, crlf.as_bytes());
        search_text = Cow::Owned(crlf);
        replace_text = Cow::Owned(replace.replace("\r\n", "\n").replace('\n', "\r\n"));
    }
    match found.as_slice() {
        [] => Err(ChangeError::SearchNotFound {
            path: path.clone(),
            search: search.to_string(),
        }),
        [at] => {
            let mut out = Vec::with_capacity(content.len() + replace_text.len());
            out.extend_from_slice(&content[..*at]);
            out.extend_from_slice(replace_text.as_bytes());
            out.extend_from_slice(&content[at + search_text.len()..]);
            Ok(out)
        }
        many => {
            let mut lines: Vec<usize> = many
                .iter()
                .map(|&at| content[..at].iter().filter(|&&b| b == b'\n').count() + 1)
                .collect();
            lines.dedup();
            Err(ChangeError::SearchAmbiguous {
                path: path.clone(),
                search: search.to_string(),
                count: many.len(),
                lines,
            })
        }
    }
}

/// Every start of `needle` in `hay`, overlapping ones included: `aa` in
/// `aaa` is ambiguous, not unique.
fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    if needle.is_empty() || needle.len() > hay.len() {
        return out;
    }
    let last_start = hay.len() - needle.len();
    let mut from = 0;
    while from <= last_start {
        let Some(offset) = hay[from..=last_start].iter().position(|&b| b == needle[0]) else {
            break;
        };
        let at = from + offset;
        if &hay[at..at + needle.len()] == needle {
            out.push(at);
        }
        from = at + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> RelPath {
        RelPath::new("src/a.py").unwrap()
    }

    fn hunk(old_start: usize, lines: &[(&str, &str)]) -> Hunk {
        let lines: Vec<HunkLine> = lines
            .iter()
            .map(|(m, t)| match *m {
                " " => HunkLine::Context(t.to_string()),
                "-" => HunkLine::Remove(t.to_string()),
                "+" => HunkLine::Add(t.to_string()),
                _ => unreachable!(),
            })
            .collect();
        let old_len = lines.iter().filter(|l| !matches!(l, HunkLine::Add(_))).count();
        let new_len = lines.iter().filter(|l| !matches!(l, HunkLine::Remove(_))).count();
        Hunk {
            header: format!("@@ -{old_start},{old_len} +{old_start},{new_len} @@"),
            old_start,
            old_len,
            new_start: old_start,
            new_len,
            lines,
        }
    }

    fn numbered(n: usize) -> String {
        (1..=n).map(|i| format!("line {i}\n")).collect()
    }

    fn apply(content: &str, hunks: Vec<Hunk>) -> Result<String, ChangeError> {
        let ops: Vec<ModifyOp> = hunks.into_iter().map(ModifyOp::Hunk).collect();
        apply_ops(&p(), content.as_bytes(), &ops).map(|b| String::from_utf8(b).unwrap())
    }

    fn sr(content: &str, search: &str, replace: &str) -> Result<String, ChangeError> {
        let ops = [ModifyOp::SearchReplace {
            search: search.into(),
            replace: replace.into(),
        }];
        apply_ops(&p(), content.as_bytes(), &ops).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn hunk_at_stated_position() {
        let h = hunk(
            2,
            &[
                (" ", "line 2\n"),
                ("-", "line 3\n"),
                ("+", "THREE\n"),
                (" ", "line 4\n"),
            ],
        );
        let out = apply(&numbered(5), vec![h]).unwrap();
        assert_eq!(out, "line 1\nline 2\nTHREE\nline 4\nline 5\n");
    }

    #[test]
    fn hunk_found_when_file_shifted_down() {
        let content = format!("new a\nnew b\nnew c\n{}", numbered(10));
        let h = hunk(
            5,
            &[
                (" ", "line 5\n"),
                ("-", "line 6\n"),
                ("+", "SIX\n"),
                (" ", "line 7\n"),
            ],
        );
        let out = apply(&content, vec![h]).unwrap();
        assert!(out.contains("line 5\nSIX\nline 7\n"), "{out}");
        assert!(!out.contains("line 6"));
    }

    #[test]
    fn hunk_found_when_file_shifted_up() {
        let content = numbered(10).replacen("line 1\nline 2\nline 3\n", "", 1);
        let h = hunk(8, &[(" ", "line 8\n"), ("-", "line 9\n"), ("+", "NINE\n")]);
        let out = apply(&content, vec![h]).unwrap();
        assert!(out.contains("line 8\nNINE\nline 10\n"), "{out}");
    }

    #[test]
    fn later_hunks_account_for_earlier_shifts() {
        // Two hunks; the first adds lines, and the whole file is shifted.
        let content = format!("header\n{}", numbered(20));
        let h1 = hunk(
            2,
            &[
                (" ", "line 2\n"),
                ("+", "added a\n"),
                ("+", "added b\n"),
                (" ", "line 3\n"),
            ],
        );
        let h2 = hunk(15, &[(" ", "line 15\n"), ("-", "line 16\n"), (" ", "line 17\n")]);
        let out = apply(&content, vec![h1, h2]).unwrap();
        assert!(out.contains("line 2\nadded a\nadded b\nline 3\n"));
        assert!(out.contains("line 15\nline 17\n"));
        assert!(!out.contains("line 16"));
    }

    #[test]
    fn earlier_hunks_move_the_expected_place_of_later_ones() {
        // `dup` on lines 5 and 10; the second hunk means line 10. After the
        // first hunk adds 6 lines, line 5's `dup` sits nearer to the
        // unshifted line 10 than line 10's own does.
        let content: String = (1..=20)
            .map(|i| {
                if i == 5 || i == 10 {
                    "dup\n".to_string()
                } else {
                    format!("l{i}\n")
                }
            })
            .collect();
        let mut first = vec![(" ", "l2\n")];
        first.extend(std::iter::repeat_n(("+", "new\n"), 6));
        first.push((" ", "l3\n"));
        let h1 = hunk(2, &first);
        let h2 = hunk(10, &[("-", "dup\n"), ("+", "DUP\n")]);
        let out = apply(&content, vec![h1, h2]).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[4 + 6], "dup", "{out}");
        assert_eq!(lines[9 + 6], "DUP", "{out}");
    }

    #[test]
    fn nearest_match_wins_and_hunks_stay_in_order() {
        // "x" occurs at lines 2 and 8; a hunk stated at 7 takes line 8.
        let content = "a\nx\nb\nc\nd\ne\nf\nx\ng\n";
        let h = hunk(7, &[("-", "x\n"), ("+", "Y\n")]);
        assert_eq!(apply(content, vec![h]).unwrap(), "a\nx\nb\nc\nd\ne\nf\nY\ng\n");
        // A second hunk may not match before the first one's end.
        let h1 = hunk(8, &[("-", "x\n"), ("+", "Y\n")]);
        let h2 = hunk(2, &[("-", "x\n"), ("+", "Z\n")]);
        let err = apply(content, vec![h1, h2]).unwrap_err();
        assert_eq!(err.code(), "hunk_mismatch");
    }

    #[test]
    fn failing_hunk_names_file_header_and_first_bad_line() {
        let h = hunk(2, &[(" ", "line 2\n"), ("-", "line three\n"), ("+", "3\n")]);
        let err = apply(&numbered(5), vec![h]).unwrap_err();
        assert_eq!(err.code(), "hunk_mismatch");
        assert_eq!(
            err.to_string(),
            "hunk `@@ -2,2 +2,2 @@` does not apply to `src/a.py`: at line 3 the patch expects `line three` but the file has `line 3`; the file changed since the patch was made, regenerate it against the current file"
        );
    }

    #[test]
    fn hunk_past_end_of_file() {
        let h = hunk(3, &[(" ", "line 3\n"), ("-", "line 4\n")]);
        let err = apply("line 1\nline 2\nline 3\n", vec![h]).unwrap_err();
        assert!(
            err.to_string()
                .contains("at line 4 the patch expects `line 4` but the file ends before that line"),
            "{err}"
        );
    }

    #[test]
    fn line_ending_only_mismatch_is_visible() {
        let h = hunk(1, &[("-", "a\n"), ("+", "b\n")]);
        let err = apply("a\r\n", vec![h]).unwrap_err();
        assert!(
            err.to_string()
                .contains(r"expects `a\n` but the file has `a\r\n`"),
            "{err}"
        );
    }

    #[test]
    fn crlf_and_missing_final_newline_apply_faithfully() {
        let h = hunk(1, &[(" ", "a\r\n"), ("-", "b"), ("+", "b\r\n"), ("+", "c")]);
        assert_eq!(apply("a\r\nb", vec![h]).unwrap(), "a\r\nb\r\nc");
    }

    #[test]
    fn pure_insertion_and_creation_into_empty_file() {
        let mut h = hunk(0, &[("+", "first\n")]);
        h.old_start = 0;
        assert_eq!(apply("", vec![h.clone()]).unwrap(), "first\n");
        // `-1,0` inserts after line 1.
        h.old_start = 1;
        assert_eq!(apply("a\nb\n", vec![h]).unwrap(), "a\nfirst\nb\n");
    }

    #[test]
    fn search_replace_once() {
        assert_eq!(
            sr("def foo():\n    pass\n", "pass", "return 1").unwrap(),
            "def foo():\n    return 1\n"
        );
        assert_eq!(sr("abc", "b", "").unwrap(), "ac");
    }

    #[test]
    fn search_not_found() {
        let err = sr("def bar():\n", "def foo(", "x").unwrap_err();
        assert_eq!(err.code(), "search_not_found");
        assert!(
            err.to_string()
                .starts_with("search text not found in `src/a.py`: `def foo(`"),
            "{err}"
        );
    }

    #[test]
    fn search_not_found_quotes_first_line_only() {
        let err = sr("x\n", "def foo(a):\n    return a\n", "").unwrap_err();
        assert!(err.to_string().contains("`def foo(a):…`"), "{err}");
    }

    #[test]
    fn search_ambiguous_names_lines() {
        let err = sr("x = 1\ny = 2\nx = 1\n\nx = 1\n", "x = 1", "x = 3").unwrap_err();
        assert_eq!(err.code(), "search_ambiguous");
        let ChangeError::SearchAmbiguous { count, lines, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*count, 3);
        assert_eq!(lines, &vec![1, 3, 5]);
        assert!(
            err.to_string()
                .contains("occurs 3 times in `src/a.py` (at lines 1, 3, 5)"),
            "{err}"
        );
    }

    #[test]
    fn overlapping_occurrences_are_ambiguous() {
        let err = sr("aaa", "aa", "b").unwrap_err();
        assert_eq!(err.code(), "search_ambiguous");
    }

    #[test]
    fn search_adapts_to_crlf_files() {
        let out = sr("a\r\nb\r\nc\r\n", "a\nb\n", "A\nB\n").unwrap();
        assert_eq!(out, "A\r\nB\r\nc\r\n");
    }

    #[test]
    fn ops_apply_in_order() {
        let ops = [
            ModifyOp::SearchReplace {
                search: "a".into(),
                replace: "b".into(),
            },
            ModifyOp::SearchReplace {
                search: "bc".into(),
                replace: "X".into(),
            },
        ];
        assert_eq!(apply_ops(&p(), b"ac", &ops).unwrap(), b"X");
    }

    #[test]
    fn find_all_overlapping() {
        assert_eq!(find_all(b"abababa", b"aba"), vec![0, 2, 4]);
        assert_eq!(find_all(b"abc", b"abcd"), Vec::<usize>::new());
        assert_eq!(find_all(b"abc", b"c"), vec![2]);
    }
}
