//! A change over the size limits is refused while it is read, from every
//! way in, before anything is stored: it never waits for approval, and
//! `.graft/` does not grow with it. The two inputs are a 200 MB patch (one
//! new file of two million lines: over the bound on what is read) and a
//! 2.7 MB patch creating 50,000 files (read whole, over `max_files`).
//!
//! How long each refusal took is printed, never asserted (machines are
//! noisy); the README's Limits gives the figures measured by hand.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

use crate::mcp::{call, session};
use crate::support::api::*;
use crate::support::*;

/// The refusal every way in gives: its code and the setting it names.
#[derive(Clone, Copy)]
struct Refusal {
    code: &'static str,
    names: &'static str,
}

const HUGE: Refusal = Refusal {
    code: "too_large",
    names: "`[limits] max_change_bytes`",
};

const MANY: Refusal = Refusal {
    code: "too_many_files",
    names: "`[limits] max_files`",
};

/// The two patches, written in a temp dir of their own.
struct Inputs {
    _dir: tempfile::TempDir,
    huge: PathBuf,
    many: PathBuf,
}

impl Inputs {
    fn write() -> Inputs {
        let dir = tempfile::Builder::new()
            .prefix("graft-intake-")
            .tempdir()
            .unwrap();
        let huge = dir.path().join("huge.diff");
        let lines = 2_000_000;
        let mut w = BufWriter::new(File::create(&huge).unwrap());
        write!(w, "--- /dev/null\n+++ b/huge.txt\n@@ -0,0 +1,{lines} @@\n").unwrap();
        let line = format!("+{}\n", "a".repeat(99));
        for _ in 0..lines {
            w.write_all(line.as_bytes()).unwrap();
        }
        w.flush().unwrap();
        let many = dir.path().join("many.diff");
        let mut w = BufWriter::new(File::create(&many).unwrap());
        for i in 0..50_000 {
            write!(w, "--- /dev/null\n+++ b/many/f{i:05}.txt\n@@ -0,0 +1 @@\n+x\n").unwrap();
        }
        w.flush().unwrap();
        assert!(std::fs::metadata(&huge).unwrap().len() > 200_000_000);
        Inputs {
            _dir: dir,
            huge,
            many,
        }
    }

    fn cases(&self) -> [(&'static str, &Path, Refusal); 2] {
        [("200 MB", &self.huge, HUGE), ("50,000 files", &self.many, MANY)]
    }
}

/// `f`, with how long it took printed.
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    eprintln!("{what}: answered in {:.3?}", start.elapsed());
    out
}

/// `graft upgrade --patch FILE --json`, and `--patch -` with the file as
/// standard input: each refused (exit 3) with `want`.
fn refused_by_the_cli(t: &Target, name: &str, patch: &Path, want: Refusal) {
    for stdin in [false, true] {
        let what = format!(
            "{name}, {}",
            if stdin {
                "on standard input"
            } else {
                "by --patch FILE"
            }
        );
        let run = timed(&what, || {
            let file = patch.to_str().unwrap();
            let args = ["upgrade", "--patch", if stdin { "-" } else { file }, "--json"];
            let mut cmd = t.graft_command(&args, &[]);
            if stdin {
                cmd.stdin(File::open(patch).unwrap());
            }
            Run::from(cmd.output().unwrap(), &args)
        });
        run.code(3);
        let e = &run.json()["error"];
        assert_eq!(e["code"], want.code, "{what}: {e}");
        assert_eq!(e["exit_code"], 3, "{what}: {e}");
        let message = e["message"].as_str().unwrap();
        assert!(message.contains(want.names), "{what}: {message}");
    }
}

/// Both patches as `self_improve` calls in one MCP session: each refused
/// with a tool error whose text names the setting and ends with the code.
fn refused_over_mcp(t: &Target, inputs: &Inputs, how: &str) {
    let execute = |patch: &Path| {
        call(
            "self_improve",
            json!({ "action": "execute", "patch": { "$file": patch } }),
        )
    };
    let out = timed(&format!("both {how}"), || {
        session(t, json!([execute(&inputs.huge), execute(&inputs.many)]))
    });
    for ((name, _, want), result) in inputs.cases().into_iter().zip(out["results"].as_array().unwrap()) {
        assert_eq!(result["is_error"], true, "{name} {how}: {result}");
        let text = result["text"][0].as_str().unwrap_or_default();
        assert!(
            text.ends_with(&format!("[{}]", want.code)),
            "{name} {how}: {result}"
        );
        assert!(text.contains(want.names), "{name} {how}: {result}");
    }
}

/// Nothing stored: no upgrade, no request, `.graft/` grown by less than
/// 1 MB, the repo as it was.
fn nothing_stored(t: &Target, graft_before: u64, before: &Snapshot) {
    assert_eq!(t.count("SELECT COUNT(*) FROM upgrades"), 0, "no upgrade row");
    assert_eq!(t.count("SELECT COUNT(*) FROM requests"), 0, "no stored request");
    let grown = bytes_under(&t.path(".graft")).saturating_sub(graft_before);
    eprintln!(".graft/ grew by {grown} bytes");
    assert!(grown < 1_000_000, ".graft/ grew by {grown} bytes");
    t.snapshot().assert_same(before, "refused changes");
}

/// `POST /v1/upgrades` with `patch` in its JSON body, signed, sent by
/// curl: a client that reads an answer given before it finished sending
/// (ureq stops at the broken pipe when the API has read all it reads).
fn post_upgrade(api: &Api, patch: &Path) -> (u16, Value) {
    let body = json!({ "patch": std::fs::read_to_string(patch).unwrap() }).to_string();
    let file = patch.with_extension("json");
    std::fs::write(&file, &body).unwrap();
    let sig = api.signature("POST", "/v1/upgrades", body.as_bytes());
    drop(body);
    let mut curl = Command::new("curl");
    curl.args(["-sS", "-H", "Expect:", "-H", "content-type: application/json"]);
    for (name, value) in sig.headers() {
        curl.arg("-H").arg(format!("{name}: {value}"));
    }
    let out = curl
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .args(["-w", "\n%{http_code}"])
        .arg(format!("{}/v1/upgrades", api.url))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (answer, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    let answer = serde_json::from_str(answer).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status.trim().parse().unwrap_or(0), answer)
}

#[test]
fn a_change_over_the_limits_is_refused_as_it_is_read_and_nothing_is_stored() {
    let inputs = Inputs::write();
    let t = Target::python();
    t.graft(&["status"]).success();
    let (graft_before, before) = (bytes_under(&t.path(".graft")), t.snapshot());
    for (name, patch, want) in inputs.cases() {
        refused_by_the_cli(&t, name, patch, want);
    }
    // What a person reads names the limit and what to do.
    let huge = inputs.huge.to_str().unwrap();
    t.graft(&["upgrade", "--patch", huge])
        .code(3)
        .stderr_has("more than 4194304 bytes")
        .stderr_has("raise `[limits] max_change_bytes` in graft.toml");
    t.graft(&["upgrade", "--patch", inputs.many.to_str().unwrap()])
        .code(3)
        .stderr_has("names 50000 files, over the limit of 1000")
        .stderr_has("raise `[limits] max_files` in graft.toml");
    // The same over MCP (`graft mcp` working in its own process).
    refused_over_mcp(&t, &inputs, "over MCP");
    nothing_stored(&t, graft_before, &before);
}

#[test]
fn a_change_over_the_limits_is_refused_by_graft_run_from_every_way_in() {
    let inputs = Inputs::write();
    // A body limit above the bound on a change, so that the API's own
    // check of the change is reached.
    let (t, _) = api_target("[api]\nmax_body_bytes = 16777216\n");
    let d = start(&t);
    let api = Api::of(&d);
    let (graft_before, before) = (bytes_under(&t.path(".graft")), t.snapshot());
    for (name, patch, want) in inputs.cases() {
        // The CLI, which hands it to graft run.
        refused_by_the_cli(&t, &format!("{name} to graft run"), patch, want);
        // Another client of the control socket, sending all of it.
        let answer = timed(&format!("{name} on the control socket"), || {
            let out = Command::new("curl")
                .args(["-sS", "-H", "Expect:", "--unix-socket"])
                .arg(t.path(".graft/daemon.sock"))
                .arg("--data-binary")
                .arg(format!("@{}", patch.display()))
                .arg("http://graft/v1/upgrades?kind=patch&name=big.diff&requested_by=test")
                .output()
                .expect("run curl");
            String::from_utf8_lossy(&out.stdout).into_owned()
        });
        let line: Value = serde_json::from_str(answer.lines().last().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{name}: not NDJSON ({e}): {answer}"));
        assert_eq!(line["error"]["code"], want.code, "{name}: {line}");
        assert_eq!(line["error"]["class"], "refused", "{name}: {line}");
        assert!(
            line["error"]["message"].as_str().unwrap().contains(want.names),
            "{name}: {line}"
        );
        // The HTTP API, signed, the patch in its JSON body.
        let (status, answer) = timed(&format!("{name} over HTTP"), || post_upgrade(&api, patch));
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (413, Some(want.code)),
            "{name}: {answer}"
        );
    }
    refused_over_mcp(&t, &inputs, "over MCP to graft run");
    nothing_stored(&t, graft_before, &before);
    d.stop();
}
