//! Limits on the TCP listeners (HTTP and HTTPS): a global and a per-client-address cap on open
//! connections, and an idle timeout. See docs/limits.md.
//!
//! [`LimitAcceptor`] is an `axum_server` acceptor (under TLS it is the inner acceptor, so it runs
//! before the handshake): a connection over a cap is dropped (closed) right after `accept`,
//! before a byte is read. A connection under the caps holds a [`ConnGuard`] for as long as its
//! socket lives (WebSocket upgrades included). The unix socket has its own accept loop
//! (`axum::serve` in `serve.rs`) and is never counted here.
//!
//! Idle timeout: a connection with no request in flight (a response body still streaming counts
//! as in flight) on which no byte was read or written for `idle_timeout` is closed: its next
//! read fails with `TimedOut`, and hyper drops it. This covers HTTP/2, which has no header-read
//! timeout, and HTTP/1 between requests beside hyper's `header_read_timeout`. A connection
//! upgraded to a WebSocket (an authenticated GET answered 101) is exempt.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, Response, StatusCode};
use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// The key a client is counted under: its IPv4 address, or the /64 network of an IPv6 one
/// (one host usually has a whole /64), IPv4-mapped IPv6 as IPv4.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Open TCP connections at once, all clients together.
    pub max_total: usize,
    /// Open TCP connections per client key ([`client_key`]).
    pub max_per_ip: usize,
    /// None: no idle timeout.
    pub idle_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Total,
    PerIp,
}

impl Refused {
    fn label(self) -> &'static str {
        match self {
            Refused::Total => "total",
            Refused::PerIp => "per_ip",
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// The open TCP connections, counted.
pub struct ConnTracker {
    limits: ConnLimits,
    counts: Mutex<Counts>,
    /// Seconds since `started` of the last "connection refused" warning (one per 10 s).
    last_warn: AtomicU64,
    started: Instant,
}

impl ConnTracker {
    pub fn new(limits: ConnLimits) -> Arc<ConnTracker> {
        Arc::new(ConnTracker {
            limits,
            counts: Mutex::new(Counts::default()),
            last_warn: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    pub fn limits(&self) -> ConnLimits {
        self.limits
    }

    /// Counts one more connection from `ip`, or says which cap it is over.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, Refused> {
        let key = client_key(ip);
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= self.limits.max_total {
            return Err(Refused::Total);
        }
        let n = c.per_ip.entry(key).or_insert(0);
        if *n >= self.limits.max_per_ip {
            return Err(Refused::PerIp);
        }
        *n += 1;
        c.total += 1;
        metrics::gauge!("hostplane_tcp_connections").set(c.total as f64);
        Ok(ConnGuard {
            tracker: self.clone(),
            key,
        })
    }

    /// Open TCP connections now.
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    fn release(&self, key: IpAddr) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&key);
            }
        }
        metrics::gauge!("hostplane_tcp_connections").set(c.total as f64);
    }

    fn refused(&self, ip: IpAddr, why: Refused) {
        metrics::counter!("hostplane_tcp_connections_refused_total", "reason" => why.label())
            .increment(1);
        let now = self.started.elapsed().as_secs() + 10;
        let last = self.last_warn.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .last_warn
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                remote = %ip,
                cap = why.label(),
                max_total = self.limits.max_total,
                max_per_ip = self.limits.max_per_ip,
                "TCP connection over the cap closed at accept (logged once per 10 s)"
            );
        }
    }
}

/// One counted connection; dropping it (with the socket) frees its place.
pub struct ConnGuard {
    tracker: Arc<ConnTracker>,
    key: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        crate::platform::memory::note_activity();
        self.tracker.release(self.key);
    }
}

/// The `axum_server` acceptor that applies the caps and the idle timeout.
#[derive(Clone)]
pub struct LimitAcceptor {
    tracker: Arc<ConnTracker>,
}

impl LimitAcceptor {
    pub fn new(tracker: Arc<ConnTracker>) -> LimitAcceptor {
        LimitAcceptor { tracker }
    }
}

impl<S> Accept<TcpStream, S> for LimitAcceptor {
    type Stream = LimitedStream;
    type Service = ActivityService<S>;
    type Future = std::future::Ready<io::Result<(LimitedStream, ActivityService<S>)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let ip = match stream.peer_addr() {
            Ok(a) => a.ip(),
            Err(e) => return std::future::ready(Err(e)),
        };
        let guard = match self.tracker.try_acquire(ip) {
            Ok(g) => g,
            Err(why) => {
                self.tracker.refused(ip, why);
                // Dropping the stream closes the connection.
                return std::future::ready(Err(io::Error::other(format!(
                    "connection from {ip} over the {} cap",
                    why.label()
                ))));
            }
        };
        let activity = Arc::new(Activity::default());
        let conn = crate::http::peer::TcpConn {
            id: crate::http::peer::next_conn_id(),
            local: stream.local_addr().ok(),
        };
        let idle = self.tracker.limits.idle_timeout.map(|timeout| IdleTimer {
            timeout,
            last: Instant::now(),
            sleep: Box::pin(tokio::time::sleep(timeout)),
        });
        std::future::ready(Ok((
            LimitedStream {
                inner: stream,
                _guard: guard,
                activity: activity.clone(),
                idle,
            },
            ActivityService {
                inner: service,
                activity,
                conn,
            },
        )))
    }
}

/// What the connection is doing, shared by its stream and its service.
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    upgraded: AtomicBool,
}

impl Activity {
    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0 || self.upgraded.load(Ordering::Relaxed)
    }
}

struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(a: Arc<Activity>) -> InFlight {
        a.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(a)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

struct IdleTimer {
    timeout: Duration,
    last: Instant,
    sleep: Pin<Box<Sleep>>,
}

/// A counted TCP stream with an idle timeout.
pub struct LimitedStream {
    inner: TcpStream,
    _guard: ConnGuard,
    activity: Arc<Activity>,
    idle: Option<IdleTimer>,
}

impl LimitedStream {
    fn touch(&mut self) {
        if let Some(t) = &mut self.idle {
            t.last = Instant::now();
        }
    }

    /// Polls the idle timer (registering the waker); true once the connection is idle for
    /// longer than the timeout.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(t) = &mut self.idle else {
            return false;
        };
        loop {
            if t.sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            let now = Instant::now();
            if self.activity.busy() {
                t.last = now;
            }
            let deadline = t.last + t.timeout;
            if deadline <= now {
                return true;
            }
            t.sleep.as_mut().reset(deadline);
        }
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                if self.idle_expired(cx) {
                    metrics::counter!("hostplane_tcp_connections_idle_closed_total").increment(1);
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "idle connection closed",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The connection's service: counts requests in flight (until the response body ends) and
/// notes a WebSocket upgrade, for the idle timeout.
#[derive(Clone)]
pub struct ActivityService<S> {
    inner: S,
    activity: Arc<Activity>,
    /// Added to every request: the connection's number and local address.
    conn: crate::http::peer::TcpConn,
}

impl<S, B> tower::Service<Request<B>> for ActivityService<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.conn);
        let guard = InFlight::new(self.activity.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                guard.0.upgraded.store(true, Ordering::Relaxed);
            }
            Ok(resp.map(|inner| {
                Body::new(GuardedBody {
                    inner,
                    _guard: guard,
                })
            }))
        })
    }
}

/// A response body that keeps its request "in flight" until it ends or is dropped.
struct GuardedBody {
    inner: Body,
    _guard: InFlight,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force after.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read the struct we pass; no other preconditions.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            } else {
                tracing::warn!(
                    soft = lim.rlim_cur,
                    hard = lim.rlim_max,
                    "cannot raise the open-files limit"
                );
            }
        }
    }
    lim.rlim_cur
}

/// File descriptors kept out of the TCP connection budget: the store, the unix socket and
/// its clients, job and VM child processes, QMP sockets, log files.
pub const FD_RESERVE: u64 = 256;

/// The global cap actually applied: the configured one, lowered so that TCP connections can
/// never take the descriptors in [`FD_RESERVE`].
pub fn effective_max_total(configured: usize, nofile: u64) -> usize {
    let budget = nofile.saturating_sub(FD_RESERVE).max(16);
    configured.min(usize::try_from(budget).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_64() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        let m: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(m), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[tokio::test]
    async fn caps_per_ip_and_total_and_release() {
        let t = ConnTracker::new(ConnLimits {
            max_total: 3,
            max_per_ip: 2,
            idle_timeout: None,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let g1 = t.try_acquire(a).unwrap();
        let _g2 = t.try_acquire(a).unwrap();
        assert_eq!(t.try_acquire(a).err(), Some(Refused::PerIp));
        let _g3 = t.try_acquire(b).unwrap();
        assert_eq!(t.try_acquire(b).err(), Some(Refused::Total));
        drop(g1);
        assert_eq!(t.open(), 2);
        let _g4 = t.try_acquire(a).unwrap();
    }

    #[tokio::test]
    async fn idle_connection_times_out_unless_a_request_is_in_flight() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let t = ConnTracker::new(ConnLimits {
            max_total: 10,
            max_per_ip: 10,
            idle_timeout: Some(Duration::from_millis(300)),
        });
        let (mut s, _svc) = Accept::accept(&LimitAcceptor::new(t.clone()), server, ())
            .await
            .unwrap();
        assert_eq!(t.open(), 1);
        let mut buf = [0u8; 8];
        s.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        assert!(
            tokio::time::timeout(Duration::from_millis(1200), s.read(&mut buf))
                .await
                .is_err(),
            "a busy connection was closed as idle"
        );
        s.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
        let e = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an idle connection stays open")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(s);
        assert_eq!(t.open(), 0);
        drop(client);
    }

    #[test]
    fn reserve_is_kept() {
        assert_eq!(effective_max_total(4096, 1024), 768);
        assert_eq!(effective_max_total(4096, 1 << 20), 4096);
    }
}
