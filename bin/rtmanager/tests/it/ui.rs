//! The operator console used as a person would: Debian's `chromium`,
//! headless, driven over the DevTools protocol (`headless_chrome`, built
//! without its browser download) against the real service. Sign in, see a
//! running game on the overview, filter the games table, open the game,
//! watch its health change by itself when the engine crashes, restart it,
//! stop it, and see each audit row appear — plus an accessibility smoke
//! check of every page (labels, headings, contrast of the status colours).
//!
//! A PNG of each page is written to `target/ui-screenshots/` for review.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::Page::{CaptureScreenshotFormatOption, Viewport};
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;

use crate::support::*;

/// Bound of every wait for the page to show something.
const WAIT: Duration = Duration::from_secs(45);

fn chromium() -> PathBuf {
    let path = std::env::var_os("RTM_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} not found: install Debian's chromium (cargo xtask services does) or set RTM_TEST_CHROMIUM",
        path.display()
    );
    path
}

fn shots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

fn launch() -> Browser {
    let options = LaunchOptions::default_builder()
        .path(Some(chromium()))
        .headless(true)
        // Tests run as root in CI; chromium's sandbox refuses root.
        .sandbox(false)
        .window_size(Some((1280, 1500)))
        // The browser is idle while the test waits on the service.
        .idle_browser_timeout(Duration::from_secs(600))
        .build()
        .expect("launch options");
    Browser::new(options).expect("chromium starts")
}

/// Evaluates `js` (an expression) and returns its JSON value.
fn eval(tab: &Tab, js: &str) -> Value {
    // JSON.stringify makes any value come back by value.
    let wrapped = format!("JSON.stringify((() => {{ return {js}; }})())");
    let obj = tab
        .evaluate(&wrapped, false)
        .unwrap_or_else(|e| panic!("evaluate {js}: {e}"));
    match obj.value {
        Some(Value::String(s)) => serde_json::from_str(&s).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// Polls the page until `js` is truthy, failing with `what` after WAIT.
fn wait_js(tab: &Tab, what: &str, js: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = eval(tab, js);
        if !(v.is_null() || v == false || v == "" || v == 0) {
            return v;
        }
        if Instant::now() >= deadline {
            let text = eval(tab, "document.querySelector('main').innerText");
            panic!("timed out after {WAIT:?} waiting for {what}; the page shows:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

fn click(tab: &Tab, selector: &str) {
    tab.wait_for_element(selector)
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .click()
        .unwrap_or_else(|e| panic!("click {selector}: {e}"));
}

fn type_into(tab: &Tab, selector: &str, text: &str) {
    click(tab, selector);
    tab.type_str(text)
        .unwrap_or_else(|e| panic!("type into {selector}: {e}"));
}

/// A PNG of the page down to the end of its content (not the empty rest
/// of the window).
fn screenshot(tab: &Tab, name: &str) {
    let bottom = eval(
        tab,
        "Math.ceil(document.querySelector('main').getBoundingClientRect().bottom)",
    )
    .as_f64()
    .unwrap_or(1500.0);
    let clip = Viewport {
        x: 0.0,
        y: 0.0,
        width: 1280.0,
        height: bottom.clamp(200.0, 1500.0),
        scale: 1.0,
    };
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, Some(clip), true)
        .expect("screenshot");
    let path = shots_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The text of the `main` element.
fn main_text(tab: &Tab) -> String {
    eval(tab, "document.querySelector('main').innerText")
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Accessibility smoke check of the page as it is: one `h1`, headings that
/// never skip a level, every form control with a label, every button with
/// a name, the page language set, and every status badge's text/fill pair
/// with a WCAG contrast ratio of at least 4.5:1 (computed from the
/// rendered colours).
fn accessibility_smoke(tab: &Tab, page: &str) {
    let report = eval(
        tab,
        r#"(() => {
  const problems = [];
  if (!document.documentElement.lang) problems.push('html has no lang');
  if (!document.title) problems.push('no title');
  const hs = [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].filter(h => h.offsetParent !== null);
  if (hs.filter(h => h.tagName === 'H1').length !== 1) problems.push('not exactly one visible h1');
  let prev = 0;
  for (const h of hs) {
    const lvl = Number(h.tagName[1]);
    if (prev && lvl > prev + 1) problems.push('heading level skipped at: ' + h.textContent);
    prev = lvl;
    if (!h.textContent.trim()) problems.push('empty heading');
  }
  for (const el of document.querySelectorAll('main input, main select, main textarea')) {
    const named = (el.labels && el.labels.length && [...el.labels].some(l => l.textContent.trim()))
      || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
    if (!named) problems.push('unlabelled control: ' + (el.id || el.name || el.outerHTML));
  }
  for (const b of document.querySelectorAll('button, a[href]')) {
    if (b.offsetParent === null) continue;
    if (!(b.textContent.trim() || b.getAttribute('aria-label'))) problems.push('nameless control: ' + b.outerHTML);
  }
  const rgb = s => s.match(/[\d.]+/g).slice(0, 3).map(Number);
  const lum = c => { const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const ratios = [];
  for (const el of document.querySelectorAll('.badge')) {
    const cs = getComputedStyle(el);
    const fg = lum(rgb(cs.color)), bg = lum(rgb(cs.backgroundColor));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    ratios.push([el.className, Math.round(ratio * 100) / 100]);
    if (ratio < 4.5) problems.push('contrast ' + ratio.toFixed(2) + ':1 of ' + el.className);
  }
  return { problems, badges: ratios.length };
})()"#,
    );
    let problems = report["problems"].as_array().cloned().unwrap_or_default();
    assert!(
        problems.is_empty(),
        "{page}: accessibility problems: {problems:#?}"
    );
    assert!(
        report["badges"].as_u64().unwrap_or(0) > 0,
        "{page}: no status badge to check: {report}"
    );
}

/// Every status colour the stylesheet defines, checked on one page by
/// rendering a badge of each (not only those the current data shows).
fn all_badge_colours(tab: &Tab) {
    let v = eval(
        tab,
        r#"(() => {
  const kinds = ['st-running','st-stopped','st-removed','h-healthy','h-probe_failed','h-exited','h-oom','h-inspect_unhealthy','h-container_disappeared','h-unknown','ok','bad','success','failure'];
  const box = document.createElement('div');
  document.body.append(box);
  const rgb = s => s.match(/[\d.]+/g).slice(0, 3).map(Number);
  const lum = c => { const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const out = {};
  for (const k of kinds) {
    const el = document.createElement('span');
    el.className = 'badge ' + k; el.textContent = k; box.append(el);
    const cs = getComputedStyle(el);
    const fg = lum(rgb(cs.color)), bg = lum(rgb(cs.backgroundColor));
    out[k] = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  }
  box.remove();
  return out;
})()"#,
    );
    let ratios = v.as_object().expect("ratios");
    assert_eq!(ratios.len(), 14, "{v}");
    for (class, ratio) in ratios {
        let r = ratio.as_f64().expect("ratio");
        assert!(r >= 4.5, "status colour {class}: contrast {r:.2}:1 < 4.5:1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_a_sick_game_restarts_and_stops_it_in_the_browser() {
    let app = spawn_app().await;
    let prefix = rtm_testkit::unique("ui").replace('_', "-");
    let game = format!("{prefix}-a");
    let other = format!("{prefix}-b");
    for g in [&game, &other] {
        let (status, body) = app.start_game(g, &image("1.0.0")).await;
        assert_eq!(status, 200, "start {g}: {body}");
    }
    // The other game is stopped, so the status filter has something to
    // leave out.
    let (status, body) = app
        .admin_post(&format!("/admin/v1/runtimes/{other}/stop"), None)
        .await;
    assert_eq!(status, 200, "stop {other}: {body}");
    wait_for("the game healthy", WAIT, || async {
        let (_, v) = app.runtime(&game).await;
        (v["health"]["status"] == "healthy").then_some(())
    })
    .await;

    let admin = app.admin.clone();
    let crash_file = app.state_dir(&game).join("crash");
    let (g, o) = (game.clone(), other.clone());
    let browser_part = tokio::task::spawn_blocking(move || {
        let browser = launch();
        let tab: Arc<Tab> = browser.new_tab().expect("tab");
        tab.set_default_timeout(WAIT);

        // Sign in: a wrong token is refused, the right one opens the overview.
        tab.navigate_to(&format!("{admin}/admin/ui/"))
            .and_then(|t| t.wait_until_navigated())
            .expect("open the console");
        tab.wait_for_element("#token").expect("login form");
        accessibility_smoke_login(&tab);
        screenshot(&tab, "0-login");
        type_into(&tab, "#token", "not-the-token-0123456789");
        click(&tab, "#login-submit");
        wait_js(
            &tab,
            "the refusal",
            "document.getElementById('login-error').textContent.includes('Sign-in failed')",
        );
        eval(&tab, "(document.getElementById('token').value = '', true)");
        type_into(&tab, "#token", ADMIN_TOKEN);
        click(&tab, "#login-submit");
        wait_js(
            &tab,
            "the overview",
            "document.querySelector('main h1')?.textContent === 'Overview'",
        );
        // The token is in the tab's session storage, not in the URL or a cookie.
        let url = eval(&tab, "location.href");
        assert!(
            !url.as_str().unwrap_or_default().contains(ADMIN_TOKEN),
            "{url}"
        );
        assert_eq!(eval(&tab, "document.cookie"), "");

        // The overview shows the running game among the counts and every
        // worker led.
        wait_js(
            &tab,
            "one running game counted",
            "document.querySelector('#ov-status [data-count=running] .n')?.textContent === '1'",
        );
        wait_js(
            &tab,
            "the workers table",
            "document.querySelectorAll('#ov-workers tbody tr').length === 6",
        );
        wait_js(
            &tab,
            "the dependencies",
            "document.querySelectorAll('#ov-deps tbody tr').length === 3",
        );
        let text = main_text(&tab);
        for needle in [
            "Games by status",
            "Lobby intake",
            "Dead letters",
            "Workers",
            "reconcile",
            "postgres",
        ] {
            assert!(text.contains(needle), "overview lacks {needle:?}:\n{text}");
        }
        accessibility_smoke(&tab, "overview");
        all_badge_colours(&tab);
        screenshot(&tab, "1-overview");

        // The games table, filtered by id prefix and status.
        click(&tab, "#nav-games");
        wait_js(
            &tab,
            "the games table",
            "document.getElementById('games-count')",
        );
        type_into(&tab, "#f-prefix", &prefix);
        eval(
            &tab,
            "(document.getElementById('f-status').value = 'running', true)",
        );
        click(&tab, "#f-apply");
        wait_js(
            &tab,
            "one matching game",
            "document.getElementById('games-count')?.textContent === 'Showing 1–1 of 1 games.'",
        );
        let links = eval(
            &tab,
            "[...document.querySelectorAll('a.game-link')].map(a => a.textContent)",
        );
        assert_eq!(
            links,
            serde_json::json!([g]),
            "the running game only, not {o}"
        );
        let row = eval(
            &tab,
            "document.querySelector('#games-result tbody tr').innerText",
        );
        assert!(
            row.as_str().unwrap_or_default().contains("healthy"),
            "{row}"
        );
        // The filter lives in the address, so a reload keeps it.
        let hash = eval(&tab, "location.hash");
        assert!(
            hash.as_str().unwrap_or_default().contains("status=running"),
            "{hash}"
        );
        accessibility_smoke(&tab, "games");
        screenshot(&tab, "2-games");

        // The game's page.
        click(&tab, "a.game-link");
        wait_js(
            &tab,
            "the game page",
            &format!("document.querySelector('main h1')?.textContent === 'Game {g}'"),
        );
        wait_js(
            &tab,
            "current health healthy",
            "document.querySelector('#g-health .badge')?.textContent === 'healthy'",
        );
        wait_js(
            &tab,
            "the health history",
            "document.querySelectorAll('#g-history tbody tr').length >= 1",
        );
        wait_js(
            &tab,
            "the start in the audit trail",
            "document.querySelector('#g-audit tbody tr')?.innerText.includes('start')",
        );
        // The engine's own start-up line (stderr), read through the admin
        // logs endpoint.
        wait_js(
            &tab,
            "the container's log lines",
            "document.getElementById('log-lines')?.innerText.includes('listening on')",
        );
        accessibility_smoke(&tab, "game");
        screenshot(&tab, "3-game");

        // The engine crashes: the page shows it without a reload.
        std::fs::write(&crash_file, "7").expect("crash the engine");
        wait_js(
            &tab,
            "health exited",
            "document.querySelector('#g-health .badge')?.textContent === 'exited'",
        );
        wait_js(
            &tab,
            "status stopped",
            "document.querySelector('#g-record .badge')?.textContent === 'stopped'",
        );
        wait_js(
            &tab,
            "the exit code",
            "document.getElementById('g-health').innerText.includes('exit_code')",
        );
        wait_js(
            &tab,
            "exited in the history",
            "document.querySelector('#g-history tbody tr')?.innerText.includes('exited')",
        );
        screenshot(&tab, "4-game-crashed");

        // Restart it, confirming in the dialog; the recorded result shows.
        click(&tab, "#act-restart");
        wait_js(
            &tab,
            "the confirmation",
            "document.getElementById('confirm').open",
        );
        click(&tab, "#confirm-ok");
        wait_js(&tab, "the restart result", "document.querySelector('#action-result .result')?.textContent.includes('restart: succeeded')");
        let result = eval(
            &tab,
            "document.querySelector('#action-result .result').textContent",
        );
        assert!(
            result
                .as_str()
                .unwrap_or_default()
                .contains("recorded as operation #"),
            "{result}"
        );
        wait_js(
            &tab,
            "the restart row",
            "document.querySelector('#g-audit tbody tr')?.innerText.includes('restart')",
        );
        wait_js(
            &tab,
            "healthy again",
            "document.querySelector('#g-health .badge')?.textContent === 'healthy'",
        );

        // Stop it; cancel first (nothing happens), then confirm.
        click(&tab, "#act-stop");
        wait_js(
            &tab,
            "the confirmation",
            "document.getElementById('confirm').open",
        );
        click(&tab, "#confirm-cancel");
        wait_js(
            &tab,
            "the dialog closed",
            "!document.getElementById('confirm').open",
        );
        click(&tab, "#act-stop");
        wait_js(
            &tab,
            "the confirmation",
            "document.getElementById('confirm').open",
        );
        click(&tab, "#confirm-ok");
        wait_js(&tab, "the stop result", "document.querySelector('#action-result .result')?.textContent.includes('stop: succeeded')");
        wait_js(
            &tab,
            "the stop row",
            "document.querySelector('#g-audit tbody tr')?.innerText.includes('stop')",
        );
        wait_js(
            &tab,
            "status stopped",
            "document.querySelector('#g-record .badge')?.textContent === 'stopped'",
        );
        let audit = eval(
            &tab,
            "[...document.querySelectorAll('#g-audit tbody tr')].map(r => r.cells[2].textContent)",
        );
        assert_eq!(
            audit,
            serde_json::json!(["stop", "restart", "start"]),
            "newest first"
        );
        accessibility_smoke(&tab, "game after stop");
        screenshot(&tab, "5-game-stopped");

        // A refused action shows the recorded refusal: patching a stopped
        // game is a conflict.
        type_into(&tab, "#patch-image", &image("1.0.1"));
        click(&tab, "#act-patch");
        wait_js(
            &tab,
            "the confirmation",
            "document.getElementById('confirm').open",
        );
        click(&tab, "#confirm-ok");
        wait_js(&tab, "the refusal", "document.querySelector('#action-result .result.failure')?.textContent.includes('conflict')");

        // Signing out forgets the token.
        click(&tab, "#logout");
        wait_js(&tab, "the login form", "document.getElementById('token')");
        assert_eq!(eval(&tab, "sessionStorage.length"), 0);
    });
    browser_part.await.expect("the browser session");

    // The service agrees with what the page showed.
    let ops: Vec<String> = app
        .operation_rows(&game)
        .await
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r.get::<_, String>("op_kind"),
                r.get::<_, String>("outcome")
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            "start:success",
            "restart:success",
            "stop:success",
            "patch:failure"
        ]
    );
}

/// The login page has its own small check (no badges there yet).
fn accessibility_smoke_login(tab: &Tab) {
    let v = eval(
        tab,
        "({ lang: document.documentElement.lang, h1: document.querySelectorAll('h1').length, label: document.getElementById('token').labels.length })",
    );
    assert_eq!(
        v,
        serde_json::json!({ "lang": "en", "h1": 1, "label": 1 }),
        "login page"
    );
}
