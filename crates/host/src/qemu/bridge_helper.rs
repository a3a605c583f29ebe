//! hostplane's own QEMU bridge helper: how a VM NIC in bridge mode gets its tap.
//!
//! QEMU's `-netdev bridge,br=BR` runs a helper program that creates a tap, makes it a port of
//! the bridge and hands QEMU the tap's file descriptor over a socket. QEMU's own
//! `qemu-bridge-helper` allows only the bridges listed in `/etc/qemu/bridge.conf`, a host file
//! that does not exist on a stock Debian (so every bridge NIC failed) and that hostplane would
//! otherwise have to own. Instead the netdev names `helper=DIR/hostplane-bridge-helper`, a link
//! to the daemon's own binary ([`prepare`]); `main` sees that program name ([`is_helper`]) and
//! runs [`helper_main`]: QEMU calls it as `HELPER --use-vnet --fd=N --br=BR` (argv, no shell:
//! QEMU uses a shell only for a helper path with a space, which ours never has). The helper
//! opens `/dev/net/tun` (a tap named by the kernel, `hptapN`, with a vnet header when asked),
//! gives it the bridge's MTU, makes it a port of the bridge and up (netlink), and sends the fd
//! on socket `N` (SCM_RIGHTS). The tap is not persistent: it goes away when QEMU closes it.
//! Everything happens in the namespace QEMU runs in (the daemon's), so a daemon in a test
//! namespace gets its taps there. Which bridges a VM may use is checked by the daemon before it
//! starts QEMU (the bridge must exist).

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The file name of the helper link: `main` runs [`helper_main`] when started under it.
pub const HELPER_NAME: &str = "hostplane-bridge-helper";

/// `argv[0]` names the helper.
pub fn is_helper(argv0: &std::ffi::OsStr) -> bool {
    Path::new(argv0).file_name() == Some(std::ffi::OsStr::new(HELPER_NAME))
}

/// Points `dir/hostplane-bridge-helper` at `exe` (the daemon's binary), atomically; returns
/// the link's path for QEMU's `helper=`.
pub fn prepare(dir: &Path, exe: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let link = dir.join(HELPER_NAME);
    // QEMU runs a helper path with white space through `sh -c`: never ours.
    if link.to_string_lossy().contains(char::is_whitespace) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{}: a bridge helper path cannot contain white space",
                link.display()
            ),
        ));
    }
    if std::fs::read_link(&link).ok().as_deref() == Some(exe) {
        return Ok(link);
    }
    let tmp = dir.join(format!(".{HELPER_NAME}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(exe, &tmp)?;
    std::fs::rename(&tmp, &link)?;
    Ok(link)
}

/// The helper's arguments as QEMU passes them.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    vnet: bool,
    bridge: String,
    fd: i32,
}

fn parse_args(args: impl Iterator<Item = OsString>) -> Result<Args, String> {
    let (mut vnet, mut bridge, mut fd) = (false, None, None);
    for a in args {
        let a = a.to_str().ok_or("a non-UTF-8 argument")?.to_string();
        if a == "--use-vnet" {
            vnet = true;
        } else if let Some(b) = a.strip_prefix("--br=") {
            bridge = Some(b.to_string());
        } else if let Some(f) = a.strip_prefix("--fd=") {
            fd = Some(f.parse::<i32>().map_err(|_| format!("bad {a}"))?);
        } else {
            return Err(format!("unknown argument {a:?}"));
        }
    }
    let bridge = bridge.ok_or("no --br=")?;
    let ok = !bridge.is_empty()
        && bridge.len() <= 15
        && bridge.as_bytes()[0].is_ascii_alphanumeric()
        && !bridge.contains("..")
        && bridge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ok {
        return Err(format!("{bridge:?} is not an interface name"));
    }
    let fd = fd.filter(|f| *f > 2).ok_or("no --fd=")?;
    Ok(Args { vnet, bridge, fd })
}

/// `main` of the helper: 0 when QEMU got its tap, 1 (and a line on stderr, which QEMU shows
/// in its error) otherwise.
pub fn helper_main(args: impl Iterator<Item = OsString>) -> i32 {
    match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{HELPER_NAME}: {e}");
            1
        }
    }
}

fn run(args: impl Iterator<Item = OsString>) -> Result<(), String> {
    let a = parse_args(args)?;
    // SAFETY: QEMU passes the socket's number in --fd; we own it from here on (closed on exit).
    let sock = unsafe { OwnedFd::from_raw_fd(a.fd) };
    if !Path::new("/sys/class/net")
        .join(&a.bridge)
        .join("bridge")
        .exists()
    {
        return Err(format!("no bridge {:?}", a.bridge));
    }
    let (tap, name) = open_tap(a.vnet).map_err(|e| format!("/dev/net/tun: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let nl = super::super::network::Netlink::open().map_err(|e| e.to_string())?;
        if let Some(br) = nl.link(&a.bridge).await.map_err(|e| e.to_string())? {
            nl.set_mtu(&name, br.mtu).await.map_err(|e| e.to_string())?;
        }
        nl.set_controller(&name, Some(&a.bridge))
            .await
            .map_err(|e| format!("{name} into {}: {e}", a.bridge))?;
        nl.set_up(&name, true).await.map_err(|e| e.to_string())
    })?;
    send_fd(&sock, &tap).map_err(|e| format!("sending the tap to QEMU: {e}"))
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags (the rest is padding).
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// A new (non-persistent) tap named by the kernel from `hptap%d`: its fd and name.
fn open_tap(vnet: bool) -> std::io::Result<(OwnedFd, String)> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let fd = OwnedFd::from(f);
    let mut req = IfReq {
        name: [0; 16],
        flags: IFF_TAP | IFF_NO_PI | if vnet { IFF_VNET_HDR } else { 0 },
        _pad: [0; 22],
    };
    req.name[..8].copy_from_slice(b"hptap%d\0");
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq` (40 bytes), which `req` is.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req as *mut IfReq) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let end = req.name.iter().position(|b| *b == 0).unwrap_or(16);
    Ok((fd, String::from_utf8_lossy(&req.name[..end]).into_owned()))
}

/// Sends `fd` over the unix socket `sock` (one data byte, the fd as SCM_RIGHTS), as
/// qemu-bridge-helper does.
fn send_fd(sock: &OwnedFd, fd: &OwnedFd) -> std::io::Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer is CMSG_SPACE(sizeof(int)) bytes, room for one header and one
    // int; CMSG_FIRSTHDR of it is non-null.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>(), fd.as_raw_fd());
    }
    // SAFETY: `msg` points at live buffers (above); sock is an open socket.
    let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Args, String> {
        parse_args(a.iter().map(OsString::from))
    }

    #[test]
    fn qemus_arguments() {
        assert_eq!(
            args(&["--use-vnet", "--fd=7", "--br=hpbr0"]).unwrap(),
            Args {
                vnet: true,
                bridge: "hpbr0".into(),
                fd: 7
            }
        );
        assert!(!args(&["--br=br0", "--fd=5"]).unwrap().vnet);
        for bad in [
            &["--fd=5"][..],
            &["--br=br0"],
            &["--br=br0", "--fd=1"],
            &["--br=../x", "--fd=5"],
            &["--br=-x", "--fd=5"],
            &["--br=a234567890123456", "--fd=5"],
            &["--br=br0", "--fd=5", "--acl=x"],
        ] {
            assert!(args(bad).is_err(), "{bad:?}");
        }
        assert!(is_helper(std::ffi::OsStr::new(
            "/d/run/hostplane-bridge-helper"
        )));
        assert!(!is_helper(std::ffi::OsStr::new("/usr/bin/hostplane")));
    }
}
