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

/// What the walk needs to know of a node kind, as bits, looked up by kind
/// id: comparing kind names on every node cost as much as parsing.
pub(crate) mod flag {
    pub const COMMENT: u16 = 1;
    pub const ATOMIC: u16 = 1 << 1;
    pub const FUNCTION: u16 = 1 << 2;
    /// A condition token wherever it stands.
    pub const CONDITION: u16 = 1 << 3;
    /// A condition token under some parents only (`case`, `?`).
    pub const CONDITION_BY_PARENT: u16 = 1 << 4;
    pub const IDENT: u16 = 1 << 5;
    pub const NUMBER: u16 = 1 << 6;
    /// Something cyclomatic or cognitive complexity may count.
    pub const STRUCTURAL: u16 = 1 << 7;
    /// A member, an import, an impl, an `if` or a macro body.
    pub const ENTRY: u16 = 1 << 8;
}

pub(crate) struct KindTable {
    pub flags: Vec<u16>,
    pub type_kinds: Vec<Option<&'static str>>,
    /// Kind names by id: `Node::kind` asks the C library and checks the
    /// UTF-8 of the answer on every call.
    names: Vec<String>,
    /// The ids of [`FIELDS`] in this grammar (0: none).
    fields: Vec<u16>,
}

/// The fields the analyzer asks nodes for, with their place in
/// [`KindTable`]'s ids: `child_by_field_name` compares the name with every
/// field of the grammar on each call.
macro_rules! fields {
    ($($name:literal),* $(,)?) => {
        const FIELDS: &[&str] = &[$($name),*];

        /// The place of `name` in [`FIELDS`]; folds to a constant for a
        /// literal.
        #[inline(always)]
        pub(crate) fn field_slot(name: &str) -> Option<usize> {
            let mut i = 0;
            $(
                if name == $name {
                    return Some(i);
                }
                i += 1;
            )*
            let _ = i;
            None
        }
    };
}

fields!(
    "alternative",
    "argument",
    "arguments",
    "attribute",
    "body",
    "condition",
    "function",
    "key",
    "label",
    "left",
    "list",
    "module_name",
    "name",
    "object",
    "operator",
    "parameter",
    "parameters",
    "path",
    "property",
    "receiver",
    "source",
    "type",
);

const STRUCTURAL_KINDS: &[&str] = &[
    "binary_expression",
    "boolean_operator",
    "break_expression",
    "continue_expression",
    "break_statement",
    "continue_statement",
    "goto_statement",
    "match_expression",
    "let_declaration",
    "closure_parameters",
    "block",
    "else_clause",
];

const ENTRY_KINDS: &[&str] = &[
    "import_statement",
    "import_from_statement",
    "export_statement",
    "import_require_clause",
    "call_expression",
    "use_declaration",
    "import_spec",
    "package_clause",
    "field_declaration",
    "enum_variant",
    "function_signature_item",
    "method_elem",
    "assignment",
    "field_definition",
    "public_field_definition",
    "assignment_expression",
    "method_signature",
    "property_signature",
    "impl_item",
    "if_statement",
    "token_tree",
];

impl KindTable {
    fn build(lang: Lang) -> KindTable {
        let grammar = lang.grammar();
        let n = grammar.node_kind_count();
        let mut flags = Vec::with_capacity(n);
        let mut type_kinds = Vec::with_capacity(n);
        let mut names = Vec::with_capacity(n);
        for id in 0..n as u16 {
            let name = grammar.node_kind_for_id(id).unwrap_or("");
            names.push(name.to_string());
            let named = grammar.node_kind_is_named(id);
            let mut f = 0;
            let mut set = |cond: bool, bit: u16| {
                if cond {
                    f |= bit;
                }
            };
            set(is_comment(name), flag::COMMENT);
            set(is_atomic_literal(lang, name), flag::ATOMIC);
            set(is_function(lang, name), flag::FUNCTION);
            if !named {
                let always = is_condition(lang, name, "");
                let sometimes =
                    is_condition(lang, name, "case_clause") || is_condition(lang, name, "ternary_expression");
                set(always, flag::CONDITION);
                set(!always && sometimes, flag::CONDITION_BY_PARENT);
            }
            set(is_identifier(name), flag::IDENT);
            set(is_number(name), flag::NUMBER);
            set(
                structure(lang, name).is_some()
                    || is_lambda(lang, name)
                    || is_block_structure(lang, name)
                    || STRUCTURAL_KINDS.contains(&name),
                flag::STRUCTURAL,
            );
            set(ENTRY_KINDS.contains(&name), flag::ENTRY);
            flags.push(f);
            type_kinds.push(type_kind(lang, name));
        }
        let fields = FIELDS
            .iter()
            .map(|f| grammar.field_id_for_name(f).map_or(0, |id| id.get()))
            .collect();
        KindTable {
            flags,
            type_kinds,
            names,
            fields,
        }
    }

    /// The name of kind `id` (as `Node::kind` gives it).
    #[inline]
    pub fn name(&self, id: u16) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }

    /// The id of field [`FIELDS`]`[slot]` in this grammar, 0 if it has none.
    #[inline]
    pub fn field(&self, slot: usize) -> u16 {
        self.fields.get(slot).copied().unwrap_or(0)
    }

    pub fn flags(&self, id: u16) -> u16 {
        self.flags.get(id as usize).copied().unwrap_or(0)
    }

    pub fn type_kind(&self, id: u16) -> Option<&'static str> {
        self.type_kinds.get(id as usize).copied().flatten()
    }
}

/// The table of `lang`, built once per process.
pub(crate) fn table(lang: Lang) -> &'static KindTable {
    static TABLES: [std::sync::OnceLock<KindTable>; 6] = [const { std::sync::OnceLock::new() }; 6];
    let i = Lang::ALL.iter().position(|l| *l == lang).unwrap_or(0);
    TABLES[i].get_or_init(|| KindTable::build(lang))
}
