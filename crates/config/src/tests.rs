use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("graft.toml"), text)
}

fn err(text: &str) -> String {
    parse(text).expect_err("config should be refused").to_string()
}

#[test]
fn empty_file_is_valid_with_defaults() {
    let c = parse("").unwrap();
    assert!(c.gates.is_empty());
    assert_eq!(c.limits.max_file_bytes, 512 * 1024);
    assert!(c.staging.keep_failed_branches);
}

#[test]
fn full_file_parses() {
    let c = parse(
        r#"
[target]
branch = "main"
data = ["data/app.db"]
protected = ["secrets/**"]

[[gates]]
name = "build"
kind = "build"
command = "cargo build"
timeout = "90s"

[[gates]]
name = "bench"
kind = "perf"
command = "./bench.sh"
pattern = '([0-9.]+) req/s'
better = "higher"
tolerance = 0.2
required = false
"#,
    )
    .unwrap();
    assert_eq!(c.target.data[0].as_str(), "data/app.db");
    assert_eq!(c.gates.len(), 2);
    assert_eq!(c.gates[0].timeout.0.as_secs(), 90);
    assert_eq!(c.gates[1].kind, GateKind::Perf);
    assert_eq!(c.gates[1].tolerance(), 0.2);
    assert!(!c.gates[1].required);
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let e = err("[target]\nbranch = \"main\"\nbrnach = \"x\"\n");
    assert!(
        e.starts_with("graft.toml:3:1: unknown key `target.brnach`, expected one of `name`, `branch`"),
        "{e}"
    );
}

#[test]
fn unknown_section_is_refused() {
    let e = err("[targte]\nbranch = \"main\"\n");
    assert!(
        e.starts_with("graft.toml:1:2: unknown key `targte`, expected one of `target`"),
        "{e}"
    );
}

#[test]
fn bad_duration_names_the_gate_key() {
    let e = err("[[gates]]\nname = \"t\"\nkind = \"test\"\ncommand = \"x\"\ntimeout = \"ten minutes\"\n");
    assert!(
        e.starts_with("graft.toml:5:11: key `gates[0].timeout`: `ten minutes` is not a duration"),
        "{e}"
    );
}

#[test]
fn zero_timeout_is_refused() {
    let e = err("[[gates]]\nname = \"t\"\nkind = \"test\"\ncommand = \"x\"\ntimeout = 0\n");
    assert!(
        e.contains("key `gates[0].timeout`: duration must be positive"),
        "{e}"
    );
}

#[test]
fn bad_kind_lists_the_kinds() {
    let e = err("[[gates]]\nname = \"t\"\nkind = \"tests\"\ncommand = \"x\"\n");
    assert!(
        e.starts_with("graft.toml:3:8: key `gates[0].kind`: unknown variant `tests`"),
        "{e}"
    );
    assert!(e.contains("build"), "{e}");
}

#[test]
fn duplicate_gate_names_are_refused() {
    let e = err(
        "[[gates]]\nname = \"t\"\nkind = \"test\"\ncommand = \"x\"\n[[gates]]\nname = \"t\"\nkind = \"lint\"\ncommand = \"y\"\n",
    );
    assert_eq!(
        e,
        "graft.toml:6:8: key `gates[1].name`: a gate named `t` is already defined above; gate names must be unique"
    );
}

#[test]
fn parse_is_reserved() {
    let e = err("[[gates]]\nname = \"parse\"\nkind = \"custom\"\ncommand = \"x\"\n");
    assert!(e.contains("`parse` is Graft's built-in syntax gate"), "{e}");
}

#[test]
fn bad_gate_name_is_refused() {
    let e = err("[[gates]]\nname = \"Build Step\"\nkind = \"build\"\ncommand = \"x\"\n");
    assert!(
        e.contains("key `gates[0].name`: name `Build Step` may only hold lowercase letters"),
        "{e}"
    );
}

#[test]
fn perf_gate_needs_direction_and_valid_pattern() {
    let e = err("[[gates]]\nname = \"b\"\nkind = \"perf\"\ncommand = \"x\"\n");
    assert!(e.contains("needs `better = \"higher\"`"), "{e}");
    let e = err(
        "[[gates]]\nname = \"b\"\nkind = \"perf\"\ncommand = \"x\"\nbetter = \"higher\"\npattern = \"[0-9\"\n",
    );
    assert!(e.contains("is not a valid regex"), "{e}");
    let e = err(
        "[[gates]]\nname = \"b\"\nkind = \"perf\"\ncommand = \"x\"\nbetter = \"higher\"\npattern = \"[0-9]+\"\n",
    );
    assert!(e.contains("has no group"), "{e}");
    let e = err("[[gates]]\nname = \"b\"\nkind = \"test\"\ncommand = \"x\"\ntolerance = 0.1\n");
    assert!(e.contains("only a `kind = \"perf\"` gate uses"), "{e}");
}

#[test]
fn tolerance_out_of_range() {
    let e = err(
        "[[gates]]\nname = \"b\"\nkind = \"perf\"\ncommand = \"x\"\nbetter = \"lower\"\ntolerance = 1.5\n",
    );
    assert!(
        e.contains("key `gates[0].tolerance`: 1.5 is not a share between 0 and 1"),
        "{e}"
    );
}

#[test]
fn hostile_data_paths_are_refused() {
    for (p, why) in [
        ("../x.db", "leaves the repository"),
        ("/etc/passwd", "must be relative"),
        (".git/config", "inside `.git/`"),
        ("", "is empty"),
    ] {
        let e = err(&format!("[target]\ndata = [\"{p}\"]\n"));
        assert!(e.contains(why), "{p}: {e}");
        assert!(e.contains("key `target.data[0]`"), "{e}");
    }
}

#[test]
fn bad_glob_is_refused() {
    let e = err("[target]\nprotected = [\"a/[b\"]\n");
    assert!(
        e.contains("key `target.protected`: `a/[b` is not a valid glob"),
        "{e}"
    );
}

#[test]
fn wrong_type_is_refused() {
    let e = err("[limits]\nmax_file_bytes = \"big\"\n");
    assert!(
        e.starts_with("graft.toml:2:18: key `limits.max_file_bytes`: invalid type"),
        "{e}"
    );
}

#[test]
fn max_files_is_a_positive_count() {
    assert_eq!(parse("").unwrap().limits.max_files.get(), 1000);
    assert_eq!(
        parse("[limits]\nmax_files = 20\n")
            .unwrap()
            .limits
            .max_files
            .get(),
        20
    );
    for bad in ["0", "-3"] {
        let e = err(&format!("[limits]\nmax_files = {bad}\n"));
        assert!(
            e.starts_with("graft.toml:2:13: key `limits.max_files`:")
                && e.contains(&format!("{bad} is not a positive whole number")),
            "{e}"
        );
    }
    let e = err("[limits]\nmax_files = \"many\"\n");
    assert!(e.contains("key `limits.max_files`: invalid type"), "{e}");
}

#[test]
fn syntax_error_has_a_line() {
    let e = err("[target\nbranch = 1\n");
    assert!(e.starts_with("graft.toml:1:"), "{e}");
}

#[test]
fn missing_file_suggests_init() {
    let dir = tempfile::tempdir().unwrap();
    let e = Config::load(dir.path()).unwrap_err();
    assert!(e.missing);
    assert!(e.to_string().contains("run `graft init`"), "{e}");
}

const RUN: &str = "[run]\ncommand = \"exec ./agent\"\nbuild = \"cargo build\"\nartifacts = [\"target/debug/agent\"]\nstop_signal = \"SIGINT\"\n\n[[run.listen]]\nname = \"http\"\naddress = \"127.0.0.1:8080\"\n\n[[run.listen]]\nname = \"admin\"\naddress = \"unix:/tmp/a.sock\"\n\n[health]\nready = \"http\"\nhttp_path = \"/ready\"\nwatchdog = \"5s\"\n\n[watch]\nwindow = \"10s\"\n";

#[test]
fn run_sections_parse() {
    let c = parse(RUN).unwrap();
    let run = c.run.unwrap();
    assert_eq!(run.listen.len(), 2);
    assert_eq!(
        run.listen[0].address,
        ListenAddress::Tcp("127.0.0.1:8080".parse().unwrap())
    );
    assert_eq!(run.listen[1].address, ListenAddress::Unix("/tmp/a.sock".into()));
    assert_eq!(run.stop_signal, Signal(2));
    assert_eq!(run.drain_timeout.0.as_secs(), 10);
    assert_eq!(c.health.ready, ReadyCheck::Http);
    assert_eq!(c.health.watchdog.unwrap().0.as_secs(), 5);
    assert_eq!(c.watch.window.0.as_secs(), 10);
}

#[test]
fn bad_run_values_are_located() {
    let e = err(&RUN.replace("127.0.0.1:8080", "localhost:http"));
    assert!(
        e.contains("key `run.listen[0].address`: `localhost:http` is not a listen address"),
        "{e}"
    );
    let e = err(&RUN.replace("SIGINT", "SIGFOO"));
    assert!(
        e.contains("key `run.stop_signal`: `SIGFOO` is not a signal Graft sends"),
        "{e}"
    );
    let e = err(&RUN.replace("name = \"admin\"", "name = \"http\""));
    assert!(
        e.contains("a socket named `http` is already defined above"),
        "{e}"
    );
    let e = err(&RUN.replace("name = \"admin\"", "name = \"health\""));
    assert!(
        e.contains("`health` is the name of each release's private health socket"),
        "{e}"
    );
    let e = err(&RUN.replace("ready = \"http\"", "ready = \"psychic\""));
    assert!(e.contains("key `health.ready`: unknown variant `psychic`"), "{e}");
    let e = err(&RUN.replace("ready = \"http\"", "ready = \"command\""));
    assert!(e.contains("needs `command = \"...\"` in [health]"), "{e}");
}

#[test]
fn a_health_address_is_for_plain_mode_http_and_tcp_checks_only() {
    let plain =
        "[run]\ncommand = \"python3 app.py\"\n\n[health]\nready = \"http\"\naddress = \"127.0.0.1:8000\"\n";
    let c = parse(plain).unwrap();
    assert_eq!(c.health.address.unwrap().0, "127.0.0.1:8000".parse().unwrap());
    let e = err(&RUN.replace(
        "ready = \"http\"",
        "ready = \"http\"\naddress = \"127.0.0.1:8000\"",
    ));
    assert!(
        e.contains("key `health.address`: `address` is for plain mode (no [[run.listen]]): with [[run.listen]] each release is checked on its own private health socket, since a check on a shared address would be answered by whichever release accepts it; remove `address`"),
        "{e}"
    );
    let e = err(&plain.replace("ready = \"http\"", "ready = \"notify\""));
    assert!(
        e.contains("`address` is where `ready = \"http\"` and `ready = \"tcp\"` checks go; with `ready = \"notify\"` nothing would use it"),
        "{e}"
    );
    let e = err(&plain.replace("127.0.0.1:8000", "localhost"));
    assert!(
        e.contains("key `health.address`: `localhost` is not an address like \"127.0.0.1:8000\""),
        "{e}"
    );
}

#[test]
fn provider_section_parses_with_defaults() {
    let c = parse(
        r#"
[provider]
default = "claude"

[provider.llm.claude]
api = "anthropic"
model = "claude-sonnet-4-5"

[provider.llm.local]
api = "openai"
base_url = "http://127.0.0.1:11434/v1/"
model = "qwen2.5-coder"

[provider.command.aider]
command = "aider --yes --message {instruction}"
"#,
    )
    .unwrap();
    let p = &c.provider;
    assert_eq!(p.max_retries, 3);
    assert_eq!(p.default_name(), Some("claude"));
    let claude = &p.llm["claude"];
    assert_eq!(claude.base_url(), "https://api.anthropic.com");
    assert_eq!(claude.key_env(), Some("ANTHROPIC_API_KEY"));
    assert_eq!(claude.timeout.0.as_secs(), 180);
    let local = &p.llm["local"];
    assert_eq!(local.base_url(), "http://127.0.0.1:11434/v1");
    assert_eq!(local.key_env(), None, "a local server needs no key");
    assert!(matches!(p.get("aider"), Some(NamedProvider::Command(_))));
    assert_eq!(p.names(), ["claude", "local", "aider"]);
}

#[test]
fn only_provider_is_the_default() {
    let c = parse("[provider.llm.x]\napi = \"openai\"\nmodel = \"m\"\n").unwrap();
    assert_eq!(c.provider.default_name(), Some("x"));
    assert_eq!(parse("").unwrap().provider.default_name(), None);
}

#[test]
fn provider_errors_name_line_and_key() {
    assert_eq!(
        err("[provider]\ndefault = \"gpt\"\n[provider.llm.claude]\napi = \"anthropic\"\nmodel = \"m\"\n"),
        "graft.toml:2:11: key `provider.default`: no provider named `gpt` (configured: claude)"
    );
    let e = err("[provider.llm.claude]\napi = \"anthropc\"\nmodel = \"m\"\n");
    assert!(
        e.starts_with("graft.toml:2:7: key `provider.llm.claude.api`: unknown variant `anthropc`"),
        "{e}"
    );
    let e = err("[provider.llm.claude]\napi = \"anthropic\"\nmodel = \"m\"\napi_key = \"x\"\n");
    assert!(
        e.starts_with("graft.toml:4:1: unknown key `provider.llm.claude.api_key`"),
        "{e}"
    );
    assert_eq!(
        err("[provider]\nmax_retries = 0\n"),
        "graft.toml:2:1: key `provider.max_retries`: max_retries must be from 1 to 20 (rounds of generate → gates, the first included), got 0"
    );
    assert_eq!(
        err("[provider.command.agent]\ncommand = \"  \"\n"),
        "graft.toml:1:2: key `provider.command.agent.command`: command provider `agent` has an empty command"
    );
}

#[test]
fn api_keys_are_refused_in_the_file() {
    let e = err(
        "[provider.llm.claude]\napi = \"anthropic\"\nmodel = \"m\"\napi_key_env = \"sk-ant-api03-abcdef\"\n",
    );
    assert!(
        e.starts_with("graft.toml:1:2: key `provider.llm.claude.api_key_env`: api_key_env names the environment variable that holds the key"),
        "{e}"
    );
    let e = err("[provider.llm.c]\napi = \"openai\"\nmodel = \"m\"\napi_key_env = \"MY KEY\"\n");
    assert!(e.contains("`MY KEY` is not an environment variable name"), "{e}");
}

#[test]
fn provider_names_are_checked() {
    let e = err("[provider.llm.Claude]\napi = \"anthropic\"\nmodel = \"m\"\n");
    assert!(
        e.contains("key `provider.llm.Claude`: provider name `Claude` may only hold lowercase letters"),
        "{e}"
    );
    let e = err("[provider.llm.a]\napi = \"openai\"\nmodel = \"m\"\n[provider.command.a]\ncommand = \"x\"\n");
    assert!(e.contains("`a` is both an llm and a command provider"), "{e}");
    let e = err("[provider.llm.a]\napi = \"openai\"\nmodel = \"m\"\nbase_url = \"localhost:8080\"\n");
    assert!(
        e.contains("base_url `localhost:8080` must start with http://"),
        "{e}"
    );
}

#[test]
fn policy_and_schedule_parse_and_check_themselves() {
    let c = parse("[policy]\nauto_approve_medium_risk = true\napproval_timeout = \"2h\"\nrisk_floor = \"medium\"\n\n[schedule]\nscan = \"weekly\"\nautofix = \"0 4 * * 1-5\"\n").unwrap();
    assert!(c.policy.auto_approve_low_risk);
    assert!(c.policy.auto_approve_medium_risk);
    assert_eq!(c.policy.approval_timeout.0.as_secs(), 7200);
    assert_eq!(c.policy.risk_floor, RiskLevel::Medium);
    assert_eq!(c.schedule.scan, Every::Cron("0 3 * * 1".into()));
    assert_eq!(c.schedule.autofix, Every::Cron("0 4 * * 1-5".into()));
    assert_eq!(parse("").unwrap().schedule.scan, Every::Manual);
    let e = err("[schedule]\nscan = \"fortnightly\"\n");
    assert!(
        e.contains("key `schedule.scan`: `fortnightly` is not a schedule"),
        "{e}"
    );
    let e = err("[policy]\nrisk_floor = \"extreme\"\n");
    assert!(
        e.contains("key `policy.risk_floor`: unknown variant `extreme`"),
        "{e}"
    );
}

#[test]
fn the_target_is_shown_by_its_name_else_its_directory() {
    let named = parse("[target]\nname = \"greeter\"\n").unwrap();
    assert_eq!(named.target.display_name(Path::new("/srv/bot")), "greeter");
    let unnamed = parse("").unwrap();
    assert_eq!(unnamed.target.display_name(Path::new("/srv/bot")), "bot");
    assert_eq!(unnamed.target.display_name(Path::new("/")), "target");
}
