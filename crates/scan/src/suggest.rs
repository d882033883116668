//! Findings become suggestions: a kind, a title, the files, a risk, a
//! priority and an instruction concrete enough for a provider (an LLM) to
//! act on without reading the report: it names the code, gives the
//! figures and the limits, and says what a good refactor looks like.
//!
//! Risk grows with how far a figure is past its limit and with how much
//! code a fix touches (see [`risk`]); priority is a base per kind plus
//! two points per doubling past the limit, clamped to 1..=10.

use graft_config::ScanConfig;
use rayon::prelude::*;
use serde_json::json;

use crate::model::{
    CloneGroup, Coupling, FunctionMetrics, ImportCycle, Risk, Suggestion, SuggestionKind, TypeMetrics,
};

/// One analysed file, as the suggestion rules see it.
pub(crate) struct Module<'a> {
    pub path: &'a str,
    pub lines: u32,
    pub definitions: u32,
    pub functions: &'a [FunctionMetrics],
    pub types: &'a [TypeMetrics],
    /// Where the methods of a type may live (a Go package's files).
    pub method_sources: Vec<(&'a str, &'a [FunctionMetrics])>,
}

pub(crate) fn suggestions(
    config: &ScanConfig,
    modules: &[Module<'_>],
    cycles: &[ImportCycle],
    clones: &[CloneGroup],
    coupling: &[Coupling],
) -> Vec<Suggestion> {
    // In parallel: a repository with thousands of clone groups spent a
    // tenth of a re-scan writing their instructions.
    let (mut out, duplicates) = rayon::join(
        || {
            let mut out: Vec<Suggestion> = modules
                .par_iter()
                .flat_map_iter(|m| {
                    let classes = m.types.iter().filter_map(|t| god_class(config, m, t));
                    let functions = m
                        .functions
                        .iter()
                        .filter_map(|f| complex_function(config, m.path, f));
                    classes.chain(god_module(config, m)).chain(functions)
                })
                .collect();
            out.extend(cycles.iter().map(circular_import));
            out.extend(coupling.iter().filter_map(|c| high_coupling(config, c)));
            out
        },
        || {
            clones
                .par_iter()
                .map(|c| duplicate(config, c))
                .collect::<Vec<_>>()
        },
    );
    out.extend(duplicates);
    out.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.kind.cmp(&b.kind))
            .then(a.files.cmp(&b.files))
            .then(a.start_line.cmp(&b.start_line))
    });
    out
}

/// The id of the scan suggestion `id` came from (the inverse of
/// [`number`]), if `id` has that shape.
pub fn scan_of_suggestion(id: &str) -> Option<String> {
    let (suffix, n) = id.strip_prefix("sug_")?.rsplit_once('_')?;
    n.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| format!("scan_{suffix}"))
}

/// Give each suggestion its id: `sug_<scan id suffix>_NN`.
pub(crate) fn number(suggestions: &mut [Suggestion], scan_id: &str) {
    let suffix = scan_id.strip_prefix("scan_").unwrap_or(scan_id);
    let width = suggestions.len().to_string().len().max(2);
    for (i, s) in suggestions.iter_mut().enumerate() {
        s.id = format!("sug_{suffix}_{:0width$}", i + 1);
    }
}

fn ratio(value: u64, limit: u64) -> f64 {
    value as f64 / limit.max(1) as f64
}

fn priority(base: i32, ratio: f64) -> u8 {
    let bump = (2.0 * ratio.max(1.0).log2()).floor() as i32;
    (base + bump).clamp(1, 10) as u8
}

/// How risky a finding is, from its kind and how far past the limit it is.
pub fn risk(kind: SuggestionKind, ratio: f64) -> Risk {
    use SuggestionKind::*;
    match kind {
        ComplexFunction if ratio >= 4.0 => Risk::High,
        ComplexFunction if ratio >= 2.0 => Risk::Medium,
        ComplexFunction => Risk::Low,
        GodClass if ratio >= 2.0 => Risk::High,
        GodClass => Risk::Medium,
        GodModule if ratio >= 2.0 => Risk::Medium,
        GodModule => Risk::Low,
        CircularImport if ratio > 1.5 => Risk::High,
        CircularImport => Risk::Medium,
        Duplicate if ratio >= 4.0 => Risk::Medium,
        Duplicate => Risk::Low,
        HighCoupling if ratio >= 2.0 => Risk::Medium,
        HighCoupling => Risk::Low,
    }
}

fn god_class(config: &ScanConfig, m: &Module<'_>, t: &TypeMetrics) -> Option<Suggestion> {
    let (max_m, max_l) = (config.god_class_methods.get(), config.god_class_lines.get());
    if (t.methods as u64) <= max_m && (t.lines as u64) <= max_l {
        return None;
    }
    let r = ratio(t.methods as u64, max_m).max(ratio(t.lines as u64, max_l));
    let mut methods: Vec<(&str, &FunctionMetrics)> = m
        .method_sources
        .iter()
        .flat_map(|(p, fs)| fs.iter().map(move |f| (*p, f)))
        .filter(|(_, f)| f.owner.as_deref() == Some(t.name.as_str()))
        .collect();
    methods.sort_by_key(|(_, f)| std::cmp::Reverse(f.end_line - f.line));
    let biggest: Vec<String> = methods
        .iter()
        .take(5)
        .map(|(_, f)| {
            format!(
                "`{}` ({} lines, complexity {})",
                f.name,
                f.end_line - f.line + 1,
                f.cyclomatic
            )
        })
        .collect();
    let mut files: Vec<String> = vec![m.path.to_string()];
    for (p, _) in &methods {
        if !files.iter().any(|f| f == p) {
            files.push(p.to_string());
        }
    }
    let noun = if t.kind == "class" { "class" } else { "type" };
    let instruction = format!(
        "Split the {kind} `{name}` in {path} (lines {start}-{end}): it has {methods} methods, {lines} lines and {fields} fields, \
         over the limits of {max_m} methods or {max_l} lines. Group its methods by the fields they use and by who calls them, \
         and move each group into a smaller {noun} with one responsibility (a collaborator that `{name}` holds, or a separate \
         {noun} that callers use directly). Keep `{name}`'s public methods as thin delegates so that callers keep working, \
         and do not change behaviour: the tests must pass unchanged.{largest}",
        kind = t.kind,
        name = t.name,
        path = m.path,
        start = t.line,
        end = t.end_line,
        methods = t.methods,
        lines = t.lines,
        fields = t.fields,
        largest = if biggest.is_empty() {
            String::new()
        } else {
            format!(" Its largest methods: {}.", biggest.join(", "))
        },
    );
    Some(Suggestion {
        id: String::new(),
        kind: SuggestionKind::GodClass,
        title: format!(
            "Split {} `{}` ({} methods, {} lines)",
            t.kind, t.name, t.methods, t.lines
        ),
        files,
        start_line: t.line,
        end_line: t.end_line,
        risk: risk(SuggestionKind::GodClass, r),
        priority: priority(6, r),
        instruction,
        detail: json!({
            "name": t.name, "kind": t.kind, "path": m.path, "line": t.line, "end_line": t.end_line,
            "methods": t.methods, "lines": t.lines, "fields": t.fields,
            "limits": { "methods": max_m, "lines": max_l },
        }),
    })
}

fn god_module(config: &ScanConfig, m: &Module<'_>) -> Option<Suggestion> {
    let (max_l, max_d) = (config.god_module_lines.get(), config.god_module_definitions.get());
    if (m.lines as u64) <= max_l && (m.definitions as u64) <= max_d {
        return None;
    }
    let r = ratio(m.lines as u64, max_l).max(ratio(m.definitions as u64, max_d));
    let instruction = format!(
        "Split the module {path}: it has {lines} lines and {defs} top-level functions and types, over the limits of \
         {max_l} lines or {max_d} definitions. Group the definitions by topic (what they work on and who imports them), move \
         each group into its own module next to this one (or turn the module into a package of such modules), and have the \
         old module import and re-export the moved names so existing imports keep working. Move code without changing it, \
         and keep the tests passing.",
        path = m.path,
        lines = m.lines,
        defs = m.definitions,
    );
    Some(Suggestion {
        id: String::new(),
        kind: SuggestionKind::GodModule,
        title: format!(
            "Split module {} ({} lines, {} definitions)",
            m.path, m.lines, m.definitions
        ),
        files: vec![m.path.to_string()],
        start_line: 1,
        end_line: m.lines.max(1),
        risk: risk(SuggestionKind::GodModule, r),
        priority: priority(4, r),
        instruction,
        detail: json!({
            "path": m.path, "lines": m.lines, "definitions": m.definitions,
            "limits": { "lines": max_l, "definitions": max_d },
        }),
    })
}

fn complex_function(config: &ScanConfig, path: &str, f: &FunctionMetrics) -> Option<Suggestion> {
    let (max_c, max_g) = (config.max_cyclomatic.get(), config.max_cognitive.get());
    if (f.cyclomatic as u64) <= max_c && (f.cognitive as u64) <= max_g {
        return None;
    }
    let r = ratio(f.cyclomatic as u64, max_c).max(ratio(f.cognitive as u64, max_g));
    let what = match &f.owner {
        Some(o) => format!("method `{}` of `{o}`", f.name),
        None => format!("function `{}`", f.name),
    };
    let instruction = format!(
        "Simplify the {what} in {path} (lines {start}-{end}): its cyclomatic complexity is {cc} (limit {max_c}) and its \
         cognitive complexity {cog} (limit {max_g}), with branches nested {nest} deep, {params} parameters and {nloc} lines of \
         code. Extract the bodies of deeply nested branches and loops into well-named helper functions, replace nested \
         if/else with early returns (guard clauses), and turn long if/elif or match chains over one value into a lookup table \
         or a dispatch. Keep its signature and behaviour; the tests must pass unchanged.",
        start = f.line,
        end = f.end_line,
        cc = f.cyclomatic,
        cog = f.cognitive,
        nest = f.nesting,
        params = f.params,
        nloc = f.nloc,
    );
    Some(Suggestion {
        id: String::new(),
        kind: SuggestionKind::ComplexFunction,
        title: format!(
            "Simplify `{}` (complexity {}, cognitive {})",
            f.name, f.cyclomatic, f.cognitive
        ),
        files: vec![path.to_string()],
        start_line: f.line,
        end_line: f.end_line,
        risk: risk(SuggestionKind::ComplexFunction, r),
        priority: priority(5, r),
        instruction,
        detail: json!({
            "name": f.name, "owner": f.owner, "path": path, "line": f.line, "end_line": f.end_line,
            "cyclomatic": f.cyclomatic, "cognitive": f.cognitive, "nesting": f.nesting, "params": f.params, "nloc": f.nloc,
            "limits": { "cyclomatic": max_c, "cognitive": max_g },
        }),
    })
}

fn circular_import(c: &ImportCycle) -> Suggestion {
    let r = c.modules.len() as f64 / 2.0;
    let steps: Vec<String> = c
        .cycle
        .windows(2)
        .zip(&c.lines)
        .map(|(w, line)| format!("{} imports {} (line {line})", w[0], w[1]))
        .collect();
    let others = if c.modules.len() > c.cycle.len() - 1 {
        format!(
            " These {} modules all depend on each other through imports: {}.",
            c.modules.len(),
            c.modules.join(", ")
        )
    } else {
        String::new()
    };
    let python_hint = if c.language == "python" {
        " As a last resort, move the import that closes the cycle into the function that uses it."
    } else {
        ""
    };
    let instruction = format!(
        "Break the circular import {cycle}: {steps}.{others} Find what the modules need from each other; move the shared \
         definitions into a new module that both import (it must import neither), or invert one dependency by passing the \
         needed object or function in as a parameter.{python_hint} Keep public names importable from where they are now \
         (re-export them), and keep the tests passing.",
        cycle = c.cycle.join(" -> "),
        steps = steps.join("; "),
    );
    let first = c.cycle.first().cloned().unwrap_or_default();
    Suggestion {
        id: String::new(),
        kind: SuggestionKind::CircularImport,
        title: format!("Break the import cycle {}", c.cycle.join(" -> ")),
        files: c.modules.clone(),
        start_line: c.lines.first().copied().unwrap_or(1).max(1),
        end_line: c.lines.first().copied().unwrap_or(1).max(1),
        risk: risk(SuggestionKind::CircularImport, r),
        priority: priority(7, r),
        instruction,
        detail: json!({
            "language": c.language, "modules": c.modules, "cycle": c.cycle, "lines": c.lines, "first": first,
        }),
    }
}

fn duplicate(config: &ScanConfig, c: &CloneGroup) -> Suggestion {
    let copies = c.fragments.len() as u64;
    let r = ratio(c.lines as u64 * (copies - 1), config.clone_min_lines.get() * 4);
    let places: Vec<String> = c
        .fragments
        .iter()
        .map(|f| format!("{}:{}-{}", f.path, f.start_line, f.end_line))
        .collect();
    let mut files: Vec<String> = Vec::new();
    for f in &c.fragments {
        if !files.contains(&f.path) {
            files.push(f.path.clone());
        }
    }
    let instruction = format!(
        "Remove the duplicated code: the same {lines} lines ({tokens} tokens; names and literals may differ) appear in \
         {copies} places: {places}. Extract them into one function (or method) with parameters for the parts that differ, \
         put it where every copy can reach it ({home}), and replace each copy with a call. Keep behaviour identical; the \
         tests must pass unchanged.",
        lines = c.lines,
        tokens = c.tokens,
        places = places.join(", "),
        home = if files.len() == 1 {
            format!("in {}", files[0])
        } else {
            "a module the files share".to_string()
        },
    );
    Suggestion {
        id: String::new(),
        kind: SuggestionKind::Duplicate,
        title: format!("Deduplicate {} lines repeated {} times", c.lines, copies),
        files,
        start_line: c.fragments[0].start_line,
        end_line: c.fragments[0].end_line,
        risk: risk(SuggestionKind::Duplicate, r),
        priority: priority(4, r),
        instruction,
        detail: json!({
            "language": c.language, "tokens": c.tokens, "lines": c.lines, "fragments": c.fragments,
            "limits": { "tokens": config.clone_min_tokens.get(), "lines": config.clone_min_lines.get() },
        }),
    }
}

fn high_coupling(config: &ScanConfig, c: &Coupling) -> Option<Suggestion> {
    let max = config.max_fan_out.get();
    if (c.fan_out as u64) <= max {
        return None;
    }
    let r = ratio(c.fan_out as u64, max);
    let instruction = format!(
        "Reduce the dependencies of {module}: it imports {out} modules of this repository (limit {max}); {inn} modules \
         import it (instability {inst:.2}). Split it so that each part needs only a few collaborators, or have it depend on a \
         narrower interface (pass dependencies in, or import one facade instead of many modules). Keep its public names \
         importable and the tests passing.",
        module = c.module,
        out = c.fan_out,
        inn = c.fan_in,
        inst = c.instability,
    );
    Some(Suggestion {
        id: String::new(),
        kind: SuggestionKind::HighCoupling,
        title: format!("Reduce the imports of {} (fan-out {})", c.module, c.fan_out),
        files: vec![c.module.clone()],
        start_line: 1,
        end_line: 1,
        risk: risk(SuggestionKind::HighCoupling, r),
        priority: priority(3, r),
        instruction,
        detail: json!({
            "module": c.module, "fan_in": c.fan_in, "fan_out": c.fan_out, "instability": c.instability,
            "limits": { "fan_out": max },
        }),
    })
}
