//! A misbehaving HTTP proxy on 127.0.0.1 in front of a test registry: it logs
//! requests, and on demand flips a byte in blobs, slows them down, drops the
//! connection mid-blob, ignores `Range`, answers blob GETs with 429 Too Many
//! Requests, rewrites the Content-Type of manifests, serves one manifest's body for
//! another, redirects
//! blob GETs to a second listener (a "CDN") that records the headers it receives
//! and fetches from the registry like a presigned URL, or fails a blob upload's
//! PATCH. It tells the registry the address the client used (`X-Forwarded-Host`),
//! so the upload locations the registry hands out lead back through the proxy.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the proxy or the CDN saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
}

impl Logged {
    /// Whether this is a blob download.
    pub fn is_blob_get(&self) -> bool {
        self.method == "GET" && self.path.contains("/blobs/sha256:")
    }

    /// Whether this is a manifest download.
    pub fn is_manifest_get(&self) -> bool {
        self.method == "GET" && self.path.contains("/manifests/")
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Switches for misbehaviour; all off by default.
#[derive(Default)]
pub struct Faults {
    /// Flip the first body byte of every blob response.
    pub corrupt_blobs: AtomicBool,
    /// Sleep this many milliseconds per 16 KiB of blob body.
    pub throttle_ms: AtomicU64,
    /// Close the connection after this many blob body bytes, once (0 = never).
    pub drop_after: AtomicU64,
    /// Forward blob GETs without their `Range` header, as a registry that does not
    /// support ranges: the answer is the whole blob with 200 (the log still shows
    /// the `Range` asked for).
    pub strip_range: AtomicBool,
    /// Redirect blob GETs to the CDN listener.
    pub redirect_blobs: AtomicBool,
    /// Answer this many blob GETs with `429 Too Many Requests` and `Retry-After: 1`
    /// (counted down; 0 = never).
    pub too_many_requests: AtomicU64,
    /// Replace the `Content-Type` of successful manifest GETs with this.
    pub manifest_content_type: Mutex<Option<String>>,
    /// `(key, other)`: a manifest GET for tag or digest `key` is answered with the
    /// registry's headers for `key` (`Docker-Content-Digest` included) but the body
    /// of the manifest `other` (a tag or digest in the same repository).
    pub swap_manifest: Mutex<Option<(String, String)>>,
    /// Answer the Nth upload PATCH from now (1 = the next one; 0 = never) with 500,
    /// its body read but not forwarded: a chunk the registry never got. Counted down.
    pub fail_patch: AtomicU64,
}

/// The running proxy (and CDN); stops accepting on drop.
pub struct Proxy {
    /// `127.0.0.1:PORT` of the proxy: pull through this.
    pub addr: String,
    /// `127.0.0.1:PORT` of the CDN listener.
    pub cdn_addr: String,
    /// Requests to the proxy.
    pub log: Arc<Mutex<Vec<Logged>>>,
    /// Requests to the CDN.
    pub cdn_log: Arc<Mutex<Vec<Logged>>>,
    /// Fault switches.
    pub faults: Arc<Faults>,
    stop: Arc<AtomicBool>,
}

struct Shared {
    upstream: String,
    cdn_addr: String,
    log: Arc<Mutex<Vec<Logged>>>,
    cdn_log: Arc<Mutex<Vec<Logged>>>,
    faults: Arc<Faults>,
    /// "Presigned URL" tickets: the registry auth to use for a redirected request.
    tickets: Mutex<HashMap<String, Option<String>>>,
    next_ticket: AtomicU64,
}

impl Proxy {
    /// Starts a proxy forwarding to `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> Proxy {
        let proxy = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let cdn = TcpListener::bind("127.0.0.1:0").expect("bind cdn");
        let addr = proxy.local_addr().expect("addr").to_string();
        let cdn_addr = cdn.local_addr().expect("addr").to_string();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            cdn_addr: cdn_addr.clone(),
            log: Arc::new(Mutex::new(Vec::new())),
            cdn_log: Arc::new(Mutex::new(Vec::new())),
            faults: Arc::new(Faults::default()),
            tickets: Mutex::new(HashMap::new()),
            next_ticket: AtomicU64::new(1),
        });
        let stop = Arc::new(AtomicBool::new(false));
        for (listener, is_cdn) in [(proxy, false), (cdn, true)] {
            let shared = shared.clone();
            let stop = stop.clone();
            listener.set_nonblocking(true).expect("nonblocking");
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let shared = shared.clone();
                            std::thread::spawn(move || {
                                let _ = conn.set_nonblocking(false);
                                handle(conn, &shared, is_cdn);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Proxy {
            addr,
            cdn_addr,
            log: shared.log.clone(),
            cdn_log: shared.cdn_log.clone(),
            faults: shared.faults.clone(),
            stop,
        }
    }

    /// Blob GETs the proxy has seen.
    pub fn blob_gets(&self) -> Vec<Logged> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|l| l.is_blob_get())
            .cloned()
            .collect()
    }

    /// Forgets the logs.
    pub fn clear(&self) {
        self.log.lock().expect("log").clear();
        self.cdn_log.lock().expect("log").clear();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn read_head(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<(String, String)>)> {
    let mut first = String::new();
    if reader.read_line(&mut first).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Some((first.trim_end().to_string(), headers))
}

/// One request per connection: forward with `Connection: close`, then misbehave.
fn handle(conn: TcpStream, shared: &Shared, is_cdn: bool) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let Some((first, mut headers)) = read_head(&mut reader) else {
        return;
    };
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let mut path = parts.next().unwrap_or("").to_string();
    let entry = Logged {
        method: method.clone(),
        path: path.clone(),
        headers: headers.clone(),
    };
    let is_blob = entry.is_blob_get();
    let mut out = conn;
    if is_cdn {
        shared.cdn_log.lock().expect("log").push(entry);
        // Trade the ticket for the registry auth, as a presigned URL would carry it.
        let (p, ticket) = path
            .split_once("?ticket=")
            .map_or((path.clone(), String::new()), |(p, t)| {
                (p.to_string(), t.to_string())
            });
        path = p;
        headers.retain(|(k, _)| k != "authorization");
        if let Some(Some(auth)) = shared.tickets.lock().expect("tickets").get(&ticket) {
            headers.push(("authorization".to_string(), auth.clone()));
        }
    } else {
        shared.log.lock().expect("log").push(entry);
        if is_blob && shared.faults.redirect_blobs.load(Ordering::Relaxed) {
            let n = shared
                .next_ticket
                .fetch_add(1, Ordering::Relaxed)
                .to_string();
            let auth = headers
                .iter()
                .find(|(k, _)| k == "authorization")
                .map(|(_, v)| v.clone());
            shared
                .tickets
                .lock()
                .expect("tickets")
                .insert(n.clone(), auth);
            let _ = write!(
                out,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{}{path}?ticket={n}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                shared.cdn_addr
            );
            return;
        }
        if is_blob
            && shared
                .faults
                .too_many_requests
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
        {
            let body = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#;
            let _ = write!(
                out,
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            return;
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    if method == "PATCH" && !is_cdn {
        let fail =
            shared
                .faults
                .fail_patch
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                == Ok(1);
        if fail {
            let body = r#"{"errors":[{"code":"UNKNOWN","message":"injected chunk failure"}]}"#;
            let _ = write!(
                out,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            return;
        }
    }
    if is_blob && shared.faults.strip_range.load(Ordering::Relaxed) {
        headers.retain(|(k, _)| k != "range");
    }
    let Some(mut response) = forward(shared, &method, &path, &headers, &body) else {
        return;
    };
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |i| i + 4);
    let ok = response.starts_with(b"HTTP/1.1 200") || response.starts_with(b"HTTP/1.1 206");
    if ok && method == "GET" && path.contains("/manifests/") {
        let mut head = response[..split].to_vec();
        let mut body = response[split..].to_vec();
        let swap = shared.faults.swap_manifest.lock().expect("swap").clone();
        if let Some((key, other)) = swap {
            if let Some((prefix, k)) = path.rsplit_once('/') {
                if k == key {
                    let other_path = format!("{prefix}/{other}");
                    let Some(r) = forward(shared, &method, &other_path, &headers, &[]) else {
                        return;
                    };
                    let at = r
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(r.len(), |i| i + 4);
                    body = r[at..].to_vec();
                    head = set_header(&head, "content-length", &body.len().to_string());
                }
            }
        }
        let content_type = shared
            .faults
            .manifest_content_type
            .lock()
            .expect("content type")
            .clone();
        if let Some(ct) = content_type {
            head = set_header(&head, "content-type", &ct);
        }
        let _ = out.write_all(&head).and_then(|_| out.write_all(&body));
        return;
    }
    let (head, body) = response.split_at_mut(split);
    if is_blob && ok {
        if shared.faults.corrupt_blobs.load(Ordering::Relaxed) && !body.is_empty() {
            let i = body.len() / 2;
            body[i] ^= 0x55;
        }
        if out.write_all(head).is_err() {
            return;
        }
        // Only a blob longer than the limit is cut, and only once.
        let drop_after = shared.faults.drop_after.load(Ordering::Relaxed) as usize;
        let cut = drop_after > 0
            && drop_after < body.len()
            && shared
                .faults
                .drop_after
                .compare_exchange(drop_after as u64, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        let limit = if cut { drop_after } else { body.len() };
        let throttle = shared.faults.throttle_ms.load(Ordering::Relaxed);
        for chunk in body[..limit].chunks(16 * 1024) {
            if out.write_all(chunk).is_err() {
                return;
            }
            if throttle > 0 {
                std::thread::sleep(Duration::from_millis(throttle));
            }
        }
        // Returning drops the connection, possibly mid-body: that is the fault.
        return;
    }
    let _ = out.write_all(head).and_then(|_| out.write_all(body));
}

/// Sends one request upstream with `Connection: close` and returns the whole response.
fn forward(
    shared: &Shared,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(&shared.upstream).ok()?;
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        if k != "connection" && k != "host" {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if k == "host" {
            req.push_str(&format!("x-forwarded-host: {v}\r\n"));
        }
    }
    req.push_str(&format!(
        "host: {}\r\nconnection: close\r\n\r\n",
        shared.upstream
    ));
    up.write_all(req.as_bytes()).ok()?;
    up.write_all(body).ok()?;
    let mut response = Vec::new();
    up.read_to_end(&mut response).ok()?;
    Some(response)
}

/// A response head (status line, headers, blank line) with header `name` set to
/// `value`, replacing any present.
fn set_header(head: &[u8], name: &str, value: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let is_name = line
            .split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(name));
        if !is_name {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("{name}: {value}\r\n\r\n"));
    out.into_bytes()
}
