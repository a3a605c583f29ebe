//! hostplane host layer: the seam between the daemon and the real system. It knows nothing of
//! HTTP; it runs programs and reads the kernel's files and returns typed data or typed errors.
//!
//! * [`command`]: the one command runner ([`Cmd`]) every external program goes through, plus
//!   the argument validators ([`validate_name`], [`validate_path_arg`]) and [`which`].
//! * [`capabilities`]: the host capability probe ([`probe`]) and [`disk_free`].
//! * [`lxc`]: LXC containers through the `lxc-*` tools (parsers, config file editing).
//! * [`health`]: load, memory, CPU, filesystems and sampled rates from `/proc` and `statvfs`.
//! * [`persistent_storage`]: mount units that attach the persistent storage at boot.
//! * [`qemu`]: QEMU for the `vms` area: argv builder, process supervision, QMP client, qemu-img.
//! * [`ssh`]: the OpenSSH client of provisioning's `ssh` transport (pinned host key, run keys).
//! * [`systemd`]: service units over D-Bus (list, start/stop/restart, enable/disable, reboot).

pub mod accounts;
pub mod blockdev;
pub mod btrfs;
pub mod capabilities;
pub mod command;
pub mod compose;
pub mod containers;
pub mod disks;
pub mod fsutil;
pub mod health;
pub mod lxc;
pub mod network;
pub mod nfs;
pub mod persistent_storage;
pub mod power;
pub mod qemu;
pub mod samba;
pub mod smart;
pub mod snapraid;
pub mod ssh;
pub mod support;
pub mod systemd;
pub mod terminal;
pub mod uevent;
pub mod update;

pub use capabilities::{disk_free, kvm_decision, probe};
pub use command::{
    ChildOutput, Cmd, CommandError, OnDrop, Output, PtyChild, PtyIo, Supervised, validate_name,
    validate_path_arg, which,
};
