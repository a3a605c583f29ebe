//! Confirm-or-rollback changes of the host's network settings (`/network/changes/{id}`).
//!
//! Flow of one change ([`begin`]): one at a time (a second one while one is open: 409
//! `change_pending`) → the prior configuration (the interface's IPv4 addresses, up state, the
//! IPv4 default routes, the resolver and host name files, the kernel's host name, the settings
//! last confirmed) is written to the store AND to `DATA_DIR/network/pending-change.json`
//! (fsync, rename) before anything is touched → the answer (202, state `applying`) → in the
//! background: apply (netlink, files) and self-check (link up with carrier, address present,
//! default route present); a failure puts the prior config back at once (`rolled_back`) →
//! `awaiting_confirmation` until `deadline`.
//!
//! [`confirm`] keeps the change only when the confirmation arrives over a connection opened
//! after the change applied (its number, `http::peer`, is above the one noted then): a request
//! on a connection that predates the change proves nothing about reaching the host now. Then
//! the settings are stored and the boot files rendered ([`render_boot`]). The deadline timer
//! rolls back (`timeout`). A daemon that dies in the window finds the file (or the store
//! record) at start ([`recover`]) and restores the prior config (`daemon_restarted`).
//!
//! The timeout belongs to the change, never to the stored settings (a GET-then-PUT cannot re-arm
//! an old timeout).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use hostplane_host::network::Netlink;
use hostplane_host::network::host_config::{self, LinkSnapshot};
use hostplane_host::network::networkd::{self, BootBridge};
use hostplane_types::network_host::{ChangeState, HostMode, HostSettings, NetworkChange};
use serde::{Deserialize, Serialize};

use super::NetworkAccess;
use super::links::net_err;
use super::model::{self, AddressRec, BridgeRec};
use crate::error::{ApiError, ApiResult};
use crate::platform::time;
use crate::state::AppState;

const KIND_CHANGE: &str = "host_change";
const KIND_SETTINGS: &str = "host_settings";
/// Changes kept in the store (older ones are pruned after a new one).
const KEEP: usize = 50;

pub const TIMEOUT_DEFAULT_S: u32 = 60;
pub const TIMEOUT_MIN_S: u32 = 10;
pub const TIMEOUT_MAX_S: u32 = 600;

/// What was there before a change: enough to put it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prior {
    pub link: LinkSnapshot,
    /// None: the file did not exist.
    pub resolv: Option<String>,
    pub hostname_file: Option<String>,
    /// The kernel's host name, when this daemon may set it.
    pub kernel_hostname: Option<String>,
    /// The settings confirmed before.
    pub settings: Option<HostSettings>,
}

/// A change as stored: what the API shows, what it replaced, and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRec {
    pub change: NetworkChange,
    pub prior: Prior,
    /// `network` (PUT /network/host) or `admin` (Jidoteki POST /admin/settings).
    pub via: String,
}

/// The open change (applying, awaiting confirmation or rolling back), in memory.
struct Active {
    id: String,
    /// Connections numbered below this predate the change (set once it applied).
    applied_seq: Option<u64>,
    rolling_back: bool,
    timer: Option<tokio::task::AbortHandle>,
}

/// This area's host-settings state: at most one open change.
#[derive(Default)]
pub struct HostChanges {
    active: Mutex<Option<Active>>,
}

impl HostChanges {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Active>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open change's id, if any.
    pub fn open_id(&self) -> Option<String> {
        self.lock().as_ref().map(|a| a.id.clone())
    }
}

fn pending_file(state: &AppState) -> PathBuf {
    state.config.data_dir.join("network/pending-change.json")
}

fn href(id: &str) -> String {
    format!("/api/v1/network/changes/{id}")
}

/// The settings last confirmed.
pub fn confirmed_settings(state: &AppState) -> ApiResult<Option<HostSettings>> {
    Ok(model::load::<HostSettings>(&state.store, KIND_SETTINGS)?
        .into_iter()
        .next())
}

/// Every stored change, newest first.
pub fn list(state: &AppState) -> ApiResult<Vec<NetworkChange>> {
    let mut v: Vec<NetworkChange> = model::load::<ChangeRec>(&state.store, KIND_CHANGE)?
        .into_iter()
        .map(|r| with_countdown(r.change))
        .collect();
    v.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    Ok(v)
}

fn load_rec(state: &AppState, id: &str) -> ApiResult<ChangeRec> {
    model::load::<ChangeRec>(&state.store, KIND_CHANGE)?
        .into_iter()
        .find(|r| r.change.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no network change {id:?}")))
}

pub fn get(state: &AppState, id: &str) -> ApiResult<NetworkChange> {
    Ok(with_countdown(load_rec(state, id)?.change))
}

/// The change as shown: `seconds_left` filled in while it awaits confirmation (never stored).
fn with_countdown(mut c: NetworkChange) -> NetworkChange {
    c.seconds_left = match (c.state, c.deadline.as_deref().and_then(time::parse)) {
        (ChangeState::AwaitingConfirmation, Some(d)) => {
            Some((d - time::now()).whole_seconds().max(0) as u64)
        }
        _ => None,
    };
    c
}

/// The latest change made through `via` (the Jidoteki GET confirms only its own).
pub fn latest_via(state: &AppState, via: &str) -> ApiResult<Option<ChangeRec>> {
    let mut v: Vec<ChangeRec> = model::load::<ChangeRec>(&state.store, KIND_CHANGE)?
        .into_iter()
        .filter(|r| r.via == via)
        .collect();
    v.sort_by(|a, b| a.change.created_at.cmp(&b.change.created_at));
    Ok(v.pop())
}

fn save(state: &AppState, rec: &ChangeRec) -> ApiResult<()> {
    model::put(&state.store, KIND_CHANGE, &rec.change.id, rec)
}

/// Moves a stored change to `st` (with `reason`), keeping the rest.
fn transition(
    state: &AppState,
    id: &str,
    st: ChangeState,
    reason: Option<String>,
    deadline: Option<String>,
) -> ApiResult<ChangeRec> {
    let mut rec = load_rec(state, id)?;
    rec.change.state = st;
    rec.change.reason = reason;
    rec.change.deadline = deadline;
    rec.change.updated_at = time::now_string();
    save(state, &rec)?;
    Ok(rec)
}

fn prune(state: &AppState) -> ApiResult<()> {
    let all = list(state)?;
    for c in all.iter().skip(KEEP) {
        model::remove(&state.store, KIND_CHANGE, &c.id)?;
    }
    Ok(())
}

/// Would this change cut off the caller? `local`: the address the request came in on;
/// `remote`: the caller's. `addrs`: every IPv4 address now (link, address, prefix);
/// `gateway_on_iface`: the default gateway on the interface now. Returns why, or None.
pub fn cuts_caller(
    local: Option<IpAddr>,
    remote: Option<IpAddr>,
    new: &HostSettings,
    new_address: Option<(Ipv4Addr, u8)>,
    addrs: &[(String, Ipv4Addr, u8)],
    gateway_on_iface: Option<Ipv4Addr>,
) -> Option<String> {
    let (Some(IpAddr::V4(local)), Some(IpAddr::V4(remote))) = (
        local.map(|a| a.to_canonical()),
        remote.map(|a| a.to_canonical()),
    ) else {
        return None;
    };
    if local.is_loopback() {
        return None;
    }
    let on_iface = addrs
        .iter()
        .any(|(l, a, _)| *l == new.interface && *a == local);
    let kept = new.mode == HostMode::Static && new_address.is_some_and(|(a, _)| a == local);
    if on_iface && !kept {
        return Some(format!(
            "this request came in on {local}, which the change removes from {}",
            new.interface
        ));
    }
    // The caller is on-link somewhere now: its route is a connected one.
    let connected_now = addrs
        .iter()
        .find(|(_, a, l)| host_config::in_subnet(remote, *a, *l));
    match connected_now {
        Some((link, _, _)) if *link == new.interface => {
            let still = new_address.is_some_and(|(a, l)| host_config::in_subnet(remote, a, l));
            if !still {
                return Some(format!(
                    "this request came from {remote} on {}'s network, which the change removes",
                    new.interface
                ));
            }
            None
        }
        Some(_) => None,
        None => {
            let via_iface = gateway_on_iface.is_some();
            let new_gw: Option<Ipv4Addr> = new.gateway.as_deref().and_then(|g| g.parse().ok());
            if via_iface && (new.mode == HostMode::Dhcp || new_gw != gateway_on_iface) {
                return Some(format!(
                    "this request came from {remote} through the default route via {} on {}, which the change replaces",
                    gateway_on_iface.map(|g| g.to_string()).unwrap_or_default(),
                    new.interface
                ));
            }
            None
        }
    }
}

/// Where the caller came from, for the `force` check.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallerAddr {
    pub local: Option<IpAddr>,
    pub remote: Option<IpAddr>,
}

/// A checked request: settings, the parsed static address and gateway, timeout, force.
#[derive(Debug, Clone)]
pub struct Request {
    pub settings: HostSettings,
    pub address: Option<(Ipv4Addr, u8)>,
    pub gateway: Option<Ipv4Addr>,
    pub timeout_s: u32,
    pub force: bool,
}

/// Starts a change: 409 when one is open or when it would cut off the caller without
/// `force`; the prior config is persisted, then the change applies in the background.
pub async fn begin(
    state: &AppState,
    user: &str,
    req: Request,
    caller: CallerAddr,
    via: &str,
) -> ApiResult<NetworkChange> {
    state.network().check_writable()?;
    let id = uuid::Uuid::now_v7().to_string();
    {
        let mut a = state.network().host.lock();
        if let Some(open) = a.as_ref() {
            return Err(ApiError::conflict(
                "change_pending",
                format!(
                    "the network change {} is still open; confirm it or wait for its rollback",
                    href(&open.id)
                ),
            ));
        }
        *a = Some(Active {
            id: id.clone(),
            applied_seq: None,
            rolling_back: false,
            timer: None,
        });
    }
    let r = prepare(state, user, &req, caller, via, &id).await;
    match r {
        Ok(rec) => {
            let st = state.clone();
            let id2 = id.clone();
            tokio::spawn(async move { run_apply(st, id2, req).await });
            Ok(rec.change)
        }
        Err(e) => {
            *state.network().host.lock() = None;
            Err(e)
        }
    }
}

/// The checks that need the live system, then the prior config persisted (store + file).
async fn prepare(
    state: &AppState,
    user: &str,
    req: &Request,
    caller: CallerAddr,
    via: &str,
    id: &str,
) -> ApiResult<ChangeRec> {
    let nl = Netlink::open().map_err(|e| net_err("netlink", e))?;
    let iface = &req.settings.interface;
    let link = nl
        .snapshot(iface)
        .await
        .map_err(|e| net_err(&format!("interface {iface}"), e))?;
    if !req.force {
        let addrs = nl.all_ipv4().await.map_err(|e| net_err("addresses", e))?;
        let gw = link
            .default_routes
            .iter()
            .find(|r| r.interface == *iface)
            .map(|r| r.gateway);
        if let Some(why) = cuts_caller(
            caller.local,
            caller.remote,
            &req.settings,
            req.address,
            &addrs,
            gw,
        ) {
            return Err(ApiError::conflict(
                "would_disconnect",
                format!("{why}; send \"force\": true to make it anyway"),
            ));
        }
    }
    let read = |p: PathBuf| std::fs::read_to_string(p).ok();
    let prior = Prior {
        link,
        resolv: read(state.config.resolv_conf()),
        hostname_file: read(state.config.hostname_file()),
        kernel_hostname: if state.config.set_hostname() {
            host_config::kernel_hostname()
        } else {
            None
        },
        settings: confirmed_settings(state)?,
    };
    let now = time::now_string();
    let rec = ChangeRec {
        change: NetworkChange {
            href: href(id),
            id: id.to_string(),
            state: ChangeState::Applying,
            settings: req.settings.clone(),
            confirm_timeout_s: req.timeout_s,
            deadline: None,
            seconds_left: None,
            reason: None,
            created_at: now.clone(),
            updated_at: now,
            user: user.to_string(),
            confirm_href: format!("{}/confirm", href(id)),
        },
        prior,
        via: via.to_string(),
    };
    // The file first: it survives a store that cannot be opened at the next start.
    let file = pending_file(state);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(ApiError::internal)?;
    }
    let json = serde_json::to_vec_pretty(&rec).map_err(ApiError::internal)?;
    crate::fsutil::write_atomic(&file, &json, 0o600).map_err(ApiError::internal)?;
    save(state, &rec)?;
    prune(state)?;
    Ok(rec)
}

/// Applies the settings: netlink, then the resolver and host name files.
async fn apply(state: &AppState, req: &Request) -> Result<(), String> {
    let nl = Netlink::open().map_err(|e| e.to_string())?;
    let s = &req.settings;
    // A client of the settings before (mode dhcp) must not hand out its lease again.
    state.network().dhcp_client.stop().await;
    match s.mode {
        HostMode::Static => {
            let (a, l) = req.address.ok_or("a static change needs an address")?;
            nl.apply_static(&s.interface, a, l, req.gateway)
                .await
                .map_err(|e| format!("{}: {e}", s.interface))?;
        }
        HostMode::Dhcp => {
            nl.clear_ipv4(&s.interface)
                .await
                .map_err(|e| format!("{}: {e}", s.interface))?;
            // The lease comes asynchronously: the change is confirmable once a new connection
            // reaches the leased address (or over the unix socket).
            state
                .network()
                .dhcp_client
                .start(&s.interface, s.hostname.as_deref())
                .await
                .map_err(|e| format!("DHCP client: {e}"))?;
        }
    }
    if !s.dns.is_empty() {
        let mut text =
            String::from("# Written by hostplane (GET /api/v1/network/host); rewritten on every change.\n");
        for d in &s.dns {
            text.push_str(&format!("nameserver {d}\n"));
        }
        write_file(&state.config.resolv_conf(), &text)?;
    }
    if let Some(h) = &s.hostname {
        write_file(&state.config.hostname_file(), &format!("{h}\n"))?;
        if state.config.set_hostname() {
            host_config::set_kernel_hostname(h).map_err(|e| format!("sethostname: {e}"))?;
        }
    }
    Ok(())
}

fn write_file(path: &std::path::Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    crate::fsutil::write_atomic(path, text.as_bytes(), 0o644)
        .map_err(|e| format!("{}: {e}", path.display()))
}

async fn self_check(req: &Request) -> Result<(), String> {
    let nl = Netlink::open().map_err(|e| e.to_string())?;
    let (addr, gw) = match req.settings.mode {
        HostMode::Static => (req.address, req.gateway),
        HostMode::Dhcp => (None, None),
    };
    nl.check_static(&req.settings.interface, addr, gw)
        .await
        .map_err(|e| e.to_string())?
}

/// Puts the prior config back: the change's DHCP client stopped (no lease event may follow),
/// netlink (reachability), the prior settings' DHCP client again, then the files.
async fn restore(state: &AppState, prior: &Prior) -> Result<(), String> {
    state.network().dhcp_client.stop().await;
    let nl = Netlink::open().map_err(|e| e.to_string())?;
    nl.restore(&prior.link).await.map_err(|e| e.to_string())?;
    if let Some(s) = prior.settings.as_ref().filter(|s| s.mode == HostMode::Dhcp) {
        state
            .network()
            .dhcp_client
            .start(&s.interface, s.hostname.as_deref())
            .await
            .map_err(|e| format!("DHCP client: {e}"))?;
    }
    let put_back = |path: PathBuf, old: &Option<String>| -> Result<(), String> {
        match old {
            Some(t) => write_file(&path, t),
            None => match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(format!("{}: {e}", path.display())),
            },
        }
    };
    put_back(state.config.resolv_conf(), &prior.resolv)?;
    put_back(state.config.hostname_file(), &prior.hostname_file)?;
    if let Some(h) = &prior.kernel_hostname
        && state.config.set_hostname()
    {
        host_config::set_kernel_hostname(h).map_err(|e| format!("sethostname: {e}"))?;
    }
    Ok(())
}

async fn run_apply(state: AppState, id: String, req: Request) {
    let started = std::time::Instant::now();
    let outcome = {
        let _g = state.network().lock.lock().await;
        match apply(&state, &req).await {
            Err(e) => Err(format!("apply_failed: {e}")),
            Ok(()) => self_check(&req)
                .await
                .map_err(|e| format!("self_check_failed: {e}")),
        }
    };
    if let Err(reason) = outcome {
        tracing::warn!(change = %id, %reason, "network change failed; rolling back");
        roll_back(&state, &id, reason).await;
        return;
    }
    let deadline = time::now() + ::time::Duration::seconds(i64::from(req.timeout_s));
    {
        let mut a = state.network().host.lock();
        let Some(act) = a.as_mut().filter(|a| a.id == id) else {
            return;
        };
        // Connections opened from here on can confirm.
        act.applied_seq = Some(crate::http::peer::conn_seq_now());
        let st = state.clone();
        let id2 = id.clone();
        let secs = u64::from(req.timeout_s);
        act.timer = Some(
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(secs)).await;
                roll_back(&st, &id2, "timeout".into()).await;
            })
            .abort_handle(),
        );
        if let Err(e) = transition(
            &state,
            &id,
            ChangeState::AwaitingConfirmation,
            None,
            Some(time::format(deadline)),
        ) {
            tracing::error!(error = %e, "network change: storing its state failed");
        }
    }
    tracing::info!(change = %id, apply_ms = started.elapsed().as_millis() as u64, "network change applied; awaiting confirmation");
}

/// Restores the prior config of change `id` (if it is still open) and records why.
async fn roll_back(state: &AppState, id: &str, reason: String) {
    {
        let mut a = state.network().host.lock();
        match a.as_mut() {
            Some(act) if act.id == id && !act.rolling_back => {
                act.rolling_back = true;
                if let Some(t) = act.timer.take()
                    && reason != "timeout"
                {
                    t.abort();
                }
            }
            _ => return,
        }
    }
    let rec = match load_rec(state, id) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "network change: cannot read its record to roll back");
            return;
        }
    };
    let result = {
        let _g = state.network().lock.lock().await;
        restore(state, &rec.prior).await
    };
    let (st, reason) = match result {
        Ok(()) => (ChangeState::RolledBack, reason),
        Err(e) => (
            ChangeState::Failed,
            format!("{reason}; the rollback failed too: {e}"),
        ),
    };
    tracing::warn!(change = %id, state = ?st, %reason, "network change rolled back");
    if let Err(e) = transition(state, id, st, Some(reason), None) {
        tracing::error!(error = %e, "network change: storing its state failed");
    }
    let _ = std::fs::remove_file(pending_file(state));
    *state.network().host.lock() = None;
}

/// Keeps change `id`. `conn`: the number of the connection the confirmation came on.
pub async fn confirm(state: &AppState, id: &str, conn: Option<u64>) -> ApiResult<NetworkChange> {
    let rec = load_rec(state, id)?;
    {
        let mut a = state.network().host.lock();
        let act = match a.as_mut() {
            Some(act) if act.id == id && !act.rolling_back => act,
            _ => {
                return Err(ApiError::conflict(
                    "change_not_pending",
                    format!(
                        "the network change {id} is {} and cannot be confirmed",
                        state_word(rec.change.state)
                    ),
                ));
            }
        };
        let Some(seq) = act.applied_seq else {
            return Err(ApiError::conflict(
                "change_not_pending",
                format!("the network change {id} is still applying; confirm it once it awaits confirmation"),
            ));
        };
        if conn.is_none_or(|c| c < seq) {
            return Err(ApiError::conflict(
                "confirm_needs_new_connection",
                "confirm over a new connection opened after the change applied: only that proves the host is still reachable",
            ));
        }
        if let Some(t) = act.timer.take() {
            t.abort();
        }
        model::put(&state.store, KIND_SETTINGS, "current", &rec.change.settings)?;
        let rec = transition(state, id, ChangeState::Confirmed, None, None)?;
        let _ = std::fs::remove_file(pending_file(state));
        *a = None;
        drop(a);
        if let Err(e) = render_boot(state) {
            tracing::warn!(error = %e, "network: writing the boot files failed");
        }
        Ok(rec.change)
    }
}

/// Rolls change `id` back now (reason `cancelled`): the caller gives up on it instead of
/// waiting for the deadline. 409 `change_not_pending` unless it awaits confirmation.
pub async fn cancel(state: &AppState, id: &str) -> ApiResult<NetworkChange> {
    let rec = load_rec(state, id)?;
    {
        let a = state.network().host.lock();
        match a.as_ref() {
            Some(act) if act.id == id && !act.rolling_back && act.applied_seq.is_some() => {}
            Some(act) if act.id == id && !act.rolling_back => {
                return Err(ApiError::conflict(
                    "change_not_pending",
                    format!("the network change {id} is still applying; roll it back once it awaits confirmation"),
                ));
            }
            _ => {
                return Err(ApiError::conflict(
                    "change_not_pending",
                    format!(
                        "the network change {id} is {} and cannot be rolled back",
                        state_word(rec.change.state)
                    ),
                ));
            }
        }
    }
    roll_back(state, id, "cancelled".into()).await;
    get(state, id)
}

fn state_word(s: ChangeState) -> &'static str {
    match s {
        ChangeState::Applying => "applying",
        ChangeState::AwaitingConfirmation => "awaiting confirmation",
        ChangeState::Confirmed => "confirmed",
        ChangeState::RolledBack => "rolled back",
        ChangeState::Failed => "failed",
    }
}

/// Renders and writes the boot files from the store: the confirmed host settings and the
/// managed bridges (with their ports and the addresses hostplane added on them).
pub fn render_boot(state: &AppState) -> ApiResult<()> {
    let host = confirmed_settings(state)?;
    let addrs: Vec<AddressRec> = model::load(&state.store, model::KIND_ADDRESS)?;
    let bridges: Vec<BootBridge> = model::load::<BridgeRec>(&state.store, model::KIND_BRIDGE)?
        .into_iter()
        .map(|b| BootBridge {
            addresses: addrs
                .iter()
                .filter(|a| a.interface == b.name)
                .map(|a| format!("{}/{}", a.address, a.prefix_len))
                .collect(),
            name: b.name,
            stp: b.stp,
            forward_delay_s: b.forward_delay_s,
            mtu: b.mtu,
            ports: b.ports,
        })
        .collect();
    let files = networkd::render(host.as_ref(), &bridges);
    networkd::write_dir(&state.config.networkd_dir(), &files)
        .map_err(|e| ApiError::internal(format!("{}: {e}", state.config.networkd_dir().display())))?;
    Ok(())
}

/// At start, after [`recover`]: the confirmed settings say `dhcp` and no client runs (a
/// rollback may have started one already): start it.
pub async fn start_dhcp_client(state: &AppState) {
    let Ok(Some(s)) = confirmed_settings(state) else {
        return;
    };
    if s.mode != HostMode::Dhcp || state.network().dhcp_client.running().is_some() {
        return;
    }
    if let Err(e) = state
        .network()
        .dhcp_client
        .start(&s.interface, s.hostname.as_deref())
        .await
    {
        tracing::warn!(error = %e, "network: starting the DHCP client failed");
    }
}

/// At start: a change left open by a daemon that died is rolled back (prior config restored),
/// then the boot files are rendered from the store.
pub async fn recover(state: &AppState) {
    let file = pending_file(state);
    let from_file: Option<ChangeRec> = std::fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let mut open: Vec<ChangeRec> = model::load::<ChangeRec>(&state.store, KIND_CHANGE)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            matches!(
                r.change.state,
                ChangeState::Applying | ChangeState::AwaitingConfirmation
            )
        })
        .collect();
    if let Some(f) = from_file
        && !open.iter().any(|r| r.change.id == f.change.id)
    {
        // Only the file knows it (the store write never happened): restore from it, and
        // record it.
        if matches!(
            f.change.state,
            ChangeState::Applying | ChangeState::AwaitingConfirmation
        ) {
            let _ = save(state, &f);
            open.push(f);
        }
    }
    for rec in open {
        let id = rec.change.id.clone();
        *state.network().host.lock() = Some(Active {
            id: id.clone(),
            applied_seq: None,
            rolling_back: false,
            timer: None,
        });
        roll_back(state, &id, "daemon_restarted".into()).await;
    }
    let _ = std::fs::remove_file(&file);
    if let Err(e) = render_boot(state) {
        tracing::warn!(error = %e, "network: writing the boot files failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: HostMode, addr: Option<&str>, gw: Option<&str>) -> HostSettings {
        HostSettings {
            interface: "eth0".into(),
            mode,
            address: addr.map(str::to_string),
            gateway: gw.map(str::to_string),
            dns: vec![],
            hostname: None,
            ntp: vec![],
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn caller_cut_off_detection() {
        let addrs = vec![
            ("lo".to_string(), Ipv4Addr::new(127, 0, 0, 1), 8),
            ("eth0".to_string(), Ipv4Addr::new(192, 0, 2, 10), 24),
        ];
        let gw = Some(Ipv4Addr::new(192, 0, 2, 1));
        let new = settings(HostMode::Static, Some("198.51.100.5/24"), Some("198.51.100.1"));
        let na = Some((Ipv4Addr::new(198, 51, 100, 5), 24));
        // In on the address the change removes.
        assert!(cuts_caller(ip("192.0.2.10"), ip("192.0.2.99"), &new, na, &addrs, gw).is_some());
        // Loopback, the unix socket: never.
        assert!(cuts_caller(ip("127.0.0.1"), ip("127.0.0.1"), &new, na, &addrs, gw).is_none());
        assert!(cuts_caller(None, None, &new, na, &addrs, gw).is_none());
        // Same address kept, same network: fine.
        let same = settings(HostMode::Static, Some("192.0.2.10/24"), Some("192.0.2.1"));
        let sa = Some((Ipv4Addr::new(192, 0, 2, 10), 24));
        assert!(cuts_caller(ip("192.0.2.10"), ip("192.0.2.99"), &same, sa, &addrs, gw).is_none());
        // From afar through the default route: a new gateway cuts, the same one does not.
        let other_gw = settings(HostMode::Static, Some("192.0.2.10/24"), Some("192.0.2.254"));
        assert!(
            cuts_caller(ip("192.0.2.10"), ip("203.0.113.7"), &other_gw, sa, &addrs, gw).is_some()
        );
        assert!(cuts_caller(ip("192.0.2.10"), ip("203.0.113.7"), &same, sa, &addrs, gw).is_none());
        // DHCP drops the static address.
        let dhcp = settings(HostMode::Dhcp, None, None);
        assert!(cuts_caller(ip("192.0.2.10"), ip("192.0.2.99"), &dhcp, None, &addrs, gw).is_some());
        // A caller on another interface is not affected.
        let mut more = addrs.clone();
        more.push(("eth1".into(), Ipv4Addr::new(10, 9, 0, 1), 16));
        assert!(cuts_caller(ip("10.9.0.1"), ip("10.9.3.3"), &new, na, &more, gw).is_none());
    }
}
