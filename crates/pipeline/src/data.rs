//! Declared data files (`[target] data`): copied before an upgrade lands,
//! put back when it is rolled back (design invariant 5).
//!
//! A SQLite database is copied with SQLite's online backup API rather than
//! byte by byte: the live program may be writing to it, and a plain copy
//! taken mid-transaction (or without its `-wal` file) is not a database one
//! can restore. Restoring goes through the same API, so a program holding
//! the database open sees a consistent switch. Other files are copied to a
//! temp file and renamed into place, so a reader never sees half a file.

use std::path::{Path, PathBuf};

use graft_ledger::{DataBackup, UpgradeId};
use sha2::{Digest, Sha256};

use crate::error::PipelineError;
use crate::workspace::Workspace;

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

fn is_sqlite(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == SQLITE_MAGIC
}

/// Copy every declared data file to `.graft/backups/<id>/`.
pub fn backup(ws: &Workspace, id: &UpgradeId) -> Result<Vec<DataBackup>, PipelineError> {
    let dir = ws.backups_dir(id);
    let mut out = Vec::new();
    for data in &ws.config.target.data {
        let rel = data.as_str();
        let src = ws.root.join(rel);
        if !src.exists() {
            out.push(DataBackup {
                path: rel.to_string(),
                existed: false,
                sha256: None,
                backup_path: None,
            });
            continue;
        }
        let dst = dir.join(rel);
        copy(&src, &dst)?;
        out.push(DataBackup {
            path: rel.to_string(),
            existed: true,
            sha256: Some(sha256_file(&dst)?),
            backup_path: Some(dst.to_string_lossy().into_owned()),
        });
    }
    Ok(out)
}

/// Put data files back as they were in `backups`. Returns how many files
/// were restored or removed.
pub fn restore(ws: &Workspace, backups: &[DataBackup]) -> Result<usize, PipelineError> {
    let mut n = 0;
    for b in backups {
        let live = ws.root.join(&b.path);
        match (&b.existed, &b.backup_path) {
            (true, Some(saved)) => {
                let saved = PathBuf::from(saved);
                if !saved.exists() {
                    return Err(PipelineError::Environment(format!(
                        "the backup of data file `{}` is gone ({}); it cannot be restored",
                        b.path,
                        saved.display()
                    )));
                }
                copy(&saved, &live)?;
                n += 1;
            }
            _ => {
                // It did not exist before the upgrade: it should not now.
                if live.exists() {
                    std::fs::remove_file(&live)
                        .map_err(|e| PipelineError::io(format!("cannot remove {}", live.display()), e))?;
                    n += 1;
                }
            }
        }
    }
    Ok(n)
}

/// Copy `src` to `dst` consistently (see the module comment).
fn copy(src: &Path, dst: &Path) -> Result<(), PipelineError> {
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| PipelineError::io(format!("cannot create {}", parent.display()), e))?;
    }
    if is_sqlite(src) {
        let sqlite_err = |e: rusqlite::Error| {
            PipelineError::io(
                format!(
                    "cannot copy SQLite database {} to {}",
                    src.display(),
                    dst.display()
                ),
                std::io::Error::other(e.to_string()),
            )
        };
        if dst.exists() && is_sqlite(dst) {
            // Restore into the existing database so open handles stay valid.
            let mut conn = rusqlite::Connection::open(dst).map_err(sqlite_err)?;
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(sqlite_err)?;
            return conn
                .restore(rusqlite::MAIN_DB, src, None::<fn(rusqlite::backup::Progress)>)
                .map_err(sqlite_err);
        }
        let conn = rusqlite::Connection::open(src).map_err(sqlite_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sqlite_err)?;
        let tmp = dst.with_extension("graft-tmp");
        let _ = std::fs::remove_file(&tmp);
        conn.backup(rusqlite::MAIN_DB, &tmp, None::<fn(rusqlite::backup::Progress)>)
            .map_err(sqlite_err)?;
        return std::fs::rename(&tmp, dst)
            .map_err(|e| PipelineError::io(format!("cannot write {}", dst.display()), e));
    }
    let tmp = dst.with_extension("graft-tmp");
    std::fs::copy(src, &tmp)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|_| std::fs::rename(&tmp, dst))
        .map_err(|e| PipelineError::io(format!("cannot copy {} to {}", src.display(), dst.display()), e))
}

pub fn sha256_file(path: &Path) -> Result<String, PipelineError> {
    let bytes =
        std::fs::read(path).map_err(|e| PipelineError::io(format!("cannot read {}", path.display()), e))?;
    Ok(sha256_hex(&bytes))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
