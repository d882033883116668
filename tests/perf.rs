//! The perf gate: the first landing records the baseline; later upgrades
//! are compared with the figure of the live release.

use crate::support::*;

fn perf_target() -> Target {
    // The figure comes from a file the change itself edits, so each test
    // controls it.
    let t = Target::python_with_config(
        "[target]\nbranch = \"main\"\n\n[[gates]]\nname = \"bench\"\nkind = \"perf\"\ncommand = \"echo \\\"throughput: $(cat figure.txt) req/s (3 runs)\\\"\"\npattern = '([0-9.]+) req/s'\nbetter = \"higher\"\ntolerance = 0.10\n",
    );
    t.write("figure.txt", "1000\n");
    t.commit("figure");
    t
}

fn set_figure(t: &Target, from: &str, to: &str, extra: &[&str]) -> Run {
    let edits = format!(r#"[{{"op":"replace","path":"figure.txt","content":"{to}\n"}}]"#);
    let _ = from;
    t.upgrade_edits(&edits, extra)
}

#[test]
fn first_run_records_the_baseline_then_regressions_fail() {
    let t = perf_target();
    let first = set_figure(&t, "1000", "1000.5", &["--json"]);
    first.success();
    let gate = first.json()["gates"][1].clone();
    assert_eq!(gate["figure"], 1000.5);
    assert!(gate["baseline"].is_null());
    assert!(
        gate["output_tail"]
            .as_str()
            .unwrap()
            .contains("becomes the baseline")
    );

    // 5 % worse: within the 10 % tolerance.
    let ok = set_figure(&t, "1000.5", "950", &["--json"]);
    ok.success();
    assert_eq!(ok.json()["gates"][1]["baseline"], 1000.5);

    // 30 % worse than the live 950: refused, nothing lands.
    let before = t.snapshot();
    set_figure(&t, "950", "665", &[])
        .code(4)
        .stdout_has("worse than the live release's 950 by more than 10 %");
    t.snapshot().assert_same(&before, "after a perf regression");
}

#[test]
fn a_perf_gate_that_prints_no_figure_fails_clearly() {
    let t = Target::python_with_config(
        "[target]\nbranch = \"main\"\n\n[[gates]]\nname = \"bench\"\nkind = \"perf\"\ncommand = \"echo no numbers here\"\npattern = '([0-9.]+) req/s'\nbetter = \"higher\"\n",
    );
    t.upgrade_patch(&good_patch(), &[])
        .code(4)
        .stdout_has("printed no figure");
}
