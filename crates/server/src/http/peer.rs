//! Who is on the other end of a connection: a TCP address or a unix socket peer (with its
//! credentials from SO_PEERCRED, which the auth layer trusts for uid 0).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::UnixListener;

#[derive(Debug, Clone)]
pub enum Peer {
    Tcp(SocketAddr),
    /// `conn`: this connection's number ([`next_conn_id`]).
    Unix {
        uid: Option<u32>,
        pid: Option<i32>,
        conn: u64,
    },
}

/// Connections are numbered in the order they were accepted (TCP and unix socket alike), so a
/// request can show that its connection was opened after a moment (a network change must be
/// confirmed over a connection made after it applied: docs/network.md).
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// A new connection's number.
pub fn next_conn_id() -> u64 {
    NEXT_CONN.fetch_add(1, Ordering::SeqCst)
}

/// The number the next connection will get: every connection opened so far has a lower one.
pub fn conn_seq_now() -> u64 {
    NEXT_CONN.load(Ordering::SeqCst)
}

/// A TCP connection's number and the local address it came in on (the request extension the
/// TCP acceptor adds).
#[derive(Debug, Clone, Copy)]
pub struct TcpConn {
    pub id: u64,
    pub local: Option<SocketAddr>,
}

/// A request's connection: its number and, over TCP, the local address it came in on.
pub fn connection_of(parts: &axum::http::request::Parts) -> (Option<u64>, Option<SocketAddr>) {
    if let Some(c) = parts.extensions.get::<TcpConn>() {
        return (Some(c.id), c.local);
    }
    match parts
        .extensions
        .get::<axum::extract::ConnectInfo<Peer>>()
        .map(|c| &c.0)
    {
        Some(Peer::Unix { conn, .. }) => (Some(*conn), None),
        _ => (None, None),
    }
}

impl Peer {
    /// Loopback TCP or the unix socket.
    pub fn is_local(&self) -> bool {
        match self {
            Peer::Tcp(a) => a.ip().is_loopback(),
            Peer::Unix { .. } => true,
        }
    }

    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Peer::Tcp(a) => Some(a.ip()),
            Peer::Unix { .. } => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Peer::Tcp(a) => a.ip().to_string(),
            Peer::Unix { uid, pid, .. } => format!(
                "unix:uid={},pid={}",
                uid.map(|u| u.to_string()).unwrap_or_else(|| "?".into()),
                pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
            ),
        }
    }
}

impl Connected<SocketAddr> for Peer {
    fn connect_info(addr: SocketAddr) -> Self {
        Peer::Tcp(addr)
    }
}

impl Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        match stream.io().peer_cred() {
            Ok(c) => Peer::Unix {
                uid: Some(c.uid()),
                pid: c.pid(),
                conn: next_conn_id(),
            },
            Err(_) => Peer::Unix {
                uid: None,
                pid: None,
                conn: next_conn_id(),
            },
        }
    }
}
