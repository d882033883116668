//! The prompt: the instruction, the project's conventions, a repo map, the
//! full text of the files chosen for editing, and the rules of the edit
//! format, within a token budget.
//!
//! Files are ranked toward what the instruction is about: a path or file
//! name it mentions outright, then words it shares with a file's path and
//! with the names of the file's top-level symbols (from
//! [`graft_lang::outline`]). The best-ranked files go in whole while they
//! fit in their share of the budget; the repo map lists the rest, best
//! first, until its share is spent.
//!
//! Tokens are estimated as characters / 4, which is close for code and
//! English with the usual tokenizers and errs on the safe side for both.

use std::collections::BTreeSet;
use std::path::Path;

use graft_config::EditFormat;
use graft_lang::{Lang, outline};

/// A rough token count for `text`.
pub fn tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// What a prompt is built from.
pub struct PromptInput<'a> {
    pub instruction: &'a str,
    /// The repo at the base commit (the staging worktree).
    pub root: &'a Path,
    pub tracked: &'a [String],
    /// Files the request names (a suggestion's files): always included.
    pub explicit: &'a [String],
    pub budget_tokens: u64,
    pub format: EditFormat,
    /// Files whose content must not leave the machine (protected paths:
    /// `.env`, keys, Graft's config): listed in the map, never shown.
    pub withheld: &'a dyn Fn(&str) -> bool,
}

pub struct Prompt {
    pub system: String,
    pub user: String,
    /// Files given in full.
    pub files: Vec<String>,
    /// Files listed in the repo map.
    pub mapped: usize,
}

/// Files read for the map or in full at most this big.
const MAX_FILE_BYTES: u64 = 256 * 1024;
/// Files outlined for the map at most.
const MAX_OUTLINED: usize = 4000;

/// Build the prompt.
pub fn build(input: &PromptInput<'_>) -> Prompt {
    let budget = input.budget_tokens;
    let system = system_prompt(input.format);
    let mut user = String::new();
    user.push_str("# Instruction\n\n");
    user.push_str(input.instruction.trim());
    user.push_str("\n\n");

    // Conventions: up to 15 % of the budget.
    let conventions = conventions(input.root, input.tracked, input.withheld, budget * 15 / 100);
    if !conventions.is_empty() {
        user.push_str("# Project conventions\n\n");
        user.push_str(&conventions);
    }

    let ranked = rank(input);
    // Files in full: up to 55 % of the budget, explicit ones first.
    let files_budget = budget * 55 / 100;
    let mut files = Vec::new();
    let mut files_text = String::new();
    let shown: Vec<&Ranked> = ranked.iter().filter(|r| !(input.withheld)(&r.path)).collect();
    let mut order: Vec<&Ranked> = shown.iter().copied().filter(|r| r.explicit).collect();
    order.extend(shown.iter().copied().filter(|r| !r.explicit && r.score > 0));
    // Nothing matched the instruction: offer the source files, small ones
    // first, while they fit (a small repo goes in whole).
    if order.is_empty() {
        let mut rest: Vec<&Ranked> = shown.iter().copied().filter(|r| r.lang.is_some()).collect();
        rest.sort_by_key(|r| r.size);
        order = rest;
    }
    for r in order {
        let Some(text) = read_text(input.root, &r.path) else {
            continue;
        };
        let block = file_block(&r.path, &text);
        if tokens(&files_text) + tokens(&block) > files_budget {
            continue;
        }
        files_text.push_str(&block);
        files.push(r.path.clone());
    }

    // The map: what is left, up to the whole budget.
    let used = tokens(&system) + tokens(&user) + tokens(&files_text) + 400;
    let map_budget = budget.saturating_sub(used);
    let mut map = String::new();
    let mut mapped = 0;
    for r in &ranked {
        let line = match &r.symbols {
            Some(s) if !s.is_empty() => format!("{}: {}\n", r.path, s),
            _ => format!("{}\n", r.path),
        };
        if tokens(&map) + tokens(&line) > map_budget {
            break;
        }
        map.push_str(&line);
        mapped += 1;
    }
    if mapped > 0 {
        user.push_str("# Repository map (files and their top-level symbols, most relevant first)\n\n");
        user.push_str(&map);
        if mapped < ranked.len() {
            user.push_str(&format!("… and {} more files\n", ranked.len() - mapped));
        }
        user.push('\n');
    }
    if !files.is_empty() {
        user.push_str("# Files you may edit (full current content)\n\n");
        user.push_str(&files_text);
    }
    user.push_str("# Your answer\n\n");
    user.push_str(answer_rules(input.format));
    Prompt {
        system,
        user,
        files,
        mapped,
    }
}

/// A file in full, fenced so that its own fences cannot close ours.
pub fn file_block(path: &str, text: &str) -> String {
    let fence = fence_for(text);
    let lang = Lang::of_path(Path::new(path)).map_or("", |l| l.name());
    let mut s = format!("{path}\n{fence}{lang}\n{text}");
    if !text.ends_with('\n') {
        s.push('\n');
    }
    s.push_str(&fence);
    s.push_str("\n\n");
    s
}

fn fence_for(text: &str) -> String {
    let longest = text
        .lines()
        .map(|l| l.trim_start().chars().take_while(|&c| c == '`').count())
        .max()
        .unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

struct Ranked {
    path: String,
    score: u32,
    explicit: bool,
    lang: Option<Lang>,
    size: u64,
    symbols: Option<String>,
}

const STOPWORDS: &[&str] = &[
    "the", "and", "for", "that", "this", "with", "from", "into", "when", "then", "than", "add", "make",
    "use", "should", "would", "could", "have", "has", "not", "are", "was", "all", "any", "new", "each",
    "every", "its", "returns", "return", "which", "what", "where", "there", "their", "them", "they", "also",
    "more", "less", "change", "file", "files", "code", "please", "function",
];

/// The words of `text` worth matching: lowercase, 3+ characters, split at
/// case changes and underscores, without stop words.
fn words(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for raw in text.split(|c: char| !c.is_alphanumeric()) {
        let mut parts = vec![raw.to_string()];
        // camelCase → camel, case
        let mut split = Vec::new();
        let mut cur = String::new();
        for c in raw.chars() {
            if c.is_uppercase() && !cur.is_empty() && !cur.chars().last().is_some_and(char::is_uppercase) {
                split.push(std::mem::take(&mut cur));
            }
            cur.push(c);
        }
        split.push(cur);
        if split.len() > 1 {
            parts.extend(split);
        }
        for p in parts {
            let p = p.to_lowercase();
            if p.len() >= 3 && !STOPWORDS.contains(&p.as_str()) {
                out.insert(p);
            }
        }
    }
    out
}

fn rank(input: &PromptInput<'_>) -> Vec<Ranked> {
    let wanted = words(input.instruction);
    let instruction = input.instruction.to_lowercase();
    let mut out = Vec::new();
    for (i, path) in input.tracked.iter().enumerate() {
        let p = Path::new(path);
        let lang = Lang::of_path(p);
        let size = std::fs::symlink_metadata(input.root.join(path))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        let Some(size) = size else { continue };
        let explicit = input.explicit.iter().any(|e| e == path);
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_lowercase();
        let mut score = 0;
        if instruction.contains(&path.to_lowercase()) {
            score += 20;
        } else if name.len() > 3 && instruction.contains(&name) {
            score += 12;
        }
        let path_words = words(path);
        score += 4 * path_words.intersection(&wanted).count() as u32;
        let mut symbols = None;
        if let Some(lang) = lang
            && !(input.withheld)(path)
            && i < MAX_OUTLINED
            && size <= MAX_FILE_BYTES
            && let Some(text) = read_text(input.root, path)
        {
            let syms = outline(lang, &text);
            let names: BTreeSet<String> = syms.iter().flat_map(|s| words(&s.name)).collect();
            score += 2 * names.intersection(&wanted).count() as u32;
            let list: Vec<String> = syms
                .iter()
                .take(40)
                .map(|s| match &s.parent {
                    Some(p) => format!("{}.{}", p, s.name),
                    None => format!("{} {}", s.kind.keyword(), s.name),
                })
                .collect();
            let mut line = list.join(", ");
            if syms.len() > 40 {
                line.push_str(&format!(", … ({} more)", syms.len() - 40));
            }
            symbols = Some(line);
        }
        if explicit {
            score += 100;
        }
        out.push(Ranked {
            path: path.clone(),
            score,
            explicit,
            lang,
            size,
            symbols,
        });
    }
    // Stable: equal scores keep the repository's order.
    out.sort_by_key(|r| std::cmp::Reverse(r.score));
    out
}

/// The text of a tracked file, if it is a regular file (never through a
/// symlink), not too big, and UTF-8.
pub fn read_text(root: &Path, path: &str) -> Option<String> {
    let mut here = root.to_path_buf();
    for part in path.split('/') {
        here.push(part);
        let meta = std::fs::symlink_metadata(&here).ok()?;
        if meta.file_type().is_symlink() {
            return None;
        }
    }
    let meta = std::fs::metadata(&here).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return None;
    }
    let bytes = std::fs::read(&here).ok()?;
    if bytes.contains(&0) {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// README, ARCHITECTURE and CONTRIBUTING at the root, each cut to its
/// share of `budget`.
fn conventions(root: &Path, tracked: &[String], withheld: &dyn Fn(&str) -> bool, budget: u64) -> String {
    let mut found: Vec<&String> = Vec::new();
    for stem in ["readme", "architecture", "contributing"] {
        if let Some(p) = tracked.iter().find(|p| {
            !p.contains('/') && !withheld(p) && {
                let l = p.to_lowercase();
                l == stem || l.starts_with(&format!("{stem}."))
            }
        }) {
            found.push(p);
        }
    }
    if found.is_empty() {
        return String::new();
    }
    let share = (budget / found.len() as u64) as usize * 4;
    let mut out = String::new();
    for p in found {
        let Some(text) = read_text(root, p) else { continue };
        let cut = if text.len() > share {
            let mut end = share;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}\n[… cut to fit the prompt]\n", &text[..end])
        } else {
            text
        };
        out.push_str(&file_block(p, &cut));
    }
    out
}

fn system_prompt(format: EditFormat) -> String {
    format!(
        "You are a careful senior engineer changing a git repository on request. \
Graft applies your edits in an isolated worktree and runs the project's own gates (parse, build, lint, tests) on the result; \
only a change that passes them lands. Your own claims about tests are not read, so do not make any.\n\n\
Rules:\n\
- Change only what the instruction needs; keep the project's style and conventions.\n\
- Paths are relative to the repository root. Never touch `.git/`, `graft.toml`, `.graft/` or anything outside the repository.\n\
- Answer with edits in the format below and at most a few sentences of explanation. Never give a file's content for any other reason than editing it.\n\n\
{}",
        format_rules(format)
    )
}

/// The rules of one edit format, with an example.
pub fn format_rules(format: EditFormat) -> &'static str {
    match format {
        EditFormat::SearchReplace => {
            "Edit format: SEARCH/REPLACE blocks. For each change, write the file's path alone on a line, then a fenced block:\n\n\
src/app.py\n\
```python\n\
<<<<<<< SEARCH\n\
def greet(name):\n    return \"Hello, \" + name\n\
=======\n\
def greet(name):\n    return f\"Hello, {name}!\"\n\
>>>>>>> REPLACE\n\
```\n\n\
- SEARCH must be copied exactly from the current file, whitespace included, and must match exactly one place: include enough lines to be unique.\n\
- Use several small blocks rather than one big one; blocks apply in order.\n\
- To create a file, give its path and a block with an empty SEARCH section and the whole content in REPLACE.\n\
- To delete lines, leave REPLACE empty.\n"
        }
        EditFormat::Diff => {
            "Edit format: unified diffs, in a ```diff fence, one `--- a/path` / `+++ b/path` header per file:\n\n\
```diff\n\
--- a/src/app.py\n\
+++ b/src/app.py\n\
@@ -1,2 +1,2 @@\n\
 def greet(name):\n\
-    return \"Hello, \" + name\n\
+    return f\"Hello, {name}!\"\n\
```\n\n\
- Give each hunk 3 lines of unchanged context, copied exactly; line numbers in `@@` are not used, the context places the hunk and must match exactly one place.\n\
- A new file is `--- /dev/null` / `+++ b/path` with every line added; a deleted file is `--- a/path` / `+++ /dev/null`.\n"
        }
        EditFormat::Whole => {
            "Edit format: whole files. For each file you change or create, write its path alone on a line, then its complete new content in a fenced block:\n\n\
src/app.py\n\
```python\n\
def greet(name):\n    return f\"Hello, {name}!\"\n\
```\n\n\
- Always give the complete file, never an excerpt or `...`: what you give replaces the file.\n"
        }
    }
}

fn answer_rules(format: EditFormat) -> &'static str {
    match format {
        EditFormat::SearchReplace => "Reply with SEARCH/REPLACE blocks that carry out the instruction.\n",
        EditFormat::Diff => "Reply with unified diffs that carry out the instruction.\n",
        EditFormat::Whole => "Reply with the complete new content of each file you change or create.\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(files: &[(&str, &str)]) -> (tempfile::TempDir, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        for (p, t) in files {
            let full = dir.path().join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, t).unwrap();
        }
        (dir, files.iter().map(|(p, _)| p.to_string()).collect())
    }

    #[test]
    fn ranks_toward_the_instruction_and_keeps_the_budget() {
        let big = "x = 1\n".repeat(4000);
        let (dir, tracked) = repo(&[
            ("README.md", "# Shop\nUse black formatting.\n"),
            (
                "billing/invoice.py",
                "def total_price(items):\n    return sum(items)\n",
            ),
            ("shipping/labels.py", "def print_label(order):\n    pass\n"),
            ("vendor/huge.py", &big),
        ]);
        let p = build(&PromptInput {
            instruction: "Round the total price on invoices to cents",
            root: dir.path(),
            tracked: &tracked,
            explicit: &[],
            budget_tokens: 2000,
            format: EditFormat::SearchReplace,
            withheld: &|_| false,
        });
        assert_eq!(p.files, ["billing/invoice.py"], "only the relevant file in full");
        assert!(p.user.contains("Use black formatting."), "conventions");
        let map_at = p.user.find("# Repository map").unwrap();
        let map = &p.user[map_at..];
        assert!(
            map.find("billing/invoice.py: fn total_price").unwrap() < map.find("shipping/labels.py").unwrap(),
            "{map}"
        );
        assert!(
            tokens(&p.system) + tokens(&p.user) <= 2000 + 200,
            "over budget: {}",
            tokens(&p.user)
        );
        assert!(p.system.contains("<<<<<<< SEARCH"));
        assert!(!p.user.contains(&big[..100]), "the big file is not in full");
    }

    #[test]
    fn explicit_files_and_small_repos_go_in_whole() {
        let (dir, tracked) = repo(&[("a.py", "def a():\n    pass\n"), ("b.py", "def b():\n    pass\n")]);
        let mk = |explicit: &[String]| {
            build(&PromptInput {
                instruction: "Tidy up",
                root: dir.path(),
                tracked: &tracked,
                explicit,
                budget_tokens: 4000,
                format: EditFormat::Diff,
                withheld: &|_| false,
            })
        };
        assert_eq!(mk(&[]).files, ["a.py", "b.py"]);
        assert_eq!(mk(&["b.py".to_string()]).files[0], "b.py");
        assert!(mk(&[]).system.contains("--- a/src/app.py"));
    }

    #[test]
    fn protected_files_never_leave_the_machine() {
        let (dir, tracked) = repo(&[
            ("settings.py", "TOKEN = \"s3cret\"\n"),
            ("app.py", "import settings\n"),
        ]);
        let p = build(&PromptInput {
            instruction: "Read the token from settings.py",
            root: dir.path(),
            tracked: &tracked,
            explicit: &["settings.py".to_string()],
            budget_tokens: 4000,
            format: EditFormat::SearchReplace,
            withheld: &|p| p == "settings.py",
        });
        assert!(!p.user.contains("s3cret"), "{}", p.user);
        assert!(p.user.contains("settings.py\n"), "still in the map");
        assert_eq!(p.files, ["app.py"]);
    }

    #[test]
    fn fences_outgrow_the_content() {
        let b = file_block("README.md", "```sh\nls\n```\n");
        assert!(b.starts_with("README.md\n````\n"), "{b}");
    }

    #[test]
    fn words_split_identifiers() {
        let w = words("add a /version endpoint to getVersion and git_commit");
        assert!(w.contains("version") && w.contains("endpoint") && w.contains("commit") && w.contains("git"));
        assert!(!w.contains("add") && !w.contains("and"));
    }
}
