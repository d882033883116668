//! The command line, as clap sees it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Graft lets a running program change its own code safely: every change
/// passes gates in an isolated worktree, lands on the branch with a tag,
/// and can be rolled back; every step is recorded in a SQLite ledger.
#[derive(Debug, Parser)]
#[command(name = "graft", version, about, long_about = None)]
#[command(after_help = EXIT_CODES)]
pub struct Cli {
    /// Work on the repo containing DIR (default: the current directory).
    #[arg(short = 'C', long = "repo", global = true, value_name = "DIR")]
    pub repo: Option<PathBuf>,

    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  Graft itself failed (see the message)
  2  usage error (bad arguments, unreadable input file)
  3  the change was refused (malformed, outside policy); nothing changed
  4  a required gate failed; nothing landed
  5  the repo was not ready (dirty tree, no graft.toml, branch moved)
  6  no such upgrade
  7  deployed, then rolled back
  8  cancelled
  9  the provider failed or is not set up (missing API key, unreachable, over budget)
 10  graft scan --fail-on: a finding at or above that risk exists
 11  queued, waiting for approval (`graft approve ID`)";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a graft.toml with gates for the ecosystem found here.
    Init(InitArgs),
    /// Run a change through the pipeline: stage, gate, land.
    Upgrade(UpgradeArgs),
    /// Show what is running, pending and recently done.
    Status(StatusArgs),
    /// Show the whole of an upgrade: request, risk, every gate's output,
    /// steps, deploy, rollbacks.
    Show(RemoteIdArgs),
    /// Show the files and the diff of an upgrade.
    Diff(IdArgs),
    /// Undo an upgrade: a revert commit, data files restored.
    Rollback(RemoteIdArgs),
    /// Stop an upgrade that has not landed.
    Cancel(RemoteIdArgs),
    /// Totals, success rate, failures by cause, recent history.
    Ledger(LedgerArgs),
    /// Approve an upgrade that waits for approval; it runs (or is queued).
    Approve(ApproveArgs),
    /// Reject an upgrade that waits for approval.
    Reject(RejectArgs),
    /// The queue: what waits to run, and what waits for approval.
    Queue(QueueArgs),
    /// Schedules: when Graft scans or autofixes by itself.
    Schedule(ScheduleArgs),
    /// Supervise the target (`[run]` in graft.toml): serve it through
    /// every upgrade, roll back on its own.
    Run,
    /// Show the output of the live release (`--follow` to keep reading).
    Logs(LogsArgs),
    /// Run Graft on a built-in example target and show what it does.
    Demo(DemoArgs),
    /// Serve the Model Context Protocol on stdin/stdout, so that coding
    /// agents (Claude Code, Cursor, ...) can drive Graft on this repo.
    Mcp,
    /// Analyse the code: complexity, god classes and modules, import
    /// cycles, coupling, duplicates; store the suggestions in the ledger.
    Scan(ScanArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish or
    /// powershell) on stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout: graft's, or one command's.
    Man(ManArgs),
}

/// `--url`, for the commands a daemon's HTTP API can answer.
#[derive(Debug, Args)]
pub struct UrlArg {
    /// Talk to the `graft run` whose HTTP API is at URL (signing each
    /// request with $GRAFT_API_SECRET) instead of the repo's own.
    #[arg(long, value_name = "URL", env = "GRAFT_URL")]
    pub url: Option<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// A command's own page (`graft man upgrade` is graft-upgrade(1)).
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Limit the scan to this file or folder.
    pub path: Option<PathBuf>,

    /// Print SARIF 2.1.0 on stdout (for code-scanning tools).
    #[arg(long, conflicts_with = "json")]
    pub sarif: bool,

    /// Exit with code 10 when a finding at or above this risk exists
    /// (low, medium or high).
    #[arg(long, value_name = "RISK")]
    pub fail_on: Option<String>,

    /// Neither read nor write the per-file cache under .graft/.
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing as the release writes, following switches.
    #[arg(short, long)]
    pub follow: bool,
    /// How many lines to show from the end.
    #[arg(short = 'n', long, default_value_t = 50)]
    pub lines: usize,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing graft.toml.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true))]
pub struct UpgradeArgs {
    /// What to change, in plain language, for the configured LLM or
    /// command provider.
    #[arg(value_name = "INSTRUCTION", group = "source")]
    pub instruction: Option<String>,

    /// Run the ecosystem's fixers (cargo clippy --fix and fmt, ruff,
    /// eslint/prettier, gofmt) and gate what they change.
    #[arg(long, group = "source")]
    pub autofix: bool,

    /// Turn an analyzer suggestion (an id from `graft scan`) into an
    /// instruction for the provider.
    #[arg(long, value_name = "ID", group = "source")]
    pub suggestion: Option<String>,

    /// The provider to use (a name under [provider.llm] or
    /// [provider.command] in graft.toml; default: `[provider] default`).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["patch", "edits", "autofix"])]
    pub provider: Option<String>,

    /// A unified diff (git style); `-` reads standard input.
    #[arg(long, value_name = "FILE", group = "source")]
    pub patch: Option<String>,

    /// A JSON list of edits (create / modify / replace / delete / rename);
    /// `-` reads standard input.
    #[arg(long, value_name = "FILE", group = "source")]
    pub edits: Option<String>,

    /// Stage and run the gates, print the diff and the results, change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Only queue it (`graft queue run`, or a running `graft run`, runs
    /// the queue by priority); do not run it now.
    #[arg(long, conflicts_with = "dry_run")]
    pub queue: bool,

    /// A title for the ledger (default: the patch's subject, or its name).
    #[arg(long)]
    pub title: Option<String>,

    /// Allow the change to touch protected paths (graft.toml, secrets, ...).
    #[arg(long)]
    pub approve_protected: bool,

    /// Priority from 1 (lowest) to 10.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i64).range(1..=10))]
    pub priority: i64,

    #[command(flatten)]
    pub remote: UrlArg,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// An upgrade id, such as upg_20261121_103001_a1b2c3.
    pub id: String,
}

/// An upgrade id, for a command that can also ask a daemon's HTTP API.
#[derive(Debug, Args)]
pub struct RemoteIdArgs {
    /// An upgrade id, such as upg_20261121_103001_a1b2c3.
    pub id: String,

    #[command(flatten)]
    pub remote: UrlArg,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// How many recent upgrades to list.
    #[arg(long, default_value_t = 10)]
    pub recent: usize,

    #[command(flatten)]
    pub remote: UrlArg,
}

#[derive(Debug, Args)]
pub struct LedgerArgs {
    /// How many recent upgrades to list.
    #[arg(long, default_value_t = 10)]
    pub recent: usize,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's temporary repo and print where it is.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// An upgrade id, such as upg_20261121_103001_a1b2c3.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    pub id: String,
    /// Why, for the ledger.
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(subcommand)]
    pub action: Option<QueueAction>,
}

#[derive(Debug, Subcommand)]
pub enum QueueAction {
    /// Run queued upgrades by priority, then age, until the queue is empty.
    Run,
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub action: Option<ScheduleAction>,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleAction {
    /// Expire approvals that waited too long and run the schedules that are
    /// due (`graft run` does this by itself; cron can call it otherwise).
    Tick {
        /// Act as if it were this time (RFC 3339), for tests and catch-up.
        #[arg(long)]
        now: Option<String>,
    },
}
