//! The embedded web client in a real browser: headless Chromium (Debian's `chromium`), driven
//! over the DevTools protocol, each person in a tab of their own (separate storage), at a
//! desktop's size and a phone's. With CHATSERVER_SCREENSHOTS=DIR the tests also leave
//! screenshots of the main screens there, to be looked at.
//!
//! Skipped with a message when Chromium is not installed, unless CHATSERVER_REQUIRE_BROWSER
//! is set (as `.ci/run` does, after installing it), in which case its absence is a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const STEP: Duration = Duration::from_secs(20);

/// A browser window's size.
#[derive(Clone, Copy, Debug)]
struct Size {
    name: &'static str,
    width: u32,
    height: u32,
    mobile: bool,
}

const DESKTOP: Size = Size {
    name: "desktop",
    width: 1280,
    height: 800,
    mobile: false,
};
const PHONE: Size = Size {
    name: "phone",
    width: 390,
    height: 844,
    mobile: true,
};

/// Chromium, or `None` (with a message) where it is not installed and not required.
async fn chromium() -> Option<Browser> {
    let Some(binary) = find_chromium() else {
        if std::env::var_os("CHATSERVER_REQUIRE_BROWSER").is_some() {
            panic!("CHATSERVER_REQUIRE_BROWSER is set but Chromium is not installed");
        }
        eprintln!("skipping a browser test: Chromium not found (apt-get install chromium)");
        return None;
    };
    Some(Browser::launch(&binary).await)
}

fn find_chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var("CHROMIUM").ok(),
        Some("/usr/bin/chromium".into()),
        Some("/usr/bin/chromium-browser".into()),
        Some("/usr/bin/google-chrome".into()),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Chromium with a throwaway profile, killed on drop.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    cdp: Cdp,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The DevTools endpoint Chromium writes into its profile once it listens, or `None` after
/// `within`.
async fn devtools_url(profile: &Path, within: Duration) -> Option<String> {
    let file = profile.join("DevToolsActivePort");
    tokio::time::timeout(within, async {
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    return format!("ws://127.0.0.1:{port}{path}");
                }
            }
            // Chromium gives no other signal that it is listening; poll its file.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .ok()
}

impl Browser {
    /// Chromium, started afresh up to three times: on a loaded two-core machine a start now
    /// and then never gets as far as listening.
    async fn launch(binary: &Path) -> Browser {
        let mut logs = Vec::new();
        for _ in 0..3 {
            let profile = tempfile::tempdir().unwrap();
            let log = std::fs::File::create(profile.path().join("stderr.log")).unwrap();
            let mut child = Command::new(binary)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--remote-debugging-port=0",
                    "about:blank",
                ])
                .arg(format!("--user-data-dir={}", profile.path().display()))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start chromium");
            if let Some(url) = devtools_url(profile.path(), STEP).await {
                let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
                    .await
                    .expect("connect to chromium");
                return Browser {
                    child,
                    _profile: profile,
                    cdp: Cdp { ws, next_id: 0 },
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            logs.push(
                std::fs::read_to_string(profile.path().join("stderr.log")).unwrap_or_default(),
            );
        }
        panic!(
            "chromium did not start its DevTools endpoint in three tries:\n{}",
            logs.join("\n---\n")
        );
    }

    /// A new tab at `url`, in its own browser context (separate storage), `size` big, with
    /// the page helpers (`window.__t`, see page.rs) and an error log installed before the page.
    async fn tab(&mut self, url: &str, size: Size) -> String {
        let context = self
            .cdp
            .call(None, "Target.createBrowserContext", json!({}))
            .await["browserContextId"]
            .clone();
        let target = self
            .cdp
            .call(
                None,
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": context}),
            )
            .await["targetId"]
            .clone();
        let session = self
            .cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .await["sessionId"]
            .as_str()
            .unwrap()
            .to_string();
        let s = Some(session.as_str());
        let metrics = json!({"width": size.width, "height": size.height,
            "deviceScaleFactor": 1, "mobile": size.mobile});
        self.cdp
            .call(s, "Emulation.setDeviceMetricsOverride", metrics)
            .await;
        if size.mobile {
            self.cdp
                .call(
                    s,
                    "Emulation.setTouchEmulationEnabled",
                    json!({"enabled": true}),
                )
                .await;
        }
        self.cdp.call(s, "Page.enable", json!({})).await;
        self.cdp
            .call(
                s,
                "Page.addScriptToEvaluateOnNewDocument",
                json!({"source": page::HELPERS}),
            )
            .await;
        self.cdp.call(s, "Page.navigate", json!({"url": url})).await;
        session
    }

    /// A PNG of what the tab shows.
    async fn screenshot(&mut self, session: &str) -> Vec<u8> {
        use base64::Engine;
        let shot = self
            .cdp
            .call(
                Some(session),
                "Page.captureScreenshot",
                json!({"format": "png"}),
            )
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 screenshot")
    }

    /// Evaluates `expression` in the tab (awaiting a returned promise) and returns its value.
    /// A new tab can still swap its first blank document for the page while we ask; then the
    /// evaluation is lost with its context and is asked again (a bounded number of times).
    async fn eval(&mut self, session: &str, expression: &str) -> Value {
        let params = json!({"expression": expression, "awaitPromise": true, "returnByValue": true});
        let mut attempts = 0;
        let result = loop {
            match self
                .cdp
                .try_call(Some(session), "Runtime.evaluate", params.clone())
                .await
            {
                Ok(result) => break result,
                Err(err) if attempts < 20 && is_context_swap(&err) => attempts += 1,
                Err(err) => panic!("Runtime.evaluate: {err}"),
            }
        };
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression}\nthrew: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Resolves once `condition` (a JS expression) is truthy in the page, re-checked on every
    /// DOM change and every 100 ms inside the page; fails after STEP.
    async fn wait_for(&mut self, session: &str, condition: &str, what: &str) {
        let script = format!(
            r#"new Promise((resolve, reject) => {{
                const check = () => {{ try {{ return !!({condition}); }} catch (e) {{ return false; }} }};
                if (check()) return resolve(true);
                let observer, timer;
                const recheck = () => {{
                    if (check()) {{ observer.disconnect(); clearInterval(timer); resolve(true); }}
                }};
                observer = new MutationObserver(recheck);
                observer.observe(document, {{subtree: true, childList: true, characterData: true, attributes: true}});
                // Not every change is a DOM mutation (readyState, for one).
                document.addEventListener('readystatechange', recheck);
                timer = setInterval(recheck, 100);
                setTimeout(() => {{ observer.disconnect(); clearInterval(timer); resolve(check()); }}, {ms});
            }})"#,
            ms = STEP.as_millis() - 1000,
        );
        let ok = tokio::time::timeout(STEP, self.eval(session, &script))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
        if ok != Value::Bool(true) {
            let page = self
                .eval(session, "document.body ? document.body.innerText : ''")
                .await;
            panic!("{what}: not seen within {STEP:?}; the page shows:\n{page}");
        }
    }
}

struct Cdp {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

/// The errors of an evaluation whose document was replaced while it ran.
fn is_context_swap(err: &Value) -> bool {
    let message = err["message"].as_str().unwrap_or("");
    [
        "context was destroyed",
        "Cannot find context",
        "navigated or closed",
    ]
    .iter()
    .any(|m| message.contains(m))
}

impl Cdp {
    /// One DevTools command; events that arrive meanwhile are skipped.
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        match self.try_call(session, method, params).await {
            Ok(result) => result,
            Err(err) => panic!("{method}: {err}"),
        }
    }

    /// One DevTools command: its result, or the error Chromium answered.
    async fn try_call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .expect("send to chromium");
        loop {
            let frame = tokio::time::timeout(STEP, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("chromium did not answer {method}"))
                .expect("chromium closed the connection")
                .expect("read from chromium");
            let Message::Text(text) = frame else { continue };
            let reply: Value = serde_json::from_str(text.as_str()).unwrap();
            if reply["id"] == id {
                if let Some(err) = reply.get("error") {
                    return Err(err.clone());
                }
                return Ok(reply["result"].clone());
            }
        }
    }
}

mod attachments;
mod classroom;
mod docs;
mod extras;
mod live;
mod page;
