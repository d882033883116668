//! What each language's tree-sitter nodes mean to the analyzer: which
//! nodes open a function or a type, which tokens are conditions, which
//! structures nest.
//!
//! Condition tokens follow lizard's readers (lizard_languages/*.py), so the
//! cyclomatic complexity Graft reports can be compared with lizard's: a
//! function's CCN is 1 plus the condition tokens inside it, nested
//! functions excluded.

use graft_lang::Lang;

/// Token kinds lizard counts as a decision, per language.
pub(crate) fn is_condition(lang: Lang, kind: &str, parent: &str) -> bool {
    match lang {
        Lang::Python => match kind {
            "if" | "elif" | "for" | "while" | "except" | "finally" | "and" | "or" => true,
            // `match`/`case` are soft keywords: only the keyword counts.
            "case" => parent == "case_clause",
            _ => false,
        },
        Lang::Rust => matches!(kind, "if" | "for" | "while" | "where" | "&&" | "||" | "?"),
        Lang::Go => matches!(kind, "if" | "for" | "case" | "&&" | "||"),
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => match kind {
            "if" | "for" | "while" | "catch" | "case" | "&&" | "||" | "??" => true,
            "?" => parent == "ternary_expression",
            _ => false,
        },
    }
}

/// Nodes that lizard reports as functions of their own.
pub(crate) fn is_function(lang: Lang, kind: &str) -> bool {
    match lang {
        Lang::Python => kind == "function_definition",
        Lang::Rust => kind == "function_item",
        Lang::Go => matches!(
            kind,
            "function_declaration" | "method_declaration" | "func_literal"
        ),
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => matches!(
            kind,
            "function_declaration"
                | "generator_function_declaration"
                | "function_expression"
                | "function"
                | "generator_function"
                | "arrow_function"
                | "method_definition"
        ),
    }
}

/// Anonymous functions lizard folds into their enclosing function; they
/// still nest for cognitive complexity.
pub(crate) fn is_lambda(lang: Lang, kind: &str) -> bool {
    match lang {
        Lang::Python => kind == "lambda",
        Lang::Rust => kind == "closure_expression",
        _ => false,
    }
}

/// Class-like definitions: the kind reported for a node, if it is one.
pub(crate) fn type_kind(lang: Lang, kind: &str) -> Option<&'static str> {
    match lang {
        Lang::Python => (kind == "class_definition").then_some("class"),
        Lang::Rust => match kind {
            "struct_item" => Some("struct"),
            "enum_item" => Some("enum"),
            "union_item" => Some("union"),
            "trait_item" => Some("trait"),
            _ => None,
        },
        Lang::Go => (kind == "type_spec").then_some("type"),
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => match kind {
            "class_declaration" | "class" | "abstract_class_declaration" => Some("class"),
            "interface_declaration" => Some("interface"),
            _ => None,
        },
    }
}

/// What a structure adds to cognitive complexity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Structure {
    /// if, loops, switch, catch, ternary: +1 plus the nesting level, and
    /// nests what is inside.
    Nesting,
    /// else, elif: +1, no nesting penalty.
    Flat,
}

/// The cognitive role of a node (else-if chains are told apart by the
/// caller, which knows the parent).
pub(crate) fn structure(lang: Lang, kind: &str) -> Option<Structure> {
    use Structure::*;
    let s = match lang {
        Lang::Python => match kind {
            "if_statement"
            | "for_statement"
            | "while_statement"
            | "except_clause"
            | "conditional_expression"
            | "match_statement" => Nesting,
            "elif_clause" | "else_clause" => Flat,
            _ => return None,
        },
        Lang::Rust => match kind {
            "if_expression" | "for_expression" | "while_expression" | "loop_expression"
            | "match_expression" => Nesting,
            "else_clause" => Flat,
            _ => return None,
        },
        Lang::Go => match kind {
            "if_statement"
            | "for_statement"
            | "expression_switch_statement"
            | "type_switch_statement"
            | "select_statement" => Nesting,
            _ => return None,
        },
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => match kind {
            "if_statement" | "for_statement" | "for_in_statement" | "while_statement" | "do_statement"
            | "switch_statement" | "catch_clause" | "ternary_expression" => Nesting,
            "else_clause" => Flat,
            _ => return None,
        },
    };
    Some(s)
}

/// Control blocks that count for the nesting-depth figure.
pub(crate) fn is_block_structure(lang: Lang, kind: &str) -> bool {
    match lang {
        Lang::Python => matches!(
            kind,
            "if_statement"
                | "for_statement"
                | "while_statement"
                | "try_statement"
                | "with_statement"
                | "match_statement"
        ),
        Lang::Rust => matches!(
            kind,
            "if_expression" | "for_expression" | "while_expression" | "loop_expression" | "match_expression"
        ),
        Lang::Go => matches!(
            kind,
            "if_statement"
                | "for_statement"
                | "expression_switch_statement"
                | "type_switch_statement"
                | "select_statement"
        ),
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => matches!(
            kind,
            "if_statement"
                | "for_statement"
                | "for_in_statement"
                | "while_statement"
                | "do_statement"
                | "switch_statement"
                | "try_statement"
        ),
    }
}

/// An `if` that continues an else-if chain: flat, and no deeper nesting.
pub(crate) fn is_else_if(lang: Lang, kind: &str, parent: &str, field: Option<&str>) -> bool {
    match lang {
        Lang::Go => kind == "if_statement" && parent == "if_statement" && field == Some("alternative"),
        Lang::Rust => kind == "if_expression" && parent == "else_clause",
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => kind == "if_statement" && parent == "else_clause",
        Lang::Python => false,
    }
}

/// Binary nodes whose operator is a logical one, and that operator.
pub(crate) fn logical_operator<'a>(lang: Lang, kind: &str, op: &'a str) -> Option<&'a str> {
    let binary = match lang {
        Lang::Python => kind == "boolean_operator",
        _ => kind == "binary_expression",
    };
    (binary && matches!(op, "&&" | "||" | "??" | "and" | "or")).then_some(op)
}

/// Literal nodes kept whole (their inside is not code).
pub(crate) fn is_atomic_literal(lang: Lang, kind: &str) -> bool {
    match lang {
        Lang::Python => kind == "string",
        Lang::Rust => matches!(kind, "string_literal" | "raw_string_literal" | "char_literal"),
        Lang::Go => matches!(
            kind,
            "interpreted_string_literal" | "raw_string_literal" | "rune_literal"
        ),
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => {
            matches!(kind, "string" | "template_string" | "regex")
        }
    }
}

pub(crate) fn is_comment(kind: &str) -> bool {
    kind.contains("comment")
}

/// Number literals (folded like strings for clone detection).
pub(crate) fn is_number(kind: &str) -> bool {
    matches!(
        kind,
        "integer"
            | "float"
            | "number"
            | "int_literal"
            | "float_literal"
            | "integer_literal"
            | "imaginary_literal"
    )
}

/// Identifier leaves (folded for clone detection, so renamed copies match).
pub(crate) fn is_identifier(kind: &str) -> bool {
    kind.ends_with("identifier") || kind == "identifier"
}
