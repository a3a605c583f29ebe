//! Kernel uevents over a `NETLINK_KOBJECT_UEVENT` socket (the kernel's multicast group 1, the
//! same stream udevd reads). Works without udevd: loop attach/detach, partition changes and
//! hot-plugged disks all arrive here.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// One kernel uevent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    /// `add`, `remove`, `change`, `move`, `online`, `offline`, `bind`, `unbind`.
    pub action: String,
    pub devpath: String,
    pub props: HashMap<String, String>,
}

impl Uevent {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.props.get(k).map(String::as_str)
    }
    pub fn subsystem(&self) -> Option<&str> {
        self.get("SUBSYSTEM")
    }
    /// Kernel name (`DEVNAME=loop8`).
    pub fn devname(&self) -> Option<&str> {
        self.get("DEVNAME")
    }
    /// `disk` or `partition` for block devices.
    pub fn devtype(&self) -> Option<&str> {
        self.get("DEVTYPE")
    }
}

/// Parses one kernel message: `ACTION@DEVPATH\0KEY=VALUE\0...`. Messages re-broadcast by
/// udevd (they start with `libudev\0`) and anything malformed give None.
pub fn parse_uevent(buf: &[u8]) -> Option<Uevent> {
    let mut parts = buf.split(|b| *b == 0).filter(|p| !p.is_empty());
    let head = std::str::from_utf8(parts.next()?).ok()?;
    let (action, devpath) = head.split_once('@')?;
    let mut props = HashMap::new();
    for p in parts {
        if let Ok(s) = std::str::from_utf8(p)
            && let Some((k, v)) = s.split_once('=')
        {
            props.insert(k.to_string(), v.to_string());
        }
    }
    Some(Uevent {
        action: props
            .get("ACTION")
            .cloned()
            .unwrap_or_else(|| action.to_string()),
        devpath: devpath.to_string(),
        props,
    })
}

/// A bound uevent socket.
pub struct UeventSocket {
    fd: AsyncFd<OwnedFd>,
}

impl UeventSocket {
    /// Opens and binds the socket to the kernel group. Needs a tokio runtime.
    pub fn open() -> io::Result<UeventSocket> {
        // SAFETY: plain socket(2) call; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_KOBJECT_UEVENT,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // A burst (64 loops attached at once) must not overflow the queue.
        let size: libc::c_int = 4 << 20;
        // SAFETY: valid fd and option buffer. SO_RCVBUFFORCE needs CAP_NET_ADMIN; fall back.
        unsafe {
            let p = &size as *const libc::c_int as *const libc::c_void;
            let n = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            if libc::setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, p, n) != 0 {
                libc::setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUF, p, n);
            }
        }
        // SAFETY: sockaddr_nl is plain data; zeroed is valid.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = 1;
        // SAFETY: valid fd and address of the right length.
        let rc = unsafe {
            libc::bind(
                raw,
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the OwnedFd stays open, unchanged, for as long as the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(UeventSocket { fd })
    }

    /// The next kernel uevent (udevd's re-broadcasts and non-kernel senders are skipped).
    pub async fn recv(&self) -> io::Result<Uevent> {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let mut guard = self.fd.readable().await?;
            let res = guard.try_io(|fd| {
                // SAFETY: sockaddr_nl is plain data.
                let mut from: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
                let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
                // SAFETY: valid fd, buffer and address out-parameters.
                let n = unsafe {
                    libc::recvfrom(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                        0,
                        &mut from as *mut libc::sockaddr_nl as *mut libc::sockaddr,
                        &mut len,
                    )
                };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok((n as usize, from.nl_pid))
            });
            match res {
                Ok(Ok((n, pid))) => {
                    // Only the kernel (pid 0) is trusted.
                    if pid != 0 {
                        continue;
                    }
                    if let Some(ev) = parse_uevent(&buf[..n]) {
                        return Ok(ev);
                    }
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    tracing::warn!("uevent queue overflowed; some disk events were lost");
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_message() {
        let msg = b"change@/devices/virtual/block/loop8\0ACTION=change\0DEVPATH=/devices/virtual/block/loop8\0SUBSYSTEM=block\0RESIZE=1\0MAJOR=7\0MINOR=8\0DEVNAME=loop8\0DEVTYPE=disk\0DISKSEQ=20\0SEQNUM=4242\0";
        let e = parse_uevent(msg).unwrap();
        assert_eq!(e.action, "change");
        assert_eq!(e.devpath, "/devices/virtual/block/loop8");
        assert_eq!(e.subsystem(), Some("block"));
        assert_eq!(e.devname(), Some("loop8"));
        assert_eq!(e.devtype(), Some("disk"));
        assert_eq!(e.get("RESIZE"), Some("1"));
    }

    #[test]
    fn udev_rebroadcast_and_garbage_are_ignored() {
        assert!(parse_uevent(b"libudev\0\xfe\xed\xca\xfe").is_none());
        assert!(parse_uevent(b"").is_none());
    }
}
