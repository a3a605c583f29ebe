//! hostplane-package: the vendor side of the appliance admin API, usable without the daemon.
//!
//! * [`keys`]: the vendor's ed25519 signing key pair and the appliance's age X25519 identity.
//! * [`update`]: update packages (a tar of signed manifest + script + payload, age-encrypted to
//!   the appliance): [`update::build`] for vendors, [`update::open`] for the appliance.
//! * [`license`]: signed licence files: [`license::issue`] and [`license::verify`].
//! * [`cli`]: the `hostplane keys|package|license` subcommands built on them.
//!
//! The daemon (`hostplane-server`) uses `update::open` and `license::verify`; the formats are
//! described for people in `docs/update-package.md` and `docs/license.md`.

pub mod cli;
pub mod keys;
pub mod license;
pub mod update;
