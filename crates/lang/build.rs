//! Compiles `src/preorder.c` against the internal headers of the
//! tree-sitter library this crate links (its crate exports the include
//! directory; the sources sit beside it), so the walk and the library
//! always come from the same version.

use std::path::PathBuf;

fn main() {
    let include = PathBuf::from(
        std::env::var("DEP_TREE_SITTER_INCLUDE").expect("the tree-sitter crate names its include directory"),
    );
    let src = include
        .parent()
        .expect("tree-sitter's include directory has a parent")
        .join("src");
    println!("cargo:rerun-if-changed=src/preorder.c");
    cc::Build::new()
        .std("c11")
        .include(&include)
        .include(&src)
        .warnings(false)
        .file("src/preorder.c")
        .compile("graft-preorder");
}
