//! `GET /metrics`: Prometheus metrics in the OpenMetrics text format.
//!
//! What the ledger knows is read from it at each scrape (upgrades by
//! state, gate durations, deploys, rollbacks, notifications), so the
//! figures survive restarts and include upgrades run by the CLI; the
//! request counts and the live release are the daemon's own. Encoding is
//! `prometheus-client`'s, so names, escaping and the format are right by
//! construction.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::error::ApiError;
use crate::state::Api;

type Labels = Vec<(String, String)>;

/// Gate duration buckets, in milliseconds (the histogram is in seconds).
const GATE_BUCKETS_MS: [u64; 11] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 1_800_000,
];

/// The daemon's own counters.
#[derive(Default)]
pub struct Metrics {
    requests: Family<Labels, Counter>,
    accepted: Family<Labels, Counter>,
}

impl Metrics {
    pub fn request(&self, method: &str, route: &str, status: u16) {
        self.requests
            .get_or_create(&vec![
                ("method".into(), method.to_string()),
                ("route".into(), route.to_string()),
                ("status".into(), status.to_string()),
            ])
            .inc();
    }

    pub fn accepted(&self, kind: &str) {
        self.accepted
            .get_or_create(&vec![("kind".into(), kind.to_string())])
            .inc();
    }
}

/// Counts each request by method, route template and status.
pub async fn count(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    api.metrics.request(&method, &route, resp.status().as_u16());
    resp
}

/// What the ledger and the supervisor say, read once per scrape.
#[derive(Debug)]
struct Figures {
    upgrades: Vec<(String, bool, i64)>,
    gates: Vec<graft_ledger::GateDurations>,
    switches: Vec<(String, i64)>,
    rollbacks: Vec<(String, i64)>,
    outbox: graft_ledger::OutboxCounts,
    live_commit: Option<String>,
    ready: bool,
    in_window: bool,
    uptime_ms: Option<u64>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Collector for Figures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut m = encoder.encode_descriptor(
            "graft_upgrades",
            "Upgrades in the ledger, by state (dry runs apart)",
            None,
            MetricType::Gauge,
        )?;
        for (state, dry, n) in &self.upgrades {
            let l = labels(&[("state", state), ("dry_run", if *dry { "true" } else { "false" })]);
            ConstGauge::new(*n).encode(m.encode_family(&l)?)?;
        }
        let mut m = encoder.encode_descriptor(
            "graft_gate_duration_seconds",
            "How long gate runs took, by gate",
            None,
            MetricType::Histogram,
        )?;
        for g in &self.gates {
            // prometheus-client wants per-bucket counts and adds them up.
            let mut buckets = Vec::with_capacity(GATE_BUCKETS_MS.len() + 1);
            let mut below = 0;
            for (bound, cumulative) in GATE_BUCKETS_MS.iter().zip(&g.buckets) {
                buckets.push((*bound as f64 / 1000.0, cumulative - below));
                below = *cumulative;
            }
            buckets.push((f64::MAX, g.count - below));
            let l = labels(&[("gate", &g.gate)]);
            m.encode_family(&l)?.encode_histogram::<NoLabelSet>(
                g.sum_ms as f64 / 1000.0,
                g.count,
                &buckets,
                None,
            )?;
        }
        let deploys = self
            .switches
            .iter()
            .find(|(c, _)| c == "deploy")
            .map_or(0, |(_, n)| *n);
        let c = ConstCounter::new(deploys as u64);
        c.encode(encoder.encode_descriptor(
            "graft_deploys",
            "Releases switched to by a deploy",
            None,
            c.metric_type(),
        )?)?;
        let mut m = encoder.encode_descriptor(
            "graft_release_switches",
            "Changes of the live release, by cause (start, deploy, rollback, restart, no_restart)",
            None,
            MetricType::Counter,
        )?;
        for (cause, n) in &self.switches {
            ConstCounter::new(*n as u64).encode(m.encode_family(&labels(&[("cause", cause)]))?)?;
        }
        let mut m = encoder.encode_descriptor(
            "graft_rollbacks",
            "Rollbacks, by cause",
            None,
            MetricType::Counter,
        )?;
        for (cause, n) in &self.rollbacks {
            ConstCounter::new(*n as u64).encode(m.encode_family(&labels(&[("cause", cause)]))?)?;
        }
        let mut m = encoder.encode_descriptor(
            "graft_live_release",
            "The commit the live release runs",
            None,
            MetricType::Info,
        )?;
        if let Some(c) = &self.live_commit {
            m.encode_info(&labels(&[("commit", c)]))?;
        }
        for (name, help, v) in [
            (
                "graft_live_release_ready",
                "1 when the live release is running",
                self.ready as i64,
            ),
            (
                "graft_watch_window",
                "1 while a new release is in its watch window",
                self.in_window as i64,
            ),
        ] {
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        if let Some(ms) = self.uptime_ms {
            let g = ConstGauge::new(ms as f64 / 1000.0);
            g.encode(encoder.encode_descriptor(
                "graft_live_release_uptime_seconds",
                "Since the live release started",
                None,
                g.metric_type(),
            )?)?;
        }
        let mut m = encoder.encode_descriptor(
            "graft_webhook_notifications",
            "Webhook notifications in the outbox, by state",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in [
            ("pending", self.outbox.pending),
            ("delivered", self.outbox.delivered),
            ("dropped", self.outbox.dropped),
        ] {
            ConstGauge::new(n).encode(m.encode_family(&labels(&[("state", state)]))?)?;
        }
        Ok(())
    }
}

pub async fn serve(State(api): State<Arc<Api>>) -> Result<Response, ApiError> {
    let (upgrades, gates, switches, rollbacks, outbox) = api
        .ledger(|l| {
            Ok((
                l.upgrade_counts()?,
                l.gate_durations(&GATE_BUCKETS_MS)?,
                l.live_changes()?,
                l.rollback_counts()?,
                l.outbox_counts()?,
            ))
        })
        .await?;
    let s = api.ops.sup.status();
    let figures = Figures {
        upgrades,
        gates,
        switches,
        rollbacks,
        outbox,
        live_commit: s.live_commit,
        ready: s.ready,
        in_window: s.in_watch_window,
        uptime_ms: s.uptime_ms,
    };
    let mut registry = Registry::default();
    registry.register(
        "graft_http_requests",
        "HTTP requests to the API, by method, route and status",
        api.metrics.requests.clone(),
    );
    registry.register(
        "graft_upgrades_accepted",
        "Upgrades accepted over HTTP since graft run started, by kind",
        api.metrics.accepted.clone(),
    );
    registry.register_collector(Box::new(figures));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .map_err(|e| ApiError::internal(format!("cannot encode the metrics: {e}")))?;
    Ok((
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
