//! A tiny HTTP/1.1 server and CONNECT proxy on loopback for the download tests: serves
//! files with Range/If-Range, and can be told to fail with 500, drop the connection halfway,
//! ignore Range or stall, while recording every request it saw.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How one path is served.
#[derive(Clone, Default)]
pub struct Served {
    pub body: Vec<u8>,
    pub etag: Option<String>,
    /// Honour `Range` (otherwise always send 200 with the whole body).
    pub ranges: bool,
    /// Answer this many requests with 500 first.
    pub fail_500: usize,
    /// For this many requests, send the headers (full length) and only this many body
    /// bytes, then close the connection.
    pub drop_after: Option<(usize, usize)>,
    /// Read the request and say nothing for this long (bounded), then close.
    pub stall: Option<Duration>,
    /// Send the headers (full length), then one body byte per interval.
    pub dribble: Option<Duration>,
    /// Answer 200 without a length and stream zeros until the client goes away.
    pub endless: bool,
}

impl Served {
    pub fn file(body: &[u8]) -> Served {
        Served {
            body: body.to_vec(),
            etag: Some("\"v1\"".into()),
            ranges: true,
            ..Served::default()
        }
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub status: u16,
}

#[derive(Default)]
struct State {
    files: HashMap<String, Served>,
    seen: Vec<Seen>,
}

pub struct Server {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || handle(conn, &st));
            }
        });
        Server {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn serve(&self, path: &str, served: Served) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(path.to_string(), served);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads a request head; returns the request line and lower-cased headers.
fn read_head(r: &mut BufReader<TcpStream>) -> Option<(String, HashMap<String, String>)> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    if line.is_empty() {
        return None;
    }
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Some((line.trim_end().to_string(), headers))
}

fn handle(conn: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut w = conn;
    let Some((line, headers)) = read_head(&mut reader) else {
        return;
    };
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let range = headers.get("range").cloned();
    let if_range = headers.get("if-range").cloned();
    let mut st = state.lock().unwrap();
    let record = |st: &mut State, status| {
        st.seen.push(Seen {
            path: path.clone(),
            range: range.clone(),
            if_range: if_range.clone(),
            status,
        })
    };
    let Some(served) = st.files.get_mut(&path) else {
        record(&mut st, 404);
        drop(st);
        respond(&mut w, 404, &[], b"not found");
        return;
    };
    if let Some(d) = served.stall {
        record(&mut st, 0);
        drop(st);
        std::thread::sleep(d);
        return;
    }
    if served.endless {
        record(&mut st, 200);
        drop(st);
        let _ = w.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        let chunk = vec![0u8; 64 << 10];
        while w.write_all(&chunk).is_ok() {}
        return;
    }
    if let Some(every) = served.dribble {
        record(&mut st, 200);
        drop(st);
        let body = served_body(state, &path);
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = w.write_all(head.as_bytes());
        for b in body {
            if w.write_all(&[b]).and_then(|_| w.flush()).is_err() {
                return;
            }
            std::thread::sleep(every);
        }
        return;
    }
    if served.fail_500 > 0 {
        served.fail_500 -= 1;
        record(&mut st, 500);
        drop(st);
        respond(&mut w, 500, &[], b"boom");
        return;
    }
    let served_now = served.clone();
    if let Some((times, n)) = served.drop_after.as_mut()
        && *times > 0
    {
        *times -= 1;
        let n = *n;
        record(&mut st, 200);
        drop(st);
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n{}Connection: close\r\n\r\n",
            served_now.body.len(),
            etag_header(&served_now)
        );
        let _ = w.write_all(head.as_bytes());
        let _ = w.write_all(&served_now.body[..n]);
        let _ = w.flush();
        let _ = w.shutdown(Shutdown::Both);
        return;
    }
    let body = &served_now.body;
    let start = range
        .as_deref()
        .filter(|_| served_now.ranges)
        .filter(|_| if_range.is_none() || if_range == served_now.etag)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse::<usize>().ok());
    let etag = etag_header(&served_now);
    match start {
        Some(s) if s >= body.len() => {
            record(&mut st, 416);
            drop(st);
            let cr = format!("Content-Range: bytes */{}\r\n", body.len());
            respond(&mut w, 416, &[&cr, &etag], b"");
        }
        Some(s) => {
            record(&mut st, 206);
            drop(st);
            let cr = format!(
                "Content-Range: bytes {}-{}/{}\r\n",
                s,
                body.len() - 1,
                body.len()
            );
            respond(&mut w, 206, &[&cr, &etag], &body[s..]);
        }
        None => {
            record(&mut st, 200);
            drop(st);
            respond(&mut w, 200, &[&etag], body);
        }
    }
}

fn served_body(state: &Mutex<State>, path: &str) -> Vec<u8> {
    state
        .lock()
        .unwrap()
        .files
        .get(path)
        .map(|s| s.body.clone())
        .unwrap_or_default()
}

fn etag_header(s: &Served) -> String {
    s.etag
        .as_ref()
        .map(|e| format!("ETag: {e}\r\n"))
        .unwrap_or_default()
}

fn respond(w: &mut TcpStream, status: u16, extra: &[&str], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\nAccept-Ranges: bytes\r\n",
        body.len()
    );
    for e in extra {
        head.push_str(e);
    }
    head.push_str("\r\n");
    let _ = w.write_all(head.as_bytes());
    let _ = w.write_all(body);
    let _ = w.flush();
}

/// An HTTP proxy that records what it was asked and tunnels CONNECT requests (what ureq
/// sends for every proxied URL, http:// included).
pub struct Proxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    pub fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        // Leaks one accept thread per test; the process ends with the test binary.
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || tunnel(conn, &s));
            }
        });
        Proxy { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn tunnel(conn: TcpStream, seen: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut client = conn;
    let Some((line, _)) = read_head(&mut reader) else {
        return;
    };
    seen.lock().unwrap().push(line.clone());
    let mut parts = line.split_whitespace();
    if parts.next() != Some("CONNECT") {
        let _ = client.write_all(b"HTTP/1.1 405 CONNECT only\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    let target = parts.next().unwrap_or_default().to_string();
    let Ok(upstream) = TcpStream::connect(&target) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
    // Anything the client sent after the head is already in `reader`'s buffer.
    let buffered = reader.buffer().to_vec();
    let mut up_w = upstream.try_clone().unwrap();
    let _ = up_w.write_all(&buffered);
    let mut up_r = upstream;
    let mut client_w = client.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let _ = std::io::copy(&mut up_r, &mut client_w);
        let _ = client_w.shutdown(Shutdown::Both);
    });
    let mut client_r = reader.into_inner();
    let mut buf = [0u8; 8192];
    loop {
        match client_r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if up_w.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = up_w.shutdown(Shutdown::Write);
    let _ = t.join();
}
