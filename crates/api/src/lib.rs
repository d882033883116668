//! The control plane `graft run` serves beside the target: an HTTP API
//! (described by an OpenAPI document) whose changing requests are signed,
//! server-sent events of every pipeline event, Prometheus metrics, and
//! webhooks told of each upgrade's state changes.
//!
//! Module map: [`routes`] are the endpoints; [`auth`] guards them
//! ([`sign`] is the signature, [`secret`] finds the shared secret);
//! [`server`] serves connections within limits; [`events`] is
//! `GET /events`, [`metrics`] `GET /metrics`, [`openapi`]
//! `GET /openapi.json`; [`webhooks`] is the outbox and its sender;
//! [`client`] is the CLI's signing client; [`dashboard`] is the web
//! dashboard served at `/`.
//!
//! API boundary: this crate drives the daemon through
//! `graft_supervisor::control::Ops` (the same queue the control socket
//! uses) and reads the ledger; the daemon knows nothing of it (the binary
//! mounts it with [`mount`]). No pipeline logic lives here.

pub mod auth;
pub mod client;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod secret;
pub mod server;
pub mod sign;
pub mod state;
pub mod webhooks;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use graft_config::Config;
use graft_supervisor::daemon::Mount;

pub use state::{ScanFailure, ScanHook};

/// What `graft run` mounts once it serves: the webhook sender (when
/// `wake` is given: there are webhooks), and the HTTP API unless
/// `[api] enabled = false`. Reports `api` (its URL) and `api_secret`
/// (where the secret came from). `logins` holds the dashboard's one-time
/// login tokens; the binary issues the link it prints from it.
pub fn mount(
    root: PathBuf,
    config: Config,
    scan: ScanHook,
    wake: Option<tokio::sync::watch::Receiver<u64>>,
    logins: Arc<dashboard::LoginLinks>,
) -> Mount {
    Box::new(move |ops| {
        Box::pin(async move {
            if let Some(wake) = wake {
                tokio::spawn(webhooks::deliver::run(
                    root.clone(),
                    config.webhooks.clone(),
                    wake,
                ));
            }
            let api_config = config.api.clone();
            if !api_config.enabled {
                return Ok(Vec::new());
            }
            let (secret, source) = secret::load(&root, &api_config, true)?;
            let addr = api_config.listen.0;
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                format!("cannot listen on {addr} for the API (`[api] listen` in graft.toml): {e}")
            })?;
            let local = listener
                .local_addr()
                .map_err(|e| format!("cannot read the API's address: {e}"))?;
            let ledger = graft_ledger::Ledger::open(&root.join(".graft").join("ledger.db"))
                .map_err(|e| e.to_string())?;
            let target_name = config.target.display_name(&root);
            let protected =
                graft_change::Policy::new(&config.target.protected.0, graft_change::Limits::default(), false)
                    .map_err(|e| format!("`[target] protected` in graft.toml: {e}"))?;
            let api = Arc::new(state::Api {
                ops,
                root,
                challenges: auth::Challenges::new(api_config.challenge_ttl.0),
                sessions: auth::Sessions::new(api_config.session_ttl.0),
                config: api_config.clone(),
                secret,
                ledger: Arc::new(Mutex::new(ledger)),
                metrics: metrics::Metrics::default(),
                scan,
                scanning: tokio::sync::Mutex::new(()),
                webhooks: config.webhooks.clone(),
                target_name,
                logins,
                protected,
            });
            let app = routes::router(api);
            tokio::spawn(server::serve(
                listener,
                app,
                api_config.max_connections.0 as usize,
                api_config.request_timeout.0,
            ));
            Ok(vec![
                ("api".to_string(), format!("http://{local}")),
                ("api_secret".to_string(), source.to_string()),
            ])
        })
    })
}
