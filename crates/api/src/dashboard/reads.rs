//! Reads made for the dashboard: the ledger's figures over time for its
//! charts, and excerpts of the repo's files (duplicates side by side).
//!
//! A file excerpt is open like every read, so it is held to what a change
//! may touch and less: a relative path inside the repo (no `..`, nothing
//! under `.git/`, no symbolic link on the way, even one that stays
//! inside), never a protected path (Graft's config and state, `.env`,
//! keys, the `[target] protected` globs), a regular UTF-8 text file of at
//! most [`MAX_FILE_BYTES`], and at most [`MAX_LINES`] lines at a time.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use graft_change::RelPath;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::routes::{QueryOf, bounded};
use crate::state::Api;

pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
pub const MAX_LINES: i64 = 500;

#[derive(Debug, Deserialize)]
pub struct SeriesQuery {
    limit: Option<i64>,
}

/// `GET /v1/ledger/series`: outcomes per day and per kind, gate durations,
/// rollbacks with their causes, cost per upgrade, over the newest
/// `limit` upgrades.
pub async fn series(State(api): State<Arc<Api>>, query: QueryOf<SeriesQuery>) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let limit = bounded("limit", q.limit, 200, 1, 5000)? as usize;
    let s = api.ledger(move |l| Ok(l.series(limit)?)).await?;
    Ok(Json(s).into_response())
}

#[derive(Debug, Deserialize)]
pub struct FileQuery {
    path: Option<String>,
    start: Option<i64>,
    count: Option<i64>,
}

/// `GET /v1/files?path=&start=&count=`: up to `count` lines from line
/// `start` (1-based) of a file of the repo's working tree.
pub async fn file(State(api): State<Arc<Api>>, query: QueryOf<FileQuery>) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let raw = q.path.unwrap_or_default();
    let path = RelPath::new(&raw).map_err(|e| ApiError::bad_request("bad_path", e.to_string()))?;
    if let Some(pattern) = api.protected.is_protected(&path) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "protected",
            format!("`{path}` is protected (pattern `{pattern}`): the dashboard does not show it"),
        ));
    }
    let start = bounded("start", q.start, 1, 1, i64::from(u32::MAX))?;
    let count = bounded("count", q.count, MAX_LINES, 1, MAX_LINES)?;
    let root = api.root.clone();
    let rel = path.clone();
    let read = tokio::task::spawn_blocking(move || read_text(&root, &rel))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let total = read.lines().count() as i64;
    let lines: Vec<&str> = read
        .lines()
        .skip((start - 1) as usize)
        .take(count as usize)
        .collect();
    Ok(Json(json!({
        "path": path.as_str(),
        "start": start,
        "end": (start + lines.len() as i64 - 1).max(start - 1),
        "total_lines": total,
        "lines": lines,
    }))
    .into_response())
}

/// The text of `path` under `root`. Nothing is read through a symbolic
/// link, even one that stays inside the repo: the path checked against the
/// protected globs must be the file shown, so `notes.txt -> .env` is
/// refused like `.env`. The size is known before anything is read.
fn read_text(root: &std::path::Path, path: &RelPath) -> Result<String, ApiError> {
    // Links first: git refuses to look beyond one.
    let meta = graft_change::inspect_checked(root, path).map_err(|e| refused(path, e))?;
    refuse_ignored(root, path)?;
    let meta = meta.ok_or_else(|| no_file(path))?;
    if !meta.is_file() {
        return Err(not_a_file(path));
    }
    let too_large = |size: u64| {
        ApiError::bad_request(
            "too_large",
            format!("`{path}` is {size} bytes; the dashboard shows files up to {MAX_FILE_BYTES} bytes"),
        )
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large(meta.len()));
    }
    let file = graft_change::read_checked(root, path)
        .map_err(|e| refused(path, e))?
        .ok_or_else(|| no_file(path))?;
    // It may have grown since it was measured.
    if file.content.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(file.content.len() as u64));
    }
    String::from_utf8(file.content)
        .map_err(|_| ApiError::bad_request("not_text", format!("`{path}` is not UTF-8 text")))
}

/// Files git ignores (local settings, build output, what a developer keeps
/// beside the code) are not the repository's: the dashboard does not show
/// them, whatever their names. A file the repository tracks is shown even
/// if an ignore pattern matches it.
fn refuse_ignored(root: &std::path::Path, path: &RelPath) -> Result<(), ApiError> {
    let out = graft_pipeline::git::Git::new(root)
        .output(&["check-ignore", "--quiet", "--", path.as_str()])
        .map_err(|e| ApiError::internal(e.to_string()))?;
    match out.status.code() {
        Some(1) => Ok(()),
        Some(0) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "ignored",
            format!(
                "`{path}` is ignored by git (.gitignore, .git/info/exclude or core.excludesFile): the dashboard shows only the repository's own files"
            ),
        )),
        _ => Err(ApiError::internal(format!(
            "cannot ask git whether `{path}` is ignored: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

fn no_file(path: &RelPath) -> ApiError {
    ApiError::not_found("not_found", format!("no file `{path}` in the repository"))
}

fn not_a_file(path: &RelPath) -> ApiError {
    ApiError::not_found("not_a_file", format!("`{path}` is not a regular file"))
}

/// Why the path walk refused `path`, in the dashboard's words.
fn refused(path: &RelPath, e: graft_change::ChangeError) -> ApiError {
    use graft_change::ChangeError as E;
    match &e {
        E::SymlinkEscape { link, .. } => ApiError::new(
            StatusCode::FORBIDDEN,
            e.code(),
            format!(
                "`{path}` goes through the symbolic link `{link}`; the dashboard shows a file only at its own path, never through a link"
            ),
        ),
        E::NotADirectory { .. } => no_file(path),
        E::IsADirectory { .. } => not_a_file(path),
        other => ApiError::internal(format!("cannot read `{path}`: {other}")),
    }
}
