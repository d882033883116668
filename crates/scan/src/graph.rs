//! The import graph: imports resolved to modules of the repo, circular
//! imports (strongly connected components, each with one concrete cycle)
//! and coupling (fan-in, fan-out, instability).
//!
//! A module is a file, except in Go, where it is a package (a directory).
//! Imports of anything outside the scanned files (the standard library,
//! dependencies) are not edges. How each language resolves:
//! - Python: dotted names from the package layout (`__init__.py`),
//!   relative imports by their dots, `from p import m` to submodule `p.m`
//!   when it exists. Imports inside functions or under `if TYPE_CHECKING:`
//!   count for coupling but not for cycles: they do not run at import time.
//! - JavaScript/TypeScript: relative specifiers with the usual extensions
//!   and `index` files, `.js` written for a `.ts` source, and tsconfig
//!   `baseUrl`/`paths` (following `extends`).
//! - Rust: `use` paths within the crate (`crate::`, `self::`, `super::`,
//!   and child modules), to the longest module prefix; `mod` declarations
//!   are containment, not dependencies.
//! - Go: import paths under the module named in `go.mod`; `_test.go` files
//!   are left out (external test packages may import back).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use graft_lang::Lang;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::model::{Coupling, FileFacts, ImportCycle};

pub(crate) struct SourceFile<'a> {
    pub rel: &'a str,
    pub lang: Lang,
    pub facts: &'a FileFacts,
}

#[derive(Default)]
pub(crate) struct GraphResult {
    pub cycles: Vec<ImportCycle>,
    pub coupling: Vec<Coupling>,
    pub edges: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Family {
    Python,
    Js,
    Rust,
    Go,
}

impl Family {
    fn of(lang: Lang) -> Family {
        match lang {
            Lang::Python => Family::Python,
            Lang::Rust => Family::Rust,
            Lang::Go => Family::Go,
            Lang::JavaScript | Lang::TypeScript | Lang::Tsx => Family::Js,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Family::Python => "python",
            Family::Js => "javascript/typescript",
            Family::Rust => "rust",
            Family::Go => "go",
        }
    }
}

/// One resolved import.
struct Edge {
    from: String,
    to: String,
    line: u32,
    deferred: bool,
}

pub(crate) fn build(root: &Path, files: &[SourceFile<'_>]) -> GraphResult {
    let mut by_family: BTreeMap<Family, Vec<&SourceFile<'_>>> = BTreeMap::new();
    for f in files {
        by_family.entry(Family::of(f.lang)).or_default().push(f);
    }
    let mut result = GraphResult::default();
    for (family, files) in by_family {
        let (modules, edges) = match family {
            Family::Python => python(root, &files),
            Family::Js => js(root, &files),
            Family::Rust => rust(root, &files),
            Family::Go => go(root, &files),
        };
        analyse(family, modules, edges, &mut result);
    }
    result
}

fn analyse(family: Family, mut modules: Vec<String>, edges: Vec<Edge>, out: &mut GraphResult) {
    // Reports list modules in path order, whatever order resolution used.
    modules.sort_unstable();
    let mut index: HashMap<&str, NodeIndex> = HashMap::new();
    let mut g: DiGraph<&str, u32> = DiGraph::new();
    for m in &modules {
        index.entry(m.as_str()).or_insert_with(|| g.add_node(m.as_str()));
    }
    let mut fan_in: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut fan_out: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut first_line: HashMap<(&str, &str), u32> = HashMap::new();
    for e in &edges {
        if e.from == e.to {
            continue;
        }
        fan_out.entry(&e.from).or_default().insert(&e.to);
        fan_in.entry(&e.to).or_default().insert(&e.from);
        if e.deferred {
            continue;
        }
        let key = (e.from.as_str(), e.to.as_str());
        if let std::collections::hash_map::Entry::Vacant(v) = first_line.entry(key) {
            v.insert(e.line);
            let (Some(&a), Some(&b)) = (index.get(key.0), index.get(key.1)) else {
                continue;
            };
            g.add_edge(a, b, e.line);
        }
    }
    out.edges += fan_out.values().map(|s| s.len() as u64).sum::<u64>();
    for m in &modules {
        let i = fan_in.get(m.as_str()).map_or(0, |s| s.len()) as u32;
        let o = fan_out.get(m.as_str()).map_or(0, |s| s.len()) as u32;
        out.coupling.push(Coupling {
            module: m.clone(),
            language: family.name(),
            fan_in: i,
            fan_out: o,
            instability: if i + o == 0 {
                0.0
            } else {
                o as f64 / (i + o) as f64
            },
        });
    }
    let mut cycles = Vec::new();
    for scc in petgraph::algo::tarjan_scc(&g) {
        if scc.len() < 2 {
            continue;
        }
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        let mut names: Vec<String> = scc.iter().map(|&n| g[n].to_string()).collect();
        names.sort();
        let start = *scc.iter().min_by_key(|&&n| g[n]).unwrap_or(&scc[0]);
        let path = shortest_cycle(&g, start, &members);
        let cycle: Vec<String> = path.iter().map(|&n| g[n].to_string()).collect();
        let lines = path
            .windows(2)
            .map(|w| first_line.get(&(g[w[0]], g[w[1]])).copied().unwrap_or(0))
            .collect();
        cycles.push(ImportCycle {
            language: family.name(),
            modules: names,
            cycle,
            lines,
        });
    }
    cycles.sort_by(|a, b| {
        b.modules
            .len()
            .cmp(&a.modules.len())
            .then(a.modules.cmp(&b.modules))
    });
    out.cycles.extend(cycles);
}

/// The shortest path from `start` back to itself inside `members` (BFS).
fn shortest_cycle(g: &DiGraph<&str, u32>, start: NodeIndex, members: &BTreeSet<NodeIndex>) -> Vec<NodeIndex> {
    let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = g.neighbors(n).filter(|m| members.contains(m)).collect();
        next.sort_by_key(|&m| g[m]);
        for m in next {
            if m == start {
                let mut path = vec![n];
                let mut cur = n;
                while cur != start {
                    cur = prev[&cur];
                    path.push(cur);
                }
                path.reverse();
                path.push(start);
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(v) = prev.entry(m) {
                v.insert(n);
                queue.push_back(m);
            }
        }
    }
    vec![start, start]
}

// ---- Python ----------------------------------------------------------

fn python(root: &Path, files: &[&SourceFile<'_>]) -> (Vec<String>, Vec<Edge>) {
    let paths: HashSet<&str> = files.iter().map(|f| f.rel).collect();
    let root_name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut by_name: HashMap<String, &str> = HashMap::new();
    let mut name_of: HashMap<&str, (String, bool)> = HashMap::new();
    for f in files {
        let (name, is_package) = python_module_name(f.rel, &paths, &root_name);
        by_name.entry(name.clone()).or_insert(f.rel);
        name_of.insert(f.rel, (name, is_package));
    }
    let mut edges = Vec::new();
    for f in files {
        let (name, is_package) = &name_of[f.rel];
        let package: Vec<&str> = if *is_package {
            name.split('.').collect()
        } else {
            let mut p: Vec<&str> = name.split('.').collect();
            p.pop();
            p
        };
        for imp in &f.facts.imports {
            let base = if imp.level > 0 {
                let up = (imp.level - 1) as usize;
                if up > package.len() {
                    continue;
                }
                let mut b: Vec<&str> = package[..package.len() - up].to_vec();
                if !imp.spec.is_empty() {
                    b.extend(imp.spec.split('.'));
                }
                b.join(".")
            } else {
                imp.spec.clone()
            };
            let mut targets = Vec::new();
            for n in &imp.names {
                let full = if base.is_empty() {
                    n.clone()
                } else {
                    format!("{base}.{n}")
                };
                if let Some(t) = by_name.get(&full) {
                    targets.push(*t);
                }
            }
            if targets.is_empty() {
                // The longest prefix that is a module of the repo.
                let mut parts: Vec<&str> = base.split('.').filter(|s| !s.is_empty()).collect();
                while !parts.is_empty() {
                    if let Some(t) = by_name.get(&parts.join(".")) {
                        targets.push(*t);
                        break;
                    }
                    parts.pop();
                }
            }
            for t in targets {
                edges.push(Edge {
                    from: f.rel.to_string(),
                    to: t.to_string(),
                    line: imp.line,
                    deferred: imp.deferred,
                });
            }
        }
    }
    (files.iter().map(|f| f.rel.to_string()).collect(), edges)
}

/// `a/b/c.py` is `a.b.c` when `a/` and `a/b/` are packages; the second
/// value says whether the file is a package's `__init__`. When the scan
/// root is itself a package, its directory name (`root_name`) leads.
fn python_module_name(rel: &str, paths: &HashSet<&str>, root_name: &str) -> (String, bool) {
    let p = Path::new(rel);
    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let is_package = stem == "__init__";
    let mut parts: Vec<String> = Vec::new();
    if !is_package {
        parts.push(stem.to_string());
    }
    let mut dir = p.parent();
    while let Some(d) = dir {
        let at_root = d.as_os_str().is_empty();
        let init = if at_root {
            "__init__.py".to_string()
        } else {
            format!("{}/__init__.py", d.to_string_lossy())
        };
        if !paths.contains(init.as_str()) {
            break;
        }
        if at_root {
            parts.push(root_name.to_string());
            break;
        }
        parts.push(
            d.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        dir = d.parent();
    }
    parts.reverse();
    (parts.join("."), is_package)
}

// ---- JavaScript / TypeScript ------------------------------------------

const JS_EXTENSIONS: [&str; 8] = ["ts", "tsx", "d.ts", "js", "jsx", "mjs", "cjs", "mts"];

struct TsPaths {
    /// Directory `paths` are relative to (`baseUrl`, else the tsconfig's).
    base: String,
    has_base_url: bool,
    paths: Vec<(String, Vec<String>)>,
}

fn js(root: &Path, files: &[&SourceFile<'_>]) -> (Vec<String>, Vec<Edge>) {
    let paths: HashSet<&str> = files.iter().map(|f| f.rel).collect();
    let mut tsconfigs: HashMap<String, Option<std::rc::Rc<TsPaths>>> = HashMap::new();
    let mut edges = Vec::new();
    for f in files {
        let dir = parent_of(f.rel);
        for imp in &f.facts.imports {
            let spec = imp.spec.as_str();
            let target = if spec.starts_with("./") || spec.starts_with("../") || spec == "." || spec == ".." {
                resolve_js(&join(&dir, spec), &paths)
            } else {
                let cfg = nearest_tsconfig(root, &dir, &mut tsconfigs);
                cfg.and_then(|c| resolve_ts_paths(&c, spec, &paths))
            };
            if let Some(t) = target {
                edges.push(Edge {
                    from: f.rel.to_string(),
                    to: t,
                    line: imp.line,
                    deferred: imp.deferred,
                });
            }
        }
    }
    (files.iter().map(|f| f.rel.to_string()).collect(), edges)
}

fn resolve_js(base: &str, paths: &HashSet<&str>) -> Option<String> {
    if paths.contains(base) {
        return Some(base.to_string());
    }
    let mut stems = vec![base.to_string()];
    for ext in [".js", ".jsx", ".mjs", ".cjs"] {
        if let Some(s) = base.strip_suffix(ext) {
            stems.push(s.to_string());
        }
    }
    for stem in &stems {
        for ext in JS_EXTENSIONS {
            let c = format!("{stem}.{ext}");
            if paths.contains(c.as_str()) {
                return Some(c);
            }
        }
    }
    for ext in JS_EXTENSIONS {
        let c = if base.is_empty() {
            format!("index.{ext}")
        } else {
            format!("{base}/index.{ext}")
        };
        if paths.contains(c.as_str()) {
            return Some(c);
        }
    }
    None
}

fn nearest_tsconfig(
    root: &Path,
    dir: &str,
    cache: &mut HashMap<String, Option<std::rc::Rc<TsPaths>>>,
) -> Option<std::rc::Rc<TsPaths>> {
    if let Some(c) = cache.get(dir) {
        return c.clone();
    }
    let mut found = None;
    for name in ["tsconfig.json", "jsconfig.json"] {
        let rel = if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        };
        if let Some(cfg) = read_tsconfig(root, &rel, 0) {
            found = Some(std::rc::Rc::new(cfg));
            break;
        }
    }
    if found.is_none() && !dir.is_empty() {
        found = nearest_tsconfig(root, &parent_of(dir), cache);
    }
    cache.insert(dir.to_string(), found.clone());
    found
}

fn read_tsconfig(root: &Path, rel: &str, depth: u32) -> Option<TsPaths> {
    let text = std::fs::read_to_string(root.join(rel)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&graft_lang::strip_jsonc(&text)).ok()?;
    let dir = parent_of(rel);
    let mut inherited = None;
    if depth < 5
        && let Some(ext) = v.get("extends").and_then(|e| e.as_str())
        && ext.starts_with('.')
    {
        let mut p = join(&dir, ext);
        if !p.ends_with(".json") {
            p.push_str(".json");
        }
        inherited = read_tsconfig(root, &p, depth + 1);
    }
    let opts = v.get("compilerOptions");
    let base_url = opts.and_then(|o| o.get("baseUrl")).and_then(|b| b.as_str());
    let paths = opts
        .and_then(|o| o.get("paths"))
        .and_then(|p| p.as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let targets = v
                        .as_array()
                        .map(|a| a.iter().filter_map(|t| t.as_str().map(String::from)).collect())
                        .unwrap_or_default();
                    (k.clone(), targets)
                })
                .collect::<Vec<_>>()
        });
    let mut cfg = inherited.unwrap_or(TsPaths {
        base: dir.clone(),
        has_base_url: false,
        paths: Vec::new(),
    });
    if let Some(b) = base_url {
        cfg.base = join(&dir, b);
        cfg.has_base_url = true;
    }
    if let Some(p) = paths {
        if base_url.is_none() && !cfg.has_base_url {
            cfg.base = dir;
        }
        cfg.paths = p;
    }
    Some(cfg)
}

fn resolve_ts_paths(cfg: &TsPaths, spec: &str, paths: &HashSet<&str>) -> Option<String> {
    for (pattern, targets) in &cfg.paths {
        let star = match pattern.split_once('*') {
            Some((pre, post))
                if spec.starts_with(pre) && spec.ends_with(post) && spec.len() >= pre.len() + post.len() =>
            {
                Some(&spec[pre.len()..spec.len() - post.len()])
            }
            None if pattern == spec => Some(""),
            _ => None,
        };
        let Some(star) = star else { continue };
        for t in targets {
            let t = t.replace('*', star);
            if let Some(r) = resolve_js(&join(&cfg.base, &t), paths) {
                return Some(r);
            }
        }
    }
    if cfg.has_base_url {
        return resolve_js(&join(&cfg.base, spec), paths);
    }
    None
}

// ---- Rust --------------------------------------------------------------

fn rust(root: &Path, files: &[&SourceFile<'_>]) -> (Vec<String>, Vec<Edge>) {
    let mut crate_of: HashMap<String, Option<String>> = HashMap::new();
    // (crate dir, module path) -> file
    let mut index: HashMap<(String, Vec<String>), &str> = HashMap::new();
    let mut module_of: HashMap<&str, (String, Vec<String>)> = HashMap::new();
    for f in files {
        let Some(krate) = find_up(root, &parent_of(f.rel), "Cargo.toml", &mut crate_of) else {
            continue;
        };
        let inner = if krate.is_empty() {
            f.rel.to_string()
        } else {
            f.rel[krate.len() + 1..].to_string()
        };
        let Some(src_rel) = inner.strip_prefix("src/") else {
            continue;
        };
        if src_rel.starts_with("bin/") {
            continue;
        }
        let mut parts: Vec<String> = src_rel
            .trim_end_matches(".rs")
            .split('/')
            .map(String::from)
            .collect();
        if matches!(parts.last().map(String::as_str), Some("mod")) {
            parts.pop();
        }
        if parts.len() == 1 && matches!(parts[0].as_str(), "lib" | "main") {
            parts.clear();
        }
        index.entry((krate.clone(), parts.clone())).or_insert(f.rel);
        module_of.insert(f.rel, (krate, parts));
    }
    let mut edges = Vec::new();
    for f in files {
        let Some((krate, module)) = module_of.get(f.rel) else {
            continue;
        };
        for imp in &f.facts.imports {
            let segs: Vec<&str> = imp.spec.split("::").filter(|s| !s.is_empty()).collect();
            let Some(&first) = segs.first() else { continue };
            let (mut abs, rest) = match first {
                "crate" | "$crate" => (Vec::new(), 1),
                "self" => (module.clone(), 1),
                "super" => {
                    let supers = segs.iter().take_while(|s| **s == "super").count();
                    let mut m = module.clone();
                    for _ in 0..supers {
                        m.pop();
                    }
                    (m, supers)
                }
                _ => {
                    let mut child = module.clone();
                    child.push(first.to_string());
                    if !index.contains_key(&(krate.clone(), child)) {
                        continue;
                    }
                    (module.clone(), 0)
                }
            };
            abs.extend(segs[rest..].iter().map(|s| s.to_string()));
            let mut target = None;
            while target.is_none() {
                if let Some(t) = index.get(&(krate.clone(), abs.clone())) {
                    target = Some(*t);
                }
                if abs.pop().is_none() {
                    break;
                }
            }
            if let Some(t) = target {
                edges.push(Edge {
                    from: f.rel.to_string(),
                    to: t.to_string(),
                    line: imp.line,
                    deferred: false,
                });
            }
        }
    }
    (module_of.keys().map(|k| k.to_string()).collect(), edges)
}

// ---- Go ------------------------------------------------------------------

fn go(root: &Path, files: &[&SourceFile<'_>]) -> (Vec<String>, Vec<Edge>) {
    let mut gomod_of: HashMap<String, Option<String>> = HashMap::new();
    let mut module_names: HashMap<String, Option<String>> = HashMap::new();
    let packages: BTreeSet<String> = files.iter().map(|f| parent_of(f.rel)).collect();
    let mut edges = Vec::new();
    for f in files {
        if f.rel.ends_with("_test.go") {
            continue;
        }
        let dir = parent_of(f.rel);
        let Some(mod_dir) = find_up(root, &dir, "go.mod", &mut gomod_of) else {
            continue;
        };
        let module = module_names
            .entry(mod_dir.clone())
            .or_insert_with(|| {
                let text = std::fs::read_to_string(root.join(&mod_dir).join("go.mod")).ok()?;
                text.lines()
                    .find_map(|l| l.trim().strip_prefix("module "))
                    .map(|m| m.trim().trim_matches('"').to_string())
            })
            .clone();
        let Some(module) = module else { continue };
        for imp in &f.facts.imports {
            let Some(rest) = imp.spec.strip_prefix(module.as_str()) else {
                continue;
            };
            if !(rest.is_empty() || rest.starts_with('/')) {
                continue;
            }
            let target = join(&mod_dir, rest.trim_start_matches('/'));
            if packages.contains(&target) {
                edges.push(Edge {
                    from: dir.clone(),
                    to: target,
                    line: imp.line,
                    deferred: false,
                });
            }
        }
    }
    (packages.into_iter().collect(), edges)
}

// ---- paths -----------------------------------------------------------------

fn parent_of(rel: &str) -> String {
    rel.rsplit_once('/').map_or(String::new(), |(d, _)| d.to_string())
}

/// `dir` joined with a relative `path`, `.` and `..` folded.
fn join(dir: &str, path: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// The nearest directory at or above `dir` (inside the root) holding `name`.
fn find_up(
    root: &Path,
    dir: &str,
    name: &str,
    cache: &mut HashMap<String, Option<String>>,
) -> Option<String> {
    if let Some(c) = cache.get(dir) {
        return c.clone();
    }
    let here: PathBuf = root.join(dir).join(name);
    let found = if here.is_file() {
        Some(dir.to_string())
    } else if dir.is_empty() {
        None
    } else {
        find_up(root, &parent_of(dir), name, cache)
    };
    cache.insert(dir.to_string(), found.clone());
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_folds_dots() {
        assert_eq!(join("a/b", "../c/./d"), "a/c/d");
        assert_eq!(join("", "./x"), "x");
        assert_eq!(join("a", "../../x"), "x");
    }

    #[test]
    fn python_names_follow_packages() {
        let paths: HashSet<&str> = [
            "pkg/__init__.py",
            "pkg/sub/__init__.py",
            "pkg/sub/m.py",
            "tools/run.py",
        ]
        .into_iter()
        .collect();
        assert_eq!(
            python_module_name("pkg/sub/m.py", &paths, "r"),
            ("pkg.sub.m".to_string(), false)
        );
        assert_eq!(
            python_module_name("pkg/sub/__init__.py", &paths, "r"),
            ("pkg.sub".to_string(), true)
        );
        assert_eq!(
            python_module_name("tools/run.py", &paths, "r"),
            ("run".to_string(), false)
        );
    }
}
