//! Who is on the other end of a connection: a TCP address or a unix socket peer (with its
//! credentials from SO_PEERCRED, which the auth layer trusts for uid 0).

use std::net::{IpAddr, SocketAddr};

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::UnixListener;

#[derive(Debug, Clone)]
pub enum Peer {
    Tcp(SocketAddr),
    Unix { uid: Option<u32>, pid: Option<i32> },
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
            Peer::Unix { uid, pid } => format!(
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
            },
            Err(_) => Peer::Unix {
                uid: None,
                pid: None,
            },
        }
    }
}
