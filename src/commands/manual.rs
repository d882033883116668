//! `graft completions SHELL` and `graft man [COMMAND]`: shell completion
//! scripts (`clap_complete`) and man pages in roff (`clap_mangen`), both
//! generated from the clap definitions in `cli.rs`, so they never drift
//! from what the binary accepts.

use std::io::Write as _;

use clap::CommandFactory as _;

use crate::cli::Cli;
use crate::output::{CliError, EXIT_INTERNAL, EXIT_OK};

/// The completion script for `shell`, on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<i32, CliError> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "graft", &mut script);
    write_out(&script, "completion script")
}

/// graft(1), or graft-COMMAND(1) for one command, on stdout.
pub fn man(command: Option<&str>) -> Result<i32, CliError> {
    let mut graft = Cli::command();
    // Building names each command's page `graft-NAME` and hands the
    // global flags down to it.
    graft.build();
    let page = match command {
        None => graft,
        Some(name) => graft
            .find_subcommand(name)
            .filter(|c| c.get_name() != "help")
            .cloned()
            .ok_or_else(|| {
                let names: Vec<&str> = graft
                    .get_subcommands()
                    .map(|c| c.get_name())
                    .filter(|n| *n != "help")
                    .collect();
                CliError::usage(format!(
                    "`{name}` is not a graft command, so it has no man page; give one of {}, or nothing for graft(1)",
                    names.join(", ")
                ))
            })?,
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .source(format!("graft {}", env!("CARGO_PKG_VERSION")))
        .render(&mut roff)
        .map_err(|e| {
            CliError::new(
                EXIT_INTERNAL,
                "internal",
                format!("cannot render the man page: {e}"),
            )
        })?;
    write_out(&roff, "man page")
}

/// Write `bytes` on stdout; a reader that stopped early (`| head`) is no
/// error.
fn write_out(bytes: &[u8], what: &str) -> Result<i32, CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::new(
            EXIT_INTERNAL,
            "output",
            format!("cannot write the {what} to standard output: {e}"),
        )),
        _ => Ok(EXIT_OK),
    }
}
