//! hostplane host layer: the seam between the daemon and the real system. It knows nothing of
//! HTTP; it runs programs and reads the kernel's files and returns typed data or typed errors.
//!
//! * [`command`]: the one command runner ([`Cmd`]) every external program goes through, plus
//!   the argument validators ([`validate_name`], [`validate_path_arg`]) and [`which`].
//! * [`capabilities`]: the host capability probe ([`probe`]) and [`disk_free`].

pub mod capabilities;
pub mod command;

pub use capabilities::{disk_free, kvm_decision, probe};
pub use command::{Cmd, CommandError, Output, validate_name, validate_path_arg, which};
