//! Known answers per language: every figure below is counted by hand from
//! the source (and, for cyclomatic complexity, by lizard's rules).

use graft_lang::parser_for;

use super::*;

fn facts(lang: Lang, src: &str) -> FileFacts {
    analyze(lang, src, &mut parser_for(lang))
}

fn function<'a>(f: &'a FileFacts, name: &str) -> &'a FunctionMetrics {
    f.functions
        .iter()
        .find(|x| x.name == name)
        .unwrap_or_else(|| panic!("no function {name} in {:?}", f.functions))
}

fn type_named<'a>(f: &'a FileFacts, name: &str) -> &'a TypeMetrics {
    f.types
        .iter()
        .find(|x| x.name == name)
        .unwrap_or_else(|| panic!("no type {name} in {:?}", f.types))
}

const PYTHON: &str = r#"import os
from . import sibling
from ..pkg.mod import thing, other as o

def simple(a, b):
    return a + b


def branchy(x, items, *, flag=False):
    if x > 0 and flag:
        for i in items:
            if i:
                x += i
            elif i is None:
                x -= 1
            else:
                x = 0
    try:
        pass
    except ValueError:
        pass
    return [y for y in items if y] or x


class Store:
    kind = "s"

    def __init__(self):
        self.items = []
        self.count = 0

    @property
    def add(self, x):
        import json
        def inner():
            return x if x else None
        return inner
"#;

#[test]
fn python_metrics() {
    let f = facts(Lang::Python, PYTHON);
    let s = function(&f, "simple");
    assert_eq!(
        (s.line, s.end_line, s.cyclomatic, s.cognitive, s.params, s.nesting),
        (5, 6, 1, 0, 2, 0)
    );
    let b = function(&f, "branchy");
    // if, and, for, if, elif, except, for, if, or
    assert_eq!(b.cyclomatic, 10);
    // if 1 + and 1 + for 2 + if 3 + elif 1 + else 1 + except 1 + or 1
    assert_eq!(b.cognitive, 11);
    assert_eq!((b.params, b.nesting, b.line, b.end_line), (3, 3, 9, 22));
    assert_eq!(b.nloc, 14);
    // Nested functions are their own, named as lizard names them.
    let inner = function(&f, "add.inner");
    assert_eq!((inner.cyclomatic, inner.owner.as_deref()), (2, None));
    let add = function(&f, "add");
    assert_eq!(
        (add.cyclomatic, add.owner.as_deref(), add.line),
        (1, Some("Store"), 33)
    );
    assert_eq!(f.functions.len(), 5);
}

#[test]
fn python_classes_and_imports() {
    let f = facts(Lang::Python, PYTHON);
    let store = type_named(&f, "Store");
    assert_eq!(
        (store.kind.as_str(), store.methods, store.fields),
        ("class", 2, 3)
    );
    assert_eq!((store.line, store.end_line), (25, 37));
    // simple, branchy, Store
    assert_eq!(f.definitions, 3);
    let specs: Vec<(&str, u32, Vec<&str>, bool)> = f
        .imports
        .iter()
        .map(|i| {
            (
                i.spec.as_str(),
                i.level,
                i.names.iter().map(String::as_str).collect(),
                i.deferred,
            )
        })
        .collect();
    assert_eq!(
        specs,
        vec![
            ("os", 0, vec![], false),
            ("", 1, vec!["sibling"], false),
            ("pkg.mod", 2, vec!["thing", "other"], false),
            ("json", 0, vec![], true),
        ]
    );
    assert_eq!(f.lines, 37);
    assert!(f.syntax_error.is_none());
}

const RUST: &str = r#"use crate::a::{b, c::D};
use super::e as f;
pub struct Counter { a: u32, b: u32 }

impl Counter {
    pub fn new() -> Self { Counter { a: 0, b: 0 } }
    pub fn bump(&mut self) { self.a += 1; }
}

trait Shape {
    fn area(&self) -> f64;
    fn name(&self) -> String { String::new() }
}

fn classify(n: i32, v: &[i32]) -> Option<i32> {
    let first = v.first()?;
    let Some(x) = v.last() else { return None };
    let run = || n > 0;
    match n {
        0 => Some(0),
        1 | 2 => Some(*first),
        _ => {
            if n > 10 && *x > 0 {
                Some(n)
            } else {
                None
            }
        }
    }
}

cfg_feature! {
    pub fn in_macro(a: bool) -> bool { a || false }
}
"#;

#[test]
fn rust_metrics() {
    let f = facts(Lang::Rust, RUST);
    let c = function(&f, "classify");
    // ?, let-else, `||` of the closure, 2 more arms, if, &&
    assert_eq!(c.cyclomatic, 8);
    // match 1, if 2, && 1, else 1
    assert_eq!((c.cognitive, c.nesting, c.params), (5, 2, 2));
    assert_eq!((c.line, c.end_line), (15, 30));
    assert_eq!(function(&f, "new").owner.as_deref(), Some("Counter"));
    assert_eq!(function(&f, "name").owner.as_deref(), Some("Shape"));
    // Functions inside macro invocations count, as lizard counts them.
    let m = function(&f, "in_macro");
    assert_eq!((m.line, m.cyclomatic, m.params), (33, 2, 1));
    // `area` has no body: not a function.
    let names: Vec<&str> = f.functions.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["new", "bump", "name", "classify", "in_macro"]);
}

#[test]
fn rust_types_and_uses() {
    let f = facts(Lang::Rust, RUST);
    let counter = type_named(&f, "Counter");
    assert_eq!((counter.kind.as_str(), counter.fields), ("struct", 2));
    let shape = type_named(&f, "Shape");
    assert_eq!((shape.kind.as_str(), shape.methods), ("trait", 2));
    let specs: Vec<&str> = f.imports.iter().map(|i| i.spec.as_str()).collect();
    assert_eq!(specs, ["crate::a::b", "crate::a::c::D", "super::e"]);
}

const GO: &str = r#"package shapes

import (
	"fmt"
	"example.com/m/util"
)

type Box struct {
	W, H int
	Name string
}

type Sizer interface {
	Size() int
	Name() string
}

func (b *Box) Area() int {
	if b.W > 0 && b.H > 0 {
		return b.W * b.H
	}
	return 0
}

func Kind(n int) string {
	switch {
	case n < 0:
		return "neg"
	case n == 0:
		return "zero"
	default:
		for i := 0; i < n; i++ {
			if i > 3 || n > 9 {
				return "big"
			}
		}
	}
	f := func(x int) int { if x > 0 { return 1 }; return 0 }
	fmt.Println(f(n), util.X)
	return "pos"
}
"#;

#[test]
fn go_metrics_types_imports() {
    let f = facts(Lang::Go, GO);
    let area = function(&f, "Area");
    assert_eq!(
        (area.cyclomatic, area.owner.as_deref(), area.params),
        (3, Some("Box"), 0)
    );
    let kind = function(&f, "Kind");
    // case, case, for, if, ||
    assert_eq!(kind.cyclomatic, 6);
    // switch 1, for 2, if 3, || 1
    assert_eq!((kind.cognitive, kind.nesting), (7, 3));
    let anon = function(&f, "(anonymous)");
    assert_eq!(anon.cyclomatic, 2);
    let b = type_named(&f, "Box");
    assert_eq!((b.kind.as_str(), b.fields), ("struct", 3));
    let s = type_named(&f, "Sizer");
    assert_eq!((s.kind.as_str(), s.methods), ("interface", 2));
    assert_eq!(f.package.as_deref(), Some("shapes"));
    let specs: Vec<&str> = f.imports.iter().map(|i| i.spec.as_str()).collect();
    assert_eq!(specs, ["fmt", "example.com/m/util"]);
}

const TS: &str = r#"import { a } from './a';
export * from './b';
const c = require('./c');
class Widget {
  size = 1;
  constructor(name) { this.name = name; }
  render(x?: number) {
    return x ?? this.size > 1 ? 'big' : 'small';
  }
}
const handler = (e) => {
  if (e && e.ok) {
    return 1;
  } else if (e) {
    return 2;
  }
  return 0;
};
"#;

#[test]
fn typescript_metrics_classes_imports() {
    for lang in [Lang::TypeScript, Lang::Tsx] {
        let f = facts(lang, TS);
        let w = type_named(&f, "Widget");
        assert_eq!((w.methods, w.fields), (2, 2), "{lang:?}");
        let r = function(&f, "render");
        assert_eq!(
            (r.cyclomatic, r.params, r.owner.as_deref()),
            (3, 1, Some("Widget"))
        );
        let h = function(&f, "handler");
        // if, &&, if
        assert_eq!(h.cyclomatic, 4);
        // if 1, && 1, else if 1
        assert_eq!(h.cognitive, 3);
        let specs: Vec<&str> = f.imports.iter().map(|i| i.spec.as_str()).collect();
        assert_eq!(specs, ["./a", "./b", "./c"]);
    }
}

#[test]
fn javascript_names_anonymous_functions() {
    let f = facts(
        Lang::JavaScript,
        "export default function () { return 1; }\nlist.map(function (x) { return x ? 1 : 2; });\nconst o = { go: () => 1 };\n",
    );
    let names: Vec<&str> = f.functions.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["(anonymous)", "(anonymous)", "go"]);
    assert_eq!(f.functions[1].cyclomatic, 2);
}

#[test]
fn syntax_errors_are_recorded_and_the_rest_analysed() {
    let f = facts(
        Lang::Python,
        "def ok(a):\n    return a\n\ndef broken(:\n    pass\n",
    );
    let e = f.syntax_error.expect("a syntax error");
    assert_eq!(e.line, 4);
    assert!(f.functions.iter().any(|x| x.name == "ok"));
}

#[test]
fn renamed_copies_have_equal_folded_tokens_and_different_exact_ones() {
    let a = facts(Lang::Python, "def f(a, b):\n    return a * 2 + b\n");
    let b = facts(Lang::Python, "def g(x, y):\n    return x * 3 + y\n");
    assert_eq!(a.tokens, b.tokens);
    assert_ne!(a.exact_tokens, b.exact_tokens);
    assert_eq!(a.tokens.len(), a.token_lines.len());
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let depth = 5000;
    let src = format!("x = {}1{}\n", "[".repeat(depth), "]".repeat(depth));
    let f = facts(Lang::Python, &src);
    assert_eq!(f.lines, 1);
}
