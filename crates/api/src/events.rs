//! `GET /events`: server-sent events, one for every pipeline event (state
//! changes, steps, gate progress and output, messages) of every operation
//! the daemon runs, in the order they happened.
//!
//! Each SSE event is named by the pipeline event's `type` and carries it as
//! JSON; `?upgrade=ID` keeps one upgrade's. The first event, `ready`, says
//! the subscription is in place (what happens after it is not missed). A
//! listener too slow to keep up gets a `lagged` event saying how many it
//! missed, rather than holding the daemon back.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiError;
use crate::routes::QueryOf;
use crate::state::Api;

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    upgrade: Option<String>,
}

pub async fn stream(State(api): State<Arc<Api>>, query: QueryOf<EventsQuery>) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let rx = api.ops.events.subscribe();
    let ready = Sse::default()
        .event("ready")
        .json_data(serde_json::json!({ "upgrade": q.upgrade }))
        .unwrap_or_default();
    let first = futures_util::stream::once(async move { Ok::<_, Infallible>(ready) });
    let rest = futures_util::stream::unfold((rx, q.upgrade, 0u64), |(mut rx, only, mut seq)| async move {
        loop {
            match rx.recv().await {
                Ok(event) => {
                    if only.as_deref().is_some_and(|id| id != event.upgrade_id()) {
                        continue;
                    }
                    seq += 1;
                    let value = serde_json::to_value(&event).unwrap_or_default();
                    let name = value["type"].as_str().unwrap_or("event").to_string();
                    let sse = Sse::default()
                        .event(name)
                        .id(seq.to_string())
                        .json_data(&value)
                        .unwrap_or_default();
                    return Some((Ok::<_, Infallible>(sse), (rx, only, seq)));
                }
                Err(RecvError::Lagged(n)) => {
                    let sse = Sse::default()
                        .event("lagged")
                        .json_data(serde_json::json!({ "missed": n }))
                        .unwrap_or_default();
                    return Some((Ok(sse), (rx, only, seq)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    use futures_util::StreamExt as _;
    Ok(axum::response::Sse::new(first.chain(rest))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
