//! The command provider: an external coding agent (`claude -p`, `aider`,
//! any script) run in the staging worktree. Whatever it changes there is
//! the change; the pipeline reads it back, checks every path like a
//! patch's, and runs the same gates. Its own exit code only says whether
//! it ran: what it claims about tests is not read.
//!
//! The command runs in its own process group with a timeout (the gates'
//! runner, `graft_pipeline::process`), and its group id is journaled, so a
//! kill of Graft leaves no agent running.

use graft_config::CommandConfig;
use graft_pipeline::process::{self, CommandSpec};
use graft_pipeline::{
    Failure, FailureClass, GateFeedback, GenerateContext, Generated, Generator, Output, Usage,
};
use serde_json::json;

pub struct CommandGenerator {
    name: String,
    config: CommandConfig,
    instruction: String,
    max_rounds: u32,
}

impl CommandGenerator {
    pub fn new(
        name: &str,
        config: &CommandConfig,
        instruction: &str,
        default_rounds: u32,
    ) -> CommandGenerator {
        CommandGenerator {
            name: name.to_string(),
            config: config.clone(),
            instruction: instruction.to_string(),
            max_rounds: config.max_rounds.unwrap_or(default_rounds),
        }
    }
}

/// `template` with `{instruction}` replaced by `text`, quoted for `sh`.
pub fn render(template: &str, text: &str) -> String {
    template.replace("{instruction}", &shell_words::quote(text))
}

impl Generator for CommandGenerator {
    fn name(&self) -> &str {
        &self.name
    }

    fn title(&self) -> String {
        let first = self.instruction.lines().next().unwrap_or("").trim();
        first.chars().take(100).collect()
    }

    fn describe(&self) -> serde_json::Value {
        json!({ "provider": self.name, "command": self.config.command, "instruction": self.instruction })
    }

    fn max_rounds(&self) -> u32 {
        self.max_rounds
    }

    fn generate(
        &mut self,
        ctx: &GenerateContext<'_>,
        feedback: Option<&GateFeedback>,
    ) -> Result<Generated, Failure> {
        // Each round starts from the base, so a repair round asks for the
        // whole change again, told what went wrong.
        let text = match feedback {
            None => self.instruction.clone(),
            Some(fb) => format!(
                "{}\n\nA previous attempt did not pass Graft's checks:\n{}\nMake the change again so that it passes.",
                self.instruction,
                fb.text()
            ),
        };
        let command = render(&self.config.command, &text);
        (ctx.message)(&format!(
            "running provider `{}` in the staging worktree",
            self.name
        ));
        let spec = CommandSpec {
            command: &command,
            cwd: ctx.staging,
            env: vec![
                ("GRAFT_INSTRUCTION".into(), text.clone()),
                ("GRAFT_UPGRADE_ID".into(), ctx.id.to_string()),
                ("GRAFT_ROUND".into(), ctx.round.to_string()),
                ("GRAFT_STAGING".into(), "1".into()),
            ],
            timeout: self.config.timeout.0,
        };
        let mut last_poll = std::time::Instant::now();
        let result = process::run(
            &spec,
            &mut |pgid| (ctx.process)(Some(pgid)),
            &mut |_| {},
            &mut || {
                if last_poll.elapsed() < std::time::Duration::from_millis(500) {
                    return false;
                }
                last_poll = std::time::Instant::now();
                (ctx.cancelled)()
            },
        );
        let _ = (ctx.process)(None);
        let r = result.map_err(|e| {
            Failure::new(
                FailureClass::Provider,
                "command_failed",
                format!(
                    "cannot start provider `{}` (`{}`): {e}",
                    self.name, self.config.command
                ),
            )
        })?;
        let last_lines = |tail: &str| {
            let lines: Vec<&str> = tail.lines().collect();
            lines[lines.len().saturating_sub(12)..].join("\n  ")
        };
        if r.cancelled {
            return Err(Failure::new(
                FailureClass::Cancelled,
                "cancelled",
                "cancelled on request (`graft cancel`); nothing was landed",
            ));
        }
        if r.timed_out {
            return Err(Failure::new(
                FailureClass::Provider,
                "command_timeout",
                format!(
                    "provider `{}` ran past its timeout of {:?} and was killed with its whole process group; raise `timeout` in [provider.command.{}]. Its last output:\n  {}",
                    self.name,
                    self.config.timeout.0,
                    self.name,
                    last_lines(&r.tail)
                ),
            ));
        }
        if !r.success() {
            let how = match (r.exit_code, r.signal) {
                (Some(c), _) => format!("exited with {c}"),
                (None, Some(s)) => format!("was killed by signal {s}"),
                _ => "failed".into(),
            };
            return Err(Failure::new(
                FailureClass::Provider,
                "command_failed",
                format!(
                    "provider `{}` {how}; its last output:\n  {}",
                    self.name,
                    last_lines(&r.tail)
                ),
            ));
        }
        Ok(Generated {
            output: Output::InPlace,
            usage: Usage::default(),
            edits: 0,
            log: r.tail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_is_quoted_for_the_shell() {
        assert_eq!(
            render(
                "aider --yes --message {instruction}",
                "add a /version endpoint; rm -rf / $(id) `x` 'q'"
            ),
            "aider --yes --message 'add a /version endpoint; rm -rf / $(id) `x` '\\''q'\\'''"
        );
    }
}
