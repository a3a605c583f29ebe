//! Talking to the daemon: where (`Target`, `Endpoint`), how (reqwest over TCP/TLS, a bare
//! hyper HTTP/1 connection over the unix socket), and what a failed call says (`ApiFailure`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::TryStreamExt;
use futures_util::stream::BoxStream;
use hostplane_types::problem::Problem;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::SavedLogin;

const DEFAULT_URL: &str = "https://127.0.0.1:8443";
const ROOT_SOCKET: &str = "/run/hostplane/hostplane.sock";
const USER_AGENT: &str = concat!("hostplane-cli/", env!("CARGO_PKG_VERSION"));

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `http(s)://host:port[/prefix]`, without a trailing slash.
    Http(String),
    /// The unix socket path.
    Unix(PathBuf),
}

impl Target {
    /// Parses `https://…`, `http://…` or `unix:///abs/path.sock`.
    pub fn parse(s: &str) -> anyhow::Result<Target> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("unix:") {
            // unix:///p (URL form) and unix:/p both name /p.
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if !path.starts_with('/') {
                bail!(
                    "{s:?}: a unix socket URL needs an absolute path, e.g. unix:///run/hostplane/hostplane.sock"
                );
            }
            return Ok(Target::Unix(PathBuf::from(path)));
        }
        let url = reqwest::Url::parse(s).with_context(|| {
            format!("{s:?} is not a URL (https://HOST:PORT, http://HOST:PORT or unix:///PATH)")
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("{s:?}: the URL scheme must be https, http or unix");
        }
        if url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
            bail!("{s:?}: expected https://HOST[:PORT] without query or fragment");
        }
        let mut base = url.as_str().trim_end_matches('/').to_string();
        // Someone pasting the API base means the daemon.
        if let Some(b) = base.strip_suffix(hostplane_types::API_BASE) {
            base = b.trim_end_matches('/').to_string();
        }
        Ok(Target::Http(base))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Http(u) => f.write_str(u),
            Target::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// Everything needed to reach the daemon, after flags, environment and the saved login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub target: Target,
    pub token: Option<String>,
    pub insecure: bool,
    pub ca: Option<PathBuf>,
    /// The saved login is for this target (its token, `insecure` and `ca` apply).
    pub saved_applies: bool,
}

/// Flags/env first; the saved login only for its own URL (its token never goes elsewhere);
/// then a local socket we may open; then https://127.0.0.1:8443.
pub fn resolve(
    url: Option<&str>,
    token: Option<&str>,
    insecure: bool,
    ca: Option<&Path>,
    saved: Option<&SavedLogin>,
    usable_socket: impl Fn(&Path) -> bool,
) -> anyhow::Result<Endpoint> {
    let saved_target = match saved {
        Some(s) => {
            Some(Target::parse(&s.url).context("the saved login has a bad url (log in again)")?)
        }
        None => None,
    };
    let target = match url.filter(|u| !u.trim().is_empty()) {
        Some(u) => Target::parse(u)?,
        None => match &saved_target {
            Some(t) => t.clone(),
            None => default_socket(&usable_socket)
                .map(Target::Unix)
                .unwrap_or_else(|| Target::Http(DEFAULT_URL.into())),
        },
    };
    let saved_applies = saved_target.as_ref() == Some(&target);
    let saved = saved.filter(|_| saved_applies);
    Ok(Endpoint {
        token: token
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.trim().to_string())
            .or_else(|| saved.and_then(|s| s.token.clone())),
        insecure: insecure || saved.is_some_and(|s| s.insecure),
        ca: ca
            .map(Path::to_path_buf)
            .or_else(|| saved.and_then(|s| s.ca.clone())),
        target,
        saved_applies,
    })
}

fn default_socket(usable: &impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let data = nonempty("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| nonempty("HOME").map(|h| PathBuf::from(h).join(".local/share")));
    std::iter::once(PathBuf::from(ROOT_SOCKET))
        .chain(data.map(|d| d.join("hostplane/hostplane.sock")))
        .find(|p| usable(p))
}

/// A socket exists and we may connect to it (write permission).
pub fn socket_usable(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string; access() only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// An answer that is not 2xx. Displays as `<detail> (<code>, HTTP <status>)`.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub problem: Option<Problem>,
    /// The body, when it was not a problem document.
    pub body: String,
}

impl ApiFailure {
    pub fn from_body(status: StatusCode, body: &[u8]) -> ApiFailure {
        match serde_json::from_slice::<Problem>(body) {
            Ok(problem) => ApiFailure {
                status,
                problem: Some(problem),
                body: String::new(),
            },
            Err(_) => ApiFailure {
                status,
                problem: None,
                body: String::from_utf8_lossy(body)
                    .trim()
                    .chars()
                    .take(500)
                    .collect(),
            },
        }
    }
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.status.as_u16();
        match &self.problem {
            Some(p) => {
                write!(f, "{} ({}, HTTP {status})", p.detail, p.code)?;
                for e in p.errors.iter().filter(|e| e.message != p.detail) {
                    write!(f, "\n  {}: {}", e.field, e.message)?;
                }
                Ok(())
            }
            None => {
                let reason = self.status.canonical_reason().unwrap_or("error");
                if self.body.is_empty() {
                    write!(f, "{reason} (HTTP {status})")
                } else {
                    write!(f, "{} ({reason}, HTTP {status})", self.body)
                }
            }
        }
    }
}

impl std::error::Error for ApiFailure {}

enum Transport {
    Http { base: String, http: reqwest::Client },
    Unix(PathBuf),
}

/// The byte stream under a WebSocket, whichever transport carried the upgrade.
pub trait UpgradedIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> UpgradedIo for T {}

/// A client WebSocket over either transport.
pub type WebSocket = tokio_tungstenite::WebSocketStream<Box<dyn UpgradedIo>>;

/// A request body: bytes in memory, or a stream of known length (a file read as it is sent).
pub enum ReqBody {
    Bytes(Vec<u8>),
    Stream {
        stream: BoxStream<'static, std::io::Result<Bytes>>,
        len: u64,
    },
}

impl ReqBody {
    /// The file at `path`, read in 256 KiB pieces as they are sent; `sent` is told the bytes
    /// sent so far (a progress bar).
    pub fn file(
        path: &Path,
        sent: impl Fn(u64) + Send + Sync + 'static,
    ) -> anyhow::Result<ReqBody> {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        let state = (tokio::fs::File::from_std(file), 0u64, sent);
        let stream = futures_util::stream::try_unfold(state, |(mut f, done, sent)| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 256 * 1024];
            let n = f.read(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            let done = done + n as u64;
            sent(done);
            Ok(Some((Bytes::from(buf), (f, done, sent))))
        });
        Ok(ReqBody::Stream {
            stream: Box::pin(stream),
            len,
        })
    }
}

type HyperBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// One client for both transports.
pub struct Client {
    transport: Transport,
    token: Option<String>,
    target: Target,
}

/// An answer whose body is read as it arrives.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Body,
}

enum Body {
    Reqwest(reqwest::Response),
    Hyper(Incoming),
}

impl Response {
    /// The next piece of the body, None at its end.
    pub async fn chunk(&mut self) -> anyhow::Result<Option<Bytes>> {
        match &mut self.body {
            Body::Reqwest(r) => Ok(r.chunk().await.context("reading the answer")?),
            Body::Hyper(b) => loop {
                match b.frame().await {
                    None => return Ok(None),
                    Some(frame) => {
                        if let Ok(data) = frame.context("reading the answer")?.into_data() {
                            return Ok(Some(data));
                        }
                    }
                }
            },
        }
    }

    pub async fn bytes(mut self) -> anyhow::Result<Bytes> {
        let mut all = Vec::new();
        while let Some(c) = self.chunk().await? {
            all.extend_from_slice(&c);
        }
        Ok(all.into())
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body, or an `ApiFailure` when the status is not 2xx.
    pub async fn ok_bytes(self) -> anyhow::Result<(StatusCode, HeaderMap, Bytes)> {
        let (status, headers) = (self.status, self.headers.clone());
        let body = self.bytes().await?;
        if !status.is_success() {
            return Err(ApiFailure::from_body(status, &body).into());
        }
        Ok((status, headers, body))
    }

    /// Fails with `ApiFailure` unless 2xx; the body stays unread.
    pub async fn error_for_status(self) -> anyhow::Result<Response> {
        if self.status.is_success() {
            return Ok(self);
        }
        let status = self.status;
        let body = self.bytes().await?;
        Err(ApiFailure::from_body(status, &body).into())
    }
}

/// A 2xx JSON answer: the raw value (for `--json`) and its headers.
pub struct JsonAnswer {
    /// The body as received.
    pub raw: Bytes,
    pub headers: HeaderMap,
    pub value: serde_json::Value,
}

impl JsonAnswer {
    pub fn parse<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_value(self.value.clone()).context("unexpected answer from the daemon")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    pub fn new(ep: &Endpoint) -> anyhow::Result<Client> {
        let transport = match &ep.target {
            Target::Unix(p) => Transport::Unix(p.clone()),
            Target::Http(base) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let mut b = reqwest::Client::builder()
                    .tls_backend_rustls()
                    .user_agent(USER_AGENT)
                    .connect_timeout(Duration::from_secs(10));
                if ep.insecure {
                    b = b.danger_accept_invalid_certs(true);
                } else if let Some(ca) = &ep.ca {
                    let pem = std::fs::read(ca)
                        .with_context(|| format!("reading the CA file {}", ca.display()))?;
                    let certs = reqwest::Certificate::from_pem_bundle(&pem)
                        .with_context(|| format!("{} is not PEM", ca.display()))?;
                    if certs.is_empty() {
                        bail!("{} holds no certificate", ca.display());
                    }
                    b = b.tls_certs_only(certs);
                }
                Transport::Http {
                    base: base.clone(),
                    http: b.build().context("setting up the HTTP client")?,
                }
            }
        };
        Ok(Client {
            transport,
            token: ep.token.clone(),
            target: ep.target.clone(),
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends a request (`path` starts with `/`, may hold a query); the body is JSON.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Response> {
        self.send_with(method, path, body, self.token.as_deref())
            .await
    }

    /// Like `send`, without the bearer token (login).
    pub async fn send_anonymous(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Response> {
        self.send_with(method, path, body, None).await
    }

    /// Sends a body of another type (an update package, a backup archive), typically a file
    /// streamed from disk (`ReqBody::file`).
    pub async fn send_body(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        content_type: &'static str,
    ) -> anyhow::Result<Response> {
        let mut headers = self.auth_headers(self.token.as_deref())?;
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        self.send_headers(method, path, Some(body), headers).await
    }

    fn auth_headers(&self, token: Option<&str>) -> anyhow::Result<HeaderMap> {
        let mut headers = HeaderMap::new();
        if let Some(t) = token {
            let v = HeaderValue::from_str(&format!("Bearer {t}"))
                .context("the token holds characters a header cannot carry")?;
            headers.insert(header::AUTHORIZATION, v);
        }
        Ok(headers)
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        token: Option<&str>,
    ) -> anyhow::Result<Response> {
        let mut headers = self.auth_headers(token)?;
        if body.is_some() {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        self.send_headers(method, path, body.map(ReqBody::Bytes), headers)
            .await
    }

    async fn send_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<ReqBody>,
        mut headers: HeaderMap,
    ) -> anyhow::Result<Response> {
        if let Some(ReqBody::Stream { len, .. }) = &body {
            // Announced, so the daemon refuses an upload over its limit before reading it.
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(*len));
        }
        match &self.transport {
            Transport::Http { base, http } => {
                let mut req = http
                    .request(method, format!("{base}{path}"))
                    .headers(headers);
                match body {
                    Some(ReqBody::Bytes(b)) => req = req.body(b),
                    Some(ReqBody::Stream { stream, .. }) => {
                        req = req.body(reqwest::Body::wrap_stream(stream))
                    }
                    None => {}
                }
                let resp = req.send().await.map_err(|e| self.connect_error(e))?;
                Ok(Response {
                    status: resp.status(),
                    headers: resp.headers().clone(),
                    body: Body::Reqwest(resp),
                })
            }
            Transport::Unix(sock) => {
                let stream = tokio::net::UnixStream::connect(sock)
                    .await
                    .map_err(|e| unix_connect_error(sock, e))?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake::<_, HyperBody>(TokioIo::new(stream))
                        .await
                        .with_context(|| format!("talking to {}", self.target))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                let mut req = hyper::Request::builder()
                    .method(method)
                    .uri(path)
                    .header(header::HOST, "localhost")
                    .header(header::USER_AGENT, USER_AGENT);
                if let Some(h) = req.headers_mut() {
                    h.extend(headers);
                }
                let body: HyperBody = match body {
                    None => Full::new(Bytes::new())
                        .map_err(|n| match n {})
                        .boxed_unsync(),
                    Some(ReqBody::Bytes(b)) => Full::new(Bytes::from(b))
                        .map_err(|n| match n {})
                        .boxed_unsync(),
                    Some(ReqBody::Stream { stream, .. }) => {
                        StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync()
                    }
                };
                let req = req
                    .body(body)
                    .with_context(|| format!("bad request path {path:?}"))?;
                let resp = sender
                    .send_request(req)
                    .await
                    .with_context(|| format!("talking to {}", self.target))?;
                let (parts, body) = resp.into_parts();
                Ok(Response {
                    status: parts.status,
                    headers: parts.headers,
                    body: Body::Hyper(body),
                })
            }
        }
    }

    /// Opens a WebSocket on `path` (HTTP/1.1 upgrade, authenticated like any request) over
    /// either transport.
    pub async fn websocket(&self, path: &str) -> anyhow::Result<WebSocket> {
        let mut headers = self.auth_headers(self.token.as_deref())?;
        let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_str(&key).context("websocket key")?,
        );
        let io: Box<dyn UpgradedIo> = match &self.transport {
            Transport::Http { base, http } => {
                let resp = http
                    .get(format!("{base}{path}"))
                    .headers(headers)
                    .send()
                    .await
                    .map_err(|e| self.connect_error(e))?;
                if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
                    let status = resp.status();
                    let body = resp.bytes().await.unwrap_or_default();
                    return Err(ApiFailure::from_body(status, &body).into());
                }
                Box::new(resp.upgrade().await.context("upgrading to a WebSocket")?)
            }
            Transport::Unix(sock) => {
                let stream = tokio::net::UnixStream::connect(sock)
                    .await
                    .map_err(|e| unix_connect_error(sock, e))?;
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .with_context(|| format!("talking to {}", self.target))?;
                tokio::spawn(async move {
                    let _ = conn.with_upgrades().await;
                });
                let mut req = hyper::Request::builder()
                    .method(Method::GET)
                    .uri(path)
                    .header(header::HOST, "localhost")
                    .header(header::USER_AGENT, USER_AGENT);
                if let Some(h) = req.headers_mut() {
                    h.extend(headers);
                }
                let req = req
                    .body(Full::new(Bytes::new()))
                    .with_context(|| format!("bad request path {path:?}"))?;
                let resp = sender
                    .send_request(req)
                    .await
                    .with_context(|| format!("talking to {}", self.target))?;
                if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
                    let status = resp.status();
                    let body = resp
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    return Err(ApiFailure::from_body(status, &body).into());
                }
                let upgraded = hyper::upgrade::on(resp)
                    .await
                    .context("upgrading to a WebSocket")?;
                Box::new(TokioIo::new(upgraded))
            }
        };
        Ok(tokio_tungstenite::WebSocketStream::from_raw_socket(
            io,
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            None,
        )
        .await)
    }

    fn connect_error(&self, e: reqwest::Error) -> anyhow::Error {
        // reqwest's own message repeats the URL; its sources say what went wrong.
        let mut parts = Vec::new();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            parts.push(s.to_string());
            src = s.source();
        }
        let chain = if parts.is_empty() {
            e.to_string()
        } else {
            parts.join(": ")
        };
        let lower = chain.to_lowercase();
        let hint = if lower.contains("certificate") || lower.contains("unknownissuer") {
            "; the daemon's default certificate is self-signed: pass --ca DATA_DIR/tls/cert.pem or --insecure"
        } else if e.is_connect() {
            "; is the daemon running? (--url picks another address)"
        } else {
            ""
        };
        anyhow::anyhow!("cannot reach {}: {chain}{hint}", self.target)
    }

    /// A call whose 2xx answer is JSON (or empty: `Value::Null`); else an `ApiFailure`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<JsonAnswer> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .context("encoding the request")?;
        let (_, headers, bytes) = self.send(method, path, body).await?.ok_bytes().await?;
        json_answer(headers, bytes)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<JsonAnswer> {
        self.call(Method::GET, path, None::<&()>).await
    }
}

pub fn json_answer(headers: HeaderMap, bytes: Bytes) -> anyhow::Result<JsonAnswer> {
    let value = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).context("the daemon's answer is not JSON")?
    };
    Ok(JsonAnswer {
        raw: bytes,
        headers,
        value,
    })
}

fn unix_connect_error(sock: &Path, e: std::io::Error) -> anyhow::Error {
    let hint = match e.kind() {
        std::io::ErrorKind::NotFound => "; is the daemon running? (--url picks another address)",
        std::io::ErrorKind::PermissionDenied => {
            "; the socket is for root and its group (or use --url https://… with a token)"
        }
        std::io::ErrorKind::ConnectionRefused => "; the daemon is not running",
        _ => "",
    };
    anyhow::anyhow!("cannot connect to unix://{}: {e}{hint}", sock.display())
}

/// Percent-encodes one path segment.
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `path?k=v&…` with the values encoded; pairs with None are left out.
pub fn with_query(path: &str, params: &[(&str, Option<String>)]) -> String {
    let mut q = reqwest::Url::parse("http://x/").expect("static URL");
    {
        let mut pairs = q.query_pairs_mut();
        for (k, v) in params {
            if let Some(v) = v {
                pairs.append_pair(k, v);
            }
        }
    }
    match q.query() {
        Some(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_urls() {
        let want = Target::Unix("/run/hostplane/hostplane.sock".into());
        assert_eq!(
            Target::parse("unix:///run/hostplane/hostplane.sock").unwrap(),
            want
        );
        assert_eq!(
            Target::parse("unix:/run/hostplane/hostplane.sock").unwrap(),
            want
        );
        assert_eq!(want.to_string(), "unix:///run/hostplane/hostplane.sock");
        assert!(Target::parse("unix://relative.sock").is_err());
        assert!(Target::parse("unix:").is_err());
    }

    #[test]
    fn parses_http_urls() {
        let t = Target::parse("https://127.0.0.1:8443/").unwrap();
        assert_eq!(t, Target::Http("https://127.0.0.1:8443".into()));
        let t = Target::parse("http://host:80/api/v1").unwrap();
        assert_eq!(t, Target::Http("http://host".into()));
        assert_eq!(
            Target::parse("https://h/prefix/").unwrap(),
            Target::Http("https://h/prefix".into())
        );
        assert!(Target::parse("ftp://h").is_err());
        assert!(Target::parse("127.0.0.1:8443").is_err());
        assert!(Target::parse("https://h/?x=1").is_err());
    }

    fn saved(url: &str) -> SavedLogin {
        SavedLogin {
            url: url.into(),
            token: Some("hp_saved_x".into()),
            user: Some("alice".into()),
            insecure: true,
            ca: None,
        }
    }

    #[test]
    fn resolution_order() {
        let none = |_: &Path| false;
        // Nothing at all: the TCP default.
        let ep = resolve(None, None, false, None, None, none).unwrap();
        assert_eq!(ep.target, Target::Http(DEFAULT_URL.into()));
        assert_eq!(ep.token, None);
        // A usable root socket wins over the default.
        let root = |p: &Path| p == Path::new(ROOT_SOCKET);
        let ep = resolve(None, None, false, None, None, root).unwrap();
        assert_eq!(ep.target, Target::Unix(ROOT_SOCKET.into()));
        // The saved login wins over sockets, with its token and insecure flag.
        let s = saved("https://h:8443");
        let ep = resolve(None, None, false, None, Some(&s), root).unwrap();
        assert_eq!(ep.target, Target::Http("https://h:8443".into()));
        assert_eq!(ep.token.as_deref(), Some("hp_saved_x"));
        assert!(ep.insecure && ep.saved_applies);
        // An explicit token wins over the saved one.
        let ep = resolve(None, Some("hp_flag_y"), false, None, Some(&s), none).unwrap();
        assert_eq!(ep.token.as_deref(), Some("hp_flag_y"));
        // Another URL: the saved token is not sent there.
        let ep = resolve(
            Some("unix:///tmp/s.sock"),
            None,
            false,
            None,
            Some(&s),
            none,
        )
        .unwrap();
        assert_eq!(ep.target, Target::Unix("/tmp/s.sock".into()));
        assert_eq!(ep.token, None);
        assert!(!ep.insecure && !ep.saved_applies);
        // The same URL spelt differently still matches.
        let ep = resolve(Some("https://h:8443/"), None, false, None, Some(&s), none).unwrap();
        assert!(ep.saved_applies);
        // An empty token (HOSTPLANE_TOKEN=) counts as none.
        let ep = resolve(None, Some(""), false, None, None, none).unwrap();
        assert_eq!(ep.token, None);
    }

    #[test]
    fn renders_problems() {
        let body = br#"{"type":"https://hostplane.dev/problems/lock_held","title":"Conflict",
            "status":409,"detail":"a self-test is already running","code":"lock_held"}"#;
        let f = ApiFailure::from_body(StatusCode::CONFLICT, body);
        assert_eq!(f.problem.as_ref().unwrap().code, "lock_held");
        assert_eq!(
            f.to_string(),
            "a self-test is already running (lock_held, HTTP 409)"
        );
        let body = br#"{"type":"t","title":"Unprocessable Entity","status":422,
            "detail":"invalid request","code":"invalid_body",
            "errors":[{"field":"role","message":"unknown variant `boss`"}]}"#;
        let f = ApiFailure::from_body(StatusCode::UNPROCESSABLE_ENTITY, body);
        assert_eq!(
            f.to_string(),
            "invalid request (invalid_body, HTTP 422)\n  role: unknown variant `boss`"
        );
        // Not a problem document (a proxy's page, say).
        let f = ApiFailure::from_body(StatusCode::BAD_GATEWAY, b"upstream down\n");
        assert_eq!(f.to_string(), "upstream down (Bad Gateway, HTTP 502)");
        let f = ApiFailure::from_body(StatusCode::NOT_FOUND, b"");
        assert_eq!(f.to_string(), "Not Found (HTTP 404)");
    }

    #[test]
    fn encodes_paths_and_queries() {
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        assert_eq!(seg("job-1.x_~"), "job-1.x_~");
        assert_eq!(
            with_query(
                "/api/v1/jobs",
                &[
                    ("filter", Some("status:running kind:system.*".into())),
                    ("limit", None),
                ]
            ),
            "/api/v1/jobs?filter=status%3Arunning+kind%3Asystem.*"
        );
        assert_eq!(with_query("/x", &[("limit", None)]), "/x");
    }
}
