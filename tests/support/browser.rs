//! A real headless Chromium driven over the DevTools protocol, for the web UI's browser tests.
//!
//! [`Browser::launch`] starts Debian's `/usr/bin/chromium` (or `$CALLTRAIL_CHROMIUM`) headless
//! with a fresh profile, no sandbox, no GPU and none of its background traffic (component
//! updates, sync, safe-browsing lists: the machine is air-gapped, and a test must see only the
//! page's own requests), on a DevTools port the OS picks, read back from
//! `<profile>/DevToolsActivePort`. `headless_chrome` (a synchronous CDP client) drives one tab:
//! navigate, evaluate JavaScript returning JSON, wait for a JavaScript predicate, click, set
//! input and select values, screenshots as PNG files (`target/ui-screenshots/`), downloads into
//! a temporary directory, and the network log: every URL the page requested
//! (`Network.requestWillBeSent`). The browser's whole process group is killed on drop.
//!
//! CDP commands are sent as JSON ([`cdp`]) rather than through the crate's generated structs,
//! so the harness does not depend on which optional fields a protocol revision adds.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::types::{Event, Method};
use serde_json::{Value, json};

/// The flags every test browser runs with (besides the profile and the DevTools port).
pub const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one CDP command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Polling interval of [`Browser::wait_for`].
const POLL: Duration = Duration::from_millis(50);

/// Declares a CDP command whose parameters and result are plain JSON.
macro_rules! cdp_methods {
    ($($ty:ident = $name:literal;)*) => {$(
        #[derive(Debug, serde::Serialize)]
        #[serde(transparent)]
        struct $ty(Value);
        impl Method for $ty {
            const NAME: &'static str = $name;
            type ReturnObject = Value;
        }
    )*};
}

cdp_methods! {
    Evaluate = "Runtime.evaluate";
    NetworkEnable = "Network.enable";
    Navigate = "Page.navigate";
    CaptureScreenshot = "Page.captureScreenshot";
    SetDeviceMetrics = "Emulation.setDeviceMetricsOverride";
    SetDownloadBehavior = "Browser.setDownloadBehavior";
}

/// A running headless Chromium with one tab.
pub struct Browser {
    child: Child,
    profile: tempfile::TempDir,
    downloads: tempfile::TempDir,
    /// Kept for the connection's lifetime.
    _cdp: headless_chrome::Browser,
    tab: Arc<headless_chrome::Tab>,
    requests: Arc<Mutex<Vec<String>>>,
}

/// The Chromium binary: `$CALLTRAIL_CHROMIUM`, else Debian's.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("CALLTRAIL_CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), Into::into)
}

/// Where screenshots go: `$CARGO_TARGET_DIR/ui-screenshots` (else `target/ui-screenshots`).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    target.join("ui-screenshots")
}

impl Browser {
    /// Starts Chromium and opens a tab with the network log on, 1366 x 900 CSS pixels.
    pub fn launch() -> Browser {
        let bin = chromium_path();
        assert!(
            bin.exists(),
            "{} is missing: scripts/test installs Debian's chromium",
            bin.display()
        );
        let profile = tempfile::Builder::new()
            .prefix("calltrail-chromium-")
            .tempdir()
            .unwrap();
        let downloads = tempfile::Builder::new()
            .prefix("calltrail-downloads-")
            .tempdir()
            .unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--remote-debugging-port=0")
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        // Its own process group, so that drop ends the renderers and helpers too.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));

        // Line 1: the port; line 2: the browser target's path.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + START_TIMEOUT;
        let ws_url = loop {
            let text = std::fs::read_to_string(&port_file).unwrap_or_default();
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                break format!("ws://127.0.0.1:{}{}", port.trim(), path.trim());
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "chromium exited before it listened ({status}):\n{}",
                    std::fs::read_to_string(profile.path().join("chromium.log"))
                        .unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                let _ = kill_group(&mut child);
                panic!("chromium wrote no DevToolsActivePort within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };

        // The connection drops after this long without any message; tests pause between pages.
        let cdp = headless_chrome::Browser::connect_with_timeout(ws_url, Duration::from_secs(600))
            .unwrap_or_else(|e| panic!("cannot connect to chromium's DevTools: {e}"));
        let tab = cdp.new_tab().expect("open a tab");
        tab.set_default_timeout(COMMAND_TIMEOUT);

        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        tab.add_event_listener(Arc::new(move |event: &Event| {
            if let Event::NetworkRequestWillBeSent(e) = event {
                log.lock().unwrap().push(e.params.request.url.clone());
            }
        }))
        .unwrap();
        let browser = Browser {
            child,
            profile,
            downloads,
            _cdp: cdp,
            tab,
            requests,
        };
        browser.cdp(NetworkEnable(json!({})));
        browser.cdp(SetDeviceMetrics(json!({
            "width": 1366, "height": 900, "deviceScaleFactor": 1, "mobile": false,
        })));
        browser.cdp(SetDownloadBehavior(json!({
            "behavior": "allow",
            "downloadPath": browser.downloads.path().to_str().unwrap(),
        })));
        browser
    }

    fn cdp<M>(&self, method: M) -> Value
    where
        M: Method<ReturnObject = Value> + serde::Serialize + std::fmt::Debug,
    {
        let name = M::NAME;
        self.tab
            .call_method(method)
            .unwrap_or_else(|e| panic!("CDP {name} failed: {e}"))
    }

    /// Loads `url` (a new document; for a hash change on the same page use [`Browser::eval`]).
    pub fn goto(&self, url: &str) {
        let r = self.cdp(Navigate(json!({ "url": url })));
        if let Some(e) = r.get("errorText").and_then(Value::as_str) {
            panic!("navigating to {url} failed: {e}");
        }
    }

    /// Evaluates `expression` in the page (promises awaited) and returns its value as JSON;
    /// panics with the page's exception.
    pub fn eval(&self, expression: &str) -> Value {
        self.try_eval(expression).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Browser::eval`], but returns the exception.
    pub fn try_eval(&self, expression: &str) -> Result<Value, String> {
        let r = self.cdp(Evaluate(json!({
            "expression": expression,
            "returnByValue": true,
            "awaitPromise": true,
        })));
        if let Some(e) = r.get("exceptionDetails") {
            let text = e
                .pointer("/exception/description")
                .or_else(|| e.get("text"))
                .cloned()
                .unwrap_or_default();
            return Err(format!("JavaScript `{expression}` threw: {text}"));
        }
        Ok(r.pointer("/result/value").cloned().unwrap_or(Value::Null))
    }

    /// Polls `expression` until it returns a truthy value (an exception counts as false) and
    /// returns that value; panics after `timeout` naming `what` and the last value.
    pub fn wait_for(&self, what: &str, expression: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.try_eval(expression);
            if let Ok(v) = &last
                && truthy(v)
            {
                return v.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "waited {timeout:?} for {what} (`{expression}`); last: {last:?}\npage: {}",
                    self.describe()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// The page's URL and its `main` element's state, for failure messages.
    pub fn describe(&self) -> String {
        self.try_eval(
            "JSON.stringify({url: location.href, \
             main: document.querySelector('main') && document.querySelector('main').outerHTML.slice(0, 600), \
             error: document.querySelector('#error') && document.querySelector('#error').textContent})",
        )
        .map_or_else(|e| e, |v| v.as_str().unwrap_or_default().to_owned())
    }

    /// Number of elements matching `selector`.
    pub fn count(&self, selector: &str) -> usize {
        let js = format!("document.querySelectorAll({}).length", js_str(selector));
        self.eval(&js).as_u64().unwrap() as usize
    }

    /// An attribute of the first element matching `selector` (`None`: no element or attribute).
    pub fn attr(&self, selector: &str, name: &str) -> Option<String> {
        let js = format!(
            "(() => {{ const e = document.querySelector({}); return e ? e.getAttribute({}) : null; }})()",
            js_str(selector),
            js_str(name)
        );
        self.eval(&js).as_str().map(str::to_owned)
    }

    /// The trimmed text of the first element matching `selector`; panics naming it when absent.
    pub fn text(&self, selector: &str) -> String {
        let js = format!(
            "(() => {{ const e = document.querySelector({}); return e ? e.textContent.trim() : null; }})()",
            js_str(selector)
        );
        match self.eval(&js) {
            Value::String(s) => s,
            _ => panic!("no element {selector}; page: {}", self.describe()),
        }
    }

    /// Clicks the first element matching `selector` with the mouse (scrolled into view first).
    pub fn click(&self, selector: &str) {
        let element = self.tab.find_element(selector).unwrap_or_else(|e| {
            panic!(
                "no element {selector} to click ({e}); page: {}",
                self.describe()
            )
        });
        element
            .click()
            .unwrap_or_else(|e| panic!("clicking {selector} failed: {e}"));
    }

    /// Sets the value of the input or select `selector` and dispatches `input` and `change`.
    pub fn set_value(&self, selector: &str, value: &str) {
        let js = format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return 'missing'; \
             e.focus(); e.value = {val}; \
             if (e.value !== {val}) return 'refused: ' + e.value; \
             e.dispatchEvent(new Event('input', {{bubbles: true}})); \
             e.dispatchEvent(new Event('change', {{bubbles: true}})); return 'ok'; }})()",
            sel = js_str(selector),
            val = js_str(value)
        );
        let r = self.eval(&js);
        assert_eq!(
            r,
            "ok",
            "setting {selector} to {value:?}: {r}; page: {}",
            self.describe()
        );
    }

    /// Saves a PNG of the whole page (up to 4000 px tall) as `<screenshot_dir>/<name>.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let size = self.eval(
            "[document.documentElement.scrollWidth, Math.min(4000, document.documentElement.scrollHeight)]",
        );
        let (w, h) = (size[0].as_f64().unwrap(), size[1].as_f64().unwrap());
        let r = self.cdp(CaptureScreenshot(json!({
            "format": "png",
            "captureBeyondViewport": true,
            "clip": { "x": 0, "y": 0, "width": w.max(1.0), "height": h.max(1.0), "scale": 1 },
        })));
        let data = r["data"].as_str().expect("screenshot data");
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}: not a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Every URL the page has requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// Where downloads land.
    pub fn download_dir(&self) -> &Path {
        self.downloads.path()
    }

    /// Waits until the download `name` is complete (no `.crdownload` left) and returns its path.
    pub fn wait_for_download(&self, name: &str, timeout: Duration) -> PathBuf {
        let path = self.downloads.path().join(name);
        let deadline = Instant::now() + timeout;
        loop {
            let partial = std::fs::read_dir(self.downloads.path())
                .unwrap()
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(".crdownload"));
            if path.is_file() && !partial {
                return path;
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = std::fs::read_dir(self.downloads.path())
                    .unwrap()
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                panic!(
                    "no complete download {name} within {timeout:?}; the directory holds {seen:?}"
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Chromium's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = kill_group(&mut self.child);
    }
}

/// SIGKILLs the process group `child` leads and reaps `child`.
fn kill_group(child: &mut Child) -> std::io::Result<()> {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    child.wait().map(drop)
}

/// `s` as a JavaScript string literal.
pub fn js_str(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}
