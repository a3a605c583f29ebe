//! The shared state every handler gets: configuration and the platform services.

use std::ops::Deref;
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::areas::AreaStates;
use crate::config::Config;
use crate::http::ratelimit::{AnonLimiter, LoginLimiter};
use crate::platform::audit::Audit;
use crate::platform::auth::Auth;
use crate::platform::events::Events;
use crate::platform::jobs::Jobs;
use crate::platform::link_users::LinkUsers;
use crate::platform::pool_users::PoolUsers;
use crate::platform::processes::Processes;
use crate::platform::secrets::Secrets;
use crate::platform::serial::SerialConsoles;
use crate::platform::stack_images::StackImages;
use crate::platform::store::Store;
use crate::platform::tickets::Tickets;
use crate::platform::workloads::Workloads;

pub struct Services {
    pub config: Config,
    pub store: Arc<Store>,
    pub auth: Auth,
    pub jobs: Jobs,
    pub events: Arc<Events>,
    pub audit: Audit,
    pub login_limiter: LoginLimiter,
    /// Refused unauthenticated requests per client address (429 over the budget).
    pub anon_limiter: AnonLimiter,
    pub metrics: Option<PrometheusHandle>,
    /// The live TLS configuration; replacing its certificate swaps it for new connections.
    pub tls: Option<RustlsConfig>,
    pub started: std::time::Instant,
    /// Single-use WebSocket tickets (consoles, terminals).
    pub tickets: Tickets,
    /// Who uses which pool or dataset: areas register in their `init` hook, pools ask.
    pub pool_users: PoolUsers,
    /// Containers, LXC containers and VMs behind one trait: areas register in their `init`
    /// hook, `/workloads` and the autostart order ask.
    pub workloads: Workloads,
    /// Who attaches to network links (asked before a bridge is deleted).
    pub link_users: LinkUsers,
    /// Which host processes belong to which object (VMs register; metrics reads).
    pub processes: Processes,
    /// The images of the compose stacks' services (stacks register; update checks ask).
    pub stack_images: StackImages,
    /// Named secrets sealed with the data dir's key (provisioning credentials).
    pub secrets: Secrets,
    /// VM serial consoles for other areas, and who drives each (vms registers).
    pub serial: SerialConsoles,
    /// Each area's own state (`areas::AreaState`); this struct names no area.
    pub areas: AreaStates,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Services>);

impl AppState {
    /// The state an area registered (its `init` hook); panics when none did, which is a
    /// programming error caught by every test that starts the daemon.
    pub fn area<T: std::any::Any + Send + Sync>(&self) -> &T {
        self.areas.get_ref::<T>().unwrap_or_else(|| {
            panic!(
                "no area registered state {}: its init hook did not run",
                std::any::type_name::<T>()
            )
        })
    }
}

impl Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}
