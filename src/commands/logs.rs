//! `graft logs [--follow]`: the output of the live release.
//!
//! Read from the log files under `.graft/logs/` (one per release process,
//! rotated by size), so it works whether or not `graft run` is up.
//! `--follow` keeps reading, and moves on to the next release's log when a
//! switch happens.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use console::style;

use super::Ctx;
use crate::output::{CliError, EXIT_NOT_FOUND, EXIT_OK};

pub fn run(ctx: &Ctx, follow: bool, lines: usize) -> Result<i32, CliError> {
    let ws = ctx.workspace()?;
    let current = |ws: &graft_pipeline::Workspace| -> Option<(i64, PathBuf)> {
        let live = ws.ledger.live().ok()??;
        let inst = ws.ledger.instance(live.instance_id?).ok()??;
        Some((inst.id, PathBuf::from(inst.log_path?)))
    };
    let Some((mut id, mut path)) = current(&ws) else {
        return Err(CliError::new(
            EXIT_NOT_FOUND,
            "no_logs",
            "no release has run yet: start the target with `graft run`",
        ));
    };
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let mut out = std::io::stdout().lock();
    for l in &all[all.len().saturating_sub(lines)..] {
        let _ = writeln!(out, "{l}");
    }
    let _ = out.flush();
    if !follow {
        return Ok(EXIT_OK);
    }
    let mut offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if let Ok(mut f) = std::fs::File::open(&path) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len < offset {
                // Rotated: the file starts again.
                offset = 0;
            }
            if len > offset && f.seek(SeekFrom::Start(offset)).is_ok() {
                let mut buf = Vec::new();
                if f.read_to_end(&mut buf).is_ok() {
                    offset += buf.len() as u64;
                    let _ = out.write_all(&buf);
                    let _ = out.flush();
                }
            }
        }
        if let Some((next_id, next_path)) = current(&ws)
            && next_id != id
        {
            let _ = writeln!(
                out,
                "{}",
                style(format!("── switched to release process {next_id} ──")).dim()
            );
            (id, path, offset) = (next_id, next_path, 0);
        }
    }
}
