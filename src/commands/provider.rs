//! The provider side of `graft upgrade`: which generator makes the change
//! (an instruction, a suggestion, the autofixers), and how its rounds and
//! their cost are shown; also the cost section of `graft ledger`.

use console::style;
use graft_pipeline::{Generator, UpgradeReport, Workspace};

use crate::cli::UpgradeArgs;
use crate::output::{CliError, EXIT_NOT_FOUND, EXIT_PRECONDITION, EXIT_PROVIDER, EXIT_USAGE};

/// What asks for a generated change: from the command line, or from a
/// request that reached `graft run`.
pub struct Spec {
    pub autofix: bool,
    pub suggestion: Option<String>,
    pub instruction: Option<String>,
    pub provider: Option<String>,
    /// A previous attempt's failure, told to the provider (a retry).
    pub previous_failure: Option<String>,
}

impl Spec {
    pub fn from_args(args: &UpgradeArgs) -> Spec {
        Spec {
            autofix: args.autofix,
            suggestion: args.suggestion.clone(),
            instruction: args.instruction.clone(),
            provider: args.provider.clone(),
            previous_failure: None,
        }
    }

    pub fn from_submission(s: &graft_orchestrate::Submission) -> Spec {
        use graft_ledger::RequestKind;
        Spec {
            autofix: s.kind == RequestKind::Autofix,
            suggestion: s.suggestion.clone(),
            instruction: (s.kind == RequestKind::Instruction)
                .then(|| String::from_utf8_lossy(&s.body).into_owned()),
            provider: s.provider.clone(),
            previous_failure: s.previous_failure.clone(),
        }
    }
}

/// Providers for queued requests, as `graft upgrade` builds them.
pub struct CliGenerators;

impl graft_orchestrate::Generators for CliGenerators {
    fn generator(
        &self,
        ws: &Workspace,
        s: &graft_orchestrate::Submission,
    ) -> Result<Box<dyn Generator>, graft_pipeline::Failure> {
        generator(ws, &Spec::from_submission(s)).map_err(|e| {
            // The class carries the exit code a remote CLI gives (9 for
            // the provider, 5 for the repo not being ready).
            use graft_pipeline::FailureClass as C;
            let class = match e.code {
                crate::output::EXIT_PRECONDITION => C::Precondition,
                _ => C::Provider,
            };
            graft_pipeline::Failure::new(class, e.reason, e.message)
        })
    }
}

/// No suggestion `id`: say so, and whether its scan's suggestions were
/// dropped as the history limit says.
fn suggestion_not_found(ws: &Workspace, id: &str) -> CliError {
    let scan = graft_scan::scan_of_suggestion(id).and_then(|scan| ws.ledger.scan(&scan).ok().flatten());
    let message = match scan.and_then(|s| Some((s.id, s.suggestions_pruned_at?))) {
        Some((scan, at)) => format!(
            "suggestion `{id}` is gone: scan {scan}'s suggestions were dropped at {at}, since only the newest {} scans keep theirs (`[scan] suggestion_history`); run `graft scan` and pick one from the new scan",
            ws.config.scan.suggestion_history.get()
        ),
        None => format!("no suggestion `{id}` in the ledger (`graft scan` lists suggestions)"),
    };
    CliError::new(EXIT_NOT_FOUND, "not_found", message)
}

/// The generator for an instruction, a suggestion or `--autofix`.
pub fn generator(ws: &Workspace, spec: &Spec) -> Result<Box<dyn Generator>, CliError> {
    if spec.autofix {
        return Ok(Box::new(graft_provider::autofix(&ws.config)));
    }
    let (instruction, files) = match &spec.suggestion {
        Some(id) => {
            let s = match ws.ledger.suggestion(id)? {
                Some(s) => s,
                None => return Err(suggestion_not_found(ws, id)),
            };
            let text = format!(
                "{}\n\n(From Graft's code analysis: suggestion {} of scan {}, {}: {}; risk {}. Files: {}.)",
                s.instruction.trim(),
                s.id,
                s.scan_id,
                s.kind,
                s.title,
                s.risk,
                if s.files.is_empty() {
                    "not named".to_string()
                } else {
                    s.files.join(", ")
                }
            );
            (text, s.files)
        }
        None => (spec.instruction.clone().unwrap_or_default(), Vec::new()),
    };
    let instruction = match &spec.previous_failure {
        Some(f) => format!(
            "{instruction}\n\nA previous attempt at this failed; do not repeat what made it fail:\n{f}"
        ),
        None => instruction,
    };
    graft_provider::for_instruction(
        &ws.config,
        spec.provider.as_deref(),
        &instruction,
        files,
        &|var| std::env::var(var).ok(),
    )
    .map_err(|e| {
        let code = match e.code {
            "missing_api_key" => EXIT_PROVIDER,
            "unknown_provider" => EXIT_USAGE,
            _ => EXIT_PRECONDITION,
        };
        CliError::new(code, e.code, e.message)
    })
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn dollars(cost: f64, known: bool) -> String {
    if known {
        format!("${cost:.4}")
    } else {
        "cost unknown (no price for this model)".into()
    }
}

/// One line per round: prompt and reply size, tokens, cost, outcome.
pub fn print_rounds(r: &UpgradeReport) {
    if r.rounds.is_empty() {
        return;
    }
    for g in &r.rounds {
        let who = match &g.model {
            Some(m) => format!("{} ({m})", g.provider),
            None => g.provider.clone(),
        };
        let mut line = format!("  round {}  {who}", g.round);
        if g.prompt_chars > 0 {
            line.push_str(&format!(
                "  prompt {} chars (~{} tokens)  reply {} chars  tokens in {} / out {}  {}",
                thousands(g.prompt_chars),
                thousands(g.prompt_chars.div_ceil(4)),
                thousands(g.reply_chars),
                thousands(g.input_tokens),
                thousands(g.output_tokens),
                dollars(g.cost_usd, g.cost_known)
            ));
        }
        let outcome = match g.outcome.as_str() {
            "passed" => style(g.outcome.clone()).green(),
            _ => style(format!("{} ({})", g.outcome, g.reason.as_deref().unwrap_or(""))).red(),
        };
        println!("{line}  → {outcome}");
    }
    let (input, output, cost, known) = r.rounds.iter().fold((0, 0, 0.0, true), |(i, o, c, k), g| {
        (
            i + g.input_tokens,
            o + g.output_tokens,
            c + g.cost_usd,
            k && g.cost_known,
        )
    });
    if input + output > 0 {
        println!(
            "  generation: {} round(s), {} tokens in, {} out, {}",
            r.rounds.len(),
            thousands(input),
            thousands(output),
            dollars(cost, known)
        );
    }
}

/// The cost section of `graft ledger`.
pub fn print_generation(ws: &Workspace, recent: usize) -> Result<(), CliError> {
    let t = ws.ledger.usage_totals(recent)?;
    if t.upgrades == 0 {
        return Ok(());
    }
    println!("{}", style("generation cost").bold());
    let unpriced = if t.unpriced_upgrades > 0 {
        format!(
            " ({} upgrade(s) used a model without a known price, counted as $0)",
            t.unpriced_upgrades
        )
    } else {
        String::new()
    };
    println!(
        "  {} upgrade(s), {} round(s), {} tokens in, {} out, ${:.4} in total{unpriced}",
        t.upgrades,
        t.rounds,
        thousands(t.input_tokens),
        thousands(t.output_tokens),
        t.cost_usd
    );
    for u in &t.recent {
        println!(
            "  {}  {:<11} {:<28} {:>2} round(s) {:>9} tokens  {}",
            u.id,
            u.state,
            format!(
                "{} {}",
                u.provider.as_deref().unwrap_or("?"),
                u.model.as_deref().unwrap_or("")
            ),
            u.rounds,
            thousands(u.input_tokens + u.output_tokens),
            if u.cost_known {
                format!("${:.4}", u.cost_usd)
            } else {
                "unpriced".into()
            }
        );
    }
    Ok(())
}
