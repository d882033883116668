//! What a scan finds, as plain data: per-file facts (what the cache keeps),
//! and the report (what callers read, print and store).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One function or method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionMetrics {
    /// As lizard names it: nested functions are `outer.inner` in Python;
    /// anonymous ones `(anonymous)`.
    pub name: String,
    /// The class, impl type or receiver it belongs to, if any.
    pub owner: Option<String>,
    /// 1-based line of the name (the `fn`/`func` keyword in Rust and Go),
    /// where lizard puts a function's start.
    pub line: u32,
    pub end_line: u32,
    /// Lines holding code (not blank, not only comments).
    pub nloc: u32,
    /// McCabe, counted as lizard counts it: 1 + each condition token.
    pub cyclomatic: u32,
    /// SonarSource's cognitive complexity.
    pub cognitive: u32,
    pub params: u32,
    /// Deepest nesting of control structures inside the body.
    pub nesting: u32,
}

/// A class, struct, enum, trait or interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeMetrics {
    pub name: String,
    /// `class`, `struct`, `enum`, `trait`, `interface`, `type`.
    pub kind: String,
    pub line: u32,
    pub end_line: u32,
    /// Filled in once every file is read: Rust impls and Go methods may sit
    /// elsewhere.
    pub methods: u32,
    /// Lines of the definition plus its methods written outside it.
    pub lines: u32,
    pub fields: u32,
}

/// An import as written, before it is resolved to a module of the repo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawImport {
    /// Python: the dotted module (`a.b`, empty for `from . import x`);
    /// JS/TS: the specifier; Rust: a `::` path; Go: the import path.
    pub spec: String,
    /// Python: the dots of a relative import.
    pub level: u32,
    /// Python `from M import a, b`: `a`, `b` (each may be a submodule).
    pub names: Vec<String>,
    pub line: u32,
    /// Inside a function or under `if TYPE_CHECKING:`; such imports do not
    /// run at import time, so they cannot make an import cycle fail.
    pub deferred: bool,
}

/// A syntax error tree-sitter recovered from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyntaxIssue {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// Everything the scan keeps of one source file: what the cache stores,
/// keyed by the file's content hash.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileFacts {
    pub lines: u32,
    pub nloc: u32,
    pub functions: Vec<FunctionMetrics>,
    pub types: Vec<TypeMetrics>,
    /// Top-level functions and types: what makes a module big.
    pub definitions: u32,
    pub imports: Vec<RawImport>,
    /// Go: the package clause.
    pub package: Option<String>,
    pub syntax_error: Option<SyntaxIssue>,
    /// Normalised tokens for clone detection (identifiers and literals
    /// folded), and the line of each.
    #[serde(with = "crate::cache::words")]
    pub tokens: Vec<u32>,
    /// The same tokens with names and values kept (hashed).
    #[serde(with = "crate::cache::words")]
    pub exact_tokens: Vec<u32>,
    #[serde(with = "crate::cache::words")]
    pub token_lines: Vec<u32>,
    /// Clone fingerprints of both streams, made with the scan's minimum.
    pub prints: Option<ClonePrints>,
}

/// A file's clone fingerprints, as (token index, hash).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClonePrints {
    pub min_tokens: u32,
    #[serde(with = "crate::cache::prints")]
    pub exact: Vec<(u32, u64)>,
    #[serde(with = "crate::cache::prints")]
    pub folded: Vec<(u32, u64)>,
}

/// One analysed file in the report.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub path: String,
    pub language: &'static str,
    pub lines: u32,
    pub nloc: u32,
    pub functions: Vec<FunctionMetrics>,
    pub types: Vec<TypeMetrics>,
}

/// Fan-in, fan-out and instability of one module of the import graph.
#[derive(Debug, Clone, Serialize)]
pub struct Coupling {
    /// A file, or a directory for Go packages.
    pub module: String,
    pub language: &'static str,
    pub fan_in: u32,
    pub fan_out: u32,
    /// fan_out / (fan_in + fan_out); 0 for an isolated module.
    pub instability: f64,
}

/// A set of modules that import each other (a strongly connected
/// component), with one concrete cycle through it.
#[derive(Debug, Clone, Serialize)]
pub struct ImportCycle {
    pub language: &'static str,
    pub modules: Vec<String>,
    /// `a → b → a`: the first module repeated at the end.
    pub cycle: Vec<String>,
    /// The line of each import along `cycle`.
    pub lines: Vec<u32>,
}

/// A span of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fragment {
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
}

/// Code that appears in several places, up to renamed identifiers and
/// changed literals.
#[derive(Debug, Clone, Serialize)]
pub struct CloneGroup {
    pub language: &'static str,
    pub tokens: u32,
    pub lines: u32,
    pub fragments: Vec<Fragment>,
}

/// A file the scan could not analyse, or analysed with a syntax error.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub path: String,
    /// `syntax_error`, `not_utf8`, `too_large`, `minified`, `unreadable`,
    /// `symlink_loop`.
    pub kind: &'static str,
    pub message: String,
    pub line: Option<u32>,
}

/// The kinds of suggestion a scan makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuggestionKind {
    CircularImport,
    GodClass,
    ComplexFunction,
    GodModule,
    Duplicate,
    HighCoupling,
}

impl SuggestionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SuggestionKind::CircularImport => "circular_import",
            SuggestionKind::GodClass => "god_class",
            SuggestionKind::ComplexFunction => "complex_function",
            SuggestionKind::GodModule => "god_module",
            SuggestionKind::Duplicate => "duplicate",
            SuggestionKind::HighCoupling => "high_coupling",
        }
    }
}

/// How risky acting on a finding is, and how bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Risk> {
        match s {
            "low" => Some(Risk::Low),
            "medium" => Some(Risk::Medium),
            "high" => Some(Risk::High),
            _ => None,
        }
    }
}

/// A finding turned into something a provider can act on.
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    /// `sug_<scan id suffix>_NN`.
    pub id: String,
    pub kind: SuggestionKind,
    pub title: String,
    pub files: Vec<String>,
    /// Where in the first file (1-based lines), for SARIF and editors.
    pub start_line: u32,
    pub end_line: u32,
    pub risk: Risk,
    /// 1 (lowest) to 10.
    pub priority: u8,
    pub instruction: String,
    /// The finding's own figures.
    pub detail: serde_json::Value,
}

/// Counts for the one-line summary and the ledger.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub files_seen: u64,
    pub modules_analysed: u64,
    pub lines: u64,
    pub functions: u64,
    pub types: u64,
    pub by_language: BTreeMap<&'static str, u64>,
    pub import_edges: u64,
    pub circular_imports: u64,
    pub clone_groups: u64,
    pub duplicated_lines: u64,
    pub syntax_errors: u64,
    pub skipped: Skipped,
    pub suggestions: u64,
    pub by_kind: BTreeMap<&'static str, u64>,
    pub cache_hits: u64,
    /// The files came from the last walk's listing (no directory or
    /// ignore file it read had changed) instead of a new walk.
    pub listing_reused: bool,
    pub duration_ms: u64,
}

/// Files left out, by cause. None of them stops a scan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Skipped {
    pub not_utf8: u64,
    pub too_large: u64,
    pub minified: u64,
    pub unreadable: u64,
    pub symlink_loops: u64,
}

/// The whole result of one scan.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    /// `scan_20261121_103001_a1b2c3`.
    pub id: String,
    pub created_at: String,
    pub root: String,
    pub scope: Option<String>,
    pub summary: Summary,
    pub suggestions: Vec<Suggestion>,
    pub cycles: Vec<ImportCycle>,
    pub clones: Vec<CloneGroup>,
    pub coupling: Vec<Coupling>,
    pub problems: Vec<Problem>,
    pub files: Vec<FileReport>,
}
