//! A Distribution API v2 client for one repository: auth (Bearer tokens and
//! Basic), manifests, and blobs with redirects, retries and `Range` resume.
//!
//! It is synchronous and keeps no background threads, so the process may fork
//! right after a pull. It is `Sync`: layer downloads share one client from
//! scoped threads.

use std::io::{self, Read};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use ureq::http::{Response, Uri};
use ureq::Body;

use crate::auth::{parse_challenge, Challenge, Credentials};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::MANIFEST_ACCEPT;
use crate::reference::Reference;

/// How many times one request is retried after 5xx, 429 or a dropped connection.
const MAX_RETRIES: u32 = 5;
/// How many times one blob download resumes after a dropped connection.
const MAX_RESUMES: u32 = 10;
/// Redirect hops followed for one request.
const MAX_REDIRECTS: u32 = 10;
/// Largest manifest we read (Docker's own limit is 4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;
/// Longest wait we accept from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// Options for talking to registries.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Registries (`host[:port]`) to reach over plain HTTP besides localhost.
    pub insecure_registries: Vec<String>,
    /// Credentials for this registry, e.g. from `~/.docker/config.json`.
    pub credentials: Option<Credentials>,
    /// Mirrors (`host[:port]`) to try first, in order; a mirror that cannot be
    /// reached or lacks the manifest is passed over (containers-registries.conf's rule).
    pub mirrors: Vec<String>,
}

/// Whether `host[:port]` may be spoken to over plain HTTP: localhost and
/// 127.0.0.0/8 always (Docker's rule), others only when listed.
pub fn is_insecure(host: &str, listed: &[String]) -> bool {
    if listed.iter().any(|h| h == host) {
        return true;
    }
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// What the registry requires, learned from the `/v2/` probe.
#[derive(Debug, Clone)]
enum AuthState {
    /// Nothing yet, or the registry is open.
    Anonymous,
    /// Basic credentials on every request.
    Basic(String),
    /// A bearer token from the token server; renewed from the next 401's challenge.
    Bearer(String),
}

/// A client for one repository of one registry.
pub struct RegistryClient {
    agent: ureq::Agent,
    host: String,
    base: String,
    repository: String,
    /// The token scopes asked for (`repository:NAME:ACTIONS`).
    scopes: Vec<String>,
    credentials: Option<Credentials>,
    auth: Mutex<AuthState>,
}

impl RegistryClient {
    /// Connects to the registry of `reference` and probes `/v2/` to learn its auth scheme.
    pub fn connect(reference: &Reference, options: &ClientOptions) -> Result<RegistryClient> {
        for mirror in &options.mirrors {
            match RegistryClient::mirror(reference, mirror, options) {
                Ok(client) => return Ok(client),
                Err(e) => tracing::info!("mirror {mirror}: {e}; trying the next source"),
            }
        }
        let client = RegistryClient::new(reference, options);
        client.probe()?;
        Ok(client)
    }

    /// Connects to the registry of `reference` to push to its repository: the token
    /// asked for allows `pull,push` there, and `pull` in each of `mount_from` (other
    /// repositories of the same registry that blobs may be mounted from). Mirrors are
    /// for pulls only.
    pub fn connect_push(
        reference: &Reference,
        options: &ClientOptions,
        mount_from: &[String],
    ) -> Result<RegistryClient> {
        let mut client = RegistryClient::new(reference, options);
        client.scopes = std::iter::once(format!("repository:{}:pull,push", client.repository))
            .chain(mount_from.iter().map(|r| format!("repository:{r}:pull")))
            .collect();
        client.probe()?;
        Ok(client)
    }

    /// A client for `reference`'s repository on `mirror`, if the mirror answers and
    /// has the manifest. The registry's credentials are not sent to mirrors.
    fn mirror(
        reference: &Reference,
        mirror: &str,
        options: &ClientOptions,
    ) -> Result<RegistryClient> {
        let mut client = RegistryClient::new(reference, options);
        let scheme = if is_insecure(mirror, &options.insecure_registries) {
            "http"
        } else {
            "https"
        };
        client.base = format!("{scheme}://{mirror}");
        client.host = mirror.to_string();
        client.credentials = None;
        client.probe()?;
        client.manifest(&reference.manifest_key())?;
        Ok(client)
    }

    /// Checks credentials the way `docker login` does: `/v2/` must answer 200 with
    /// them (via a token for token-auth registries, directly for Basic auth).
    pub fn check_login(registry: &str, options: &ClientOptions) -> Result<()> {
        // Any repository name gives us the registry's host mapping (docker.io → registry-1).
        let probe_ref = Reference::parse(&format!("{registry}/probe"))?;
        let mut client = RegistryClient::new(&probe_ref, options);
        // No scope asks the token server for a token without any.
        client.repository = String::new();
        client.scopes.clear();
        client.probe()
    }

    /// A client for `registry` as a whole, to read its catalog (`/v2/_catalog`): the
    /// token asked for allows `registry:catalog:*`.
    pub fn connect_catalog(registry: &str, options: &ClientOptions) -> Result<RegistryClient> {
        let probe_ref = Reference::parse(&format!("{registry}/probe"))?;
        let mut client = RegistryClient::new(&probe_ref, options);
        client.repository = String::new();
        client.scopes = vec!["registry:catalog:*".to_string()];
        client.probe()?;
        Ok(client)
    }

    /// A client for Docker Hub's search API (`index.docker.io/v1/search`), which
    /// needs no credentials.
    pub fn connect_hub_search(options: &ClientOptions) -> Result<RegistryClient> {
        let probe_ref = Reference::parse("docker.io/library/probe")?;
        let mut client = RegistryClient::new(&probe_ref, options);
        client.host = "index.docker.io".to_string();
        client.base = "https://index.docker.io".to_string();
        client.repository = String::new();
        client.scopes.clear();
        client.credentials = None;
        Ok(client)
    }

    /// GETs `path` (under the registry's base URL) and returns its body, at most
    /// `limit` bytes, and its `Link` header (the next page of a paginated list).
    pub fn get_small(
        &self,
        path: &str,
        limit: u64,
        what: &str,
    ) -> Result<(Vec<u8>, Option<String>)> {
        let mut resp = self.get(path, Some("application/json"), None, what)?;
        let link = resp
            .headers()
            .get("link")
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        let body = resp
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| self.http_error(&format!("reading {what}"), e))?;
        Ok((body, link))
    }

    fn new(reference: &Reference, options: &ClientOptions) -> RegistryClient {
        let host = reference.api_host().to_string();
        let scheme = if is_insecure(&host, &options.insecure_registries) {
            "http"
        } else {
            "https"
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("ccrun/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build();
        RegistryClient {
            agent: config.new_agent(),
            base: format!("{scheme}://{host}"),
            host,
            repository: reference.repository().to_string(),
            scopes: vec![format!("repository:{}:pull", reference.repository())],
            credentials: options.credentials.clone(),
            auth: Mutex::new(AuthState::Anonymous),
        }
    }

    /// The registry host this client talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `GET /v2/`: checks the registry speaks the API and, through the 401 it may
    /// answer, learns its auth scheme and gets a token before the real requests.
    fn probe(&self) -> Result<()> {
        self.get("/v2/", None, None, "probing /v2/").map(|_| ())
    }

    /// Updates the auth state from a 401's `WWW-Authenticate` and fetches a token.
    fn learn_auth(&self, resp: &Response<Body>) -> Result<()> {
        let header = resp
            .headers()
            .get("www-authenticate")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let state = match parse_challenge(header) {
            Some(Challenge::Bearer { realm, service, .. }) => {
                AuthState::Bearer(self.fetch_token(&realm, service.as_deref())?)
            }
            Some(Challenge::Basic) => match &self.credentials {
                Some(c) => AuthState::Basic(c.basic_header()),
                None => {
                    return Err(Error::Unauthorized {
                        registry: self.host.clone(),
                        message: "the registry requires a login (ccrun login)".to_string(),
                    })
                }
            },
            None => {
                return Err(Error::Unauthorized {
                    registry: self.host.clone(),
                    message: format!("unsupported authentication challenge {header:?}"),
                })
            }
        };
        *self.lock_auth() = state;
        Ok(())
    }

    fn lock_auth(&self) -> std::sync::MutexGuard<'_, AuthState> {
        // A panic while holding the lock leaves a consistent state; keep using it.
        self.auth.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gets a pull token for our repository from the token server (Docker's token flow).
    fn fetch_token(&self, realm: &str, service: Option<&str>) -> Result<String> {
        let mut params = Vec::new();
        if let Some(s) = service {
            params.push(format!("service={}", urlencode(s)));
        }
        for scope in &self.scopes {
            params.push(format!("scope={}", urlencode(scope)));
        }
        if let Some(c) = &self.credentials {
            params.push(format!("account={}", urlencode(&c.username)));
        }
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = format!("{realm}{sep}{}", params.join("&"));
        let mut attempt = 0;
        loop {
            let mut req = self.agent.get(&url);
            if let Some(c) = &self.credentials {
                req = req.header("Authorization", c.basic_header());
            }
            let result = req.call();
            match result {
                Ok(mut resp) if resp.status().is_success() => {
                    let body = resp
                        .body_mut()
                        .with_config()
                        .limit(1 << 20)
                        .read_to_vec()
                        .map_err(|e| self.http_error("reading token", e))?;
                    #[derive(serde::Deserialize)]
                    struct TokenResponse {
                        token: Option<String>,
                        access_token: Option<String>,
                    }
                    let t: TokenResponse =
                        serde_json::from_slice(&body).map_err(|e| Error::Registry {
                            registry: self.host.clone(),
                            message: format!("token server {realm} sent invalid JSON: {e}"),
                        })?;
                    return t
                        .token
                        .or(t.access_token)
                        .filter(|t| !t.is_empty())
                        .ok_or_else(|| Error::Registry {
                            registry: self.host.clone(),
                            message: format!("token server {realm} sent no token"),
                        });
                }
                Ok(mut resp) if matches!(resp.status().as_u16(), 401 | 403) => {
                    let body = resp
                        .body_mut()
                        .with_config()
                        .limit(4096)
                        .read_to_string()
                        .unwrap_or_default();
                    // The token server's own words when it gives some (Docker Hub's
                    // "incorrect username or password"), never its raw JSON.
                    let said = server_message(&body);
                    let message = match (&self.credentials, said) {
                        (Some(_), Some(said)) => said,
                        (Some(_), None) => "invalid username/password".to_string(),
                        (None, said) => format!(
                            "anonymous access refused{}",
                            said.map(|s| format!(": {s}")).unwrap_or_default()
                        ),
                    };
                    return Err(Error::Unauthorized {
                        registry: self.host.clone(),
                        message,
                    });
                }
                Ok(resp) if retryable_status(resp.status().as_u16()) && attempt < MAX_RETRIES => {
                    attempt += 1;
                    std::thread::sleep(self.retry_delay(&resp, attempt));
                }
                Ok(resp) => {
                    return Err(self
                        .registry_error(format!("token server {realm}: HTTP {}", resp.status())))
                }
                Err(e) if attempt < MAX_RETRIES && transient(&e) => {
                    attempt += 1;
                    tracing::warn!("token server {realm}: {e}; retrying");
                    std::thread::sleep(backoff(attempt));
                }
                Err(e) => return Err(self.http_error("fetching token", e)),
            }
        }
    }

    /// One HTTP GET with our auth header, no retries (the probe and the retry loop use it).
    fn send(
        &self,
        url: &str,
        accept: Option<&str>,
        range: Option<u64>,
        with_auth: bool,
    ) -> Result<Response<Body>> {
        let mut req = self.agent.get(url);
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        if let Some(start) = range {
            req = req.header("Range", format!("bytes={start}-"));
        }
        if with_auth {
            if let Some(h) = self.auth_header() {
                req = req.header("Authorization", h);
            }
        }
        req.call()
            .map_err(|e| self.http_error(&format!("GET {url}"), e))
    }

    /// The `Authorization` header for the registry, if we have one.
    fn auth_header(&self) -> Option<String> {
        match &*self.lock_auth() {
            AuthState::Anonymous => None,
            AuthState::Basic(h) => Some(h.clone()),
            AuthState::Bearer(t) => Some(format!("Bearer {t}")),
        }
    }

    /// GET with auth, redirects (dropping `Authorization` on other hosts), token
    /// renewal on 401, and retries with backoff on 5xx, 429 and transport errors.
    fn get(
        &self,
        path: &str,
        accept: Option<&str>,
        range: Option<u64>,
        what: &str,
    ) -> Result<Response<Body>> {
        let start = format!("{}{path}", self.base);
        let mut attempt = 0;
        let mut renewed = false;
        'retry: loop {
            let mut url = start.clone();
            let mut hops = 0;
            loop {
                // Credentials go only to the registry itself, never to a CDN it redirects to.
                let same_host = same_origin(&url, &self.base);
                let resp = match self.send(&url, accept, range, same_host) {
                    Ok(r) => r,
                    Err(e) if attempt < MAX_RETRIES && e.is_transient() => {
                        attempt += 1;
                        tracing::warn!("{what}: {e}; retrying ({attempt}/{MAX_RETRIES})");
                        std::thread::sleep(backoff(attempt));
                        continue 'retry;
                    }
                    Err(e) => return Err(e),
                };
                let status = resp.status().as_u16();
                match status {
                    200..=299 => return Ok(resp),
                    301 | 302 | 303 | 307 | 308 if hops < MAX_REDIRECTS => {
                        let location = resp
                            .headers()
                            .get("location")
                            .and_then(|l| l.to_str().ok())
                            .ok_or_else(|| {
                                self.registry_error(format!("{what}: redirect without Location"))
                            })?;
                        url = resolve_location(&url, location).ok_or_else(|| {
                            self.registry_error(format!("{what}: bad redirect {location:?}"))
                        })?;
                        hops += 1;
                    }
                    401 if same_host && !renewed => {
                        // Tokens expire (Docker Hub's after ~5 minutes): get a fresh one once.
                        renewed = true;
                        self.learn_auth(&resp)?;
                        continue 'retry;
                    }
                    401 | 403 => {
                        return Err(Error::Unauthorized {
                            registry: self.host.clone(),
                            message: format!("{what}: HTTP {status}: {}", error_text(resp)),
                        })
                    }
                    404 => {
                        return Err(Error::NotFound {
                            what: format!("{what} in {}/{}", self.host, self.repository),
                        })
                    }
                    s if retryable_status(s) && attempt < MAX_RETRIES => {
                        attempt += 1;
                        let delay = self.retry_delay(&resp, attempt);
                        if s == 429 {
                            tracing::warn!(
                                "{what}: registry says too many requests (429); waiting {}s as asked by Retry-After",
                                delay.as_secs()
                            );
                        } else {
                            tracing::warn!(
                                "{what}: HTTP {s}; retrying in {:.1}s ({attempt}/{MAX_RETRIES})",
                                delay.as_secs_f64()
                            );
                        }
                        std::thread::sleep(delay);
                        continue 'retry;
                    }
                    s => {
                        return Err(
                            self.registry_error(format!("{what}: HTTP {s}: {}", error_text(resp)))
                        );
                    }
                }
            }
        }
    }

    /// The delay before a retry: `Retry-After` on 429/503 if given, else exponential backoff.
    fn retry_delay(&self, resp: &Response<Body>, attempt: u32) -> Duration {
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
            .unwrap_or_else(|| backoff(attempt))
    }

    /// Fetches a manifest or index by tag or digest; returns its bytes, Content-Type
    /// and digest, verified against the requested digest or `Docker-Content-Digest`.
    pub fn manifest(&self, key: &str) -> Result<(Vec<u8>, Option<String>, Digest)> {
        let what = format!("manifest {key}");
        let mut resp = self.get(
            &format!("/v2/{}/manifests/{key}", self.repository),
            Some(MANIFEST_ACCEPT),
            None,
            &what,
        )?;
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|c| c.to_str().ok())
            .map(str::to_string);
        let announced = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|c| c.to_str().ok())
            .map(str::to_string);
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST)
            .read_to_vec()
            .map_err(|e| self.http_error(&format!("reading {what}"), e))?;
        let actual = Digest::of(&bytes);
        if let Ok(pinned) = Digest::parse(key) {
            pinned.verify(&actual, &what)?;
        } else if let Some(announced) = announced {
            let announced = Digest::parse(&announced)?;
            announced.verify(&actual, format!("{what} (Docker-Content-Digest)"))?;
        }
        Ok((bytes, content_type, actual))
    }

    /// Fetches a small blob (an image config) whole and verifies it.
    pub fn small_blob(&self, digest: &Digest, limit: u64, what: &str) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.blob(digest, None)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.registry_error(format!("reading {what}: {e}")))?;
        if bytes.len() as u64 > limit {
            return Err(self.registry_error(format!("{what} is larger than {limit} bytes")));
        }
        digest.verify(&Digest::of(&bytes), what)?;
        Ok(bytes)
    }

    /// A reader for a blob that resumes with `Range` after dropped connections.
    /// `size` (from the descriptor) bounds what is read, so a registry cannot make
    /// us read forever; the caller still verifies the digest.
    pub fn blob(&self, digest: &Digest, size: Option<u64>) -> BlobReader<'_> {
        BlobReader {
            client: self,
            digest: digest.clone(),
            size,
            offset: 0,
            body: None,
            opened: false,
            resumes: 0,
            too_long: false,
        }
    }

    /// The repository this client is for.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// An absolute URL for an API path (`/v2/…`) or a `Location` a response gave.
    pub(crate) fn url(&self, location: &str) -> Result<String> {
        resolve_location(&format!("{}/v2/", self.base), location)
            .ok_or_else(|| self.registry_error(format!("bad location {location:?}")))
    }

    /// Sends one request with our credentials (to the registry's own origin only),
    /// getting a fresh token once if it answers 401, and returns whatever it answers
    /// then. Nothing else is retried here: whether an upload request may be sent again
    /// is for the caller to decide.
    pub(crate) fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Payload<'_>,
        what: &str,
    ) -> Result<Response<Body>> {
        let mut renewed = false;
        loop {
            let same_host = same_origin(url, &self.base);
            let mut req = ureq::http::Request::builder().method(method).uri(url);
            for (k, v) in headers {
                req = req.header(*k, v.as_str());
            }
            if same_host {
                if let Some(h) = self.auth_header() {
                    req = req.header("Authorization", h);
                }
            }
            let bad_request = |e: ureq::http::Error| self.registry_error(format!("{what}: {e}"));
            let sent = match body {
                // No body at all (not an empty chunked one, which a HEAD must not
                // have); a length of 0 where the method has one.
                Payload::Empty => {
                    if matches!(method, "POST" | "PUT" | "PATCH") {
                        req = req.header("Content-Length", "0");
                    }
                    self.agent.run(req.body(()).map_err(bad_request)?)
                }
                _ => {
                    let mut reader = body.reader();
                    req = req.header("Content-Length", body.len().to_string());
                    let send = ureq::SendBody::from_reader(&mut reader);
                    self.agent.run(req.body(send).map_err(bad_request)?)
                }
            };
            let resp = sent.map_err(|e| self.http_error(what, e))?;
            if resp.status().as_u16() == 401 && same_host && !renewed {
                renewed = true;
                self.learn_auth(&resp)?;
                continue;
            }
            return Ok(resp);
        }
    }

    /// An error for an answer `what` did not expect, with the registry's own words.
    pub(crate) fn unexpected(&self, what: &str, resp: Response<Body>) -> Error {
        let status = resp.status().as_u16();
        let text = error_text(resp);
        match status {
            401 | 403 => Error::Unauthorized {
                registry: self.host.clone(),
                message: format!("{what}: {text}"),
            },
            _ => self.registry_error(format!("{what}: HTTP {status}: {text}")),
        }
    }

    fn registry_error(&self, message: String) -> Error {
        Error::Registry {
            registry: self.host.clone(),
            message,
        }
    }

    fn http_error(&self, context: &str, e: ureq::Error) -> Error {
        Error::Http {
            context: format!("{}: {context}", self.host),
            source: Box::new(e),
        }
    }
}

/// A request body that can be sent again: nothing, bytes, or a range of a file.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Payload<'a> {
    /// No body.
    Empty,
    /// These bytes.
    Bytes(&'a [u8]),
    /// `len` bytes of `file` from `offset`.
    File {
        /// The file (read with `pread`, so its offset is not used).
        file: &'a std::fs::File,
        /// Where the range starts.
        offset: u64,
        /// How long it is.
        len: u64,
    },
}

impl Payload<'_> {
    fn len(&self) -> u64 {
        match self {
            Payload::Empty => 0,
            Payload::Bytes(b) => b.len() as u64,
            Payload::File { len, .. } => *len,
        }
    }

    fn reader(&self) -> PayloadReader<'_> {
        match *self {
            Payload::Empty => PayloadReader::Bytes(&[]),
            Payload::Bytes(b) => PayloadReader::Bytes(b),
            Payload::File { file, offset, len } => PayloadReader::File {
                file,
                offset,
                left: len,
            },
        }
    }
}

enum PayloadReader<'a> {
    Bytes(&'a [u8]),
    File {
        file: &'a std::fs::File,
        offset: u64,
        left: u64,
    },
}

impl Read for PayloadReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            PayloadReader::Bytes(b) => b.read(buf),
            PayloadReader::File { file, offset, left } => {
                use std::os::unix::fs::FileExt;
                let want = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                if want == 0 {
                    return Ok(0);
                }
                let n = file.read_at(&mut buf[..want], *offset)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "upload file shorter than expected",
                    ));
                }
                *offset += n as u64;
                *left -= n as u64;
                Ok(n)
            }
        }
    }
}

/// Streams one blob, reconnecting with `Range: bytes=N-` when the connection drops.
pub struct BlobReader<'c> {
    client: &'c RegistryClient,
    digest: Digest,
    size: Option<u64>,
    offset: u64,
    body: Option<ureq::BodyReader<'static>>,
    /// Whether the blob was ever opened: a blob declared empty is still asked for,
    /// to see that it is.
    opened: bool,
    resumes: u32,
    /// The registry sent more than `size`; every read fails from then on, so that
    /// nobody hashes a prefix and reports it as the blob's digest.
    too_long: bool,
}

impl BlobReader<'_> {
    /// Starts the download at byte `offset` (`Range: bytes=offset-`), the bytes
    /// before it being held elsewhere (a partial download in the store). A registry
    /// that ignores `Range` sends the blob from its start: the first `offset` bytes
    /// are then read and dropped, so the stream still continues at `offset`.
    pub fn starting_at(mut self, offset: u64) -> Self {
        self.offset = offset;
        if self.size.is_some_and(|s| offset >= s) {
            // Everything is held: nothing to ask for (a `Range` past the end is a 416).
            self.opened = true;
        }
        self
    }

    /// Opens (or reopens at `offset`) the blob.
    fn open(&mut self) -> io::Result<()> {
        let what = format!("blob {}", self.digest);
        let range = (self.offset > 0).then_some(self.offset);
        let resp = self
            .client
            .get(
                &format!("/v2/{}/blobs/{}", self.client.repository, self.digest),
                None,
                range,
                &what,
            )
            .map_err(io::Error::other)?;
        let status = resp.status().as_u16();
        let partial = status == 206;
        let mut body = resp.into_body().into_reader();
        if self.offset > 0 && !partial {
            // The server ignored Range: the blob comes from its start; skip what we
            // already have.
            tracing::info!(
                "blob {}: the registry ignored Range (HTTP {}); downloading from the start",
                self.digest,
                status
            );
            let skipped = io::copy(&mut (&mut body).take(self.offset), &mut io::sink())?;
            if skipped != self.offset {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob shorter than before",
                ));
            }
        }
        self.body = Some(body);
        self.opened = true;
        Ok(())
    }

    /// Whether the registry sent more bytes than the descriptor declares.
    pub fn sent_too_much(&self) -> bool {
        self.too_long
    }

    fn too_long_error(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "blob {}: the registry sent more than the {} bytes its descriptor declares",
                self.digest,
                self.size.unwrap_or(0)
            ),
        )
    }

    /// Drops the connection and plans a resume, or gives up after too many.
    fn resume(&mut self, why: &dyn std::fmt::Display) -> io::Result<()> {
        self.body = None;
        if self.resumes >= MAX_RESUMES {
            return Err(io::Error::other(format!(
                "blob {}: giving up after {MAX_RESUMES} resumes: {why}",
                self.digest
            )));
        }
        self.resumes += 1;
        tracing::warn!(
            "blob {}: {why}; resuming at byte {}",
            self.digest,
            self.offset
        );
        std::thread::sleep(backoff(self.resumes.min(4)));
        Ok(())
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.too_long {
            return Err(self.too_long_error());
        }
        // At the declared size, read on from an open body only, to detect a blob
        // longer than announced.
        if self.opened && self.body.is_none() && self.size.is_some_and(|s| self.offset >= s) {
            return Ok(0);
        }
        loop {
            if self.body.is_none() {
                if let Err(e) = self.open() {
                    // The request itself was retried as far as it makes sense (see
                    // `get`); only a body cut short while skipping is resumed here.
                    let from_request = e.get_ref().is_some_and(|inner| inner.is::<Error>());
                    if from_request {
                        return Err(e);
                    }
                    self.resume(&e)?;
                    continue;
                }
            }
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            match body.read(buf) {
                Ok(0) => {
                    if self.size.is_some_and(|s| self.offset < s) {
                        self.resume(&"connection closed early")?;
                        continue;
                    }
                    self.body = None;
                    // Mark finished so further reads return 0 without reopening.
                    self.size = Some(self.offset);
                    return Ok(0);
                }
                Ok(n) => {
                    self.offset += n as u64;
                    if self.size.is_some_and(|s| self.offset > s) {
                        self.too_long = true;
                        self.body = None;
                        return Err(self.too_long_error());
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.resume(&e)?,
            }
        }
    }
}

/// Whether a failed request may succeed when tried again: a connection reset or cut
/// mid-transfer, a read that timed out. A refused connection, an unknown host, TLS
/// and protocol errors fail the same way every time, so they fail at once.
pub(crate) fn transient(e: &ureq::Error) -> bool {
    use io::ErrorKind as K;
    match e {
        ureq::Error::Io(io) => matches!(
            io.kind(),
            K::ConnectionReset
                | K::ConnectionAborted
                | K::BrokenPipe
                | K::UnexpectedEof
                | K::TimedOut
        ),
        ureq::Error::Timeout(t) => !matches!(t, ureq::Timeout::Resolve | ureq::Timeout::Connect),
        _ => false,
    }
}

pub(crate) fn retryable_status(s: u16) -> bool {
    s == 429 || (500..=599).contains(&s) && s != 501 && s != 505
}

/// 0.5 s, 1 s, 2 s, 4 s … capped at 8 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64 << attempt.clamp(1, 5))
}

/// A short excerpt of an error response body (registries send JSON error lists).
fn error_text(resp: Response<Body>) -> String {
    let mut body = resp.into_body();
    let text = body
        .with_config()
        .limit(4096)
        .read_to_string()
        .unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        "(no details)".to_string()
    } else {
        server_message(text).unwrap_or_else(|| text.chars().take(300).collect())
    }
}

/// The message in a registry's or token server's JSON error body: the Distribution
/// API's `{"errors": [{"code", "message"}]}`, or `{"details"|"message"|"error": …}`.
fn server_message(body: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    if let Some(errors) = json.get("errors").and_then(|e| e.as_array()) {
        let messages: Vec<String> = errors
            .iter()
            .filter_map(|e| {
                let message = e.get("message").and_then(text)?;
                Some(match e.get("code").and_then(text) {
                    Some(code) => format!("{}: {message}", code.to_lowercase()),
                    None => message,
                })
            })
            .collect();
        return (!messages.is_empty()).then(|| messages.join("; "));
    }
    ["details", "message", "error"]
        .iter()
        .find_map(|k| json.get(*k).and_then(text))
        .filter(|s| !s.is_empty())
}

/// Whether two URLs share scheme, host and port.
fn same_origin(a: &str, b: &str) -> bool {
    match (a.parse::<Uri>(), b.parse::<Uri>()) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.authority().map(|x| x.as_str().to_ascii_lowercase())
                    == b.authority().map(|x| x.as_str().to_ascii_lowercase())
        }
        _ => false,
    }
}

/// Resolves a `Location` header against the URL it came from.
fn resolve_location(current: &str, location: &str) -> Option<String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_string());
    }
    let cur: Uri = current.parse().ok()?;
    let origin = format!("{}://{}", cur.scheme_str()?, cur.authority()?.as_str());
    if let Some(rest) = location.strip_prefix("//") {
        return Some(format!("{}://{rest}", cur.scheme_str()?));
    }
    if location.starts_with('/') {
        return Some(format!("{origin}{location}"));
    }
    let path = cur.path();
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    Some(format!("{origin}{dir}{location}"))
}

/// Percent-encodes a query parameter value.
pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_not_raw_json() {
        assert_eq!(
            server_message(r#"{"details":"incorrect username or password"}"#).as_deref(),
            Some("incorrect username or password")
        );
        assert_eq!(
            server_message(
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#
            )
            .as_deref(),
            Some("unauthorized: authentication required")
        );
        assert_eq!(server_message("<html>oops</html>"), None);
        assert_eq!(server_message(r#"{"details":""}"#), None);
    }

    #[test]
    fn refused_and_unknown_hosts_are_not_retried() {
        let refused = ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(!transient(&refused));
        assert!(!transient(&ureq::Error::HostNotFound));
        assert!(!transient(&ureq::Error::Timeout(ureq::Timeout::Connect)));
        let reset = ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(transient(&reset));
        assert!(transient(&ureq::Error::Timeout(ureq::Timeout::RecvBody)));
    }

    #[test]
    fn insecure_rule() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_insecure(h, &[]), "{h}");
        }
        for h in [
            "registry-1.docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
        ] {
            assert!(!is_insecure(h, &[]), "{h}");
        }
        assert!(is_insecure("reg.lan:5000", &["reg.lan:5000".to_string()]));
    }

    #[test]
    fn redirects_and_origins() {
        assert_eq!(
            resolve_location("http://a:1/v2/x/blobs/d", "/b").as_deref(),
            Some("http://a:1/b")
        );
        assert_eq!(
            resolve_location("http://a:1/v2/x", "https://cdn/b?s=1").as_deref(),
            Some("https://cdn/b?s=1")
        );
        assert!(same_origin("http://A:1/x", "http://a:1"));
        assert!(!same_origin("http://a:1/x", "http://a:2"));
        assert!(!same_origin("https://a/x", "http://a"));
        assert_eq!(
            urlencode("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
    }
}
