//! `/api/v1/system/storage`: where the appliance's persistent storage lives, applied at the next
//! boot by generated systemd units.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Persistent storage settings, by type (Jidoteki's `storage` object, with `port` a number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum StorageSettings {
    /// The local disk: nothing is mounted.
    Local,
    /// An NFS export.
    Nfs {
        /// Comma-separated mount options, e.g. `noacl,sync`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mount_options: Option<String>,
        /// Server address (IPv4, IPv6 or host name).
        ip: String,
        /// Exported path, e.g. `/nfs/storage`.
        share: String,
    },
    /// An ATA-over-Ethernet device, `e<shelf>.<slot>`.
    Aoe {
        /// e.g. `e0.1`.
        device: String,
    },
    /// An iSCSI LUN 0 of a target, optionally with CHAP credentials.
    Iscsi {
        /// Target IQN, e.g. `iqn.2016-01.com.example:storage.lun1`.
        target: String,
        /// Portal address (port 3260).
        ip: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        /// CHAP secret; write-only (never returned).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
    },
    /// A Network Block Device export.
    Nbd {
        /// Export name.
        export_name: String,
        /// Server address.
        ip: String,
        /// Server port (default 10809).
        #[serde(default = "default_nbd_port")]
        port: u16,
    },
}

fn default_nbd_port() -> u16 {
    10809
}

impl StorageSettings {
    pub fn kind(&self) -> &'static str {
        match self {
            StorageSettings::Local => "local",
            StorageSettings::Nfs { .. } => "nfs",
            StorageSettings::Aoe { .. } => "aoe",
            StorageSettings::Iscsi { .. } => "iscsi",
            StorageSettings::Nbd { .. } => "nbd",
        }
    }

    /// The settings as shown: the password left out.
    pub fn redacted(&self) -> StorageSettings {
        let mut s = self.clone();
        if let StorageSettings::Iscsi { password, .. } = &mut s {
            *password = None;
        }
        s
    }
}

/// The persistent storage resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Storage {
    pub href: String,
    /// The stored settings (the iSCSI password is never shown).
    pub settings: StorageSettings,
    /// An iSCSI CHAP password is stored.
    pub password_set: bool,
    /// Storage types this appliance offers (`[admin] storage_options`).
    pub options: Vec<String>,
    /// Where the storage is mounted at boot.
    pub mount_point: String,
    /// The generated files that apply the settings at the next boot.
    pub files: Vec<String>,
    /// When and by whom the settings were last changed (absent: never).
    pub updated_at: Option<String>,
    pub updated_by: Option<String>,
}

/// Jidoteki `GET /admin/storage`: the settings as uploaded (`port` a string, no password) and
/// the types offered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JidotekiStorage {
    #[schema(value_type = Object)]
    pub storage: serde_json::Value,
    pub options: Vec<String>,
}
