"""Drive the Graft dashboard in headless Chromium (Playwright) against a
real `graft run`, and print what happened as one JSON line.

Called by tests/dashboard.rs, which started the daemon, queued an upgrade
that waits for approval, and scripted the LLM stand-in's replies. Every
console error and uncaught page error is collected; the only one allowed
is the browser's report of the 401 the wrong secret earns.

Every page is measured at 1280 and 390 px wide (`LAYOUT`): the document
no wider than the viewport, no element past its edges unless a scroll
container of its own holds it, and every action button shown, inside
the viewport's width, unclipped, of non-zero size and the element a tap
on its middle reaches. Screenshots of each land in --shots.
"""

import argparse
import json
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

LONG = 120_000  # ms: an upgrade builds and deploys a release

# The page's layout, measured in the page: what is wrong with it (a list
# of sentences) and the action buttons it shows (by label).
LAYOUT = """(width) => {
  const vw = Math.min(window.innerWidth, document.documentElement.clientWidth, width);
  const problems = [];
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
    + (typeof el.className === "string" && el.className.trim() ? "." + el.className.trim().split(/\\s+/).join(".") : "")
    + (el.dataset && el.dataset.action ? `[data-action=${el.dataset.action}]` : "");
  const path = (el) => {
    const p = [];
    for (let e = el; e && e !== document.body; e = e.parentElement) p.unshift(name(e));
    return p.join(" > ");
  };
  const px = (n) => Math.round(n) + "px";
  // Held by a scroll container of its own: an ancestor that clips what
  // overflows it (scrolls, or hides) and is itself inside the viewport.
  const held = (el) => {
    for (let e = el.parentElement; e && e !== document.documentElement; e = e.parentElement) {
      if (getComputedStyle(e).overflowX === "visible") continue;
      const cr = e.getBoundingClientRect();
      if (cr.left >= -1 && cr.right <= vw + 1) return true;
    }
    return false;
  };
  window.scrollTo(0, window.scrollY);
  const doc = document.documentElement;
  if (doc.scrollWidth > vw) problems.push(`the page is ${px(doc.scrollWidth)} wide in a ${px(vw)} viewport`);
  const wide = [];
  for (const el of document.body.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.left >= -1 && r.right <= vw + 1) continue;
    if (held(el)) continue;
    wide.push(el);
  }
  const said = new Set();
  for (const el of wide) {
    if (wide.includes(el.parentElement)) continue;
    const r = el.getBoundingClientRect();
    said.add(`${path(el)} reaches ${px(r.left)} to ${px(r.right)} of a ${px(vw)} viewport`);
  }
  problems.push(...said);
  const buttons = [];
  const candidates = document.querySelectorAll("#view button, #view a.button, header.top button");
  for (const b of candidates) {
    if (b.closest("[hidden]")) continue; // hidden by the page on purpose (sign-out before sign-in)
    const label = (b.dataset.action || b.dataset.mode || b.id || b.textContent.trim());
    buttons.push(label);
    const what = `the button "${b.textContent.trim()}" (${path(b)})`;
    if (!b.checkVisibility({ checkOpacityProperty: true, checkVisibilityCSS: true })) {
      problems.push(`${what} is not shown`);
      continue;
    }
    b.scrollIntoView({ block: "center", inline: "center" });
    const r = b.getBoundingClientRect();
    if (r.width < 1 || r.height < 1) {
      problems.push(`${what} is ${px(r.width)} x ${px(r.height)}`);
      continue;
    }
    if (r.left < -1 || r.right > vw + 1) {
      problems.push(`${what} spans ${px(r.left)} to ${px(r.right)} of a ${px(vw)} viewport`);
      continue;
    }
    let clipped = false;
    for (let e = b.parentElement; e && e !== document.documentElement; e = e.parentElement) {
      const st = getComputedStyle(e);
      if (st.overflowX === "visible" && st.overflowY === "visible") continue;
      const cr = e.getBoundingClientRect();
      if (r.left < cr.left - 1 || r.right > cr.right + 1 || r.top < cr.top - 1 || r.bottom > cr.bottom + 1) {
        problems.push(`${what} is clipped by ${path(e)}`);
        clipped = true;
        break;
      }
    }
    if (clipped) continue;
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    if (hit && !b.contains(hit) && !hit.closest("#toast")) {
      problems.push(`${what} is covered by ${path(hit)}`);
    }
  }
  window.scrollTo(0, 0);
  return { problems, buttons };
}"""


def layout(page, width):
    return page.evaluate(LAYOUT, width)


def main() -> int:
    ap = argparse.ArgumentParser()
    for name in ("url", "secret", "login", "held", "chromium", "shots"):
        ap.add_argument("--" + name, required=True)
    a = ap.parse_args()
    shots = Path(a.shots)
    out: dict = {}
    errors: list = []
    phase = ["start"]
    current = [None]

    def watch(page):
        current[0] = page
        page.on("console", lambda m: m.type == "error" and errors.append([phase[0], m.text]))
        page.on("pageerror", lambda e: errors.append([phase[0], "uncaught: " + str(e)]))

    def ready(page, name):
        page.wait_for_selector(f"#view[data-page={name}][data-ready]", timeout=LONG)

    def nav(page, name):
        page.click(f"#nav a[data-page={name}]")
        ready(page, name)

    def failed():
        # What the page showed, for whoever reads the failure.
        shown = ""
        if current[0] is not None:
            try:
                current[0].screenshot(path=str(shots / "failure.png"), full_page=True)
                shown = current[0].inner_text("body")
            except Exception as e:  # the browser may be gone
                shown = f"(no page: {e})"
        print(json.dumps({"failed_in": phase[0], "so_far": out, "errors": errors}), file=sys.stderr)
        print("--- the page (screenshot: failure.png)\n" + shown, file=sys.stderr)

    run(a, shots, out, errors, phase, watch, ready, nav, failed)
    out["console_errors"] = [
        e for e in errors if not (e[0] == "wrong-secret" and "401" in e[1])
    ]
    out["console_allowed"] = [e for e in errors if e not in out["console_errors"]]
    print(json.dumps(out))
    return 0


def run(a, shots, out, errors, phase, watch, ready, nav, failed):
    with sync_playwright() as p:
        try:
            steps(p, a, shots, out, phase, watch, ready, nav)
        except BaseException:
            failed()
            raise


def steps(p, a, shots, out, phase, watch, ready, nav):
    if True:
        browser = p.chromium.launch(executable_path=a.chromium, headless=True, args=["--no-sandbox"])
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        page = ctx.new_page()
        watch(page)
        page.goto(a.url + "/")
        page.wait_for_selector("#sign-in:not([hidden])")

        # A wrong secret is refused, with the page saying so.
        phase[0] = "wrong-secret"
        page.fill("#secret", "not-the-secret-at-all-000")
        page.click("#sign-in-form button[type=submit]")
        page.wait_for_selector("#sign-in-error:not(:empty)")
        out["wrong_secret"] = page.text_content("#sign-in-error")

        phase[0] = "sign-in"
        page.fill("#secret", a.secret)
        page.click("#sign-in-form button[type=submit]")
        ready(page, "live")
        out["signed_in"] = page.is_hidden("#sign-in")

        # Instruction: preview (a dry run), then execute and watch it live.
        phase[0] = "instruction"
        page.fill("#instruction", "Answer hello from v2 instead of v1")
        page.click("#preview-button")
        page.wait_for_selector("[data-preview]", timeout=LONG)
        out["preview"] = page.get_attribute("[data-preview]", "data-preview")
        if out["preview"] != "passed":
            raise SystemExit("the preview failed: " + page.inner_text("#preview"))
        page.evaluate(
            """() => {
              window.__states = [];
              const el = document.getElementById('pipeline');
              new MutationObserver(() => {
                const s = [el.dataset.id, el.dataset.state];
                const last = window.__states[window.__states.length - 1];
                if (!last || last[0] !== s[0] || last[1] !== s[1]) window.__states.push(s);
              }).observe(el, { attributes: true, attributeFilter: ['data-state', 'data-id'] });
            }"""
        )
        page.click("#execute")
        page.wait_for_selector("#preview [data-sent]")
        executed = page.get_attribute("#preview [data-sent]", "data-sent")
        out["executed"] = executed
        page.wait_for_selector(f"#pipeline[data-id='{executed}'][data-state=promoted]", timeout=LONG)
        states = page.evaluate("window.__states")
        out["states_seen"] = [s for i, s in states if i == executed]
        page.screenshot(path=str(shots / "live-desktop.png"), full_page=True)

        # Its diff, unified and side by side.
        phase[0] = "diff"
        page.click(f"#pipeline a[href='#/upgrade/{executed}']")
        ready(page, "upgrade")
        page.click("button[data-mode=unified]")
        page.wait_for_selector(".diff[data-mode=unified] table.difftable")
        out["diff_unified"] = page.text_content(".diff table.difftable")
        page.click("button[data-mode=split]")
        page.wait_for_selector(".diff[data-mode=split] table.difftable.split")
        out["diff_split_rows"] = page.locator("table.difftable.split tr:not(.hunk)").count()
        page.screenshot(path=str(shots / "upgrade-desktop.png"), full_page=True)

        # Roll it back (two clicks: arm, confirm).
        phase[0] = "rollback"
        page.click("#upgrade button[data-action=rollback]")
        page.click("#upgrade button[data-action=rollback]")
        page.wait_for_selector(f"#upgrade[data-id='{executed}'][data-state=rolled_back]", timeout=LONG)
        out["rolled_back_state"] = page.get_attribute("#upgrade", "data-state")

        # The ledger's chart shows the rollback.
        phase[0] = "ledger"
        nav(page, "ledger")
        page.wait_for_selector("svg[data-chart=rollbacks] rect[data-cause]")
        out["rollback_chart"] = page.eval_on_selector_all(
            "svg[data-chart=rollbacks] rect[data-cause]",
            "rs => rs.map(r => ({ cause: r.dataset.cause, count: r.dataset.count }))",
        )
        page.screenshot(path=str(shots / "ledger-desktop.png"), full_page=True)

        # Approve the held upgrade from the queue, by keyboard.
        phase[0] = "approve"
        nav(page, "queue")
        page.wait_for_selector(f"tr[data-id='{a.held}'][data-state=awaiting_approval]")
        page.screenshot(path=str(shots / "queue-desktop.png"), full_page=True)
        for _ in range(50):
            if page.locator(f"tr.selected[data-id='{a.held}']").count():
                break
            page.keyboard.press("j")
        page.keyboard.press("a")
        page.wait_for_selector(f"tr[data-id='{a.held}'][data-state=promoted]", timeout=LONG)
        out["approved_state"] = "promoted"

        # Scan now; a cycle drawn, duplicates side by side.
        phase[0] = "scan"
        nav(page, "scan")
        page.click("#start-scan")
        page.wait_for_selector("#scan-summary", timeout=LONG)
        page.wait_for_selector("#scan-duplicates .fragment pre .codeline", timeout=30_000)
        out["cycle_nodes"] = page.eval_on_selector_all(
            "svg[data-chart=cycle] circle[data-module]", "cs => cs.map(c => c.dataset.module)"
        )
        first_dup = page.locator("#scan-duplicates article.suggestion").first
        out["duplicate_paths"] = first_dup.locator(".fragment").evaluate_all("fs => fs.map(f => f.dataset.path)")
        out["duplicate_first_line"] = first_dup.locator(".fragment pre .codeline").first.text_content()
        page.screenshot(path=str(shots / "scan-desktop.png"), full_page=True)
        # Queue the cycle's suggestion as an upgrade.
        page.click("#scan-cycles article.suggestion button[data-action=queue-suggestion]")
        page.wait_for_selector("#scan-cycles article.suggestion a.button[href^='#/upgrade/']")
        out["queued_suggestion"] = [
            page.get_attribute("#scan-cycles article.suggestion", "data-suggestion"),
            page.get_attribute("#scan-cycles article.suggestion a.button", "href").split("/")[-1],
        ]

        phase[0] = "agent"
        nav(page, "agent")
        out["agent_task"] = page.text_content("#agent-task pre.task")
        page.screenshot(path=str(shots / "agent-desktop.png"), full_page=True)

        # Each page's layout at both widths, with the buttons an upgrade
        # in each state has: the suggestion queued from the scan waits
        # for approval (approve, reject, cancel), the approved one is
        # promoted (roll back), the executed one rolled back (its diff).
        waiting = out["queued_suggestion"][1]
        nav(page, "queue")
        page.wait_for_selector(f"tr[data-id='{waiting}'] button[data-action=approve]", timeout=LONG)
        pages = [
            ("live", "#/live"),
            ("queue", "#/queue"),
            ("upgrade", f"#/upgrade/{executed}"),
            ("upgrade-waiting", f"#/upgrade/{waiting}"),
            ("upgrade-promoted", f"#/upgrade/{a.held}"),
            ("ledger", "#/ledger"),
            ("scan", "#/scan"),
            ("agent", "#/agent"),
        ]
        out["layout"] = {}
        taken = {"live", "upgrade", "ledger", "queue", "scan", "agent"}

        def measure(page, width, kind):
            phase[0] = "layout-" + kind
            seen = {}
            for name, hash_ in pages:
                # (Not ready until the router has shown the new page.)
                page.evaluate(
                    """h => {
                      if (location.hash === h) return;
                      document.getElementById('view').removeAttribute('data-ready');
                      location.hash = h;
                    }""",
                    hash_,
                )
                ready(page, name.split("-")[0])
                page.wait_for_timeout(300)  # duplicates' excerpts, charts
                seen[name] = layout(page, width)
                # At 1280 px the pages shown during the run above keep
                # their screenshots, taken mid-way.
                if kind == "phone" or name not in taken:
                    page.screenshot(path=str(shots / f"{name}-{kind}.png"), full_page=True)
            out["layout"][kind] = seen

        measure(page, 1280, "desktop")
        ctx.close()

        # Phone width, signed in by the one-time link graft run printed.
        phase[0] = "phone"
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        page = phone.new_page()
        watch(page)
        page.goto(a.login)
        ready(page, "live")
        out["phone_login_link"] = page.is_hidden("#sign-in")
        measure(page, 390, "phone")
        phone.close()
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
