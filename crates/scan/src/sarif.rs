//! The report as SARIF 2.1.0, the format code-scanning tools (GitHub code
//! scanning, IDE viewers) read: one rule per suggestion kind plus
//! `syntax_error` and `unanalysed_file`, one result per suggestion and per
//! problem file.

use serde_json::{Value, json};

use crate::model::{Risk, ScanReport, SuggestionKind};

const KINDS: [(SuggestionKind, &str); 6] = [
    (
        SuggestionKind::CircularImport,
        "Modules import each other in a cycle.",
    ),
    (
        SuggestionKind::GodClass,
        "A class or type with too many methods or lines.",
    ),
    (
        SuggestionKind::ComplexFunction,
        "A function with high cyclomatic or cognitive complexity.",
    ),
    (
        SuggestionKind::GodModule,
        "A module with too many lines or definitions.",
    ),
    (
        SuggestionKind::Duplicate,
        "The same code, up to names and literals, in several places.",
    ),
    (
        SuggestionKind::HighCoupling,
        "A module that imports too many modules of the repository.",
    ),
];

fn level(risk: Risk) -> &'static str {
    match risk {
        Risk::High => "error",
        Risk::Medium => "warning",
        Risk::Low => "note",
    }
}

fn location(path: &str, start: u32, end: u32) -> Value {
    json!({
        "physicalLocation": {
            "artifactLocation": { "uri": path, "uriBaseId": "SRCROOT" },
            "region": { "startLine": start.max(1), "endLine": end.max(start).max(1) }
        }
    })
}

pub fn to_sarif(report: &ScanReport) -> Value {
    let mut rules: Vec<Value> = KINDS
        .iter()
        .map(|(k, text)| {
            json!({
                "id": k.as_str(),
                "name": k.as_str(),
                "shortDescription": { "text": text },
            })
        })
        .collect();
    rules.push(json!({ "id": "syntax_error", "name": "syntax_error", "shortDescription": { "text": "A file with a syntax error (analysed as far as the parser recovered)." } }));
    rules.push(json!({ "id": "unanalysed_file", "name": "unanalysed_file", "shortDescription": { "text": "A file the scan could not analyse (not UTF-8, too large, minified, unreadable, a symbolic link loop)." } }));
    let mut results: Vec<Value> = Vec::new();
    for s in &report.suggestions {
        let mut locations = vec![location(&s.files[0], s.start_line, s.end_line)];
        if s.kind == SuggestionKind::Duplicate
            && let Some(frags) = s.detail.get("fragments").and_then(|f| f.as_array())
        {
            locations = frags
                .iter()
                .map(|f| {
                    location(
                        f["path"].as_str().unwrap_or(""),
                        f["start_line"].as_u64().unwrap_or(1) as u32,
                        f["end_line"].as_u64().unwrap_or(1) as u32,
                    )
                })
                .collect();
        } else {
            locations.extend(s.files[1..].iter().map(|f| location(f, 1, 1)));
        }
        results.push(json!({
            "ruleId": s.kind.as_str(),
            "level": level(s.risk),
            "message": { "text": format!("{}. {}", s.title, s.instruction) },
            "locations": locations,
            "partialFingerprints": { "graftSuggestion": format!("{}:{}:{}", s.kind.as_str(), s.files.join(","), s.title) },
            "properties": { "suggestionId": s.id, "risk": s.risk.as_str(), "priority": s.priority },
        }));
    }
    for p in &report.problems {
        let (rule, lvl) = if p.kind == "syntax_error" {
            ("syntax_error", "warning")
        } else {
            ("unanalysed_file", "note")
        };
        let line = p.line.unwrap_or(1);
        results.push(json!({
            "ruleId": rule,
            "level": lvl,
            "message": { "text": format!("{}: {}", p.kind, p.message) },
            "locations": [location(&p.path, line, line)],
        }));
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "graft",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "originalUriBaseIds": { "SRCROOT": { "uri": format!("file://{}/", report.root) } },
            "automationDetails": { "id": report.id },
            "results": results,
        }]
    })
}
