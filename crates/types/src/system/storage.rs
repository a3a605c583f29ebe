//! `/api/v1/system/storage`: where the appliance's persistent storage lives, applied at the next
//! boot by generated systemd units.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Persistent storage settings, by type (Jidoteki's `storage` object, with `port` a number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum StorageSettings {
    // A struct variant without fields, not a unit variant: serde lets a unit variant of an
    // internally tagged enum ignore unknown fields, while `deny_unknown_fields` closes this
    // one, so the schema can say `additionalProperties: false` (http::doc_passes). Its JSON,
    // `{"type": "local"}`, reads and writes as before.
    /// The local disk: nothing is mounted.
    Local {},
    /// An NFS export.
    Nfs {
        /// Comma-separated mount options, e.g. `noacl,sync`: words of A-Z a-z 0-9 _ = . : -,
        /// at most 255 characters in all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(
            pattern = r"^[A-Za-z0-9_=.:-]+(,[A-Za-z0-9_=.:-]+)*$",
            max_length = 255
        )]
        mount_options: Option<String>,
        /// Server address (IPv4, IPv6 or host name).
        #[schema(
            pattern = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){6}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,6})?|[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,5})?|([0-9A-Fa-f]{1,4}:){1}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,4})?|([0-9A-Fa-f]{1,4}:){2}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,3})?|([0-9A-Fa-f]{1,4}:){3}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,2})?|([0-9A-Fa-f]{1,4}:){4}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,1})?|([0-9A-Fa-f]{1,4}:){5}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4})?|([0-9A-Fa-f]{1,4}:){6}[0-9A-Fa-f]{1,4}::|::([0-9A-Fa-f]{1,4}:){0,5}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}:){0,4}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([0-9A-Fa-f]{1,4}:){1}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}:){0,3}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([0-9A-Fa-f]{1,4}:){2}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}:){0,2}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([0-9A-Fa-f]{1,4}:){3}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}:){0,1}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([0-9A-Fa-f]{1,4}:){4}[0-9A-Fa-f]{1,4}::((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))$",
            max_length = 253
        )]
        ip: String,
        /// Exported path, e.g. `/nfs/storage`: absolute, of A-Z a-z 0-9 / _ . -, no `..`
        /// component, at most 255 characters.
        #[schema(
            pattern = r"^(/([A-Za-z0-9_-][A-Za-z0-9_.-]*|\.([A-Za-z0-9_-][A-Za-z0-9_.-]*|\.[A-Za-z0-9_.-]+)?)?)+$",
            max_length = 255
        )]
        share: String,
    },
    /// An ATA-over-Ethernet device, `e<shelf>.<slot>`.
    Aoe {
        /// `e<shelf>.<slot>`, shelf 0–65534, slot 0–254, e.g. `e0.1`.
        #[schema(
            pattern = r"^e([0-9]{1,4}|[0-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-4])\.([0-9]{1,2}|[01][0-9]{2}|2[0-4][0-9]|25[0-4])$"
        )]
        device: String,
    },
    /// An iSCSI LUN 0 of a target, optionally with CHAP credentials.
    Iscsi {
        /// Target IQN, e.g. `iqn.2016-01.com.example:storage.lun1` (or `eui.` and 16 hex
        /// digits).
        #[schema(
            pattern = r"^(eui\.[0-9A-Fa-f]{16}|iqn\.[0-9]{4}-(0[1-9]|1[0-2])\.[a-z0-9-]([a-z0-9.-]*[a-z0-9-])?(:[A-Za-z0-9.:_-]+)?)$",
            max_length = 223
        )]
        target: String,
        /// Portal address (port 3260; IPv4, IPv6 or host name).
        #[schema(
            pattern = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){6}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,6})?|[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,5})?|([0-9A-Fa-f]{1,4}:){1}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,4})?|([0-9A-Fa-f]{1,4}:){2}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,3})?|([0-9A-Fa-f]{1,4}:){3}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,2})?|([0-9A-Fa-f]{1,4}:){4}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,1})?|([0-9A-Fa-f]{1,4}:){5}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4})?|([0-9A-Fa-f]{1,4}:){6}[0-9A-Fa-f]{1,4}::|::([0-9A-Fa-f]{1,4}:){0,5}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}:){0,4}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([0-9A-Fa-f]{1,4}:){1}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}:){0,3}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([0-9A-Fa-f]{1,4}:){2}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}:){0,2}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([0-9A-Fa-f]{1,4}:){3}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}:){0,1}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([0-9A-Fa-f]{1,4}:){4}[0-9A-Fa-f]{1,4}::((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))$",
            max_length = 253
        )]
        ip: String,
        /// CHAP user name, 1–64 of A-Z a-z 0-9 . _ @ : -; needs `password`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(pattern = "^[A-Za-z0-9._@:-]+$", max_length = 64)]
        username: Option<String>,
        /// CHAP secret, 1–255 of A-Z a-z 0-9 ! # * + , . / : ; = ? @ ^ _ ~ -; needs `username`;
        /// write-only (never returned).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(pattern = r"^[A-Za-z0-9!#*+,./:;=?@^_~-]+$", max_length = 255)]
        password: Option<String>,
    },
    /// A Network Block Device export.
    Nbd {
        /// Export name: 1–128 of A-Z a-z 0-9 . _ / -, not starting with `-`.
        #[schema(pattern = "^[A-Za-z0-9._/][A-Za-z0-9._/-]*$", max_length = 128)]
        export_name: String,
        /// Server address (IPv4, IPv6 or host name).
        #[schema(
            pattern = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}:){6}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,6})?|[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,5})?|([0-9A-Fa-f]{1,4}:){1}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,4})?|([0-9A-Fa-f]{1,4}:){2}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,3})?|([0-9A-Fa-f]{1,4}:){3}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,2})?|([0-9A-Fa-f]{1,4}:){4}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,1})?|([0-9A-Fa-f]{1,4}:){5}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4})?|([0-9A-Fa-f]{1,4}:){6}[0-9A-Fa-f]{1,4}::|::([0-9A-Fa-f]{1,4}:){0,5}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}:){0,4}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([0-9A-Fa-f]{1,4}:){1}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}:){0,3}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([0-9A-Fa-f]{1,4}:){2}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}:){0,2}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([0-9A-Fa-f]{1,4}:){3}[0-9A-Fa-f]{1,4}::([0-9A-Fa-f]{1,4}:){0,1}((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])|([0-9A-Fa-f]{1,4}:){4}[0-9A-Fa-f]{1,4}::((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))$",
            max_length = 253
        )]
        ip: String,
        /// Server port, 1–65535 (default 10809).
        #[serde(default = "default_nbd_port")]
        #[schema(minimum = 1, maximum = 65535)]
        port: u16,
    },
}

fn default_nbd_port() -> u16 {
    10809
}

impl StorageSettings {
    pub fn kind(&self) -> &'static str {
        match self {
            StorageSettings::Local {} => "local",
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
