use std::path::Path;

use crate::{Config, WebhookEvent, WebhookFormat};

fn parse(text: &str) -> Result<Config, crate::ConfigError> {
    Config::parse(Path::new("graft.toml"), text)
}

fn err(text: &str) -> String {
    parse(text).expect_err("config should be refused").to_string()
}

#[test]
fn defaults_serve_on_a_free_loopback_port_five_upgrades_an_hour() {
    let c = parse("").unwrap();
    assert!(c.api.enabled);
    assert_eq!(c.api.listen.0.to_string(), "127.0.0.1:0");
    assert_eq!(c.api.secret_env.as_str(), "GRAFT_API_SECRET");
    assert_eq!(c.api.upgrades_per_window.0, 5);
    assert_eq!(c.api.window.0.as_secs(), 3600);
    assert!(c.webhooks.is_empty());
}

#[test]
fn api_and_webhooks_parse() {
    let c = parse(
        r#"
[api]
listen = "127.0.0.1:7878"
secret_file = "~/.config/graft/secret"
upgrades_per_window = 2
window = "10m"
max_body_bytes = 4096
max_connections = 8
request_timeout = "5s"

[[webhooks]]
name = "team"
url_env = "SLACK_HOOK"
events = ["promoted", "rolled_back"]

[[webhooks]]
url = "http://127.0.0.1:9/hook"
format = "json"
"#,
    )
    .unwrap();
    assert_eq!(c.api.listen.0.port(), 7878);
    assert_eq!(
        c.api
            .secret_file
            .as_ref()
            .unwrap()
            .resolve(Path::new("/repo"), Some(Path::new("/home/ada"))),
        Path::new("/home/ada/.config/graft/secret")
    );
    assert_eq!((c.api.upgrades_per_window.0, c.api.window.0.as_secs()), (2, 600));
    assert_eq!(c.webhooks[0].key(), "team");
    assert_eq!(c.webhooks[0].format, WebhookFormat::Slack);
    assert!(c.webhooks[0].wants(WebhookEvent::Promoted));
    assert!(!c.webhooks[0].wants(WebhookEvent::Planned));
    assert_eq!(c.webhooks[1].key(), "http://127.0.0.1:9/hook");
    assert_eq!(c.webhooks[1].events.len(), WebhookEvent::ALL.len());
    assert_eq!(c.webhooks[1].resolve_url().unwrap(), "http://127.0.0.1:9/hook");
}

#[test]
fn a_secret_is_never_in_the_file() {
    let e = err("[api]\nsecret_env = \"9f2c-77aa-secret\"\n");
    assert!(
        e.starts_with(
            "graft.toml:2:14: key `api.secret_env`: `9f2c-77aa-secret` is not an environment variable name"
        ),
        "{e}"
    );
    assert!(e.contains("never the secret itself"), "{e}");
    let e = err("[api]\nsecret = \"abc\"\n");
    assert!(e.starts_with("graft.toml:2:1: unknown key `api.secret`"), "{e}");
}

#[test]
fn a_secret_file_inside_the_repository_is_refused() {
    let e = err("[api]\nsecret_file = \"secrets/api\"\n");
    assert!(
        e.contains("secret_file `secrets/api` is inside the repository, where it would be committed"),
        "{e}"
    );
    assert!(parse("[api]\nsecret_file = \".graft/my-secret\"\n").is_ok());
    let e = err("[api]\nsecret_file = \".graft/../x\"\n");
    assert!(e.contains("leaves `.graft/`"), "{e}");
}

#[test]
fn bad_api_values_name_their_key() {
    let e = err("[api]\nlisten = \"localhost\"\n");
    assert!(
        e.starts_with("graft.toml:2:10: key `api.listen`: `localhost` is not an address to listen on"),
        "{e}"
    );
    let e = err("[api]\nupgrades_per_window = 0\n");
    assert!(
        e.starts_with("graft.toml:2:23: key `api.upgrades_per_window`: 0 is out of range: give a whole number from 1 to 100000"),
        "{e}"
    );
    let e = err("[api]\nwindow = \"soon\"\n");
    assert!(e.contains("key `api.window`: `soon` is not a duration"), "{e}");
}

#[test]
fn webhooks_need_one_url_and_known_events() {
    let e = err("[[webhooks]]\nformat = \"json\"\n");
    assert_eq!(
        e,
        "graft.toml:1:3: key `webhooks[0]`: a webhook needs `url = \"https://...\"` or `url_env = \"VARIABLE\"` (the variable holding the URL)"
    );
    let e = err("[[webhooks]]\nurl = \"http://a/x\"\nurl_env = \"X\"\n");
    assert!(e.ends_with("give either `url` or `url_env`, not both"), "{e}");
    let e = err("[[webhooks]]\nurl = \"ftp://a/x\"\n");
    assert!(
        e.contains("`ftp://a/x` is not a webhook URL: it must start with https:// or http://"),
        "{e}"
    );
    let e = err("[[webhooks]]\nurl = \"http://a/x\"\nevents = [\"landed\"]\n");
    assert!(
        e.starts_with("graft.toml:3:11: key `webhooks[0].events[0]`: unknown variant `landed`"),
        "{e}"
    );
    let e = err("[[webhooks]]\nurl = \"http://a/x\"\nevents = []\n");
    assert!(e.contains("`events` is empty, so nothing would be sent"), "{e}");
    let e = err("[[webhooks]]\nurl = \"http://a/x\"\n\n[[webhooks]]\nurl = \"http://a/x\"\n");
    assert!(
        e.starts_with("graft.toml:4:3: key `webhooks[1]`: a webhook `http://a/x` is already defined above"),
        "{e}"
    );
    let e = err("[[webhooks]]\nurl = \"http://a/x\"\nretries = 3\n");
    assert!(
        e.starts_with("graft.toml:3:1: unknown key `webhooks[0].retries`"),
        "{e}"
    );
}

#[test]
fn a_webhook_url_from_the_environment_must_be_set() {
    let c = parse("[[webhooks]]\nurl_env = \"GRAFT_TEST_HOOK_NEVER_SET\"\n").unwrap();
    assert_eq!(
        c.webhooks[0].resolve_url().unwrap_err(),
        "webhook `env:GRAFT_TEST_HOOK_NEVER_SET`: the environment variable GRAFT_TEST_HOOK_NEVER_SET is not set"
    );
}
