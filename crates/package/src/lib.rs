//! hostplane-package: the vendor side of the appliance admin API, usable without the daemon.
//!
//! * [`keys`]: the vendor's ed25519 signing key pair and the appliance's age X25519 identity.
//! * [`update`]: update packages (a tar of signed manifest + script + payload, age-encrypted to
//!   the appliance): [`update::build`] for vendors, [`update::open`] for the appliance.
//! * [`license`]: signed licence files: [`license::issue`] and [`license::verify`].
//! * [`backup`]: backup archives of the appliance state (manifest, entries, limits):
//!   [`backup::pack`] and [`backup::unpack`] (with the format checks).
//! * [`cli`]: the `hostplane keys|package|license` subcommands built on them.
//!
//! The daemon (`hostplane-server`) uses `update::open`, `license::verify` and `backup`; the
//! formats are described for people in `docs/update-package.md`, `docs/license.md` and
//! `docs/certificates-storage-backup.md`.

pub mod backup;
pub mod cli;
pub mod keys;
pub mod license;
pub mod update;
