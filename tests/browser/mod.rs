//! Headless Chromium driven over the DevTools protocol for the browser tests: finding and
//! launching the binary (killed with its helpers on drop, even on panic), a small synchronous
//! CDP client over one websocket (flattened sessions), and page helpers (screenshots, real
//! mouse and keyboard input).

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::WebSocket;

pub const TIMEOUT: Duration = Duration::from_secs(30);

pub fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("COHORT_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in [
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// The browser process group and its profile; dropping it kills both, even on panic.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium forks helpers (zygote, renderer, GPU); they share its process group.
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn launch(binary: &Path) -> (Browser, String) {
    let profile = tempfile::tempdir().expect("temp profile dir");
    let mut child = Command::new(binary)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--remote-debugging-port=0",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--mute-audio",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start chromium");
    let stderr = child.stderr.take().expect("stderr is piped");
    let browser = Browser {
        child,
        _profile: profile,
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Keep draining stderr after the URL so Chromium never blocks on a full pipe.
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && let Some(at) = line.find("ws://") {
                let _ = tx.send(line[at..].trim().to_string());
                sent = true;
            }
        }
    });
    let url = rx
        .recv_timeout(TIMEOUT)
        .expect("chromium printed `DevTools listening on ws://...` within 30 s");
    (browser, url)
}

pub struct Cdp {
    ws: WebSocket<TcpStream>,
    next: u64,
    /// Every event received, in order.
    pub events: Vec<Value>,
}

impl Cdp {
    pub fn connect(url: &str) -> Cdp {
        let host = url
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .expect("a ws:// URL");
        let stream = TcpStream::connect(host).expect("connect to DevTools");
        stream.set_read_timeout(Some(TIMEOUT)).expect("set timeout");
        let (ws, _) = tungstenite::client(url, stream).expect("websocket handshake");
        // From now on reads poll, so waiting loops can check their deadlines.
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("set timeout");
        Cdp {
            ws,
            next: 0,
            events: Vec::new(),
        }
    }

    /// One message, or `None` after the read timeout.
    pub fn read(&mut self) -> Option<Value> {
        match self.ws.read() {
            Ok(tungstenite::Message::Text(t)) => Some(serde_json::from_str(&t).expect("JSON")),
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("DevTools connection: {e}"),
        }
    }

    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .expect("send to DevTools");
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            let Some(v) = self.read() else { continue };
            if v["id"] == json!(id) {
                if let Some(err) = v.get("error") {
                    panic!("{method} failed: {err}");
                }
                return v["result"].clone();
            }
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
        panic!("{method}: no answer within {TIMEOUT:?}");
    }

    /// Waits for an event `method` among those received from index `since` on (events stay
    /// recorded for the final checks, so an older one must not count).
    pub fn wait_event(&mut self, method: &str, since: usize) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(e) = self.events[since..]
                .iter()
                .find(|e| e["method"] == json!(method))
            {
                return e.clone();
            }
            assert!(Instant::now() < deadline, "no {method} within {TIMEOUT:?}");
            if let Some(v) = self.read()
                && v.get("method").is_some()
            {
                self.events.push(v);
            }
        }
    }

    /// Collects events for a short while (late console messages, requests).
    pub fn drain(&mut self, dur: Duration) {
        let until = Instant::now() + dur;
        while Instant::now() < until {
            if let Some(v) = self.read()
                && v.get("method").is_some()
            {
                self.events.push(v);
            }
        }
    }

    pub fn eval(&mut self, session: &str, expr: &str) -> Value {
        let r = self.call(
            Some(session),
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("evaluating {expr}: {ex}");
        }
        r["result"]["value"].clone()
    }
}

pub fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= u32::from(val(*c)) << (18 - 6 * i);
        }
        let take = chunk.len() - 1;
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    out
}

/// A PNG of the viewport (`None`), or of 900 CSS pixels from the top of `from` (the whole
/// page for `body`).
pub fn screenshot(cdp: &mut Cdp, session: &str, path: &Path, from: Option<&str>) {
    let mut params = json!({"format": "png"});
    if let Some(sel) = from {
        let r = cdp.eval(
            session,
            &format!(
                "(() => {{ const r = document.querySelector({sel:?}).getBoundingClientRect(); \
                 return [r.top + window.scrollY, r.height]; }})()"
            ),
        );
        let top = r[0].as_f64().expect("top");
        let height = if sel == "body" {
            let m = cdp.call(Some(session), "Page.getLayoutMetrics", json!({}));
            m["cssContentSize"]["height"]
                .as_f64()
                .expect("content height")
        } else {
            900.0
        };
        params["captureBeyondViewport"] = json!(true);
        params["clip"] = json!({"x": 0, "y": top, "width": 1280, "height": height, "scale": 1});
    }
    let shot = cdp.call(Some(session), "Page.captureScreenshot", params);
    let png = base64_decode(shot["data"].as_str().expect("png data"));
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(path, png).expect("write screenshot");
}

pub fn rows(cdp: &mut Cdp, session: &str) -> Vec<String> {
    let v = cdp.eval(
        session,
        "Array.from(document.querySelectorAll('#board tbody tr')).map(r => r.cells[1].querySelector('a').textContent)",
    );
    serde_json::from_value(v).expect("list of names")
}

/// Clicks the centre of `selector` with real mouse events.
pub fn click(cdp: &mut Cdp, session: &str, selector: &str) {
    let r = cdp.eval(
        session,
        &format!(
            "(() => {{ const e = document.querySelector({selector:?}); e.scrollIntoView({{block: 'center'}}); \
             const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        ),
    );
    let (x, y) = (r[0].as_f64().expect("x"), r[1].as_f64().expect("y"));
    for kind in ["mousePressed", "mouseReleased"] {
        cdp.call(
            Some(session),
            "Input.dispatchMouseEvent",
            json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
        );
    }
}

/// Focuses `selector` and presses Enter on the keyboard.
pub fn press_enter(cdp: &mut Cdp, session: &str, selector: &str) {
    cdp.eval(
        session,
        &format!("document.querySelector({selector:?}).focus()"),
    );
    for kind in ["keyDown", "keyUp"] {
        cdp.call(
            Some(session),
            "Input.dispatchKeyEvent",
            json!({"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"}),
        );
    }
}
