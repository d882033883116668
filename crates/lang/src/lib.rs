//! The languages Graft understands, and whether a file is syntactically valid.
//!
//! Source languages are parsed with tree-sitter (Rust, Python, JavaScript,
//! TypeScript, TSX, Go); config formats with their own parsers (TOML, JSON,
//! YAML). The `parse` gate calls [`check_syntax`] on every file a change
//! writes, so a syntax error stops an upgrade before any build runs; the
//! analyzer and the providers' repo map reuse [`Lang`] and [`parser_for`].
//!
//! This crate knows nothing about changes, git or the ledger.

mod outline;
mod preorder;
mod syntax;

pub use outline::{Symbol, SymbolKind, outline};
pub use preorder::{Nodes, Preorder};
pub use syntax::{SyntaxError, check_syntax, first_error, strip_jsonc};

use std::path::Path;

/// A source language with a tree-sitter grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    Rust,
    Python,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
}

impl Lang {
    pub const ALL: [Lang; 6] = [
        Lang::Rust,
        Lang::Python,
        Lang::JavaScript,
        Lang::TypeScript,
        Lang::Tsx,
        Lang::Go,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::JavaScript => "javascript",
            Lang::TypeScript => "typescript",
            Lang::Tsx => "tsx",
            Lang::Go => "go",
        }
    }

    /// The tree-sitter grammar.
    pub fn grammar(self) -> tree_sitter::Language {
        match self {
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Lang::Go => tree_sitter_go::LANGUAGE.into(),
        }
    }

    /// The language of a file, by its extension.
    pub fn of_path(path: &Path) -> Option<Lang> {
        let ext = path.extension()?.to_str()?;
        Some(match ext {
            "rs" => Lang::Rust,
            "py" | "pyi" => Lang::Python,
            "js" | "mjs" | "cjs" | "jsx" => Lang::JavaScript,
            "ts" | "mts" | "cts" => Lang::TypeScript,
            "tsx" => Lang::Tsx,
            "go" => Lang::Go,
            _ => return None,
        })
    }
}

/// Parsing allocates and frees a node at a time; with glibc's malloc that
/// was a tenth of a scan's CPU, with mimalloc a third as much. Only
/// tree-sitter's allocations go to mimalloc (Rust's stay with the system
/// allocator: as the global allocator mimalloc doubled a scan's peak
/// memory for no further gain). Installed once, before the first parser
/// exists, so nothing tree-sitter allocated with one allocator is ever
/// freed by the other. Arenas are committed on demand, and freed pages go
/// back to the system a second after their last use: the next trees reuse
/// them instead of faulting them in again (handing each back at once cost
/// 6-9% of a cold scan in page faults and TLB flushes, for 5-10 MiB less
/// peak memory). [`release_memory`] hands them back when a batch of
/// parsing is over.
fn use_fast_allocator() {
    // mimalloc.h's `mi_option_e`, which the -sys crate does not name.
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: the option setters are safe at any time, and this runs
        // before any tree-sitter object exists (every parser comes from
        // `parser_for`, and trees and cursors from parsers); mimalloc's
        // functions have the C allocator contract.
        unsafe {
            libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 1000);
            tree_sitter::set_allocator(Some(tree_sitter::Allocator {
                malloc: libmimalloc_sys::mi_malloc,
                calloc: libmimalloc_sys::mi_calloc,
                realloc: libmimalloc_sys::mi_realloc,
                free: libmimalloc_sys::mi_free,
            }))
        }
    });
}

/// Give the memory that parsing freed back to the system now, rather
/// than when the allocator next looks: for a long-lived process, after a
/// batch of parsing (a scan) is over.
pub fn release_memory() {
    // SAFETY: mimalloc's collection may run on any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// A parser set to `lang`.
pub fn parser_for(lang: Lang) -> tree_sitter::Parser {
    use_fast_allocator();
    let mut parser = tree_sitter::Parser::new();
    parser
        .set_language(&lang.grammar())
        .expect("the bundled grammars match the tree-sitter version");
    parser
}

/// What syntax a file is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileSyntax {
    Source(Lang),
    Toml,
    Json,
    /// JSON with comments and trailing commas (tsconfig.json and friends).
    Jsonc,
    Yaml,
}

impl FileSyntax {
    /// The syntax of a file, or `None` when Graft has no parser for it.
    pub fn of_path(path: &Path) -> Option<FileSyntax> {
        if let Some(lang) = Lang::of_path(path) {
            return Some(FileSyntax::Source(lang));
        }
        let name = path.file_name()?.to_str()?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        Some(match ext {
            "toml" => FileSyntax::Toml,
            "jsonc" => FileSyntax::Jsonc,
            "json"
                if name.starts_with("tsconfig")
                    || name.starts_with("jsconfig")
                    || name.starts_with(".eslintrc")
                    || path.components().any(|c| c.as_os_str() == ".vscode") =>
            {
                FileSyntax::Jsonc
            }
            "json" => FileSyntax::Json,
            "yaml" | "yml" => FileSyntax::Yaml,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            FileSyntax::Source(l) => l.name(),
            FileSyntax::Toml => "toml",
            FileSyntax::Json => "json",
            FileSyntax::Jsonc => "jsonc",
            FileSyntax::Yaml => "yaml",
        }
    }
}
