//! `graft scan`: every detector in every language on small repos written
//! for the purpose, with answers counted by hand; the ledger, JSON, SARIF,
//! `--fail-on`, scoping, the cache, and bad input of every kind.

use serde_json::Value;

use crate::support::*;

/// Low limits so that small files trip every detector.
const LOW_LIMITS: &str = "[scan]\ngod_class_methods = 3\ngod_class_lines = 400\ngod_module_lines = 60\n\
god_module_definitions = 40\nmax_cyclomatic = 4\nmax_cognitive = 40\nmax_fan_out = 1\nclone_min_tokens = 30\nclone_min_lines = 4\n";

fn scan(t: &Target, args: &[&str]) -> Value {
    let mut a = vec!["scan", "--json"];
    a.extend_from_slice(args);
    let run = t.graft(&a);
    run.success();
    run.json()
}

fn kinds(report: &Value) -> Vec<String> {
    let mut k: Vec<String> = report["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap().to_string())
        .collect();
    k.sort();
    k.dedup();
    k
}

fn function<'a>(report: &'a Value, path: &str, name: &str) -> &'a Value {
    let file = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("no file {path}"));
    file["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no function {name} in {path}: {}", file["functions"]))
}

fn suggestion<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == kind)
        .collect()
}

/// A function body with `n` methods, for god classes.
fn methods(n: usize, indent: &str, f: impl Fn(usize) -> String) -> String {
    (0..n).map(|i| format!("{indent}{}\n", f(i))).collect()
}

const PY_COMPLEX: &str = "def route(kind, n):\n    if kind == 'a' and n:\n        return 1\n    elif kind == 'b' or n > 3:\n        return 2\n    for i in range(n):\n        if i:\n            return i\n    return 0\n";

/// ~40 tokens over 6 lines, copied with other names.
fn py_dup(name: &str, v: &str) -> String {
    format!(
        "def {name}({v}, factor):\n    total = 0\n    for item in {v}:\n        total += item * factor\n        total -= len({v})\n    result = [total, factor, {v}]\n    return sorted(result, key=str)\n"
    )
}

fn python_target() -> Target {
    let store = format!(
        "class Store:\n    kind = 'plain'\n\n{}",
        methods(4, "    ", |i| format!(
            "def m{i}(self):\n        self.v{i} = {i}\n"
        ))
    );
    Target::with_files(&[
        ("graft.toml", LOW_LIMITS),
        ("app/__init__.py", ""),
        (
            "app/orders.py",
            "from app import billing\n\n\ndef order():\n    return billing.bill()\n",
        ),
        (
            "app/billing.py",
            "from . import orders\n\n\ndef bill():\n    return orders\n",
        ),
        ("app/store.py", &store),
        ("app/route.py", PY_COMPLEX),
        ("app/copy_a.py", &py_dup("summarise", "values")),
        ("app/copy_b.py", &py_dup("aggregate", "numbers")),
        (
            "app/hub.py",
            "import app.store\nimport app.route\n\n\ndef late():\n    import app.orders\n",
        ),
        ("app/big.py", &"X = 1\n".repeat(61)),
    ])
}

#[test]
fn python_every_detector() {
    let t = python_target();
    let r = scan(&t, &[]);
    assert_eq!(
        kinds(&r),
        [
            "circular_import",
            "complex_function",
            "duplicate",
            "god_class",
            "god_module",
            "high_coupling"
        ]
    );
    // if, and, elif, or, for, if; cognitive: if 1, and 1, elif 1, or 1,
    // for 1, nested if 2.
    let f = function(&r, "app/route.py", "route");
    assert_eq!(
        (
            &f["cyclomatic"],
            &f["cognitive"],
            &f["params"],
            &f["nesting"],
            &f["line"],
            &f["end_line"]
        ),
        (
            &Value::from(7),
            &Value::from(7),
            &Value::from(2),
            &Value::from(2),
            &Value::from(1),
            &Value::from(9)
        )
    );
    // The god class: 4 methods, fields kind + v0..v3.
    let g = suggestion(&r, "god_class");
    assert_eq!(g.len(), 1);
    assert_eq!(g[0]["detail"]["methods"], 4);
    assert_eq!(g[0]["detail"]["fields"], 5);
    assert_eq!(g[0]["files"][0], "app/store.py");
    // The cycle, with the import lines.
    let cycles = r["cycles"].as_array().unwrap();
    assert_eq!(cycles.len(), 1);
    assert_eq!(
        cycles[0]["modules"],
        serde_json::json!(["app/billing.py", "app/orders.py"])
    );
    assert_eq!(
        cycles[0]["cycle"],
        serde_json::json!(["app/billing.py", "app/orders.py", "app/billing.py"])
    );
    assert_eq!(cycles[0]["lines"], serde_json::json!([1, 1]));
    // Coupling: hub imports store and route at module level and orders in a
    // function (deferred imports still couple).
    let hub = r["coupling"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["module"] == "app/hub.py")
        .unwrap();
    assert_eq!(
        (&hub["fan_out"], &hub["fan_in"]),
        (&Value::from(3), &Value::from(0))
    );
    assert_eq!(hub["instability"], 1.0);
    // The duplicate: both renamed copies, whole.
    let d = suggestion(&r, "duplicate");
    assert_eq!(d.len(), 1, "{:?}", r["clones"]);
    let frags = &d[0]["detail"]["fragments"];
    assert_eq!(frags[0]["path"], "app/copy_a.py");
    assert_eq!(frags[1]["path"], "app/copy_b.py");
    assert_eq!(
        (&frags[0]["start_line"], &frags[0]["end_line"]),
        (&Value::from(1), &Value::from(7))
    );
    // The god module: 61 lines over 60.
    let m = suggestion(&r, "god_module");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["files"][0], "app/big.py");
    assert_eq!(r["summary"]["modules_analysed"], 9);
    assert_eq!(r["summary"]["circular_imports"], 1);
}

#[test]
fn suggestions_are_stored_with_concrete_instructions() {
    let t = python_target();
    let run = t.graft(&["scan"]);
    run.success()
        .stdout_has("modules analysed 9, functions 10, circular imports 1, clone groups 1, suggestions 6");
    let conn = t.ledger();
    let (scan_id, n): (String, i64) = conn
        .query_row(
            "SELECT id, (SELECT COUNT(*) FROM suggestions WHERE scan_id = scans.id) FROM scans",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(n, 6);
    assert!(
        scan_id.starts_with("scan_") && scan_id.len() == "scan_20261121_103001_a1b2c3".len(),
        "{scan_id}"
    );
    let suffix = scan_id.strip_prefix("scan_").unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT s.id, b.kind, b.instruction, b.risk, b.priority, b.files
             FROM suggestions s JOIN suggestion_bodies b ON b.id = s.body_id ORDER BY s.id",
        )
        .unwrap();
    let rows: Vec<(String, String, String, String, i64, String)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    for (i, (id, _, _, risk, priority, _)) in rows.iter().enumerate() {
        assert_eq!(id, &format!("sug_{suffix}_{:02}", i + 1));
        assert!(["low", "medium", "high"].contains(&risk.as_str()));
        assert!((1..=10).contains(priority));
    }
    let instruction = |kind: &str| rows.iter().find(|r| r.1 == kind).unwrap().2.clone();
    let god = instruction("god_class");
    assert!(
        god.starts_with("Split the class `Store` in app/store.py (lines 1-14): it has 4 methods, 14 lines and 5 fields, over the limits of 3 methods or 400 lines."),
        "{god}"
    );
    assert!(
        god.contains("Keep `Store`'s public methods as thin delegates"),
        "{god}"
    );
    let cycle = instruction("circular_import");
    assert!(
        cycle.starts_with("Break the circular import app/billing.py -> app/orders.py -> app/billing.py: app/billing.py imports app/orders.py (line 1); app/orders.py imports app/billing.py (line 1)."),
        "{cycle}"
    );
    let complex = instruction("complex_function");
    assert!(
        complex.starts_with("Simplify the function `route` in app/route.py (lines 1-9): its cyclomatic complexity is 7 (limit 4)"),
        "{complex}"
    );
    let dup = instruction("duplicate");
    assert!(dup.contains("app/copy_a.py:1-7, app/copy_b.py:1-7"), "{dup}");
    // A second scan's suggestion ids differ from the first's.
    t.graft(&["scan"]).success();
    let distinct: i64 = t.count("SELECT COUNT(DISTINCT id) FROM suggestions");
    assert_eq!(distinct, 12);
}

#[test]
fn only_the_newest_scans_keep_their_suggestions_and_an_old_id_says_why() {
    let t = python_target();
    t.write("graft.toml", &format!("{LOW_LIMITS}suggestion_history = 2\n"));
    t.commit("keep the suggestions of two scans");
    let ids: Vec<String> = (0..3)
        .map(|_| scan(&t, &[])["id"].as_str().unwrap().to_string())
        .collect();
    // Every scan's summary stays; the first one's suggestions went, and
    // the six texts the three scans share are kept once.
    assert_eq!(t.count("SELECT COUNT(*) FROM scans"), 3);
    assert_eq!(t.count("SELECT COUNT(*) FROM suggestions"), 12);
    assert_eq!(t.count("SELECT COUNT(*) FROM suggestion_bodies"), 6);
    let pruned = t.count(&format!(
        "SELECT COUNT(*) FROM scans WHERE suggestions_pruned_at IS NOT NULL AND id = '{}'",
        ids[0]
    ));
    assert_eq!(pruned, 1);
    let old = format!("sug_{}_01", ids[0].strip_prefix("scan_").unwrap());
    t.graft(&["upgrade", "--suggestion", &old])
        .code(6)
        .stderr_has(&format!(
            "suggestion `{old}` is gone: scan {}'s suggestions were dropped at",
            ids[0]
        ))
        .stderr_has("only the newest 2 scans keep theirs");
    assert_eq!(t.count("SELECT COUNT(*) FROM upgrades"), 0);
}

#[test]
fn rust_every_detector() {
    let big_impl = methods(4, "    ", |i| {
        format!("pub fn m{i}(&self) -> u32 {{ self.a + {i} }}")
    });
    let t = Target::with_files(&[
        ("graft.toml", LOW_LIMITS),
        (
            "Cargo.toml",
            "[package]\nname = \"demo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        ),
        (
            "src/lib.rs",
            "mod engine;\nmod parts;\nmod copies;\npub use engine::Engine;\n",
        ),
        (
            "src/engine.rs",
            &format!(
                "use crate::parts::Part;\n\npub struct Engine {{ a: u32, b: Part }}\n\nimpl Engine {{\n{big_impl}}}\n"
            ),
        ),
        (
            "src/parts.rs",
            "use crate::engine::Engine;\n\npub struct Part;\n\npub fn pick(e: Option<&Engine>, n: u32) -> u32 {\n    match n {\n        0 => 0,\n        1 => 1,\n        _ if n > 9 && e.is_some() => 2,\n        _ => { if n % 2 == 0 { 4 } else { 5 } }\n    }\n}\n",
        ),
        (
            "src/copies.rs",
            "pub fn first(values: &[u32], factor: u32) -> u32 {\n    let mut total = 0;\n    for v in values {\n        total += v * factor;\n    }\n    total\n}\n\npub fn second(items: &[u32], scale: u32) -> u32 {\n    let mut sum = 0;\n    for v in items {\n        sum += v * scale;\n    }\n    sum\n}\n\nuse crate::engine::Engine;\nuse crate::parts::Part;\n",
        ),
    ]);
    let r = scan(&t, &[]);
    assert_eq!(
        kinds(&r),
        [
            "circular_import",
            "complex_function",
            "duplicate",
            "god_class",
            "high_coupling"
        ]
    );
    // 1, 3 more arms, the guard's if, &&, if
    assert_eq!(function(&r, "src/parts.rs", "pick")["cyclomatic"], 7);
    let g = suggestion(&r, "god_class");
    assert_eq!(
        (
            &g[0]["detail"]["name"],
            &g[0]["detail"]["methods"],
            &g[0]["detail"]["fields"]
        ),
        (&Value::from("Engine"), &Value::from(4), &Value::from(2))
    );
    // engine uses parts, parts uses engine; lib re-exports engine.
    let cycles = r["cycles"].as_array().unwrap();
    assert_eq!(cycles.len(), 1);
    assert_eq!(
        cycles[0]["modules"],
        serde_json::json!(["src/engine.rs", "src/parts.rs"])
    );
    let lib = r["coupling"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["module"] == "src/lib.rs")
        .unwrap();
    assert_eq!(lib["fan_out"], 1);
    let copies = suggestion(&r, "high_coupling");
    assert_eq!(
        (copies.len(), &copies[0]["detail"]["fan_out"]),
        (1, &Value::from(2))
    );
    assert_eq!(copies[0]["files"][0], "src/copies.rs");
    let d = suggestion(&r, "duplicate");
    assert_eq!(d[0]["detail"]["fragments"][0]["start_line"], 1);
    assert_eq!(d[0]["detail"]["fragments"][1]["start_line"], 9);
}

#[test]
fn javascript_and_typescript_every_detector() {
    let widget = format!(
        "export class Widget {{\n  size = 1;\n{}}}\n",
        methods(4, "  ", |i| format!("m{i}() {{ return this.size + {i}; }}"))
    );
    let t = Target::with_files(&[
        ("graft.toml", LOW_LIMITS),
        (
            "tsconfig.json",
            "{\n  // paths, as in real projects\n  \"compilerOptions\": { \"baseUrl\": \".\", \"paths\": { \"@lib/*\": [\"src/lib/*\"] } },\n}\n",
        ),
        (
            "src/lib/a.ts",
            "import { b } from '@lib/b';\nexport const a = () => b;\n",
        ),
        (
            "src/lib/b.ts",
            "import { a } from './a.js';\nexport function b() { return a; }\n",
        ),
        ("src/lib/index.ts", "export * from './a';\nexport * from './b';\n"),
        (
            "src/app.js",
            "const lib = require('./lib');\nconst w = require('./widget.tsx');\nmodule.exports = { lib, w };\n",
        ),
        ("src/widget.tsx", &widget),
        (
            "src/route.js",
            "export function route(kind, n) {\n  if (kind === 'a' && n) { return 1; }\n  else if (kind === 'b' || n > 3) { return 2; }\n  return n ? 3 : 4;\n}\n",
        ),
        (
            "src/copy.ts",
            "export function first(values: number[], factor: number) {\n  let total = 0;\n  for (const v of values) {\n    total += v * factor;\n  }\n  return [total, factor].join(',');\n}\n\nexport function second(items: number[], scale: number) {\n  let sum = 0;\n  for (const v of items) {\n    sum += v * scale;\n  }\n  return [sum, scale].join(',');\n}\n",
        ),
    ]);
    let r = scan(&t, &[]);
    assert_eq!(
        kinds(&r),
        [
            "circular_import",
            "complex_function",
            "duplicate",
            "god_class",
            "high_coupling"
        ]
    );
    // if, &&, if, ||, ?
    assert_eq!(function(&r, "src/route.js", "route")["cyclomatic"], 6);
    let cycles = r["cycles"].as_array().unwrap();
    assert_eq!(cycles.len(), 1);
    // Through the tsconfig path alias and `./a.js` written for a.ts.
    assert_eq!(
        cycles[0]["modules"],
        serde_json::json!(["src/lib/a.ts", "src/lib/b.ts"])
    );
    let app = r["coupling"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["module"] == "src/app.js")
        .unwrap();
    // ./lib resolves to its index file, ./widget.tsx as written.
    assert_eq!(app["fan_out"], 2);
    let index = r["coupling"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["module"] == "src/lib/index.ts")
        .unwrap();
    assert_eq!(
        (&index["fan_in"], &index["fan_out"]),
        (&Value::from(1), &Value::from(2))
    );
    let g = suggestion(&r, "god_class");
    assert_eq!(
        (&g[0]["detail"]["methods"], &g[0]["files"][0]),
        (&Value::from(4), &Value::from("src/widget.tsx"))
    );
    assert_eq!(r["summary"]["by_language"]["tsx"], 1);
}

#[test]
fn go_every_detector() {
    let t = Target::with_files(&[
        ("graft.toml", LOW_LIMITS),
        ("go.mod", "module example.com/shop\n\ngo 1.22\n"),
        (
            "cart/cart.go",
            &format!(
                "package cart\n\nimport (\n\t\"example.com/shop/price\"\n\t\"example.com/shop/tax\"\n)\n\nvar _ = tax.Add\n\ntype Cart struct {{\n\tItems []int\n\tOwner, Note string\n}}\n\n{}",
                methods(4, "", |i| format!(
                    "func (c *Cart) M{i}() int {{ return price.Of(len(c.Items)) + {i} }}\n"
                ))
            ),
        ),
        (
            "price/price.go",
            "package price\n\nimport \"example.com/shop/tax\"\n\nfunc Of(n int) int {\n\tswitch {\n\tcase n < 0:\n\t\treturn 0\n\tcase n > 100 && n < 1000:\n\t\treturn 1\n\tdefault:\n\t\tif n%2 == 0 || n%3 == 0 {\n\t\t\treturn tax.Add(n)\n\t\t}\n\t}\n\treturn n\n}\n",
        ),
        (
            "tax/tax.go",
            "package tax\n\nimport \"example.com/shop/price\"\n\nfunc Add(n int) int { return price.Of(n - 1) }\n",
        ),
        (
            "tax/tax_test.go",
            "package tax_test\n\nimport \"example.com/shop/cart\"\n\nvar _ = cart.Cart{}\n",
        ),
        (
            "copy/copy.go",
            "package copy\n\nfunc First(values []int, factor int) int {\n\ttotal := 0\n\tfor _, v := range values {\n\t\ttotal += v * factor\n\t}\n\treturn total\n}\n\nfunc Second(items []int, scale int) int {\n\tsum := 0\n\tfor _, v := range items {\n\t\tsum += v * scale\n\t}\n\treturn sum\n}\n",
        ),
    ]);
    let r = scan(&t, &[]);
    assert_eq!(
        kinds(&r),
        [
            "circular_import",
            "complex_function",
            "duplicate",
            "god_class",
            "high_coupling"
        ]
    );
    // case, case, &&, if, ||
    assert_eq!(function(&r, "price/price.go", "Of")["cyclomatic"], 6);
    // Packages are the modules; the test file's import is left out.
    let cycles = r["cycles"].as_array().unwrap();
    assert_eq!(cycles[0]["modules"], serde_json::json!(["price", "tax"]));
    let g = suggestion(&r, "god_class");
    assert_eq!(
        (
            &g[0]["detail"]["name"],
            &g[0]["detail"]["methods"],
            &g[0]["detail"]["fields"]
        ),
        (&Value::from("Cart"), &Value::from(4), &Value::from(3))
    );
    let cart = r["coupling"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["module"] == "cart")
        .unwrap();
    assert_eq!(
        (&cart["fan_out"], &cart["fan_in"]),
        (&Value::from(2), &Value::from(0))
    );
}

#[test]
fn sarif_and_fail_on() {
    let t = python_target();
    let run = t.graft(&["scan", "--sarif"]);
    run.success();
    let s = run.json();
    assert_eq!(s["version"], "2.1.0");
    let sarif_run = &s["runs"][0];
    assert_eq!(sarif_run["tool"]["driver"]["name"], "graft");
    let results = sarif_run["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    let cycle = results.iter().find(|r| r["ruleId"] == "circular_import").unwrap();
    assert_eq!(
        cycle["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "app/billing.py"
    );
    let dup = results.iter().find(|r| r["ruleId"] == "duplicate").unwrap();
    assert_eq!(dup["locations"].as_array().unwrap().len(), 2);
    // The god class is the only high-risk finding: 4 methods is not 2x 3.
    let risks: Vec<&str> = results
        .iter()
        .map(|r| r["properties"]["risk"].as_str().unwrap())
        .collect();
    assert!(!risks.contains(&"high"), "{risks:?}");
    t.graft(&["scan", "--fail-on", "high"]).success();
    t.graft(&["scan", "--fail-on", "medium"])
        .code(10)
        .stderr_has("finding(s) at or above risk medium");
    let run = t.graft(&["scan", "--fail-on", "medium", "--json"]);
    run.code(10);
    assert!(run.json()["suggestions"].is_array());
    t.graft(&["scan", "--fail-on", "severe"])
        .code(2)
        .stderr_has("--fail-on severe: expected one of low, medium, high");
}

#[test]
fn scope_limits_the_scan() {
    let t = python_target();
    let r = scan(&t, &["app/store.py"]);
    assert_eq!(r["scope"], "app/store.py");
    assert_eq!(r["summary"]["modules_analysed"], 1);
    assert_eq!(kinds(&r), ["god_class"]);
    t.write("tools/x.py", "def x():\n    return 1\n");
    let r = scan(&t, &["tools"]);
    assert_eq!(r["summary"]["modules_analysed"], 1);
    assert_eq!(r["files"][0]["path"], "tools/x.py");
    t.graft(&["scan", "nowhere"])
        .code(2)
        .stderr_has("nowhere: no such file or folder");
    let json = t.graft(&["scan", "nowhere", "--json"]);
    json.code(2);
    assert_eq!(json.json()["error"]["code"], "no_such_path");
}

/// A folder with one complex function (and low limits), written by hand:
/// no git anywhere above it.
fn plain_folder() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("graft-plain-").tempdir().unwrap();
    std::fs::write(dir.path().join("graft.toml"), LOW_LIMITS).unwrap();
    std::fs::write(dir.path().join("route.py"), PY_COMPLEX).unwrap();
    std::fs::write(dir.path().join("ok.py"), "def f():\n    return 1\n").unwrap();
    dir
}

/// Every entry under `dir` but `.graft`, with its bytes.
fn contents(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != ".graft")
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn any_folder_is_scanned_as_itself_git_or_not() {
    let t = python_target();
    // A folder outside any repo, from inside this one: scanned as itself,
    // with the suggestion's file and line.
    let plain = plain_folder();
    let before = contents(plain.path());
    let root = plain.path().canonicalize().unwrap();
    let run = t.graft(&["scan", plain.path().to_str().unwrap()]);
    run.success();
    let id = run.stdout.split_whitespace().nth(1).unwrap().to_string();
    let sug = format!("sug_{}_01", id.strip_prefix("scan_").unwrap());
    run.stdout_has(&format!("scan {id} of {}  2 files, 11 lines in ", root.display()))
        .stdout_has(&format!(
            "  {sug}  p6  low     route.py:1  Simplify `route` (complexity 7, cognitive 7)\n"
        ))
        .stdout_has(&format!(
            "note: {} is not in a git repository, so a suggestion cannot become an upgrade here (`git init` and a first commit make it one); the ledger in {}/.graft keeps them all\n",
            root.display(),
            root.display()
        ));
    // Its cache and ledger are in its own .graft/; nothing else changed,
    // here or in the repo the command ran from.
    assert_eq!(contents(plain.path()), before);
    assert!(plain.path().join(".graft/scan-cache").is_dir());
    let scans: i64 = rusqlite::Connection::open(plain.path().join(".graft/ledger.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM scans", [], |r| r.get(0))
        .unwrap();
    assert_eq!(scans, 1);
    assert!(!t.path(".graft").exists(), "the repo graft ran in is untouched");
    // From inside the folder, and a file of it, as well.
    let inside = |args: &[&str]| {
        let out = t
            .graft_command(args, &[])
            .current_dir(plain.path())
            .output()
            .unwrap();
        Run::from(out, args)
    };
    let r = inside(&["scan", "--json"]).json();
    assert_eq!(r["summary"]["modules_analysed"], 2);
    assert_eq!(r["summary"]["cache_hits"], 2);
    let r = inside(&["scan", "route.py", "--json"]).json();
    assert_eq!(
        (r["scope"].as_str(), r["summary"]["modules_analysed"].as_u64()),
        (Some("route.py"), Some(1))
    );
    // Acting on a suggestion needs git, and says so; nothing is recorded.
    inside(&["upgrade", "--suggestion", &sug]).code(5).stderr_has(&format!(
        "error: {} is not in a git repository, and acting on a suggestion needs one: Graft lands every change as a commit. `git init` and a first commit here (then scan again), or run it in the repo the scan was of (`graft -C REPO upgrade --suggestion ID`)",
        plain.path().display()
    ));
    assert_eq!(contents(plain.path()), before);

    // Another git repo, from inside this one: in its own ledger.
    let other = python_target();
    let run = t.graft(&["scan", other.root.to_str().unwrap()]);
    run.success().stdout_has(&format!(
        "next: graft -C {} upgrade --suggestion ID turns one into an upgrade; the ledger keeps them all",
        other.root.canonicalize().unwrap().display()
    ));
    assert_eq!(other.count("SELECT COUNT(*) FROM scans"), 1);
    assert!(!t.path(".graft").exists());
    assert_eq!(
        other.git(&["status", "--porcelain"]),
        "",
        ".graft/ is kept out of git"
    );
}

#[test]
fn a_read_only_folder_is_scanned_with_its_cache_in_the_user_cache() {
    let t = python_target();
    let plain = plain_folder();
    let at = tempfile::tempdir().unwrap();
    let _ro = Mount::read_only(plain.path(), at.path());
    let cache = tempfile::tempdir().unwrap();
    let env = [("XDG_CACHE_HOME", cache.path().to_str().unwrap())];
    let scan_ro = || {
        let run = t.graft_env(&["scan", at.path().to_str().unwrap(), "--json"], &env);
        run.success();
        run.json()
    };
    let first = scan_ro();
    assert_eq!(first["summary"]["modules_analysed"], 2);
    assert_eq!(first["suggestions"][0]["files"][0], "route.py");
    assert!(!at.path().join(".graft").exists());
    let kept: Vec<_> = std::fs::read_dir(cache.path().join("graft/scan"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let name = kept[0].file_name().unwrap().to_string_lossy().into_owned();
    let folder = at.path().file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&format!("{folder}-")), "{name}");
    assert!(kept[0].join("scan-cache").is_dir());
    assert!(kept[0].join("ledger.db").exists());
    // The next scan reads the cache there.
    assert_eq!(scan_ro()["summary"]["cache_hits"], 2);
    t.graft_env(&["scan", at.path().to_str().unwrap()], &env)
        .success()
        .stdout_has(&format!("the ledger in {} keeps them all", kept[0].display()));
}

#[test]
fn gitignore_and_excludes_are_honoured() {
    let t = Target::with_files(&[
        (".gitignore", "build/\n"),
        ("graft.toml", "[scan]\nexclude = [\"vendor/**\"]\n"),
        ("main.py", "def main():\n    return 1\n"),
        ("build/gen.py", "def gen():\n    return 1\n"),
        ("vendor/lib.py", "def lib():\n    return 1\n"),
    ]);
    let r = scan(&t, &[]);
    let paths: Vec<&str> = r["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["main.py"]);
}

#[test]
fn bad_files_are_counted_and_reported_and_never_stop_the_scan() {
    let t = Target::with_files(&[
        ("graft.toml", "[scan]\nmax_file_bytes = 5000\n"),
        ("good.py", "def good(a):\n    return a\n"),
        ("broken.py", "def ok():\n    return 1\n\ndef broken(:\n    pass\n"),
        ("huge.py", &format!("X = '{}'\n", "a".repeat(6000))),
        ("bundle.min.js", &format!("var a={};\n", "1+".repeat(2250) + "1")),
    ]);
    t.write_bytes("latin1.py", b"x = '\xe9t\xe9'\n");
    std::os::unix::fs::symlink(".", t.path("loop")).unwrap();
    // A link out of the repository is not followed (nor reported).
    std::os::unix::fs::symlink("/usr", t.path("usr")).unwrap();
    std::os::unix::fs::symlink("missing.py", t.path("gone.py")).unwrap();
    let run = t.graft(&["scan", "--json"]);
    run.success();
    let r = run.json();
    let s = &r["summary"];
    assert_eq!(s["skipped"]["not_utf8"], 1, "{s}");
    assert_eq!(s["skipped"]["too_large"], 1, "{s}");
    assert_eq!(s["skipped"]["minified"], 1, "{s}");
    assert_eq!(s["skipped"]["symlink_loops"], 1, "{s}");
    assert_eq!(s["skipped"]["unreadable"], 1, "{s}");
    assert_eq!(s["syntax_errors"], 1, "{s}");
    // good.py and broken.py (as far as it parses).
    assert_eq!(s["modules_analysed"], 2);
    assert_eq!(function(&r, "broken.py", "ok")["cyclomatic"], 1);
    let problems: Vec<(String, String)> = r["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_string(),
                p["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (path, kind) in [
        ("broken.py", "syntax_error"),
        ("huge.py", "too_large"),
        ("bundle.min.js", "minified"),
        ("latin1.py", "not_utf8"),
        ("gone.py", "unreadable"),
        ("loop", "symlink_loop"),
    ] {
        assert!(
            problems.iter().any(|(p, k)| p == path && k == kind),
            "{path} {kind} not in {problems:?}"
        );
    }
    let broken = r["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == "broken.py")
        .unwrap();
    assert_eq!(broken["line"], 4);
    let human = t.graft(&["scan"]);
    human
        .success()
        .stdout_has("skipped 1 not UTF-8, 1 too large, 1 minified, 1 unreadable, 1 symbolic link loop")
        .stdout_has("syntax errors in 1 file(s), analysed as far as they parse");
    // Not a terminal: no progress bar on stderr.
    assert!(!human.stderr.contains("parsing"), "{}", human.stderr);
}

#[test]
fn per_file_results_are_cached_by_content() {
    let t = python_target();
    let first = scan(&t, &[]);
    assert_eq!(first["summary"]["cache_hits"], 0);
    let shards = std::fs::read_dir(t.path(".graft/scan-cache")).unwrap().count();
    assert!((1..=16).contains(&shards), "{shards} shard files");
    let second = scan(&t, &[]);
    assert_eq!(second["summary"]["cache_hits"], 9);
    assert_eq!(second["suggestions"].as_array().unwrap().len(), 6);
    let route = t.read("app/route.py");
    t.write("app/route.py", "def route():\n    return 0\n");
    let third = scan(&t, &[]);
    assert_eq!(third["summary"]["cache_hits"], 8);
    assert_eq!(function(&third, "app/route.py", "route")["cyclomatic"], 1);
    // A full scan dropped the old content's entry: putting it back is a miss.
    t.write("app/route.py", &route);
    let fourth = scan(&t, &[]);
    assert_eq!(fourth["summary"]["cache_hits"], 8);
    assert_eq!(function(&fourth, "app/route.py", "route")["cyclomatic"], 7);
    // A scoped scan keeps what it did not see.
    t.write("app/route.py", "def route():\n    return 0\n");
    scan(&t, &["app/route.py"]);
    t.write("app/route.py", &route);
    assert_eq!(scan(&t, &[])["summary"]["cache_hits"], 9);
    let uncached = scan(&t, &["--no-cache"]);
    assert_eq!(uncached["summary"]["cache_hits"], 0);
}

#[test]
fn a_file_is_read_again_whenever_its_stat_changed_even_with_its_mtime_put_back() {
    let t = Target::with_files(&[
        ("a.py", "def a():\n    return 1\n"),
        ("b.py", "def b():\n    return 1\n"),
    ]);
    let stamps = t.path(".graft/scan-cache/stamps.bin");
    // Files changed in the last seconds may change again within the
    // clock's granularity: their stat is not kept.
    scan(&t, &[]);
    assert!(!stamps.exists(), "stamps of fresh files are not kept");
    // Not settle(): setting a time changes the ctime, which must be old too.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let r = scan(&t, &[]);
    assert_eq!(r["summary"]["cache_hits"], 2);
    assert!(stamps.exists(), "stamps of settled files are kept");
    let r = scan(&t, &[]);
    assert_eq!(r["summary"]["cache_hits"], 2);
    assert_eq!(function(&r, "a.py", "a")["cyclomatic"], 1);

    // The same size and the old mtime put back: the ctime still tells.
    let mtime = std::fs::metadata(t.path("a.py")).unwrap().modified().unwrap();
    t.write("a.py", "def z():\n    return 2\n");
    std::fs::File::open(t.path("a.py"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(
        std::fs::metadata(t.path("a.py")).unwrap().modified().unwrap(),
        mtime
    );
    let r = scan(&t, &[]);
    assert_eq!(r["summary"]["cache_hits"], 1);
    function(&r, "a.py", "z");
    // Replaced by another file of the same size and times (a new inode).
    std::thread::sleep(std::time::Duration::from_millis(2200));
    scan(&t, &[]);
    let mtime = std::fs::metadata(t.path("b.py")).unwrap().modified().unwrap();
    std::fs::write(t.path("b.new"), "def y():\n    return 1\n").unwrap();
    std::fs::File::open(t.path("b.new"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::fs::rename(t.path("b.new"), t.path("b.py")).unwrap();
    let r = scan(&t, &[]);
    function(&r, "b.py", "y");
    function(&r, "a.py", "z");
    // A damaged stamps file is no stamps at all.
    std::fs::write(&stamps, b"\x05garbage").unwrap();
    let r = scan(&t, &[]);
    assert_eq!(r["summary"]["cache_hits"], 2);
    function(&r, "a.py", "z");
}

/// Set the modification time of every directory and file under `dir`
/// (but `.git` and `.graft`) an hour back: a listing is kept only when
/// nothing it read changed in the last seconds.
fn settle(dir: &std::path::Path) {
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name == ".git" || name == ".graft" {
            continue;
        }
        if p.is_dir() {
            settle(&p);
        }
        std::fs::File::open(&p).unwrap().set_modified(past).unwrap();
    }
    std::fs::File::open(dir).unwrap().set_modified(past).unwrap();
}

/// [`settle`] the work tree and the git files that shape what is ignored.
fn settle_repo(t: &Target) {
    settle(&t.path(""));
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for f in [".git/config", ".git/info/exclude"] {
        if let Ok(file) = std::fs::File::open(t.path(f)) {
            file.set_modified(past).unwrap();
        }
    }
}

fn listed(report: &Value) -> Vec<String> {
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_kept_listing_is_used_only_while_nothing_it_read_changed() {
    let t = Target::with_files(&[
        (".gitignore", "build/\n"),
        ("main.py", "def main():\n    return 1\n"),
        ("pkg/a.py", "def a():\n    return 1\n"),
        ("pkg/deep/b.py", "def b():\n    return 1\n"),
        ("build/gen.py", "def gen():\n    return 1\n"),
    ]);
    let walk_file = t.path(".graft/scan-cache/walk.bin");
    // Fresh directories may still change within the clock's granularity:
    // no listing is kept.
    let r = scan(&t, &[]);
    assert_eq!(r["summary"]["listing_reused"], false);
    assert!(!walk_file.exists(), "a walk over fresh directories is not kept");
    settle_repo(&t);
    scan(&t, &[]);
    assert!(walk_file.exists(), "a settled walk is kept");
    let r = scan(&t, &[]);
    assert_eq!(r["summary"]["listing_reused"], true);
    assert_eq!(listed(&r), ["main.py", "pkg/a.py", "pkg/deep/b.py"]);
    // An edited file keeps its directory's time: the listing holds, the
    // content is read again.
    t.write(
        "pkg/a.py",
        "def a():\n    if a:\n        return 2\n    return 1\n",
    );
    let r = scan(&t, &[]);
    assert_eq!(r["summary"]["listing_reused"], true);
    assert_eq!(function(&r, "pkg/a.py", "a")["cyclomatic"], 2);
    // A new file deep down changes its directory: a new walk finds it.
    settle_repo(&t);
    scan(&t, &[]);
    t.write("pkg/deep/c.py", "def c():\n    return 1\n");
    let r = scan(&t, &[]);
    assert_eq!(r["summary"]["listing_reused"], false);
    assert_eq!(
        listed(&r),
        ["main.py", "pkg/a.py", "pkg/deep/b.py", "pkg/deep/c.py"]
    );
    // A removed one too.
    settle_repo(&t);
    scan(&t, &[]);
    std::fs::remove_file(t.path("pkg/deep/b.py")).unwrap();
    let r = scan(&t, &[]);
    assert_eq!(r["summary"]["listing_reused"], false);
    assert_eq!(listed(&r), ["main.py", "pkg/a.py", "pkg/deep/c.py"]);
    // An ignore file edited in place leaves its directory's time alone;
    // its own time still shows the change.
    settle_repo(&t);
    scan(&t, &[]);
    let mut gitignore = std::fs::OpenOptions::new()
        .append(true)
        .open(t.path(".gitignore"))
        .unwrap();
    std::io::Write::write_all(&mut gitignore, b"pkg/deep/\n").unwrap();
    drop(gitignore);
    let r = scan(&t, &[]);
    assert_eq!(r["summary"]["listing_reused"], false);
    assert_eq!(listed(&r), ["main.py", "pkg/a.py"]);
    // A new ignore file in a directory read, and the repo's exclude file.
    settle_repo(&t);
    scan(&t, &[]);
    t.write("pkg/.gitignore", "a.py\n");
    let r = scan(&t, &[]);
    assert_eq!(r["summary"]["listing_reused"], false);
    assert_eq!(listed(&r), ["main.py"]);
    settle_repo(&t);
    scan(&t, &[]);
    assert_eq!(scan(&t, &[])["summary"]["listing_reused"], true);
    let exclude = t.path(".git/info/exclude");
    let before = std::fs::read_to_string(&exclude).unwrap_or_default();
    std::fs::write(&exclude, format!("{before}main.py\n")).unwrap();
    let r = scan(&t, &[]);
    assert_eq!(r["summary"]["listing_reused"], false);
    assert!(listed(&r).is_empty(), "{:?}", listed(&r));
    // Another question (a scope, other excludes) is never answered from it.
    std::fs::write(&exclude, before).unwrap();
    settle_repo(&t);
    scan(&t, &[]);
    assert_eq!(scan(&t, &["pkg"])["summary"]["listing_reused"], false);
    t.write("graft.toml", "[scan]\nexclude = [\"main.py\"]\n");
    settle_repo(&t);
    assert_eq!(scan(&t, &[])["summary"]["listing_reused"], false);
    // A damaged listing is no listing.
    settle_repo(&t);
    scan(&t, &[]);
    std::fs::write(&walk_file, b"\x01garbage").unwrap();
    let r = scan(&t, &[]);
    assert_eq!(r["summary"]["listing_reused"], false);
    assert!(listed(&r).is_empty(), "{:?}", listed(&r));
    assert!(
        walk_file.exists(),
        "the walk that found it damaged kept a new one"
    );
    // `.graft` itself coming and going is no change to the listing.
    std::fs::remove_dir_all(t.path(".graft")).unwrap();
    assert_eq!(scan(&t, &[])["summary"]["listing_reused"], false);
    assert!(walk_file.exists(), "kept though the root just gained .graft");
    assert_eq!(scan(&t, &[])["summary"]["listing_reused"], true);
}

#[test]
fn scan_config_errors_are_located() {
    let t = Target::with_files(&[
        ("graft.toml", "[scan]\nmax_cyclomatic = 0\n"),
        ("a.py", "x = 1\n"),
    ]);
    t.graft(&["scan"])
        .code(5)
        .stderr_has("graft.toml:2:18: key `scan.max_cyclomatic`: 0 is not a positive whole number");
    let run = t.graft(&["scan", "--json"]);
    run.code(5);
    assert_eq!(run.json()["error"]["code"], "invalid_config");
}

#[test]
fn scan_works_without_graft_toml() {
    let t = Target::with_files(&[("a.py", "def f():\n    return 1\n")]);
    let r = scan(&t, &[]);
    assert_eq!(r["summary"]["modules_analysed"], 1);
    assert_eq!(r["suggestions"].as_array().unwrap().len(), 0);
    t.graft(&["scan"])
        .success()
        .stdout_has("nothing to suggest: every figure is within its limit");
}
