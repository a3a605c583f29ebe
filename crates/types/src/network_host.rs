//! Host network settings (`/api/v1/network/host`) and the confirm-or-rollback changes that
//! apply them (`/api/v1/network/changes`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How the management interface gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HostMode {
    Dhcp,
    Static,
}

/// The host's network settings: one management interface, DNS, hostname, NTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSettings {
    /// The management interface (an existing link).
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub interface: String,
    pub mode: HostMode,
    /// Static only: IPv4 address in CIDR notation, e.g. `192.0.2.10/24`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "192.0.2.10/24")]
    pub address: Option<String>,
    /// Static only: IPv4 default gateway, on the address's network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "192.0.2.1")]
    pub gateway: Option<String>,
    /// DNS servers (IPv4 or IPv6 addresses), at most 3.
    #[serde(default)]
    pub dns: Vec<String>,
    /// Host name (RFC 1123 labels, at most 253 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// NTP servers (host names or addresses), at most 4.
    #[serde(default)]
    pub ntp: Vec<String>,
}

/// Body of `PUT /network/host`: the settings plus how the change is made. The timeout and
/// `force` belong to this change only; they are never stored with the settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSettingsUpdate {
    #[schema(pattern = r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", max_length = 15)]
    pub interface: String,
    pub mode: HostMode,
    /// Mode `static` only (and needed there): the IPv4 address, CIDR.
    #[serde(default)]
    #[schema(
        example = "192.0.2.10/24",
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/(3[0-2]|[12]?[0-9])$",
        max_length = 18
    )]
    pub address: Option<String>,
    /// Mode `static` only: the IPv4 default gateway.
    #[serde(default)]
    #[schema(
        example = "192.0.2.1",
        pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
        max_length = 15
    )]
    pub gateway: Option<String>,
    /// At most 3 addresses.
    #[serde(default)]
    #[schema(max_items = 3)]
    pub dns: Vec<String>,
    /// Labels of A-Z a-z 0-9 `-` (not starting or ending with `-`), at most 253 bytes.
    #[serde(default)]
    #[schema(
        pattern = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$",
        max_length = 253
    )]
    pub hostname: Option<String>,
    /// At most 4 addresses or host names.
    #[serde(default)]
    #[schema(max_items = 4)]
    pub ntp: Vec<String>,
    /// Seconds to wait for `POST /network/changes/{id}/confirm` before rolling back
    /// (10–600, default 60).
    #[serde(default)]
    #[schema(minimum = 10, maximum = 600)]
    pub confirm_timeout_s: Option<u32>,
    /// Allow a change that removes the address or route this request came in on.
    #[serde(default)]
    pub force: bool,
}

impl HostSettingsUpdate {
    pub fn settings(&self) -> HostSettings {
        HostSettings {
            interface: self.interface.clone(),
            mode: self.mode,
            address: self.address.clone(),
            gateway: self.gateway.clone(),
            dns: self.dns.clone(),
            hostname: self.hostname.clone(),
            ntp: self.ntp.clone(),
        }
    }
}

/// `GET /network/host`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HostSettingsView {
    /// The settings hostplane last had confirmed; absent before the first confirmed change.
    pub settings: Option<HostSettings>,
    /// The management interface's IPv4 addresses now (CIDR).
    pub addresses: Vec<String>,
    /// The IPv4 default gateway now, if any.
    pub gateway: Option<String>,
    /// A change waiting for confirmation (or still applying), if any.
    pub pending_change: Option<String>,
    /// The runtime DHCP client (mode `dhcp`): absent when none runs and none ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp_client: Option<DhcpClientState>,
}

/// hostplane's DHCP client of the management interface (busybox `udhcpc`, supervised).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DhcpClientState {
    pub interface: String,
    /// The client is running (it keeps renewing the lease).
    pub running: bool,
    /// The last event: `bound`, `renew`, `deconfig`, `leasefail`, `nak`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The leased address (CIDR) of the last `bound`/`renew`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<String>,
    #[serde(default)]
    pub dns: Vec<String>,
    /// Lease time in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_s: Option<u32>,
}

/// Where a change is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeState {
    /// Being applied and self-checked.
    Applying,
    /// Applied; rolled back at `deadline` unless confirmed.
    AwaitingConfirmation,
    /// Kept.
    Confirmed,
    /// The prior settings are back (`reason` says why).
    RolledBack,
    /// Neither the change nor the rollback could be completed (`reason`).
    Failed,
}

/// One host network change (`/network/changes/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NetworkChange {
    pub href: String,
    pub id: String,
    pub state: ChangeState,
    /// The settings this change applies.
    pub settings: HostSettings,
    pub confirm_timeout_s: u32,
    /// RFC 3339; while `awaiting_confirmation`, when it rolls back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// While `awaiting_confirmation`: whole seconds until `deadline`, by the daemon's clock
    /// (the countdown a client shows without comparing clocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_left: Option<u64>,
    /// Why it was rolled back or failed: `self_check_failed: ...`, `timeout`,
    /// `daemon_restarted`, `apply_failed: ...`, `cancelled` (`POST .../rollback`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Who asked for it.
    pub user: String,
    /// `POST` here to keep the change (from a new connection).
    pub confirm_href: String,
}
