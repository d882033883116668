//! Risk: how likely an upgrade is to hurt, with the reasons.
//!
//! Assessed on lines removed and added per file ([`FileDelta`]), taken
//! from a request before it runs (a patch's hunks, an edit's search and
//! replace) and from the staged diff after its gates passed, so what a
//! provider really wrote is judged too.
//!
//! Two kinds of reasons. **Hard** ones fix a floor that nothing lowers:
//! weakened tests (a change must not make its own gates easier), protected
//! paths, CI, Graft's own config, `[target] high_risk` globs. **Soft**
//! ones (size, build files, manifests, entry points, new dependencies) can
//! be lowered one level by a good track record of similar upgrades, never
//! below `[policy] risk_floor`; a poor record raises any level by one.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use graft_change::{Change, Edit, HunkLine, ModifyOp};
use graft_config::{PolicyConfig, RiskLevel};
use serde::Serialize;

/// The lines one file loses and gains.
#[derive(Debug, Clone, Default)]
pub struct FileDelta {
    pub path: String,
    /// `create`, `modify`, `delete` or `rename`.
    pub kind: String,
    pub removed: Vec<String>,
    pub added: Vec<String>,
}

/// A risk level and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Risk {
    pub level: RiskLevel,
    pub reasons: Vec<String>,
}

/// The file deltas of a unified diff (the staged change).
pub fn deltas_from_diff(diff: &str) -> Vec<FileDelta> {
    match graft_change::parse_unified_diff("diff", diff.as_bytes()) {
        Ok(change) => deltas_from_change(&change),
        Err(_) => Vec::new(),
    }
}

/// The file deltas of a change as requested (before it runs). A file
/// replaced or deleted without its old text counts what is known.
pub fn deltas_from_change(change: &Change) -> Vec<FileDelta> {
    let lines = |s: &str| s.lines().map(str::to_string).collect::<Vec<_>>();
    let from_ops = |ops: &[ModifyOp], d: &mut FileDelta| {
        for op in ops {
            match op {
                ModifyOp::Hunk(h) => {
                    for l in &h.lines {
                        match l {
                            HunkLine::Remove(t) => d.removed.push(t.trim_end().to_string()),
                            HunkLine::Add(t) => d.added.push(t.trim_end().to_string()),
                            HunkLine::Context(_) => {}
                        }
                    }
                }
                ModifyOp::SearchReplace { search, replace } => {
                    d.removed.extend(lines(search));
                    d.added.extend(lines(replace));
                }
            }
        }
    };
    change
        .edits
        .iter()
        .map(|e| {
            let mut d = FileDelta::default();
            match e {
                Edit::Create { path, content, .. } => {
                    d.path = path.to_string();
                    d.kind = "create".into();
                    d.added = lines(&String::from_utf8_lossy(content));
                }
                Edit::Delete { path, expect } => {
                    d.path = path.to_string();
                    d.kind = "delete".into();
                    d.removed = expect
                        .as_ref()
                        .map(|b| lines(&String::from_utf8_lossy(b)))
                        .unwrap_or_default();
                }
                Edit::Modify { path, ops } => {
                    d.path = path.to_string();
                    d.kind = "modify".into();
                    from_ops(ops, &mut d);
                }
                Edit::Rename { to, ops, .. } => {
                    d.path = to.to_string();
                    d.kind = "rename".into();
                    from_ops(ops, &mut d);
                }
                Edit::Replace { path, content } => {
                    d.path = path.to_string();
                    d.kind = "modify".into();
                    d.added = lines(&String::from_utf8_lossy(content));
                }
            }
            d
        })
        .collect()
}

/// What the track record of similar upgrades says.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Outcomes and failures of similar upgrades (same kind, same modules).
    pub similar: Vec<(String, u64, u64)>,
}

/// The rules, compiled once.
pub struct Rules {
    policy: PolicyConfig,
    protected: graft_change::Policy,
    user_high: GlobSet,
    ci: GlobSet,
    build: GlobSet,
    entry: GlobSet,
    manifests: GlobSet,
}

fn set(globs: &[&str]) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        if let Ok(g) = GlobBuilder::new(g).literal_separator(true).build() {
            b.add(g);
        }
    }
    b.build().unwrap_or_else(|_| GlobSet::empty())
}

impl Rules {
    pub fn new(config: &graft_config::Config) -> Rules {
        let mut user = GlobSetBuilder::new();
        for g in &config.target.high_risk.0 {
            if let Ok(g) = Glob::new(g) {
                user.add(g);
            }
        }
        Rules {
            policy: config.policy.clone(),
            protected: graft_change::Policy::new(&config.target.protected.0, Default::default(), false)
                .unwrap_or_default(),
            user_high: user.build().unwrap_or_else(|_| GlobSet::empty()),
            ci: set(&[
                ".github/workflows/**",
                ".gitlab-ci.yml",
                ".circleci/**",
                "Jenkinsfile",
                ".ci/**",
                "azure-pipelines.yml",
                ".buildkite/**",
            ]),
            build: set(&[
                "**/Cargo.toml",
                "Cargo.toml",
                "**/build.rs",
                "build.rs",
                "Makefile",
                "**/Makefile",
                "CMakeLists.txt",
                "setup.py",
                "setup.cfg",
                "pyproject.toml",
                "package.json",
                "**/package.json",
                "go.mod",
                "Dockerfile",
                "**/Dockerfile",
                "*.gradle",
                "pom.xml",
                "tsconfig.json",
            ]),
            entry: set(&[
                "src/main.rs",
                "main.py",
                "**/__main__.py",
                "manage.py",
                "wsgi.py",
                "asgi.py",
                "index.js",
                "index.ts",
                "server.js",
                "server.ts",
                "main.go",
                "cmd/**/main.go",
            ]),
            manifests: set(&[
                "Cargo.toml",
                "**/Cargo.toml",
                "requirements*.txt",
                "pyproject.toml",
                "package.json",
                "**/package.json",
                "go.mod",
                "Cargo.lock",
                "package-lock.json",
                "yarn.lock",
                "poetry.lock",
                "go.sum",
            ]),
        }
    }

    /// Whether any delta touches a protected path.
    pub fn touches_protected(&self, deltas: &[FileDelta]) -> bool {
        deltas.iter().any(|d| {
            graft_change::RelPath::new(&d.path)
                .ok()
                .and_then(|r| self.protected.is_protected(&r))
                .is_some()
        })
    }

    /// Assess a change; `record` is how similar upgrades fared.
    pub fn assess(&self, deltas: &[FileDelta], record: &Record) -> Risk {
        self.assess_with(deltas, record, false)
    }

    /// Assess, where the requester approved protected paths already
    /// (`--approve-protected`): they are named, not held again.
    pub fn assess_with(&self, deltas: &[FileDelta], record: &Record, protected_approved: bool) -> Risk {
        let mut hard = RiskLevel::Low;
        let mut soft = RiskLevel::Low;
        let mut reasons = Vec::new();
        let raise = |level: &mut RiskLevel, to: RiskLevel, why: String, reasons: &mut Vec<String>| {
            *level = (*level).max(to);
            reasons.push(format!("{}: {why}", to.as_str()));
        };
        for d in deltas {
            let p = d.path.as_str();
            let rel = graft_change::RelPath::new(p);
            if let Some(pattern) = rel.as_ref().ok().and_then(|r| self.protected.is_protected(r)) {
                if protected_approved {
                    reasons.push(format!(
                        "low: touches protected path `{p}` (matches `{pattern}`), approved with --approve-protected"
                    ));
                } else {
                    raise(
                        &mut hard,
                        RiskLevel::High,
                        format!("touches protected path `{p}` (matches `{pattern}`)"),
                        &mut reasons,
                    );
                }
            } else if self.ci.is_match(p) {
                raise(
                    &mut hard,
                    RiskLevel::High,
                    format!("changes CI configuration `{p}`"),
                    &mut reasons,
                );
            } else if self.user_high.is_match(p) {
                raise(
                    &mut hard,
                    RiskLevel::High,
                    format!("changes `{p}`, listed in [target] high_risk"),
                    &mut reasons,
                );
            } else if self.build.is_match(p) {
                raise(
                    &mut soft,
                    RiskLevel::Medium,
                    format!("changes build file `{p}`"),
                    &mut reasons,
                );
            } else if self.entry.is_match(p) {
                raise(
                    &mut soft,
                    RiskLevel::Medium,
                    format!("changes entry point `{p}`"),
                    &mut reasons,
                );
            }
        }
        let tests = weakened_tests(deltas);
        for why in tests {
            raise(&mut hard, RiskLevel::High, why, &mut reasons);
        }
        let deps = new_dependencies(deltas, &self.manifests);
        if !deps.is_empty() {
            raise(
                &mut soft,
                RiskLevel::Medium,
                format!("adds dependencies: {}", deps.join(", ")),
                &mut reasons,
            );
        }
        let lines: u64 = deltas
            .iter()
            .map(|d| (d.removed.len() + d.added.len()) as u64)
            .sum();
        let p = &self.policy;
        if lines > p.huge_change_lines {
            raise(
                &mut soft,
                RiskLevel::High,
                format!("{lines} changed lines (over {})", p.huge_change_lines),
                &mut reasons,
            );
        } else if lines > p.large_change_lines {
            raise(
                &mut soft,
                RiskLevel::Medium,
                format!("{lines} changed lines (over {})", p.large_change_lines),
                &mut reasons,
            );
        }
        let files = deltas.len() as u64;
        if files > p.too_many_files {
            raise(
                &mut soft,
                RiskLevel::High,
                format!("{files} files (over {})", p.too_many_files),
                &mut reasons,
            );
        } else if files > p.many_files {
            raise(
                &mut soft,
                RiskLevel::Medium,
                format!("{files} files (over {})", p.many_files),
                &mut reasons,
            );
        }
        // The track record moves the soft part.
        let mut level = soft;
        let record = if p.learn_risk { record } else { &Record::default() };
        let poor: Vec<String> = record
            .similar
            .iter()
            .filter(|(_, total, failed)| *total >= p.learn_min_outcomes && *failed * 2 >= *total)
            .map(|(what, total, failed)| format!("{what} {failed} of {total}"))
            .collect();
        let good = record
            .similar
            .iter()
            .all(|(_, total, failed)| *total >= p.learn_min_outcomes.max(5) && *failed * 10 <= *total)
            && !record.similar.is_empty();
        if !poor.is_empty() {
            level = level.up();
            reasons.push(format!(
                "{}: similar upgrades failed often ({}); `[policy] learn_risk = false` turns this off",
                level.as_str(),
                poor.join("; ")
            ));
        } else if good && level > p.risk_floor {
            level = level.down().max(p.risk_floor);
            reasons.push(format!(
                "lowered to {}: similar upgrades nearly always succeed (`[policy] learn_risk = false` turns this off)",
                level.as_str()
            ));
        }
        let level = level.max(hard).max(p.risk_floor);
        if reasons.is_empty() {
            reasons.push(format!("{}: a small change to ordinary files", level.as_str()));
        }
        Risk { level, reasons }
    }
}

/// Test functions and assertions a change takes away, and skip markers it
/// adds: each a reason for high risk.
pub fn weakened_tests(deltas: &[FileDelta]) -> Vec<String> {
    let mut out = Vec::new();
    let mut removed_fns: Vec<String> = Vec::new();
    let (mut removed_asserts, mut added_asserts, mut added_fns, mut skips) = (0usize, 0usize, 0usize, 0usize);
    for d in deltas {
        let test_file = is_test_file(&d.path);
        if d.kind == "delete" && test_file {
            out.push(format!("deletes test file `{}`", d.path));
            continue;
        }
        for l in &d.removed {
            if let Some(name) = test_fn_name(l) {
                removed_fns.push(name);
            }
            if is_assertion(l) {
                removed_asserts += 1;
            }
        }
        for l in &d.added {
            if test_fn_name(l).is_some() {
                added_fns += 1;
            }
            if is_assertion(l) {
                added_asserts += 1;
            }
            if is_skip(l) {
                skips += 1;
            }
        }
    }
    if removed_fns.len() > added_fns {
        let n = removed_fns.len() - added_fns;
        out.push(format!(
            "removes {n} test function(s) ({}): a change must not make its own gates easier",
            removed_fns.join(", ")
        ));
    }
    if removed_asserts > added_asserts {
        out.push(format!(
            "removes {} assertion(s): a change must not make its own gates easier",
            removed_asserts - added_asserts
        ));
    }
    if skips > 0 {
        out.push(format!("marks {skips} test(s) to be skipped"));
    }
    out
}

fn is_test_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    path.starts_with("tests/")
        || path.contains("/tests/")
        || path.contains("__tests__/")
        || name.starts_with("test_")
        || name.ends_with("_test.py")
        || name.ends_with("_test.go")
        || name.contains(".test.")
        || name.contains(".spec.")
}

/// The name of a test function a line defines, in the common languages.
fn test_fn_name(line: &str) -> Option<String> {
    let t = line.trim_start();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    if let Some(rest) = t
        .strip_prefix("def test")
        .or_else(|| t.strip_prefix("async def test"))
    {
        return Some(format!("test{}", ident(rest)));
    }
    if let Some(rest) = t.strip_prefix("func Test") {
        return Some(format!("Test{}", ident(rest)));
    }
    if t.starts_with("#[test]") || t.starts_with("#[tokio::test") {
        return Some("#[test]".into());
    }
    for prefix in ["it(", "test(", "it.only(", "test.only("] {
        if let Some(rest) = t.strip_prefix(prefix) {
            let name: String = rest
                .trim_start_matches(['\'', '"', '`'])
                .chars()
                .take_while(|c| !matches!(c, '\'' | '"' | '`'))
                .collect();
            return Some(format!("'{name}'"));
        }
    }
    None
}

fn is_assertion(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("assert")
        || t.starts_with("self.assert")
        || t.starts_with("debug_assert")
        || t.contains("expect(")
        || t.starts_with("t.Error")
        || t.starts_with("t.Fatal")
        || t.starts_with("require.")
        || t.contains("assert!(")
        || t.contains("assert_eq!(")
        || t.contains("assert_ne!(")
}

fn is_skip(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("@pytest.mark.skip")
        || t.starts_with("@unittest.skip")
        || t.starts_with("#[ignore")
        || t.contains(".skip(")
        || t.starts_with("t.Skip")
        || t.starts_with("xit(")
        || t.starts_with("xdescribe(")
}

/// Dependencies a change adds to a manifest, by name.
fn new_dependencies(deltas: &[FileDelta], manifests: &GlobSet) -> Vec<String> {
    let mut out = Vec::new();
    for d in deltas.iter().filter(|d| manifests.is_match(&d.path)) {
        let name = d.path.rsplit('/').next().unwrap_or(&d.path);
        let before: std::collections::HashSet<String> =
            d.removed.iter().filter_map(|l| dep_name(name, l)).collect();
        for l in &d.added {
            if let Some(dep) = dep_name(name, l)
                && !before.contains(&dep)
                && !out.contains(&dep)
            {
                out.push(dep);
            }
        }
    }
    out
}

/// The dependency a manifest line declares, if it declares one.
fn dep_name(manifest: &str, line: &str) -> Option<String> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') || t.starts_with("//") || t.starts_with('[') {
        return None;
    }
    let word = |s: &str| -> Option<String> {
        let w: String = s
            .chars()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '@'))
            .collect();
        (!w.is_empty()).then_some(w)
    };
    match manifest {
        "Cargo.toml" => {
            let (k, v) = t.split_once('=')?;
            let k = k.trim();
            let meta = [
                "name",
                "version",
                "edition",
                "authors",
                "description",
                "license",
                "publish",
                "rust-version",
                "readme",
                "repository",
                "path",
            ];
            (!meta.contains(&k) && (v.trim().starts_with('"') || v.trim().starts_with('{')))
                .then(|| k.to_string())
        }
        "package.json" => {
            let (k, v) = t.split_once(':')?;
            let k = k.trim().trim_matches('"');
            let v = v.trim().trim_end_matches(',').trim_matches('"');
            let looks_like_version = v.starts_with(['^', '~', '>', '<', '='])
                || v.chars().next().is_some_and(|c| c.is_ascii_digit())
                || v.starts_with("workspace:");
            (looks_like_version && !["version", "node"].contains(&k)).then(|| k.to_string())
        }
        "go.mod" => {
            let t = t.strip_prefix("require").unwrap_or(t).trim();
            t.contains(" v").then(|| word(t)).flatten()
        }
        n if n.starts_with("requirements") => word(t),
        "pyproject.toml" => {
            let t = t.trim_matches(|c| c == '"' || c == ',' || c == '\'');
            (line.trim_start().starts_with('"') || line.trim_start().starts_with('\''))
                .then(|| word(t))
                .flatten()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(extra: &str) -> Rules {
        let c = graft_config::Config::parse(std::path::Path::new("graft.toml"), extra).unwrap();
        Rules::new(&c)
    }

    fn delta(path: &str, kind: &str, removed: &[&str], added: &[&str]) -> FileDelta {
        FileDelta {
            path: path.into(),
            kind: kind.into(),
            removed: removed.iter().map(|s| s.to_string()).collect(),
            added: added.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_small_ordinary_change_is_low() {
        let r = rules("").assess(
            &[delta("app.py", "modify", &["x = 1"], &["x = 2"])],
            &Record::default(),
        );
        assert_eq!(r.level, RiskLevel::Low);
        assert_eq!(r.reasons, ["low: a small change to ordinary files"]);
    }

    #[test]
    fn weakening_tests_is_always_high() {
        let d = delta(
            "test_app.py",
            "modify",
            &[
                "    def test_add(self):",
                "        self.assertEqual(app.add(2, 3), 5)",
            ],
            &[],
        );
        let r = rules("").assess(&[d], &Record::default());
        assert_eq!(r.level, RiskLevel::High);
        assert!(
            r.reasons
                .iter()
                .any(|s| s.contains("removes 1 test function(s) (test_add)")),
            "{:?}",
            r.reasons
        );
        assert!(
            r.reasons.iter().any(|s| s.contains("removes 1 assertion(s)")),
            "{:?}",
            r.reasons
        );
        // A good record does not lower it.
        let good = Record {
            similar: vec![("kind patch".into(), 50, 0)],
        };
        assert_eq!(
            rules("")
                .assess(&[delta("t.rs", "modify", &["    #[test]"], &[])], &good)
                .level,
            RiskLevel::High
        );
        let skip = delta("test_x.py", "modify", &[], &["@pytest.mark.skip(reason='flaky')"]);
        assert!(
            rules("").assess(&[skip], &Record::default()).reasons[0]
                .contains("marks 1 test(s) to be skipped")
        );
        let gone = delta("tests/test_x.py", "delete", &[], &[]);
        assert!(rules("").assess(&[gone], &Record::default()).reasons[0].contains("deletes test file"));
    }

    #[test]
    fn paths_raise_risk() {
        let r = rules("").assess(
            &[delta(".github/workflows/ci.yml", "modify", &[], &["x"])],
            &Record::default(),
        );
        assert_eq!(r.level, RiskLevel::High);
        let r = rules("").assess(&[delta("graft.toml", "modify", &[], &["x"])], &Record::default());
        assert!(
            r.reasons[0].contains("protected path `graft.toml`"),
            "{:?}",
            r.reasons
        );
        let r = rules("").assess(
            &[delta("Cargo.toml", "modify", &[], &["serde = \"1\""])],
            &Record::default(),
        );
        assert_eq!(r.level, RiskLevel::Medium);
        assert!(
            r.reasons.iter().any(|s| s.contains("adds dependencies: serde")),
            "{:?}",
            r.reasons
        );
        let r = rules("[target]\nhigh_risk = [\"storage/**\"]\n").assess(
            &[delta("storage/db.py", "modify", &[], &["x"])],
            &Record::default(),
        );
        assert_eq!(r.level, RiskLevel::High);
    }

    #[test]
    fn size_and_file_count_raise_risk() {
        let many: Vec<FileDelta> = (0..12)
            .map(|i| delta(&format!("f{i}.py"), "modify", &["a"], &["b"]))
            .collect();
        assert_eq!(
            rules("").assess(&many, &Record::default()).level,
            RiskLevel::Medium
        );
        let big: Vec<&str> = vec!["x"; 1200];
        assert_eq!(
            rules("")
                .assess(&[delta("a.py", "modify", &[], &big)], &Record::default())
                .level,
            RiskLevel::High
        );
    }

    #[test]
    fn the_record_moves_soft_risk_but_never_below_the_floor() {
        let d = [delta("storage/db.py", "modify", &["a"], &["b"])];
        let poor = Record {
            similar: vec![("module storage".into(), 4, 3)],
        };
        let r = rules("").assess(&d, &poor);
        assert_eq!(r.level, RiskLevel::Medium);
        assert!(
            r.reasons
                .iter()
                .any(|s| s == "medium: similar upgrades failed often (module storage 3 of 4); `[policy] learn_risk = false` turns this off"),
            "{:?}",
            r.reasons
        );
        // The setting it names turns it off.
        let off = rules("[policy]\nlearn_risk = false\n").assess(&d, &poor);
        assert_eq!(off.level, RiskLevel::Low, "{:?}", off.reasons);
        assert!(
            off.reasons.iter().all(|s| !s.contains("similar upgrades")),
            "{:?}",
            off.reasons
        );
        let good = Record {
            similar: vec![("module web".into(), 20, 0)],
        };
        let medium = [delta("package.json", "modify", &[], &["  \"x\": 1"])];
        assert_eq!(rules("").assess(&medium, &good).level, RiskLevel::Low);
        assert_eq!(
            rules("[policy]\nrisk_floor = \"medium\"\n")
                .assess(&medium, &good)
                .level,
            RiskLevel::Medium
        );
    }

    #[test]
    fn deltas_come_from_diffs_and_edits() {
        let diff = "--- a/test_app.py\n+++ b/test_app.py\n@@ -1,3 +1,1 @@\n-def test_one():\n-    assert f() == 1\n x = 1\n";
        let d = deltas_from_diff(diff);
        assert_eq!(d[0].removed, ["def test_one():", "    assert f() == 1"]);
        let change = graft_change::parse_edits_json(
            "e",
            br#"[{"op":"modify","path":"a.py","search":"assert x","replace":"pass"}]"#,
        )
        .unwrap();
        let d = deltas_from_change(&change);
        assert_eq!((d[0].removed.len(), d[0].added.len()), (1, 1));
    }
}
