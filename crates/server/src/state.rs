//! The shared state every handler gets: configuration and the platform services.

use std::ops::Deref;
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::http::ratelimit::{AnonLimiter, LoginLimiter};
use crate::platform::audit::Audit;
use crate::platform::auth::Auth;
use crate::platform::events::Events;
use crate::platform::jobs::Jobs;
use crate::platform::store::Store;

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
    /// QEMU virtual machines (areas::vms).
    pub vms: Arc<crate::areas::vms::VmManager>,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Services>);

impl Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}
