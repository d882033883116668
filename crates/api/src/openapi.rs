//! `GET /openapi.json`: the API described in OpenAPI 3.1.
//!
//! The document is written by hand (`openapi.json` beside this file)
//! rather than derived from the handlers: it is the contract, reviewed as
//! one file, without a proc-macro dependency tree. The integration tests
//! hold it to the server: every operation it lists is routed, and
//! schemathesis sends generated requests to each and checks the answers.

use axum::response::{IntoResponse, Response};

pub const DOCUMENT: &str = include_str!("openapi.json");

pub async fn serve() -> Response {
    ([("content-type", "application/json")], DOCUMENT).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_openapi_3_1_json_with_every_route() {
        let v: serde_json::Value = serde_json::from_str(super::DOCUMENT).expect("valid JSON");
        assert!(v["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = v["paths"].as_object().unwrap();
        for (path, method) in crate::routes::ROUTES {
            assert!(
                paths.get(*path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} is routed but not documented"
            );
        }
        let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(
            documented,
            crate::routes::ROUTES.len(),
            "documented operations that are not routed"
        );
    }
}
