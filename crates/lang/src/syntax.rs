//! Syntax checks: the first error in a file, with its line and column.

use crate::{FileSyntax, Lang, parser_for};

/// The first syntax error found in a file. Line and column are 1-based;
/// the column counts characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Check `bytes` against `syntax`.
pub fn check_syntax(syntax: FileSyntax, bytes: &[u8]) -> Result<(), SyntaxError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_col(
            &String::from_utf8_lossy(&bytes[..e.valid_up_to()]),
            e.valid_up_to(),
        );
        SyntaxError {
            line,
            column,
            message: format!("not valid UTF-8 (byte {})", e.valid_up_to()),
        }
    })?;
    match syntax {
        FileSyntax::Source(lang) => check_source(lang, text),
        FileSyntax::Toml => check_toml(text),
        FileSyntax::Json => check_json(text),
        FileSyntax::Jsonc => check_json(&strip_jsonc(text)),
        FileSyntax::Yaml => check_yaml(text),
    }
}

fn check_source(lang: Lang, text: &str) -> Result<(), SyntaxError> {
    let mut parser = parser_for(lang);
    let tree = parser.parse(text, None).ok_or_else(|| SyntaxError {
        line: 1,
        column: 1,
        message: format!("the {} parser gave up on this file", lang.name()),
    })?;
    match first_error(&tree, text) {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// The first syntax error of a parsed file, if any: the first ERROR or
/// MISSING node in document order is where a reader should look; later
/// ones are often consequences of it.
pub fn first_error(tree: &tree_sitter::Tree, text: &str) -> Option<SyntaxError> {
    let root = tree.root_node();
    if !root.has_error() {
        return None;
    }
    let mut cursor = root.walk();
    loop {
        let node = cursor.node();
        if node.is_missing() {
            return Some(at(text, node.start_byte(), format!("missing `{}`", node.kind())));
        }
        if node.is_error() {
            let snippet: String = text[node.start_byte()..node.end_byte()]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .chars()
                .take(40)
                .collect();
            let message = if snippet.is_empty() {
                "syntax error".to_string()
            } else {
                format!("syntax error at `{snippet}`")
            };
            return Some(at(text, node.start_byte(), message));
        }
        // Descend only into subtrees that hold an error.
        if node.has_error() && cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                // has_error() was true at the root, but no node says so: the
                // error is at the very end.
                return Some(at(text, text.len(), "unexpected end of file".to_string()));
            }
        }
    }
}

fn check_toml(text: &str) -> Result<(), SyntaxError> {
    match text.parse::<toml::Table>() {
        Ok(_) => Ok(()),
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            Err(at(text, offset, e.message().trim().to_string()))
        }
    }
}

fn check_json(text: &str) -> Result<(), SyntaxError> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(_) => Ok(()),
        Err(e) => {
            let message = e.to_string();
            // serde_json appends " at line L column C"; we report those apart.
            let message = message.split(" at line ").next().unwrap_or(&message).to_string();
            Err(SyntaxError {
                line: e.line().max(1),
                column: e.column().max(1),
                message,
            })
        }
    }
}

fn check_yaml(text: &str) -> Result<(), SyntaxError> {
    match yaml_rust2::YamlLoader::load_from_str(text) {
        Ok(_) => Ok(()),
        Err(e) => Err(SyntaxError {
            line: e.marker().line().max(1),
            column: e.marker().col() + 1,
            message: e.info().to_string(),
        }),
    }
}

/// JSON with `//` and `/* */` comments and trailing commas, made plain JSON
/// with every byte offset kept (comments and trailing commas become
/// spaces), so errors still point at the right place.
pub fn strip_jsonc(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    // Pass 1: comments.
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'"', _) => i = skip_string(b, i),
            (b'/', Some(b'/')) => {
                while i < b.len() && b[i] != b'\n' {
                    out[i] = b' ';
                    i += 1;
                }
            }
            (b'/', Some(b'*')) => {
                let end = text[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
                for byte in &mut out[i..end] {
                    if *byte != b'\n' {
                        *byte = b' ';
                    }
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    // Pass 2: a comma followed only by blanks up to `]` or `}` is trailing.
    let mut i = 0;
    while i < out.len() {
        match out[i] {
            b'"' => i = skip_string(&out, i),
            b',' => {
                let next = out[i + 1..].iter().find(|x| !x.is_ascii_whitespace());
                if matches!(next, Some(b']') | Some(b'}')) {
                    out[i] = b' ';
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    // Only ASCII bytes outside strings were replaced by spaces: still UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// The index just past the JSON string starting at `start` (a `"`).
fn skip_string(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

fn at(text: &str, offset: usize, message: String) -> SyntaxError {
    let (line, column) = line_col(text, offset);
    SyntaxError {
        line,
        column,
        message,
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[start..offset].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn check(path: &str, text: &str) -> Result<(), SyntaxError> {
        let syntax = FileSyntax::of_path(Path::new(path)).expect("known syntax");
        check_syntax(syntax, text.as_bytes())
    }

    #[test]
    fn valid_files_pass_in_every_language() {
        for (path, text) in [
            ("a.rs", "fn main() { let x = 1; println!(\"{x}\"); }\n"),
            ("a.py", "def f(x):\n    return x + 1\n"),
            ("a.js", "export function f(x) { return <div>{x}</div>; }\n"),
            ("a.ts", "export function f(x: number): number { return x; }\n"),
            ("a.tsx", "const A = (p: {n: number}) => <b>{p.n}</b>;\n"),
            ("a.go", "package main\n\nfunc main() {}\n"),
            ("a.toml", "[a]\nb = 1\n"),
            ("a.json", "{\"a\": [1, 2]}"),
            ("tsconfig.json", "{\n  // comment\n  \"a\": [1, 2,], /* x */\n}\n"),
            ("a.yaml", "a:\n  - 1\n  - b: 2\n"),
        ] {
            check(path, text).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
    }

    #[test]
    fn errors_have_line_and_column() {
        let e = check("a.py", "def f(x):\n    return x +\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = check("a.rs", "fn main() {\n    let x = ;\n}\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 11), "{e}");
        assert_eq!(e.message, "syntax error at `=`");
        let e = check("a.go", "package main\nfunc main() {\n").unwrap_err();
        assert!(e.line >= 2, "{e}");
        let e = check("a.ts", "function f(: number) {}\n").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        let e = check("a.js", "let a = {;\n").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
    }

    #[test]
    fn missing_token_is_named() {
        let e = check("a.rs", "fn main() {\n    foo(1;\n}\n").unwrap_err();
        assert!(
            e.message.contains("missing") || e.message.contains("syntax error"),
            "{e}"
        );
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn config_formats_report_position() {
        let e = check("a.toml", "[a]\nb = \n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = check("a.json", "{\n  \"a\": 1,\n}").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(!e.message.contains(" at line "), "{e}");
        let e = check("a.yaml", "a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.line >= 1, "{e}");
        let e = check("tsconfig.json", "{\n  \"a\": 1 \"b\"\n}").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let e = check_syntax(FileSyntax::Source(Lang::Python), b"x = 1\ny = '\xff'\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("not valid UTF-8"), "{e}");
    }

    #[test]
    fn unknown_files_have_no_syntax() {
        assert_eq!(FileSyntax::of_path(Path::new("README.md")), None);
        assert_eq!(FileSyntax::of_path(Path::new("Makefile")), None);
        assert_eq!(
            FileSyntax::of_path(Path::new("web/app.tsx")),
            Some(FileSyntax::Source(Lang::Tsx))
        );
    }
}
