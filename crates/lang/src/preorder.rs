//! Every visible node of a tree in depth-first order, gathered by one call
//! into C (`preorder.c`) instead of a cursor step per node.

use tree_sitter::{Node, Tree, ffi};

/// One node of a [`Preorder`].
#[repr(C)]
#[derive(Clone, Copy)]
struct Visit {
    node: ffi::TSNode,
    descendants: u32,
    symbol: u16,
    reserved: u16,
    end_row: u32,
}

unsafe extern "C" {
    fn graft_preorder(tree: *const ffi::TSTree, items: *mut *mut Visit, cap: *mut usize) -> std::ffi::c_long;
    fn graft_preorder_free(items: *mut Visit);
}

/// A buffer for the nodes of one tree at a time, kept between trees.
pub struct Preorder {
    items: *mut Visit,
    cap: usize,
    len: usize,
}

// SAFETY: the buffer is plain memory owned by this value alone.
unsafe impl Send for Preorder {}

impl Default for Preorder {
    fn default() -> Self {
        Preorder::new()
    }
}

impl Preorder {
    pub fn new() -> Preorder {
        Preorder {
            items: std::ptr::null_mut(),
            cap: 0,
            len: 0,
        }
    }

    /// The visible nodes of `tree`, as a `TreeCursor` walking the whole
    /// tree would visit them.
    pub fn of<'b, 't>(&'b mut self, tree: &'t Tree) -> Nodes<'b, 't> {
        // SAFETY: `tree` is alive for 't and not changed while read; the
        // buffer pointer and capacity are ours and only C reallocs them.
        let n = unsafe { graft_preorder(tree_ptr(tree), &mut self.items, &mut self.cap) };
        // Out of memory (-1): as the allocator would, stop.
        self.len = usize::try_from(n)
            .unwrap_or_else(|_| std::alloc::handle_alloc_error(std::alloc::Layout::new::<Visit>()));
        Nodes {
            items: if self.len == 0 {
                &[]
            } else {
                // SAFETY: C wrote `len` initialised entries.
                unsafe { std::slice::from_raw_parts(self.items, self.len) }
            },
            _tree: std::marker::PhantomData,
        }
    }
}

impl Drop for Preorder {
    fn drop(&mut self) {
        // SAFETY: allocated by C's realloc (or null), freed once.
        unsafe { graft_preorder_free(self.items) }
    }
}

fn tree_ptr(tree: &Tree) -> *const ffi::TSTree {
    // Every node carries its tree; `Tree` has no accessor of its own that
    // does not consume it.
    tree.root_node().into_raw().tree
}

/// The nodes of one tree, in depth-first order.
#[derive(Clone, Copy)]
pub struct Nodes<'b, 't> {
    items: &'b [Visit],
    _tree: std::marker::PhantomData<&'t Tree>,
}

impl<'t> Nodes<'_, 't> {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The `i`th node.
    #[inline]
    pub fn node(&self, i: usize) -> Node<'t> {
        // SAFETY: C built it with ts_node_new from the tree borrowed for 't.
        unsafe { Node::from_raw(self.items[i].node) }
    }

    /// `Node::kind_id` of the `i`th node, without a call.
    #[inline]
    pub fn kind_id(&self, i: usize) -> u16 {
        self.items[i].symbol
    }

    /// The rows (0-based) of the `i`th node's start and end points,
    /// without a call.
    #[inline]
    pub fn rows(&self, i: usize) -> (u32, u32) {
        // A TSNode's context is its start byte, row and column and alias.
        (self.items[i].node.context[1], self.items[i].end_row)
    }

    /// How many nodes below the `i`th: its subtree ends at `i + 1 + that`.
    #[inline]
    pub fn descendants(&self, i: usize) -> usize {
        self.items[i].descendants as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Lang, parser_for};

    /// What a `TreeCursor` visits: (node, descendants), depth first.
    fn by_cursor(tree: &Tree) -> Vec<(Node<'_>, usize)> {
        let mut out: Vec<(Node, usize)> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        let mut cursor = tree.walk();
        loop {
            out.push((cursor.node(), 0));
            if cursor.goto_first_child() {
                open.push(out.len() - 1);
                continue;
            }
            loop {
                if cursor.goto_next_sibling() {
                    break;
                }
                if !cursor.goto_parent() {
                    return out;
                }
                let i = open.pop().expect("a parent was entered");
                out[i].1 = out.len() - i - 1;
            }
        }
    }

    fn assert_same(lang: Lang, text: &str, what: &str) {
        let mut parser = parser_for(lang);
        let tree = parser.parse(text, None).expect("parsed");
        let want = by_cursor(&tree);
        let mut pre = Preorder::new();
        let got = pre.of(&tree);
        assert_eq!(got.len(), want.len(), "{what}: node count");
        for (i, (node, descendants)) in want.iter().enumerate() {
            let g = got.node(i);
            assert!(
                g == *node
                    && g.kind_id() == node.kind_id()
                    && got.kind_id(i) == node.kind_id()
                    && g.start_position() == node.start_position()
                    && g.end_position() == node.end_position()
                    && g.byte_range() == node.byte_range()
                    && got.descendants(i) == *descendants
                    && got.rows(i) == (node.start_position().row as u32, node.end_position().row as u32),
                "{what}: node {i}: {} {:?} vs the cursor's {} {:?}",
                g.kind(),
                g.byte_range(),
                node.kind(),
                node.byte_range()
            );
        }
    }

    #[test]
    fn the_preorder_visits_what_a_cursor_visits() {
        let samples: &[(Lang, &str)] = &[
            (Lang::Python, ""),
            (
                Lang::Python,
                "def f(a, *b, **c):\n    # note\n    return [x for x in a if x and not b]\n\nclass C(B):\n    @d\n    def m(self): ...\n",
            ),
            (Lang::Python, "def broken(:\n    x = = 1\n  y\n"),
            (
                Lang::Rust,
                "mod m { pub fn f<T: Copy>(x: &T) -> T where T: Clone { match *x { a if a > 0 => a, _ => 0 } } }\nmacro_rules! m { ($x:expr) => { $x } }\nfn g() { m!(1); println!(\"{}\", 2); /* c */ }\n",
            ),
            (
                Lang::Rust,
                "struct S { a: u8, b: Vec<u8> } impl S { fn n(&self) -> u8 { self.a } } fn h( { let x = ; }",
            ),
            (
                Lang::JavaScript,
                "import a, {b as c} from './x';\nexport default class K extends a { #p = 1; get v() { return this.#p ?? c?.(1); } }\nconst f = async (x) => { for (const y of x) { if (y) break; } };\n// end\n",
            ),
            (
                Lang::TypeScript,
                "interface I<T> { a: T; b?(x: number): void }\ntype U = A | B;\nenum E { A = 1 }\nexport abstract class C implements I<string> { private constructor(readonly a: string) { super(); } }\n",
            ),
            (
                Lang::Tsx,
                "export function App({ items }: { items: string[] }) { return <ul>{items.map((i) => <li key={i}>{i}</li>)}</ul>; }\n",
            ),
            (
                Lang::Go,
                "package p\nimport (\"fmt\"; x \"os\")\ntype T struct { A, B int }\nfunc (t *T) M(a int) (int, error) { if a > 0 { return a, nil } else if a < 0 { return 0, fmt.Errorf(\"n\") }; switch a { case 1: }; return 0, nil }\n",
            ),
        ];
        for (i, (lang, text)) in samples.iter().enumerate() {
            assert_same(*lang, text, &format!("sample {i} ({})", lang.name()));
        }
        // And every source file of this repository in a language we parse.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut seen = 0;
        let mut dirs = vec![
            root.join("crates"),
            root.join("src"),
            root.join("tests"),
            root.join("bench"),
            root.join("examples"),
        ];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                if path.is_dir() {
                    if !path.ends_with("corpora") && !path.ends_with("out") {
                        dirs.push(path);
                    }
                } else if let Some(lang) = Lang::of_path(&path)
                    && let Ok(text) = std::fs::read_to_string(&path)
                {
                    assert_same(lang, &text, &path.display().to_string());
                    seen += 1;
                }
            }
        }
        assert!(seen > 100, "only {seen} files of this repository were compared");
    }
}
