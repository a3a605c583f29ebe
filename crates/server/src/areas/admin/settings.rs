//! Jidoteki section 8, Network (optional endpoint `settings`): `POST /admin/settings` and
//! `GET /admin/settings`, a thin layer over the network area's host settings (native:
//! `PUT /api/v1/network/host`, the same confirm-or-rollback change).
//!
//! `POST` takes the multipart field `settings`, a JSON file `{"network": {interface,
//! hostname, ip_address, netmask, gateway, dns1, dns2, ntpserver}, "app": {...}}`. Without
//! `ip_address`, `netmask` and `gateway` the interface switches to DHCP. The settings are
//! validated (400 on anything wrong, as the document says), the change starts, and the answer
//! is `202 {"Status":"202 Accepted","Location":"/api/v1/admin/settings"}`; the update runs in
//! the background, one at a time (a second while one is open: 400 `change_pending`).
//!
//! Confirmation: the document's clients know nothing of it; they poll `GET /admin/settings`
//! ("can be polled repeatedly to monitor changes"). That poll, when it arrives from an admin
//! over a connection opened after the change applied, confirms the change made through
//! `POST /admin/settings` (like Cockpit: a request that reaches the host over the network
//! proves the host is still reachable). No poll within the timeout (60 s): it rolls back.
//! `GET` answers the settings in force: the new ones once confirmed, the old ones after a
//! rollback. The `app` object is kept as sent (DATA_DIR/admin/app-settings.json).

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::response::Response;
use hostplane_types::network_host::{HostMode, HostSettings, HostSettingsUpdate};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::Ipv4Addr;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::areas::admin::compat::{self, as_400, bad_request};
use crate::areas::admin::{JidotekiStatus, require_enabled};
use crate::areas::network::changes;
use crate::areas::network::host_settings::{self as svc, Conn};
use crate::error::{ApiError, ApiResult};
use crate::http::caller::Caller;
use hostplane_types::auth::Role;
use crate::state::AppState;

const HREF: &str = "/api/v1/admin/settings";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_settings, get_settings))
}

/// `multipart/form-data` body of `POST /admin/settings`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct SettingsForm {
    /// JSON settings file: `{"network": {"interface": "eth0", "hostname": "test.host",
    /// "ip_address": "192.168.1.100", "netmask": "255.255.255.0", "gateway": "192.168.1.1",
    /// "dns1": "192.168.1.2", "dns2": "192.168.1.3", "ntpserver": "pool.ntp.org"},
    /// "app": {"name": "testapp"}}`; without ip_address, netmask and gateway: DHCP.
    #[schema(format = Binary, content_media_type = "application/json")]
    settings: String,
}

/// The document's `network` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JidotekiNetwork {
    pub interface: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ntpserver: Option<String>,
}

/// `GET /admin/settings`: `{"network": {...}, "app": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JidotekiSettings {
    pub network: JidotekiNetwork,
    #[schema(value_type = Object)]
    pub app: Value,
}

/// A dotted netmask's prefix length (contiguous masks only).
pub fn netmask_len(m: &str) -> Option<u8> {
    let n = u32::from(m.parse::<Ipv4Addr>().ok()?);
    let len = n.leading_ones();
    (n.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// A prefix length as a dotted netmask.
pub fn len_netmask(len: u8) -> String {
    let n = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
    Ipv4Addr::from(n).to_string()
}

/// The document's `settings.json` → native update and the `app` object.
pub fn parse_settings(data: &[u8]) -> Result<(HostSettingsUpdate, Value), String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        network: JidotekiNetwork,
        #[serde(default)]
        app: Option<Value>,
    }
    let f: File = serde_json::from_slice(data).map_err(|e| format!("settings: {e}"))?;
    let n = f.network;
    let fixed = [&n.ip_address, &n.netmask, &n.gateway];
    let mode = if fixed.iter().all(|x| x.is_none()) {
        HostMode::Dhcp
    } else {
        HostMode::Static
    };
    let address = match mode {
        HostMode::Dhcp => None,
        HostMode::Static => {
            let ip = n.ip_address.as_deref().ok_or("STATIC settings need ip_address")?;
            let mask = n.netmask.as_deref().ok_or("STATIC settings need netmask")?;
            let len =
                netmask_len(mask).ok_or_else(|| format!("netmask {mask:?} is not a netmask"))?;
            Some(format!("{ip}/{len}"))
        }
    };
    let app = f.app.unwrap_or(Value::Object(Default::default()));
    if !app.is_object() {
        return Err("app must be an object".into());
    }
    Ok((
        HostSettingsUpdate {
            interface: n.interface,
            mode,
            address,
            gateway: n.gateway,
            dns: [n.dns1, n.dns2].into_iter().flatten().collect(),
            hostname: n.hostname,
            ntp: n.ntpserver.into_iter().collect(),
            confirm_timeout_s: None,
            force: false,
        },
        app,
    ))
}

/// Native settings as the document shows them.
pub fn to_jidoteki(s: &HostSettings) -> JidotekiNetwork {
    let (ip, mask) = match s.address.as_deref().and_then(|a| a.split_once('/')) {
        Some((ip, len)) => (
            Some(ip.to_string()),
            len.parse().ok().map(len_netmask),
        ),
        None => (None, None),
    };
    JidotekiNetwork {
        interface: s.interface.clone(),
        hostname: s.hostname.clone(),
        ip_address: ip,
        netmask: mask,
        gateway: s.gateway.clone(),
        dns1: s.dns.first().cloned(),
        dns2: s.dns.get(1).cloned(),
        ntpserver: s.ntp.first().cloned(),
    }
}

fn app_file(state: &AppState) -> std::path::PathBuf {
    state.config.data_dir.join("admin/app-settings.json")
}

/// Change the network/application settings (Jidoteki `POST /settings`). Asynchronous and
/// confirmed by the next `GET /admin/settings` over a new connection; rolled back otherwise.
#[utoipa::path(post, path = "/api/v1/admin/settings",
    extensions(("x-required-role" = json!("admin")), ("x-required-scope" = json!("admin:write"))),
    tag = "admin",
    request_body(content = SettingsForm, content_type = "multipart/form-data"),
    responses((status = 202, description = "Validated; the update runs", body = JidotekiStatus,
        headers(("Location" = String, description = "/api/v1/admin/settings")))))]
async fn post_settings(
    State(state): State<AppState>,
    Caller(p): Caller,
    conn: Conn,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    require_enabled(&state, "settings")?;
    let f = compat::fields(form, &["settings"]).await?;
    let data = f
        .get("settings")
        .ok_or_else(|| bad_request("invalid_settings", "the settings field is required"))?;
    let (update, app) = parse_settings(data).map_err(|e| bad_request("invalid_settings", e))?;
    let req = svc::settings_for(&update).map_err(as_400)?;
    changes::begin(&state, &p.user, req, conn.caller, "admin")
        .await
        .map_err(as_400)?;
    let file = app_file(&state);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(ApiError::internal)?;
    }
    crate::fsutil::write_atomic(&file, app.to_string().as_bytes(), 0o600)
        .map_err(ApiError::internal)?;
    Ok(compat::accepted(HREF))
}

/// The network/application settings (Jidoteki `GET /settings`); polling it from an admin over
/// a new connection confirms a pending `POST /settings` change.
#[utoipa::path(get, path = "/api/v1/admin/settings",
    extensions(("x-required-role" = json!("viewer")), ("x-required-scope" = json!("admin:read"))),
    tag = "admin",
    responses((status = 200, description = "Settings", body = JidotekiSettings)))]
async fn get_settings(
    State(state): State<AppState>,
    Caller(p): Caller,
    conn: Conn,
) -> ApiResult<axum::Json<JidotekiSettings>> {
    require_enabled(&state, "settings")?;
    if p.role >= Role::Admin
        && let Some(rec) = changes::latest_via(&state, "admin")?
        && rec.change.state == hostplane_types::network_host::ChangeState::AwaitingConfirmation
    {
        // Not confirmable yet (same connection, still applying): the poll just reads.
        if let Err(e) = changes::confirm(&state, &rec.change.id, conn.id).await {
            tracing::debug!(error = %e, "admin settings poll did not confirm");
        }
    }
    let network = match svc::confirmed(&state)? {
        Some(s) => to_jidoteki(&s),
        None => JidotekiNetwork::default(),
    };
    let app = std::fs::read(app_file(&state))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Object(Default::default()));
    Ok(axum::Json(JidotekiSettings { network, app }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATIC: &str = r#"{
    "network": {
        "interface": "eth0",
        "hostname": "test.host",
        "ip_address": "192.168.1.100",
        "netmask": "255.255.255.0",
        "gateway": "192.168.1.1",
        "dns1": "192.168.1.2",
        "dns2": "192.168.1.3",
        "ntpserver": "pool.ntp.org"
    },
    "app": {
        "name": "testapp"
    }
}"#;

    const DHCP: &str = r#"{
    "network": {
        "interface": "eth0",
        "hostname": "test.host",
        "ntpserver": "pool.ntp.org"
    },
    "app": {
        "name": "testapp"
    }
}"#;

    #[test]
    fn document_examples() {
        let (u, app) = parse_settings(STATIC.as_bytes()).unwrap();
        assert_eq!(u.mode, HostMode::Static);
        assert_eq!(u.address.as_deref(), Some("192.168.1.100/24"));
        assert_eq!(u.gateway.as_deref(), Some("192.168.1.1"));
        assert_eq!(u.dns, ["192.168.1.2", "192.168.1.3"]);
        assert_eq!(u.ntp, ["pool.ntp.org"]);
        assert_eq!(app["name"], "testapp");
        let checked = svc::settings_for(&u).unwrap();
        // Back in the document's shape, equal to what was sent.
        let back = to_jidoteki(&checked.settings);
        let sent: Value = serde_json::from_str(STATIC).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), sent["network"]);

        let (u, _) = parse_settings(DHCP.as_bytes()).unwrap();
        assert_eq!(u.mode, HostMode::Dhcp);
        assert_eq!(u.address, None);
        let back = to_jidoteki(&svc::settings_for(&u).unwrap().settings);
        let sent: Value = serde_json::from_str(DHCP).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), sent["network"]);
    }

    #[test]
    fn bad_files() {
        assert!(parse_settings(b"{}").is_err());
        assert!(parse_settings(br#"{"network": {"interface": "eth0", "ip_address": "10.0.0.2"}}"#).is_err());
        assert!(parse_settings(br#"{"network": {"interface": "eth0", "ip_address": "10.0.0.2", "netmask": "255.0.255.0"}}"#).is_err());
        assert!(parse_settings(br#"{"network": {"interface": "eth0", "bogus": 1}}"#).is_err());
        assert_eq!(netmask_len("255.255.255.0"), Some(24));
        assert_eq!(netmask_len("0.0.0.0"), Some(0));
        assert_eq!(netmask_len("255.255.255.255"), Some(32));
        assert_eq!(len_netmask(20), "255.255.240.0");
    }
}
