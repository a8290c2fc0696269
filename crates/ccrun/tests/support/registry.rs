//! Test registries: Debian's `docker-registry` (the CNCF distribution registry) on
//! 127.0.0.1 with storage in a temp dir, optionally with token auth behind a token
//! server run here that signs RS256 JWTs the way Docker Hub's does.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

/// The user the token server accepts.
pub const USER: &str = "tester";
/// Its password.
pub const PASSWORD: &str = "s3cret";

/// A free TCP port on 127.0.0.1 (released just before use; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `docker-registry`, killed (by its own PID) on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Holds storage, config and log.
    pub dir: tempfile::TempDir,
    /// The token server, for token-auth registries.
    pub token: Option<TokenServer>,
}

impl Registry {
    /// An open registry.
    pub fn start() -> Registry {
        Registry::launch(None)
    }

    /// A registry requiring Bearer tokens from a token server run by the test.
    pub fn start_with_token_auth() -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = TokenServer::start(dir.path());
        Registry::launch_in(dir, Some(token))
    }

    fn launch(token: Option<TokenServer>) -> Registry {
        Registry::launch_in(tempfile::tempdir().expect("tempdir"), token)
    }

    fn launch_in(dir: tempfile::TempDir, token: Option<TokenServer>) -> Registry {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).expect("storage dir");
        let auth = match &token {
            Some(t) => format!(
                "auth:\n  token:\n    realm: http://{}/token\n    service: test-registry\n    issuer: ccrun-test-issuer\n    rootcertbundle: {}\n",
                t.addr,
                t.cert.display()
            ),
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: {addr}\n  secret: ccrun-test-secret\n{auth}",
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        ccrun_testkit::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .expect("start docker-registry (apt-get install docker-registry)");
        let reg = Registry {
            child,
            addr,
            dir,
            token,
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(&self.addr) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut buf = [0u8; 12];
                if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not start; log:\n{}", self.log());
    }

    /// The registry's log (access log lines included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `skopeo copy`s an OCI layout `layout:tag` to `repo:tag` here.
    pub fn push(&self, layout: &Path, tag: &str, repo: &str, format: Format) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if self.token.is_some() {
            cmd.arg(format!("--dest-creds={USER}:{PASSWORD}"));
        }
        match format {
            Format::Oci => {}
            Format::DockerV2s2 => {
                cmd.args(["--format", "v2s2"]);
            }
            Format::All => {
                cmd.args(["--all", "--preserve-digests"]);
            }
        }
        cmd.arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repo}:{tag}", self.addr));
        let out = cmd.output().expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy failed: {}\nregistry log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Our own child, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to push an OCI layout.
#[derive(Debug, Clone, Copy)]
pub enum Format {
    /// As it is (OCI manifest).
    Oci,
    /// Converted to a Docker schema 2 manifest.
    DockerV2s2,
    /// An index with all its platforms.
    All,
}

/// A token server: `GET /token?service=…&scope=…` with optional Basic auth, answering
/// `{"token": JWT}` signed RS256 by a key whose self-signed cert the registry trusts.
/// Anonymous users may pull anything but `private/…`; `USER` may pull and push all.
pub struct TokenServer {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    cert: PathBuf,
    stop: Arc<AtomicBool>,
    /// Token requests served.
    pub requests: Arc<AtomicUsize>,
    /// Lifetime of issued tokens in seconds (`exp` = now + this). The registry
    /// allows 60 s of clock skew past `exp`, so negative values make short-lived tokens.
    pub lifetime: Arc<AtomicI64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    fn start(dir: &Path) -> TokenServer {
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=ccrun-test-token",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pem = std::fs::read_to_string(&cert).expect("read cert");
        let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let lifetime = Arc::new(AtomicI64::new(300));
        let (s, r, l) = (stop.clone(), requests.clone(), lifetime.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        r.fetch_add(1, Ordering::Relaxed);
                        let _ = conn.set_nonblocking(false);
                        serve_token(conn, &key, &der_b64, l.load(Ordering::Relaxed));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TokenServer {
            addr,
            cert,
            stop,
            requests,
            lifetime,
            thread: Some(thread),
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_token(conn: TcpStream, key: &Path, x5c: &str, lifetime: i64) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut auth = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                auth = Some(v.trim().to_string());
            }
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let param = |name: &str| -> Vec<String> {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| percent_decode(v))
            .collect()
    };
    let user = match auth.as_deref().and_then(|a| a.strip_prefix("Basic ")) {
        Some(b64) => {
            let decoded = STANDARD
                .decode(b64)
                .ok()
                .and_then(|d| String::from_utf8(d).ok());
            if decoded.as_deref() != Some(&format!("{USER}:{PASSWORD}")) {
                respond(
                    conn,
                    "401 Unauthorized",
                    r#"{"details":"incorrect username or password"}"#,
                );
                return;
            }
            Some(USER)
        }
        None => None,
    };
    let mut access = Vec::new();
    for scope in param("scope") {
        let parts: Vec<&str> = scope.splitn(3, ':').collect();
        if let [kind, name, actions] = parts.as_slice() {
            let allowed: Vec<&str> = actions
                .split(',')
                .filter(|a| user.is_some() || (*a == "pull" && !name.starts_with("private/")))
                .collect();
            access.push(serde_json::json!({"type": kind, "name": name, "actions": allowed}));
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": "ccrun-test-issuer",
        "sub": user.unwrap_or(""),
        "aud": param("service").first().cloned().unwrap_or_default(),
        "exp": now + lifetime,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", std::process::id()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign(key, signing_input.as_bytes());
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
    let body =
        serde_json::json!({"token": token, "access_token": token, "expires_in": lifetime.max(1)})
            .to_string();
    respond(conn, "200 OK", &body);
}

/// RS256 = RSASSA-PKCS1-v1_5 over SHA-256, done by openssl so the test needs no crypto crate.
fn sign(key: &Path, data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl dgst");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data)
        .expect("write");
    let out = child.wait_with_output().expect("openssl output");
    assert!(out.status.success(), "openssl dgst failed");
    out.stdout
}

fn respond(mut conn: TcpStream, status: &str, body: &str) {
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
