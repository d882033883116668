//! The dashboard's files, built into the binary, served with a strict
//! Content-Security-Policy: scripts, styles, images and connections from
//! this origin only, no inline script, no framing.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// (name under `/dashboard/`, content type, bytes).
const FILES: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript",
        include_str!("../../dashboard/app.js"),
    ),
    (
        "api.js",
        "text/javascript",
        include_str!("../../dashboard/api.js"),
    ),
    (
        "hmac.js",
        "text/javascript",
        include_str!("../../dashboard/hmac.js"),
    ),
    (
        "pages.js",
        "text/javascript",
        include_str!("../../dashboard/pages.js"),
    ),
    (
        "upgrade.js",
        "text/javascript",
        include_str!("../../dashboard/upgrade.js"),
    ),
    (
        "charts.js",
        "text/javascript",
        include_str!("../../dashboard/charts.js"),
    ),
    (
        "scan.js",
        "text/javascript",
        include_str!("../../dashboard/scan.js"),
    ),
    (
        "diff.js",
        "text/javascript",
        include_str!("../../dashboard/diff.js"),
    ),
    (
        "highlight.js",
        "text/javascript",
        include_str!("../../dashboard/highlight.js"),
    ),
    ("style.css", "text/css", include_str!("../../dashboard/style.css")),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../../dashboard/icon.svg"),
    ),
];

const INDEX: &str = include_str!("../../dashboard/index.html");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn with_headers(content_type: &str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Same binary, same files: a new `graft` brings new ones, so cache
    // only briefly.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// `GET /`: the single page.
pub async fn index() -> Response {
    with_headers("text/html; charset=utf-8", INDEX)
}

/// `GET /dashboard/{file}`.
pub async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, ct, body)) => with_headers(&format!("{ct}; charset=utf-8"), body),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no dashboard file `{name}`"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_module_the_page_imports_is_served() {
        // A missing file would be a 404 in the browser and a dead page.
        let all: String = super::FILES
            .iter()
            .map(|(_, _, b)| *b)
            .collect::<Vec<_>>()
            .join("\n")
            + super::INDEX;
        for line in all.lines() {
            for quote in ['"', '\''] {
                for piece in line.split(quote).skip(1).step_by(2) {
                    if let Some(name) = piece
                        .strip_prefix("./")
                        .or_else(|| piece.strip_prefix("/dashboard/"))
                        && (name.ends_with(".js") || name.ends_with(".css") || name.ends_with(".svg"))
                    {
                        assert!(
                            super::FILES.iter().any(|(n, _, _)| *n == name),
                            "`{piece}` is referenced but not served"
                        );
                    }
                }
            }
        }
    }
}
