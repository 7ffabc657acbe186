//! The pages in a real browser: headless Chromium driven over the DevTools protocol (a small
//! CDP client over tungstenite) against a real node. The wallboard's numbers equal the API's
//! after a scripted burst; an agent signs in, accepts an offer with the keyboard, takes an
//! order and wraps up, all through the page. Screenshots go to
//! `target/tmp/ui-screenshots/` (or `$CALLGRID_SCREENSHOTS`), which git ignores.
//!
//! Ignored by default (needs Debian's `chromium`); `scripts/ci-browser.sh` runs it.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// A headless Chromium process with its own profile, killed on drop.
struct Chromium {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Chromium {
    fn start() -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_string());
        let mut child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,720",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium is installed (Debian package chromium)");
        let stderr = child.stderr.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("DevTools listening on ws://").nth(1) {
                    let _ = sender.send(rest.to_string());
                }
            }
        });
        let address = receiver
            .recv_timeout(WAIT)
            .expect("chromium printed its DevTools address");
        let port = address
            .split('/')
            .next()
            .and_then(|host| host.rsplit(':').next())
            .and_then(|port| port.parse().ok())
            .unwrap();
        Chromium {
            child,
            port,
            _profile: profile,
        }
    }

    /// A new page in a fresh browser context (its own cookies), 1280×720.
    fn page(&self) -> Page {
        let version: Value = ureq::get(&format!("http://127.0.0.1:{}/json/version", self.port))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        let mut browser = Cdp::connect(version["webSocketDebuggerUrl"].as_str().unwrap());
        let context = browser.call("Target.createBrowserContext", json!({}));
        let target = browser.call(
            "Target.createTarget",
            json!({"url": "about:blank", "browserContextId": context["browserContextId"]}),
        );
        let target = target["targetId"].as_str().unwrap();
        let mut cdp = Cdp::connect(&format!(
            "ws://127.0.0.1:{}/devtools/page/{target}",
            self.port
        ));
        cdp.call("Page.enable", json!({}));
        cdp.call("Runtime.enable", json!({}));
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 720, "deviceScaleFactor": 1, "mobile": false}),
        );
        Page {
            cdp,
            _browser: browser,
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One DevTools WebSocket: commands by id, events skipped (exceptions reported).
struct Cdp {
    socket: WebSocket<TcpStream>,
    next_id: u64,
}

impl Cdp {
    fn connect(url: &str) -> Cdp {
        let address = url.trim_start_matches("ws://").split('/').next().unwrap();
        let stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let (socket, _) = tungstenite::client(url, stream).unwrap();
        Cdp { socket, next_id: 1 }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket.send(Message::text(message)).unwrap();
        loop {
            let Message::Text(text) = self.socket.read().unwrap() else {
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str()).unwrap();
            if value["method"] == "Runtime.exceptionThrown" {
                panic!("page script error: {}", value["params"]["exceptionDetails"]);
            }
            if value["method"] == "Log.entryAdded" || value["method"] == "Runtime.consoleAPICalled"
            {
                eprintln!("page: {}", value["params"]);
            }
            if value["id"] == id {
                assert!(value["error"].is_null(), "{method}: {}", value["error"]);
                return value["result"].clone();
            }
        }
    }
}

struct Page {
    cdp: Cdp,
    _browser: Cdp,
}

impl Page {
    fn goto(&mut self, url: &str) {
        self.cdp.call("Page.navigate", json!({"url": url}));
        self.wait_for("document.readyState === 'complete'");
    }

    fn eval(&mut self, expression: &str) -> Value {
        let result = self.cdp.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    fn wait_for(&mut self, condition: &str) {
        let deadline = Instant::now() + WAIT;
        while self.eval(&format!("!!({condition})")) != Value::Bool(true) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {condition}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn text(&mut self, selector: &str) -> String {
        let value = self.eval(&format!(
            "(document.querySelector({}) || {{}}).textContent",
            json!(selector)
        ));
        value.as_str().unwrap_or_default().to_string()
    }

    fn fill(&mut self, id: &str, value: &str) {
        self.eval(&format!(
            "document.getElementById({}).value = {}",
            json!(id),
            json!(value)
        ));
    }

    /// Types `key` with Alt held, as a person would press the shortcut.
    fn alt_key(&mut self, key: char) {
        for kind in ["keyDown", "keyUp"] {
            self.cdp.call(
                "Input.dispatchKeyEvent",
                json!({"type": kind, "key": key.to_string(), "code": format!("Key{}", key.to_ascii_uppercase()), "modifiers": 1}),
            );
        }
    }

    fn sign_in(&mut self, token: &str) {
        self.wait_for("!document.getElementById('signin').hidden");
        self.fill("token", token);
        self.eval("document.getElementById('signin-form').requestSubmit()");
        self.wait_for("!document.getElementById('app').hidden");
        self.wait_for("document.getElementById('link').textContent === 'live'");
    }

    fn screenshot(&mut self, name: &str) {
        let shot = self
            .cdp
            .call("Page.captureScreenshot", json!({"format": "png"}));
        let bytes = base64_decode(shot["data"].as_str().unwrap());
        assert!(bytes.starts_with(b"\x89PNG"));
        let directory = screenshots();
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(directory.join(name), bytes).unwrap();
    }
}

fn screenshots() -> PathBuf {
    std::env::var_os("CALLGRID_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots"))
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |byte: u8| match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {byte}"),
    };
    let clean: Vec<u8> = text.bytes().filter(|byte| *byte != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut buffer = 0_u32;
        for (index, byte) in chunk.iter().enumerate() {
            buffer |= u32::from(value(*byte)) << (18 - 6 * index);
        }
        let bytes = buffer.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

fn percent(value: &Value) -> String {
    value
        .as_f64()
        .map(|value| format!("{:.1} %", value * 100.0))
        .unwrap_or_else(|| "–".to_string())
}

fn arrive(node: &Node, caller: &str, topic: &str) -> u64 {
    let (status, body) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": caller, "topic": topic})),
    );
    assert_eq!(status, 201, "{body}");
    body["contact"]["id"].as_u64().unwrap()
}

#[test]
#[ignore = "needs chromium (Debian package); run by scripts/ci-browser.sh"]
fn wallboard_shows_the_numbers_of_the_api_after_a_burst() {
    let (_directory, node) = single_site();
    let chromium = Chromium::start();
    let mut page = chromium.page();
    page.goto(&format!("{}/ui/", node.base));
    page.sign_in(SUPERVISOR);

    // The burst: anna answers one call and wraps it up, two callers wait, one abandons.
    ready(&node, "anna", ANNA);
    let first = arrive(&node, "+79160000001", "order");
    for caller in ["+79160000002", "+79160000003", "+79160000004"] {
        arrive(&node, caller, "price_availability");
    }
    let path = format!("/api/v1/agents/anna/contacts/{first}");
    assert_eq!(
        node.call("POST", &format!("{path}/accept"), Some(ANNA), None)
            .0,
        200
    );
    let answered = format!("/api/v1/contacts/{first}/answered");
    let anna = Some(json!({"agent": "anna"}));
    assert_eq!(node.call("POST", &answered, Some(GATEWAY), anna).0, 200);
    let last = arrive(&node, "+79160000005", "price_availability");
    let abandoned = format!("/api/v1/contacts/{last}/abandoned");
    assert_eq!(node.call("POST", &abandoned, Some(GATEWAY), None).0, 200);

    let mut expected = Vec::new();
    let matched = (0..100).any(|_| {
        let (_, queues) = node.call("GET", "/api/v1/supervisor/queues", Some(SUPERVISOR), None);
        let (_, report) = node.call("GET", "/api/v1/reports/intervals", Some(SUPERVISOR), None);
        let waiting: u64 = queues["queues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|queue| queue["in_queue"].as_u64().unwrap())
            .sum();
        let totals = &report["totals"];
        expected = vec![
            ("waiting", waiting.to_string()),
            ("offered", totals["counters"]["offered"].to_string()),
            ("answered", totals["counters"]["answered"].to_string()),
            ("sl-today", percent(&totals["service_level"])),
            ("abandon-today", percent(&totals["abandon_rate"])),
        ];
        let shown: Vec<(&str, String)> = expected
            .iter()
            .map(|(id, _)| (*id, page.text(&format!("[data-testid='{id}']"))))
            .collect();
        let line1_waiting = page.text("tr[data-queue='line1'] [data-testid='q-waiting']");
        let line1_api = queues["queues"][0]["in_queue"].to_string();
        // The callback for the abandoned caller is dialled by the site's callback tick, a
        // moment after the abandon: wait for the API to count it before comparing.
        let settled = expected[1].1 == "6";
        if settled
            && shown
                .iter()
                .zip(&expected)
                .all(|((_, shown), (_, expected))| shown == expected)
            && line1_waiting == line1_api
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
        false
    });
    page.screenshot("wallboard.png");
    let shown: Vec<String> = expected
        .iter()
        .map(|(id, _)| page.text(&format!("[data-testid='{id}']")))
        .collect();
    assert!(matched, "wallboard {shown:?} vs API {expected:?}");
    assert_ne!(expected[0].1, "0", "callers wait");
    assert_eq!(
        expected[1].1, "6",
        "five callers and the callback the test site creates for the one who abandoned"
    );
    assert_eq!(page.text("[data-testid='leader']"), "leader 1");
    // The SL curve is drawn as inline SVG.
    assert_eq!(
        page.eval("document.querySelectorAll('#curve svg path.sl').length"),
        json!(1)
    );
    // Every interval's point lies inside the chart (x from the interval's start in the day).
    let points = page.eval("document.querySelectorAll('#curve svg circle').length");
    assert!(points.as_u64().unwrap() >= 1, "{points}");
    let inside = page.eval(
        "Array.from(document.querySelectorAll('#curve svg circle')).every((c) => \
         +c.getAttribute('cx') >= 48 && +c.getAttribute('cx') <= 1192)",
    );
    assert_eq!(inside, json!(true));
}

#[test]
#[ignore = "needs chromium (Debian package); run by scripts/ci-browser.sh"]
fn agent_takes_an_order_and_wraps_up_through_the_page() {
    let (_directory, node) = single_site();
    let chromium = Chromium::start();
    let mut page = chromium.page();
    page.goto(&format!("{}/ui/agent", node.base));
    page.sign_in(ANNA);
    page.wait_for("document.getElementById('state').textContent === 'logged out'");
    page.eval("document.getElementById('login').click()");
    page.wait_for("!['logged out', '–'].includes(document.getElementById('state').textContent)");
    // Not ready shows its reason by name (the state is a name, the reason beside it).
    page.eval("document.getElementById('reason').value = 'other_work'");
    page.alt_key('n');
    page.wait_for("document.getElementById('state').textContent === 'not ready (other work)'");
    page.alt_key('r');
    page.wait_for("document.getElementById('state').textContent === 'available'");

    let caller = "+79161234567";
    let contact = arrive(&node, caller, "order");
    page.wait_for("!document.getElementById('offer').hidden");
    assert_eq!(page.text("#offer-caller"), caller);
    page.screenshot("agent-offer.png");
    page.alt_key('a');
    let answered = format!("/api/v1/contacts/{contact}/answered");
    eventually("the accept", || {
        let (status, _) = node.call(
            "POST",
            &answered,
            Some(GATEWAY),
            Some(json!({"agent": "anna"})),
        );
        (status == 200).then_some(())
    });
    page.wait_for("document.getElementById('current-stage').textContent === 'talking'");

    assert_eq!(
        page.eval("document.getElementById('order-caller').value"),
        json!(caller)
    );
    for (id, value) in [
        ("order-sku", "NUR-200"),
        ("order-name", "Nurofen 200 mg"),
        ("order-quantity", "2"),
        ("order-price", "250.50"),
        ("order-place", "apteka-7"),
    ] {
        page.fill(id, value);
    }
    page.eval("document.getElementById('order-form').requestSubmit()");
    page.wait_for("document.getElementById('order-result').textContent.includes('placed')");
    let (status, orders) = node.call(
        "GET",
        &format!("/api/v1/orders?caller={}", caller.replace('+', "%2B")),
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(status, 200, "{orders}");
    let text = orders.to_string();
    assert!(text.contains("NUR-200") && text.contains("25050"), "{text}");

    page.alt_key('e');
    page.wait_for("document.getElementById('current-stage').textContent === 'wrap_up'");
    page.eval("document.getElementById('disposition').value = 'order-taken'");
    page.screenshot("agent-wrap-up.png");
    page.alt_key('w');
    page.wait_for("document.getElementById('current').hidden");
    let (status, view) = node.call(
        "GET",
        &format!("/api/v1/contacts/{contact}"),
        Some(GATEWAY),
        None,
    );
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["wrap_up_code"], "order-taken");
    assert_eq!(view["stage"], "finished");
    page.screenshot("agent-done.png");
}

#[test]
#[ignore = "needs chromium (Debian package); run by scripts/ci-browser.sh"]
fn agent_replies_to_a_chat_through_the_page() {
    let (_directory, node) = single_site();
    let chromium = Chromium::start();
    let mut page = chromium.page();
    page.goto(&format!("{}/ui/agent", node.base));
    page.sign_in(ANNA);
    page.wait_for("document.getElementById('state').textContent === 'logged out'");
    page.eval("document.getElementById('login').click()");
    page.wait_for("!['logged out', '–'].includes(document.getElementById('state').textContent)");
    page.alt_key('r');
    page.wait_for("document.getElementById('state').textContent === 'available'");

    let (status, body) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": "+79165550078", "channel": "chat", "topic": "order"})),
    );
    assert_eq!(status, 201, "{body}");
    let contact = body["contact"]["id"].as_u64().unwrap();
    page.wait_for("!document.getElementById('offer').hidden");
    page.alt_key('a');
    let answered = format!("/api/v1/contacts/{contact}/answered");
    eventually("the accept", || {
        let (status, _) = node.call(
            "POST",
            &answered,
            Some(GATEWAY),
            Some(json!({"agent": "anna"})),
        );
        (status == 200).then_some(())
    });
    page.wait_for("!document.getElementById('chat-form').hidden");
    page.fill("chat-text", "Nurofen is in stock at apteka-7");
    page.eval("document.getElementById('chat-form').requestSubmit()");
    page.wait_for("document.getElementById('transcript').textContent.includes('apteka-7')");
    page.screenshot("agent-chat.png");

    let (status, view) = node.call(
        "GET",
        &format!("/api/v1/agents/anna/contacts/{contact}"),
        Some(ANNA),
        None,
    );
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["messages"][0]["from"], "agent", "{view}");
    assert_eq!(
        view["messages"][0]["text"], "Nurofen is in stock at apteka-7",
        "{view}"
    );
}

/// A finished call with a recording: anna answers, the gateway names the recording and ends
/// it, anna wraps up; returns the contact once the ledger shows it ended.
fn finished_call_with_recording(node: &Node, caller: &str, recording: &str) -> u64 {
    ready(node, "anna", ANNA);
    let contact = arrive(node, caller, "order");
    let desktop = format!("/api/v1/agents/anna/contacts/{contact}");
    let (status, body) = node.call("POST", &format!("{desktop}/accept"), Some(ANNA), None);
    assert_eq!(status, 200, "{body}");
    let (status, body) = node.call(
        "POST",
        &format!("/api/v1/contacts/{contact}/answered"),
        Some(GATEWAY),
        Some(json!({"agent": "anna"})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = node.call(
        "POST",
        &format!("/api/v1/contacts/{contact}/ended"),
        Some(GATEWAY),
        Some(json!({"recording_ref": recording})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = node.call(
        "POST",
        &format!("{desktop}/wrap-up"),
        Some(ANNA),
        Some(json!({"code": "order-taken"})),
    );
    assert_eq!(status, 200, "{body}");
    eventually("the ledger to show the call ended", || {
        let (_, entry) = node.call(
            "GET",
            &format!("/api/v1/ledger/contacts/{contact}"),
            Some(SUPERVISOR),
            None,
        );
        (entry["stage"] == "ended" && entry["recording_ref"] == recording).then_some(())
    });
    contact
}

#[test]
#[ignore = "needs chromium (Debian package); run by scripts/ci-browser.sh"]
fn supervisor_scores_a_call_on_the_qa_page_and_sees_it_in_the_agent_report() {
    let (_directory, node) = single_site();
    let recording = "https://pbx.example/recordings/call-42.ogg";
    let contact = finished_call_with_recording(&node, "+79160000042", recording);
    let chromium = Chromium::start();
    let mut page = chromium.page();
    page.goto(&format!("{}/ui/qa", node.base));
    page.wait_for("!document.getElementById('signin').hidden");
    page.fill("token", SUPERVISOR);
    page.eval("document.getElementById('signin-form').requestSubmit()");
    page.wait_for("!document.getElementById('app').hidden");
    let row = format!("tr[data-contact='{contact}']");
    page.wait_for(&format!("document.querySelector({})", json!(row)));
    assert_eq!(
        page.eval(&format!(
            "document.querySelector({}).href",
            json!(format!("{row} a"))
        )),
        json!(recording),
        "the recording opens from the list"
    );
    assert_eq!(page.text(&format!("{row} [data-testid='reviews']")), "0");
    page.eval(&format!(
        "document.querySelector({}).click()",
        json!(format!("{row} button.score"))
    ));
    page.wait_for("!document.getElementById('review-form').hidden");
    // Everything full marks but drug information 6 of 10 (weight 3 of 7): 5.8 / 7.
    page.fill("score-drug_information", "6");
    page.fill(
        "review-comment",
        "analogue explained; dose not repeated back",
    );
    page.screenshot("qa-form.png");
    page.eval("document.getElementById('review-form').requestSubmit()");
    page.wait_for("document.getElementById('review-result').textContent.includes('saved')");
    let anna = "tr[data-agent='anna']";
    page.wait_for(&format!(
        "(document.querySelector({}) || {{}}).textContent === '1'",
        json!(format!("{anna} [data-testid='agent-reviews']"))
    ));
    page.screenshot("qa-reviewed.png");
    let shown = page.text(&format!("{anna} [data-testid='agent-score']"));
    assert_eq!(shown, "82.9 %", "5.8 of 7 weighted points");
    assert_eq!(page.text(&format!("{row} [data-testid='reviews']")), "1");

    // The API's agent report says the same.
    let (status, report) = node.call("GET", "/api/v1/reports/agents", Some(SUPERVISOR), None);
    assert_eq!(status, 200, "{report}");
    let row = report["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["login"] == "anna")
        .unwrap_or_else(|| panic!("anna in {report}"));
    assert_eq!(row["reviews"], 1, "{report}");
    let mean = row["review_score_percent_mean"].as_f64().unwrap();
    assert!((mean - 580.0 / 7.0).abs() < 1e-9, "{mean}");
    let (_, reviews) = node.call(
        "GET",
        &format!("/api/v1/contacts/{contact}/reviews"),
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(
        reviews["reviews"][0]["comment"], "analogue explained; dose not repeated back",
        "{reviews}"
    );
    assert_eq!(reviews["reviews"][0]["recording_ref"], recording);
}
