//! A file's top-level symbols (functions, classes, types), from tree-sitter:
//! the lines of the repo map a provider shows a model, so it knows where
//! things are without reading every file.
//!
//! Only the top level, plus the methods directly inside a top-level class
//! or impl: enough to find one's way, small enough to fit a prompt.

use crate::{Lang, parser_for};

/// One symbol. `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub kind: SymbolKind,
    pub name: String,
    pub line: usize,
    /// For a method, the class, impl or type it belongs to.
    pub parent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolKind {
    Function,
    Method,
    Class,
    Struct,
    Enum,
    Trait,
    Interface,
    Type,
    Impl,
    Module,
    Constant,
    Variable,
    Macro,
}

impl SymbolKind {
    /// A short keyword for the repo map.
    pub fn keyword(self) -> &'static str {
        match self {
            SymbolKind::Function | SymbolKind::Method => "fn",
            SymbolKind::Class => "class",
            SymbolKind::Struct => "struct",
            SymbolKind::Enum => "enum",
            SymbolKind::Trait => "trait",
            SymbolKind::Interface => "interface",
            SymbolKind::Type => "type",
            SymbolKind::Impl => "impl",
            SymbolKind::Module => "mod",
            SymbolKind::Constant => "const",
            SymbolKind::Variable => "let",
            SymbolKind::Macro => "macro",
        }
    }
}

/// The top-level symbols of `text`, in file order. A file with syntax
/// errors yields what tree-sitter could still recognise.
pub fn outline(lang: Lang, text: &str) -> Vec<Symbol> {
    let mut parser = parser_for(lang);
    let Some(tree) = parser.parse(text, None) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let root = tree.root_node();
    let mut cursor = root.walk();
    for node in root.named_children(&mut cursor) {
        top_level(lang, node, text, &mut out);
    }
    out
}

fn name_of(node: tree_sitter::Node<'_>, text: &str) -> Option<String> {
    let n = node.child_by_field_name("name")?;
    Some(text.get(n.start_byte()..n.end_byte())?.to_string())
}

fn push(
    out: &mut Vec<Symbol>,
    kind: SymbolKind,
    name: Option<String>,
    node: tree_sitter::Node<'_>,
    parent: Option<&str>,
) {
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        out.push(Symbol {
            kind,
            name,
            line: node.start_position().row + 1,
            parent: parent.map(str::to_string),
        });
    }
}

fn top_level(lang: Lang, node: tree_sitter::Node<'_>, text: &str, out: &mut Vec<Symbol>) {
    use SymbolKind::*;
    let kind = node.kind();
    match lang {
        Lang::Python => match kind {
            "function_definition" => push(out, Function, name_of(node, text), node, None),
            "class_definition" => {
                let name = name_of(node, text);
                push(out, Class, name.clone(), node, None);
                if let Some(body) = node.child_by_field_name("body") {
                    let mut c = body.walk();
                    for child in body.named_children(&mut c) {
                        let def = if child.kind() == "decorated_definition" {
                            child.child_by_field_name("definition")
                        } else {
                            Some(child)
                        };
                        if let Some(def) = def.filter(|d| d.kind() == "function_definition") {
                            push(out, Method, name_of(def, text), def, name.as_deref());
                        }
                    }
                }
            }
            "decorated_definition" => {
                if let Some(def) = node.child_by_field_name("definition") {
                    top_level(lang, def, text, out);
                }
            }
            "expression_statement" => {
                // `NAME = ...` at module level: constants and settings.
                if let Some(a) = node.named_child(0).filter(|a| a.kind() == "assignment")
                    && let Some(left) = a.child_by_field_name("left").filter(|l| l.kind() == "identifier")
                {
                    let name = text[left.start_byte()..left.end_byte()].to_string();
                    push(out, Variable, Some(name), node, None);
                }
            }
            _ => {}
        },
        Lang::Rust => match kind {
            "function_item" | "function_signature_item" => {
                push(out, Function, name_of(node, text), node, None)
            }
            "struct_item" => push(out, Struct, name_of(node, text), node, None),
            "enum_item" => push(out, Enum, name_of(node, text), node, None),
            "union_item" => push(out, Struct, name_of(node, text), node, None),
            "trait_item" => push(out, Trait, name_of(node, text), node, None),
            "type_item" => push(out, Type, name_of(node, text), node, None),
            "mod_item" => push(out, Module, name_of(node, text), node, None),
            "const_item" | "static_item" => push(out, Constant, name_of(node, text), node, None),
            "macro_definition" => push(out, Macro, name_of(node, text), node, None),
            "impl_item" => {
                let ty = node
                    .child_by_field_name("type")
                    .and_then(|t| text.get(t.start_byte()..t.end_byte()))
                    .map(str::to_string);
                let name = match (node.child_by_field_name("trait"), &ty) {
                    (Some(tr), Some(ty)) => {
                        Some(format!("{} for {ty}", &text[tr.start_byte()..tr.end_byte()]))
                    }
                    _ => ty.clone(),
                };
                push(out, Impl, name, node, None);
                if let Some(body) = node.child_by_field_name("body") {
                    let mut c = body.walk();
                    for child in body.named_children(&mut c) {
                        if child.kind() == "function_item" {
                            push(out, Method, name_of(child, text), child, ty.as_deref());
                        }
                    }
                }
            }
            _ => {}
        },
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => match kind {
            "export_statement" => {
                if let Some(decl) = node.child_by_field_name("declaration") {
                    top_level(lang, decl, text, out);
                }
            }
            "function_declaration" | "generator_function_declaration" | "function_signature" => {
                push(out, Function, name_of(node, text), node, None)
            }
            "class_declaration" | "abstract_class_declaration" => {
                let name = name_of(node, text);
                push(out, Class, name.clone(), node, None);
                if let Some(body) = node.child_by_field_name("body") {
                    let mut c = body.walk();
                    for child in body.named_children(&mut c) {
                        if child.kind() == "method_definition" {
                            push(out, Method, name_of(child, text), child, name.as_deref());
                        }
                    }
                }
            }
            "interface_declaration" => push(out, Interface, name_of(node, text), node, None),
            "type_alias_declaration" => push(out, Type, name_of(node, text), node, None),
            "enum_declaration" => push(out, Enum, name_of(node, text), node, None),
            "lexical_declaration" | "variable_declaration" => {
                let mut c = node.walk();
                for d in node.named_children(&mut c) {
                    if d.kind() == "variable_declarator"
                        && let Some(n) = d.child_by_field_name("name").filter(|n| n.kind() == "identifier")
                    {
                        let is_fn = d.child_by_field_name("value").is_some_and(|v| {
                            matches!(v.kind(), "arrow_function" | "function_expression" | "function")
                        });
                        let kind = if is_fn { Function } else { Variable };
                        push(
                            out,
                            kind,
                            Some(text[n.start_byte()..n.end_byte()].to_string()),
                            d,
                            None,
                        );
                    }
                }
            }
            _ => {}
        },
        Lang::Go => match kind {
            "function_declaration" => push(out, Function, name_of(node, text), node, None),
            "method_declaration" => {
                let receiver = node
                    .child_by_field_name("receiver")
                    .and_then(|r| text.get(r.start_byte()..r.end_byte()))
                    .and_then(|r| r.trim_matches(['(', ')']).split_whitespace().last())
                    .map(|t| t.trim_start_matches('*').to_string());
                push(out, Method, name_of(node, text), node, receiver.as_deref());
            }
            "type_declaration" => {
                let mut c = node.walk();
                for spec in node.named_children(&mut c) {
                    if matches!(spec.kind(), "type_spec" | "type_alias") {
                        let kind = match spec.child_by_field_name("type").map(|t| t.kind()) {
                            Some("struct_type") => Struct,
                            Some("interface_type") => Interface,
                            _ => Type,
                        };
                        push(out, kind, name_of(spec, text), spec, None);
                    }
                }
            }
            "const_declaration" | "var_declaration" => {
                let kind = if kind == "const_declaration" {
                    Constant
                } else {
                    Variable
                };
                let mut c = node.walk();
                for spec in node.named_children(&mut c) {
                    if let Some(n) = spec.child_by_field_name("name") {
                        push(
                            out,
                            kind,
                            Some(text[n.start_byte()..n.end_byte()].to_string()),
                            spec,
                            None,
                        );
                    }
                }
            }
            _ => {}
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(lang: Lang, text: &str) -> Vec<String> {
        outline(lang, text)
            .into_iter()
            .map(|s| match s.parent {
                Some(p) => format!("{} {p}.{}:{}", s.kind.keyword(), s.name, s.line),
                None => format!("{} {}:{}", s.kind.keyword(), s.name, s.line),
            })
            .collect()
    }

    #[test]
    fn python() {
        let src = "import os\nLIMIT = 3\n\ndef add(a, b):\n    return a + b\n\n@dataclass\nclass Greeter:\n    def hello(self):\n        pass\n\n    @staticmethod\n    def make():\n        pass\n";
        assert_eq!(
            names(Lang::Python, src),
            [
                "let LIMIT:2",
                "fn add:4",
                "class Greeter:8",
                "fn Greeter.hello:9",
                "fn Greeter.make:13"
            ]
        );
    }

    #[test]
    fn rust() {
        let src = "use std::fmt;\npub struct Point { x: i32 }\nenum E { A }\ntrait T {}\nimpl Point {\n    pub fn new() -> Self { Point { x: 0 } }\n}\nimpl fmt::Display for Point {\n    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result { Ok(()) }\n}\nconst N: u8 = 1;\nmod inner;\nmacro_rules! m { () => {} }\nfn main() {}\n";
        assert_eq!(
            names(Lang::Rust, src),
            [
                "struct Point:2",
                "enum E:3",
                "trait T:4",
                "impl Point:5",
                "fn Point.new:6",
                "impl fmt::Display for Point:8",
                "fn Point.fmt:9",
                "const N:11",
                "mod inner:12",
                "macro m:13",
                "fn main:14"
            ]
        );
    }

    #[test]
    fn typescript_and_javascript() {
        let src = "export function f(a: number) { return a }\nexport const g = (x) => x;\nconst n = 3;\ninterface I { a: string }\ntype U = string | number;\nexport class C {\n  m() {}\n}\nenum Color { Red }\n";
        assert_eq!(
            names(Lang::TypeScript, src),
            [
                "fn f:1",
                "fn g:2",
                "let n:3",
                "interface I:4",
                "type U:5",
                "class C:6",
                "fn C.m:7",
                "enum Color:9"
            ]
        );
        assert_eq!(
            names(
                Lang::JavaScript,
                "function a() {}\nmodule.exports = { a };\nclass B { c() {} }\n"
            ),
            ["fn a:1", "class B:3", "fn B.c:3"]
        );
    }

    #[test]
    fn go() {
        let src = "package main\n\nconst Max = 3\n\ntype Server struct{}\n\ntype Handler interface{}\n\nfunc (s *Server) Serve() {}\n\nfunc main() {}\n";
        assert_eq!(
            names(Lang::Go, src),
            [
                "const Max:3",
                "struct Server:5",
                "interface Handler:7",
                "fn Server.Serve:9",
                "fn main:11"
            ]
        );
    }

    #[test]
    fn broken_files_still_outline() {
        let src = "def ok():\n    pass\n\ndef broken(:\n";
        assert!(names(Lang::Python, src).contains(&"fn ok:1".to_string()));
    }
}
