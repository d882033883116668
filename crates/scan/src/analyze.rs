//! One file, one walk of its syntax tree: function metrics, types, imports
//! and the token stream for clone detection, all gathered in a single
//! depth-first pass (no recursion, so deeply nested generated code cannot
//! overflow the stack). The tree is dropped when the walk ends; only
//! [`FileFacts`] remain.

use std::collections::HashSet;

use graft_lang::Lang;
use tree_sitter::{Node, Parser};

use crate::model::{FileFacts, FunctionMetrics, RawImport, SyntaxIssue, TypeMetrics};
use crate::rules::{self, Structure, flag};

/// Token codes for clone detection: identifiers and literals fold to one
/// code each so renamed copies match; every other token is its kind.
pub(crate) const TOKEN_IDENT: u32 = 1;
pub(crate) const TOKEN_LITERAL: u32 = 2;
const TOKEN_KIND_BASE: u32 = 16;

thread_local! {
    /// The node buffer of this thread, kept from file to file.
    static PREORDER: std::cell::RefCell<graft_lang::Preorder> = std::cell::RefCell::new(graft_lang::Preorder::new());
    /// The kind table of the file being analysed on this thread.
    static TABLE: std::cell::Cell<Option<&'static rules::KindTable>> = const { std::cell::Cell::new(None) };
}

/// Kind names and fields from the current grammar's table, without a call
/// into the C library's string lookups.
trait Kind<'t> {
    fn k(&self) -> &'static str;
    fn field(&self, name: &str) -> Option<Node<'t>>;
}

impl<'t> Kind<'t> for Node<'t> {
    #[inline]
    fn k(&self) -> &'static str {
        let table = TABLE.get();
        debug_assert!(table.is_some(), "nodes are read inside `analyze` only");
        table.map_or("", |t| t.name(self.kind_id()))
    }

    #[inline]
    fn field(&self, name: &str) -> Option<Node<'t>> {
        match (TABLE.get(), rules::field_slot(name)) {
            (Some(t), Some(slot)) => self.child_by_field_id(t.field(slot)),
            _ => self.child_by_field_name(name),
        }
    }
}

/// Parse and analyse `text`. `parser` must be set to `lang`.
pub(crate) fn analyze(lang: Lang, text: &str, parser: &mut Parser) -> FileFacts {
    TABLE.set(Some(rules::table(lang)));
    let Some(tree) = parser.parse(text, None) else {
        return FileFacts {
            syntax_error: Some(SyntaxIssue {
                line: 1,
                column: 1,
                message: format!("the {} parser gave up on this file", lang.name()),
            }),
            ..FileFacts::default()
        };
    };
    let mut w = Walker::new(lang);
    w.walk(&tree, text, 0);
    let mut facts = w.facts;
    facts.syntax_error = graft_lang::first_error(&tree, text).map(|e| SyntaxIssue {
        line: e.line as u32,
        column: e.column as u32,
        message: e.message,
    });
    facts.lines = count_lines(text);
    facts.nloc = w.file_nloc;
    facts.functions.sort_by_key(|f| (f.line, f.end_line));
    facts
}

fn count_lines(text: &str) -> u32 {
    let n = text.bytes().filter(|&b| b == b'\n').count();
    (n + usize::from(!text.is_empty() && !text.ends_with('\n'))) as u32
}

struct OpenFunction {
    m: FunctionMetrics,
    last_line: u32,
    cognitive_nesting: u32,
    depth: u32,
}

struct OpenType {
    index: usize,
    field_names: HashSet<String>,
}

/// What the walk already knows of a node, so it is not asked again.
#[derive(Clone, Copy)]
struct At {
    /// `Node::kind_id`.
    id: u16,
    /// No visible children.
    leaf: bool,
    /// Start and end rows, 0-based.
    rows: (u32, u32),
}

/// What entering a node changed, to undo when leaving it.
#[derive(Default, Clone, Copy)]
struct Frame {
    function: bool,
    open_type: bool,
    cognitive_nested: bool,
    depth: bool,
    type_checking: bool,
    impl_owner: bool,
    token_tree: bool,
}

struct Walker {
    lang: Lang,
    facts: FileFacts,
    functions: Vec<OpenFunction>,
    types: Vec<OpenType>,
    impl_owners: Vec<String>,
    type_checking: u32,
    file_nloc: u32,
    file_last_line: u32,
    anonymous: u32,
    /// The token trees of macro invocations being walked, innermost last.
    trees: Vec<TreeState>,
}

/// Inside a macro invocation tree-sitter sees only tokens; lizard still
/// sees `fn name(...) { ... }` and `match x { a => ... }` there. This
/// follows those token sequences in one token tree.
#[derive(Default)]
struct TreeState {
    /// After `fn`: its line, name, parameters and the conditions of its
    /// signature (`where`, `?`), until its body opens.
    pending_fn: Option<PendingFn>,
    /// After `match`: the next `{...}` holds its arms.
    pending_match: bool,
}

struct PendingFn {
    line: u32,
    name: Option<String>,
    params: Option<u32>,
    conditions: u32,
}

impl Walker {
    fn new(lang: Lang) -> Walker {
        Walker {
            lang,
            facts: FileFacts::default(),
            functions: Vec::new(),
            types: Vec::new(),
            impl_owners: Vec::new(),
            type_checking: 0,
            file_nloc: 0,
            file_last_line: 0,
            anonymous: 0,
            trees: Vec::new(),
        }
    }

    /// Depth-first over `tree`, whose text is `src`; `base` is the line
    /// (0-based) where `src` starts in the file.
    fn walk(&mut self, tree: &tree_sitter::Tree, src: &str, base: u32) {
        PREORDER.with_borrow_mut(|pre| {
            let nodes = pre.of(tree);
            // The open nodes: where each one's subtree ends, what entering
            // it changed, and the node (the ancestors of the current one:
            // `Node::parent` walks down from the root each time, far too
            // slow to call per node).
            let mut ends: Vec<(usize, Frame)> = Vec::new();
            let mut ancestors: Vec<Node> = Vec::new();
            let mut i = 0;
            while i < nodes.len() {
                let node = nodes.node(i);
                let below = nodes.descendants(i);
                // Only Go's else-if chains need the field, and only below an `if`.
                let field = match ancestors.last() {
                    Some(p) if self.lang == Lang::Go && p.k() == "if_statement" => {
                        (p.field("alternative") == Some(node)).then_some("alternative")
                    }
                    _ => None,
                };
                let at = At {
                    id: nodes.kind_id(i),
                    leaf: below == 0,
                    rows: nodes.rows(i),
                };
                let (frame, descend) = self.enter(node, at, field, &ancestors, src, base);
                if descend && below > 0 {
                    ends.push((i + 1 + below, frame));
                    ancestors.push(node);
                    i += 1;
                } else {
                    self.leave(node, frame, base);
                    i += 1 + below;
                }
                while let Some(&(end, frame)) = ends.last()
                    && end <= i
                {
                    ends.pop();
                    if let Some(node) = ancestors.pop() {
                        self.leave(node, frame, base);
                    }
                }
            }
        })
    }

    fn enter(
        &mut self,
        node: Node,
        at: At,
        field: Option<&str>,
        anc: &[Node],
        src: &str,
        base: u32,
    ) -> (Frame, bool) {
        let lang = self.lang;
        let table = rules::table(lang);
        let id = at.id;
        let fl = table.flags(id);
        let mut frame = Frame::default();
        if fl & flag::COMMENT != 0 {
            return (frame, false);
        }
        if fl & flag::ATOMIC != 0 || at.leaf {
            self.token(node, at, fl, anc, src, base);
            return (frame, false);
        }
        let kind = table.name(id);
        let parent_kind = up(anc, 1).map_or("", |p| p.k());
        if lang == Lang::Rust
            && kind == "token_tree"
            && (parent_kind == "macro_invocation" || (parent_kind == "token_tree" && !self.trees.is_empty()))
        {
            self.enter_token_tree(node, &mut frame);
            return (frame, true);
        }

        if fl & flag::FUNCTION != 0 && has_body(lang, node) {
            self.open_function(node, anc, src, base);
            frame.function = true;
        } else if let Some(type_kind) = table.type_kind(id) {
            frame.open_type = self.open_type(node, type_kind, src, base);
        }
        if fl & flag::ENTRY == 0 {
            if !frame.function && fl & flag::STRUCTURAL != 0 {
                self.complexity(node, kind, anc, field, src, &mut frame);
            }
            return (frame, true);
        }
        self.members(node, kind, anc, src);
        self.imports(node, kind, src, base);

        if lang == Lang::Rust
            && kind == "impl_item"
            && let Some(t) = node.field("type")
        {
            self.impl_owners.push(type_name(t, src));
            frame.impl_owner = true;
        }
        if lang == Lang::Python && kind == "if_statement" {
            let cond = node.field("condition");
            if cond.is_some_and(|c| text(c, src).contains("TYPE_CHECKING")) {
                self.type_checking += 1;
                frame.type_checking = true;
            }
        }
        if !frame.function && fl & flag::STRUCTURAL != 0 {
            self.complexity(node, kind, anc, field, src, &mut frame);
        }
        (frame, true)
    }

    fn leave(&mut self, node: Node, frame: Frame, base: u32) {
        if let Some(f) = self.functions.last_mut() {
            if frame.cognitive_nested {
                f.cognitive_nesting -= 1;
            }
            if frame.depth {
                f.depth -= 1;
            }
        }
        if frame.type_checking {
            self.type_checking -= 1;
        }
        if frame.token_tree {
            self.trees.pop();
        }
        if frame.impl_owner {
            self.impl_owners.pop();
        }
        if frame.open_type
            && let Some(t) = self.types.pop()
        {
            let m = &mut self.facts.types[t.index];
            m.fields += t.field_names.len() as u32;
        }
        if frame.function
            && let Some(mut f) = self.functions.pop()
        {
            f.m.end_line = node.end_position().row as u32 + 1 + base;
            self.facts.functions.push(f.m);
        }
    }

    /// A leaf: condition tokens, lines of code, the clone token stream.
    fn token(&mut self, node: Node, at: At, fl: u16, anc: &[Node], src: &str, base: u32) {
        let id = at.id;
        let start = at.rows.0 + 1 + base;
        let end = at.rows.1 + 1 + base;
        let condition = fl & flag::CONDITION != 0
            || (fl & flag::CONDITION_BY_PARENT != 0 && {
                let parent_kind = up(anc, 1).map_or("", |p| p.k());
                rules::is_condition(self.lang, rules::table(self.lang).name(id), parent_kind)
            });
        let in_tree = !self.trees.is_empty() && up(anc, 1).is_some_and(|p| p.k() == "token_tree");
        if in_tree {
            self.macro_token(node, condition, src, start);
        }
        let signature = in_tree && self.trees.last().is_some_and(|t| t.pending_fn.is_some());
        if condition
            && !signature
            && let Some(f) = self.functions.last_mut()
        {
            f.m.cyclomatic += 1;
        }
        for line in start.max(self.file_last_line + 1)..=end {
            self.file_nloc += 1;
            self.file_last_line = line;
        }
        if let Some(f) = self.functions.last_mut() {
            for line in start.max(f.last_line + 1)..=end {
                f.m.nloc += 1;
                f.last_line = line;
            }
        }
        let code = if fl & flag::IDENT != 0 {
            TOKEN_IDENT
        } else if fl & (flag::ATOMIC | flag::NUMBER) != 0 {
            TOKEN_LITERAL
        } else {
            TOKEN_KIND_BASE + u32::from(id)
        };
        // The exact stream keeps names and values (high bit set, apart
        // from kind codes), for copies that were not renamed.
        let exact = if code < TOKEN_KIND_BASE {
            let h = xxhash_rust::xxh3::xxh3_64(text(node, src).as_bytes()) as u32;
            h | 0x8000_0000
        } else {
            code
        };
        self.facts.tokens.push(code);
        self.facts.exact_tokens.push(exact);
        self.facts.token_lines.push(start);
    }

    /// A token tree of a macro invocation: the parameters or the body of
    /// a pending `fn`, or the arms of a pending `match`.
    fn enter_token_tree(&mut self, node: Node, frame: &mut Frame) {
        let opener = node.child(0).map_or("", |c| c.k());
        if let Some(state) = self.trees.last_mut() {
            match (&mut state.pending_fn, opener) {
                (Some(p), "(") if p.params.is_none() => {
                    let mut c = node.walk();
                    let inner = node.child_count().saturating_sub(2);
                    let commas = node.children(&mut c).filter(|n| n.k() == ",").count() as u32;
                    p.params = Some(if inner == 0 { 0 } else { commas + 1 });
                }
                (Some(_), "{") => {
                    let Some(p) = state.pending_fn.take() else { return };
                    if self.functions.is_empty() && self.types.is_empty() {
                        self.facts.definitions += 1;
                    }
                    self.functions.push(OpenFunction {
                        m: FunctionMetrics {
                            name: p.name.unwrap_or_else(|| "(anonymous)".to_string()),
                            owner: None,
                            line: p.line,
                            end_line: p.line,
                            nloc: 0,
                            cyclomatic: 1 + p.conditions,
                            cognitive: 0,
                            params: p.params.unwrap_or(0),
                            nesting: 0,
                        },
                        last_line: 0,
                        cognitive_nesting: 0,
                        depth: 0,
                    });
                    frame.function = true;
                }
                (None, "{") if state.pending_match => {
                    state.pending_match = false;
                    let mut c = node.walk();
                    let arms = node.children(&mut c).filter(|n| n.k() == "=>").count() as u32;
                    if let Some(f) = self.functions.last_mut() {
                        f.m.cyclomatic += arms.saturating_sub(1);
                    }
                }
                _ => {}
            }
        }
        self.trees.push(TreeState::default());
        frame.token_tree = true;
    }

    /// A token directly inside a macro's token tree.
    fn macro_token(&mut self, node: Node, condition: bool, src: &str, line: u32) {
        let Some(state) = self.trees.last_mut() else {
            return;
        };
        match node.k() {
            "fn" => {
                state.pending_fn = Some(PendingFn {
                    line,
                    name: None,
                    params: None,
                    conditions: 0,
                })
            }
            "match" => state.pending_match = true,
            ";" => state.pending_fn = None,
            "identifier" => {
                if let Some(p) = &mut state.pending_fn
                    && p.name.is_none()
                {
                    p.name = Some(text(node, src).to_string());
                }
            }
            _ => {}
        }
        if condition && let Some(p) = &mut state.pending_fn {
            p.conditions += 1;
        }
    }

    fn open_function(&mut self, node: Node, anc: &[Node], src: &str, base: u32) {
        let lang = self.lang;
        let parent_kind = up(anc, 1).map_or("", |p| p.k());
        let grandparent_kind = up(anc, 2).map_or("", |p| p.k());
        let own_name = function_name(lang, node, up(anc, 1), src).unwrap_or_else(|| {
            self.anonymous += 1;
            "(anonymous)".to_string()
        });
        let name = match (lang, self.functions.last()) {
            (Lang::Python, Some(outer)) => format!("{}.{own_name}", outer.m.name),
            _ => own_name,
        };
        let line_node = match lang {
            Lang::Python => node.field("name").unwrap_or(node),
            Lang::Rust => child_of_kind(node, "fn").unwrap_or(node),
            _ => node,
        };
        let line = line_node.start_position().row as u32 + 1 + base;
        // Direct members of a class body are its methods.
        let direct_class = match lang {
            Lang::Python => {
                let k = if parent_kind == "decorated_definition" {
                    2
                } else {
                    1
                };
                up(anc, k).is_some_and(|b| b.k() == "block")
                    && up(anc, k + 1).is_some_and(|c| c.k() == "class_definition")
            }
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx => parent_kind == "class_body",
            Lang::Rust => parent_kind == "declaration_list" && grandparent_kind == "trait_item",
            Lang::Go => false,
        };
        let mut owner = None;
        if direct_class && let Some(t) = self.types.last() {
            let m = &mut self.facts.types[t.index];
            m.methods += 1;
            owner = Some(m.name.clone());
        }
        if lang == Lang::Rust && parent_kind == "declaration_list" && grandparent_kind == "impl_item" {
            owner = self.impl_owners.last().cloned();
        }
        if lang == Lang::Go
            && let Some(r) = node.field("receiver")
        {
            owner = receiver_type(r, src);
        }
        let nested_in_impl = lang == Lang::Rust && parent_kind == "declaration_list";
        if self.functions.is_empty() && self.types.is_empty() && !nested_in_impl {
            self.facts.definitions += 1;
        }
        let cyclomatic = 1;
        self.functions.push(OpenFunction {
            m: FunctionMetrics {
                name,
                owner,
                line,
                end_line: line,
                nloc: 0,
                cyclomatic,
                cognitive: 0,
                params: count_params(lang, node, src),
                nesting: 0,
            },
            last_line: 0,
            cognitive_nesting: 0,
            depth: 0,
        });
    }

    fn open_type(&mut self, node: Node, kind: &'static str, src: &str, base: u32) -> bool {
        let lang = self.lang;
        let mut kind = kind;
        if lang == Lang::Go {
            match node.field("type").map(|t| t.k()) {
                Some("struct_type") => kind = "struct",
                Some("interface_type") => kind = "interface",
                _ => return false,
            }
        }
        let name = node
            .field("name")
            .map(|n| text(n, src).to_string())
            .unwrap_or_else(|| "(anonymous)".to_string());
        if self.functions.is_empty() && self.types.is_empty() {
            self.facts.definitions += 1;
        }
        let line = node.start_position().row as u32 + 1 + base;
        let end_line = node.end_position().row as u32 + 1 + base;
        self.facts.types.push(TypeMetrics {
            name,
            kind: kind.to_string(),
            line,
            end_line,
            methods: 0,
            lines: end_line - line + 1,
            fields: 0,
        });
        self.types.push(OpenType {
            index: self.facts.types.len() - 1,
            field_names: HashSet::new(),
        });
        true
    }

    /// Fields and bodiless methods of the innermost type.
    fn members(&mut self, node: Node, kind: &str, anc: &[Node], src: &str) {
        let Some(t) = self.types.last_mut() else {
            return;
        };
        let lang = self.lang;
        let m = &mut self.facts.types[t.index];
        let parent_kind = up(anc, 1).map_or("", |p| p.k());
        match (lang, kind) {
            (Lang::Rust, "field_declaration") | (Lang::Rust, "enum_variant") => m.fields += 1,
            (Lang::Rust, "function_signature_item") if parent_kind == "declaration_list" => m.methods += 1,
            (Lang::Go, "field_declaration") => {
                let mut c = node.walk();
                let names = node.children_by_field_name("name", &mut c).count() as u32;
                m.fields += names.max(1);
            }
            (Lang::Go, "method_elem") => m.methods += 1,
            (Lang::Python, "assignment") => {
                let Some(left) = node.field("left") else {
                    return;
                };
                let in_class_body = parent_kind == "expression_statement"
                    && up(anc, 3).is_some_and(|c| c.k() == "class_definition");
                if in_class_body && left.k() == "identifier" && self.functions.is_empty() {
                    t.field_names.insert(text(left, src).to_string());
                } else if left.k() == "attribute"
                    && !self.functions.is_empty()
                    && left.field("object").is_some_and(|o| text(o, src) == "self")
                    && let Some(attr) = left.field("attribute")
                {
                    t.field_names.insert(text(attr, src).to_string());
                }
            }
            (
                Lang::JavaScript | Lang::TypeScript | Lang::Tsx,
                "field_definition" | "public_field_definition",
            ) if parent_kind == "class_body" => {
                let name = node
                    .field("property")
                    .or_else(|| node.field("name"))
                    .map_or_else(|| format!("#{}", node.start_byte()), |n| text(n, src).to_string());
                t.field_names.insert(name);
            }
            (Lang::JavaScript | Lang::TypeScript | Lang::Tsx, "assignment_expression") => {
                if let Some(left) = node.field("left")
                    && left.k() == "member_expression"
                    && left.field("object").is_some_and(|o| o.k() == "this")
                    && !self.functions.is_empty()
                    && let Some(p) = left.field("property")
                {
                    t.field_names.insert(text(p, src).to_string());
                }
            }
            (Lang::JavaScript | Lang::TypeScript | Lang::Tsx, "method_signature" | "property_signature")
                if m.kind == "interface" =>
            {
                if kind == "method_signature" {
                    m.methods += 1;
                } else {
                    m.fields += 1;
                }
            }
            _ => {}
        }
    }

    /// Cyclomatic extras (Rust match arms, let-else) and cognitive
    /// complexity and nesting for the innermost function.
    #[allow(clippy::too_many_arguments)]
    fn complexity(
        &mut self,
        node: Node,
        kind: &str,
        anc: &[Node],
        field: Option<&str>,
        src: &str,
        frame: &mut Frame,
    ) {
        let lang = self.lang;
        let parent = up(anc, 1);
        let parent_kind = parent.map_or("", |p| p.k());
        let Some(f) = self.functions.last_mut() else {
            return;
        };
        if lang == Lang::Rust {
            match kind {
                "match_expression" => {
                    // lizard counts every `=>` of a match but the first.
                    if let Some(body) = node.field("body") {
                        let mut c = body.walk();
                        let arms = body
                            .named_children(&mut c)
                            .filter(|n| n.k() == "match_arm")
                            .count();
                        f.m.cyclomatic += arms.saturating_sub(1) as u32;
                    }
                }
                "let_declaration" if node.field("alternative").is_some() => {
                    f.m.cyclomatic += 1;
                }
                // lizard reads the `||` of a closure without parameters as
                // the logical operator; tree-sitter sees two `|`.
                "closure_parameters" if text(node, src) == "||" => f.m.cyclomatic += 1,
                _ => {}
            }
        }
        let else_if = rules::is_else_if(lang, kind, parent_kind, field);
        if else_if {
            f.m.cognitive += 1;
        } else if let Some(s) = rules::structure(lang, kind) {
            match s {
                Structure::Nesting => {
                    f.m.cognitive += 1 + f.cognitive_nesting;
                    f.cognitive_nesting += 1;
                    frame.cognitive_nested = true;
                }
                Structure::Flat => {
                    // `else if`: the `if` inside counts, not the `else`.
                    let holds_if = lang != Lang::Python && {
                        let mut c = node.walk();
                        node.named_children(&mut c)
                            .any(|n| rules::is_else_if(lang, n.k(), kind, None))
                    };
                    if !holds_if {
                        f.m.cognitive += 1;
                    }
                }
            }
        } else if lang == Lang::Go
            && kind == "block"
            && parent_kind == "if_statement"
            && field == Some("alternative")
        {
            f.m.cognitive += 1;
        } else if rules::is_lambda(lang, kind) {
            f.cognitive_nesting += 1;
            frame.cognitive_nested = true;
        }
        if !else_if && rules::is_block_structure(lang, kind) {
            f.depth += 1;
            f.m.nesting = f.m.nesting.max(f.depth);
            frame.depth = true;
        }
        // A run of one logical operator counts once: `a && b && c` is +1,
        // `a && b || c` is +2.
        if let Some(op) = node.field("operator").map(|o| o.k())
            && rules::logical_operator(lang, kind, op).is_some()
        {
            let same_as_parent =
                parent.is_some_and(|p| p.k() == kind && p.field("operator").map(|o| o.k()) == Some(op));
            if !same_as_parent {
                f.m.cognitive += 1;
            }
        }
        let labelled_jump = match lang {
            Lang::Rust => {
                matches!(kind, "break_expression" | "continue_expression")
                    && child_of_kind(node, "label").is_some()
            }
            Lang::Go => {
                kind == "goto_statement"
                    || (matches!(kind, "break_statement" | "continue_statement")
                        && node.named_child_count() > 0)
            }
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx => {
                matches!(kind, "break_statement" | "continue_statement") && node.field("label").is_some()
            }
            Lang::Python => false,
        };
        if labelled_jump {
            f.m.cognitive += 1;
        }
    }

    fn imports(&mut self, node: Node, kind: &str, src: &str, base: u32) {
        let line = node.start_position().row as u32 + 1 + base;
        let deferred = !self.functions.is_empty() || self.type_checking > 0;
        let mut push = |spec: String, level: u32, names: Vec<String>| {
            self.facts.imports.push(RawImport {
                spec,
                level,
                names,
                line,
                deferred,
            })
        };
        match (self.lang, kind) {
            (Lang::Python, "import_statement") => {
                let mut c = node.walk();
                for n in node.children_by_field_name("name", &mut c) {
                    push(dotted(n, src), 0, Vec::new());
                }
            }
            (Lang::Python, "import_from_statement") => {
                let Some(module) = node.field("module_name") else {
                    return;
                };
                let (spec, level) = if module.k() == "relative_import" {
                    let mut c = module.walk();
                    let mut level = 0;
                    let mut spec = String::new();
                    for ch in module.named_children(&mut c) {
                        match ch.k() {
                            "import_prefix" => level = text(ch, src).matches('.').count() as u32,
                            "dotted_name" => spec = text(ch, src).to_string(),
                            _ => {}
                        }
                    }
                    (spec, level)
                } else {
                    (text(module, src).to_string(), 0)
                };
                let mut c = node.walk();
                let names = node
                    .children_by_field_name("name", &mut c)
                    .map(|n| dotted(n, src))
                    .collect();
                push(spec, level, names);
            }
            (
                Lang::JavaScript | Lang::TypeScript | Lang::Tsx,
                "import_statement" | "export_statement" | "import_require_clause",
            ) => {
                if let Some(s) = node.field("source") {
                    push(unquote(text(s, src)), 0, Vec::new());
                }
            }
            (Lang::JavaScript | Lang::TypeScript | Lang::Tsx, "call_expression") => {
                let Some(func) = node.field("function") else {
                    return;
                };
                let is_import =
                    func.k() == "import" || (func.k() == "identifier" && text(func, src) == "require");
                if !is_import {
                    return;
                }
                let arg = node.field("arguments").and_then(|a| a.named_child(0));
                if let Some(a) = arg
                    && a.k() == "string"
                {
                    push(unquote(text(a, src)), 0, Vec::new());
                }
            }
            (Lang::Rust, "use_declaration") => {
                if let Some(arg) = node.field("argument") {
                    let mut paths = Vec::new();
                    expand_use(arg, "", src, &mut paths);
                    for p in paths {
                        push(p, 0, Vec::new());
                    }
                }
            }
            (Lang::Go, "import_spec") => {
                if let Some(p) = node.field("path") {
                    push(unquote(text(p, src)), 0, Vec::new());
                }
            }
            (Lang::Go, "package_clause") => {
                if let Some(n) = node.named_child(0) {
                    self.facts.package = Some(text(n, src).to_string());
                }
            }
            _ => {}
        }
    }
}

/// The `k`-th ancestor (1: the parent).
fn up<'t>(anc: &[Node<'t>], k: usize) -> Option<Node<'t>> {
    anc.len().checked_sub(k).map(|i| anc[i])
}

fn text<'a>(node: Node, src: &'a str) -> &'a str {
    src.get(node.byte_range()).unwrap_or("")
}

fn unquote(s: &str) -> String {
    s.trim_matches(|c| c == '"' || c == '\'' || c == '`').to_string()
}

/// A dotted name, or the name of an aliased import.
fn dotted(node: Node, src: &str) -> String {
    let n = if node.k() == "aliased_import" {
        node.field("name").unwrap_or(node)
    } else {
        node
    };
    text(n, src).split_whitespace().collect()
}

fn child_of_kind<'t>(node: Node<'t>, kind: &str) -> Option<Node<'t>> {
    let mut c = node.walk();
    node.children(&mut c).find(|n| n.k() == kind)
}

fn has_body(lang: Lang, node: Node) -> bool {
    match lang {
        Lang::Rust => node.field("body").is_some(),
        _ => true,
    }
}

/// The type an impl is for, without generics or path: `Foo` of `impl<T> a::Foo<T>`.
fn type_name(node: Node, src: &str) -> String {
    match node.k() {
        "generic_type" => node
            .field("type")
            .map_or_else(|| text(node, src).to_string(), |t| type_name(t, src)),
        "scoped_type_identifier" => node
            .field("name")
            .map_or_else(|| text(node, src).to_string(), |t| text(t, src).to_string()),
        "reference_type" | "pointer_type" => node
            .field("type")
            .map_or_else(|| text(node, src).to_string(), |t| type_name(t, src)),
        _ => text(node, src).to_string(),
    }
}

/// The type of a Go method receiver: `T` of `(t *T[K])`.
fn receiver_type(receiver: Node, src: &str) -> Option<String> {
    let decl = receiver.named_child(0)?;
    let mut t = decl.field("type")?;
    loop {
        match t.k() {
            "pointer_type" => t = t.named_child(0)?,
            "generic_type" => t = t.field("type")?,
            _ => return Some(text(t, src).to_string()),
        }
    }
}

fn function_name(lang: Lang, node: Node, parent: Option<Node>, src: &str) -> Option<String> {
    if let Some(n) = node.field("name") {
        return Some(text(n, src).to_string());
    }
    if matches!(lang, Lang::JavaScript | Lang::TypeScript | Lang::Tsx) {
        let parent = parent?;
        let named = match parent.k() {
            "variable_declarator" => parent.field("name"),
            "pair" => parent.field("key"),
            "assignment_expression" => parent.field("left"),
            "public_field_definition" | "field_definition" => {
                parent.field("name").or_else(|| parent.field("property"))
            }
            _ => None,
        }?;
        let t = text(named, src);
        return Some(t.rsplit('.').next().unwrap_or(t).to_string());
    }
    None
}

fn count_params(lang: Lang, node: Node, src: &str) -> u32 {
    let Some(params) = node.field("parameters") else {
        // An arrow function with one bare parameter: `x => x + 1`.
        return u32::from(node.field("parameter").is_some());
    };
    let mut c = params.walk();
    match lang {
        Lang::Go => params
            .named_children(&mut c)
            .filter(|p| p.k().ends_with("parameter_declaration"))
            .map(|p| {
                let mut c2 = p.walk();
                (p.children_by_field_name("name", &mut c2).count() as u32).max(1)
            })
            .sum(),
        _ => params
            .named_children(&mut c)
            .filter(|p| {
                let k = p.k();
                let separator = matches!(k, "keyword_separator" | "positional_separator" | "attribute_item")
                    || (lang == Lang::Python && text(*p, src) == "/");
                !(rules::is_comment(k) || separator)
            })
            .count() as u32,
    }
}

/// Every path a `use` tree names: `a::{b, c::d}` is `a::b`, `a::c::d`.
fn expand_use(node: Node, prefix: &str, src: &str, out: &mut Vec<String>) {
    let join = |p: &str, s: &str| {
        let s: String = s.split_whitespace().collect();
        if p.is_empty() {
            s
        } else if s.is_empty() {
            p.to_string()
        } else {
            format!("{p}::{s}")
        }
    };
    match node.k() {
        "use_as_clause" => {
            if let Some(p) = node.field("path") {
                expand_use(p, prefix, src, out);
            }
        }
        "use_wildcard" => {
            if let Some(p) = node.named_child(0) {
                out.push(join(prefix, text(p, src)));
            } else if !prefix.is_empty() {
                out.push(prefix.to_string());
            }
        }
        "scoped_use_list" => {
            let new_prefix = node
                .field("path")
                .map_or_else(|| prefix.to_string(), |p| join(prefix, text(p, src)));
            if let Some(list) = node.field("list") {
                expand_use(list, &new_prefix, src, out);
            }
        }
        "use_list" => {
            let mut c = node.walk();
            for ch in node.named_children(&mut c) {
                expand_use(ch, prefix, src, out);
            }
        }
        _ if rules::is_comment(node.k()) => {}
        _ => out.push(join(prefix, text(node, src))),
    }
}

#[cfg(test)]
mod tests;
