//! `hostplane serve`: open the platform, bootstrap the first credential, bind the listeners,
//! run until SIGINT/SIGTERM.
//!
//! Start-up order matters for "ready means the port answers": everything the API needs (store,
//! migrations, interrupted-job sweep, TLS files) is done before the first bind.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum_server::Handle;
use hostplane_types::auth::{Role, TokenKind};
use tokio::net::UnixListener;

use crate::config::{Config, LogFormat};
use crate::fsutil::write_atomic;
use crate::http::conn_limit::{self, ConnLimits, ConnTracker, LimitAcceptor};
use crate::http::ratelimit::{AnonLimiter, LoginLimiter};
use crate::http::{self, peer::Peer};
use crate::platform::audit::{Audit, Retention};
use crate::platform::auth::{Auth, TokenSpec};
use crate::platform::events::Events;
use crate::platform::jobs::Jobs;
use crate::platform::store::Store;
use crate::state::{AppState, Services};
use crate::tls;

/// The admin created at first start; owner of the bootstrap token.
pub const BOOTSTRAP_USER: &str = "admin";

pub fn init_logging(cfg: &Config) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Also DATA_DIR/logs/hostplane.log, rotated by size, for GET /admin/logs and debug bundles.
    let file = match crate::logfile::RotatingFile::open(&crate::logfile::log_dir(&cfg.data_dir)) {
        Ok(f) => Some(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(f),
        ),
        Err(e) => {
            eprintln!("hostplane: no log file in the data dir ({e}); logging to stderr only");
            None
        }
    };
    let registry = tracing_subscriber::registry().with(filter).with(file);
    // Colour codes only for a person at a terminal, never into a redirected log or a pipe.
    let ansi = {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal()
    };
    // Logs go to stderr (never stdout: `hostplane openapi > file` must stay clean).
    let result = match cfg.log.format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(j) => registry.with(j).try_init(),
            Err(e) => {
                eprintln!("journald unavailable ({e}); logging to stderr");
                registry
                    .with(
                        tracing_subscriber::fmt::layer()
                            .with_ansi(ansi)
                            .with_writer(std::io::stderr),
                    )
                    .try_init()
            }
        },
    };
    let _ = result;
}

/// First start: an admin user and a bootstrap token in a 0600 file, valid until revoked.
fn bootstrap(cfg: &Config, auth: &Auth) -> anyhow::Result<()> {
    if auth.user_count()? > 0 {
        return Ok(());
    }
    auth.create_user(BOOTSTRAP_USER, Role::Admin, None)
        .map_err(|e| anyhow::anyhow!("creating the bootstrap admin: {e}"))?;
    let (_, value) = auth
        .create_token(TokenSpec {
            name: "bootstrap",
            kind: TokenKind::Bootstrap,
            owner: BOOTSTRAP_USER,
            role: Role::Admin,
            scopes: &[],
            expires_at: None,
        })
        .map_err(|e| anyhow::anyhow!("creating the bootstrap token: {e}"))?;
    let path = cfg.bootstrap_token_path();
    write_atomic(&path, format!("{value}\n").as_bytes(), 0o600)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "hostplane: first start; the bootstrap admin token is in {} (valid until revoked)",
        path.display()
    );
    Ok(())
}

fn bind_unix(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // A socket file left by a previous run; anything else at that path is not ours to delete.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                anyhow::bail!("{} is in use by another daemon", path.display());
            }
            std::fs::remove_file(path)?;
        } else {
            anyhow::bail!("{} exists and is not a socket", path.display());
        }
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    // Owner and group only; never world-writable.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The routes, the access table and the document need nothing from the store or the areas'
    // state: build them beside the rest of the start-up (docs/benchmarks.md, start-to-ready).
    let prepared = std::thread::Builder::new()
        .name("hp-openapi".into())
        .spawn(http::Prepared::build)
        .context("starting the router thread")?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let _ = std::fs::set_permissions(&cfg.data_dir, std::fs::Permissions::from_mode(0o700));

    // Every TCP connection is a descriptor: take the whole hard limit (docs/limits.md).
    let nofile = conn_limit::raise_nofile_limit();
    let store = Arc::new(Store::open(&cfg.db_path())?);
    let audit = Audit::new(
        store.clone(),
        Retention {
            max_age: Duration::from_secs(u64::from(cfg.audit.max_age_days) * 86_400),
            max_rows: cfg.audit.max_rows,
        },
    );
    match audit.prune() {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "audit log pruned"),
        Err(e) => tracing::warn!(error = %e, "cannot prune the audit log"),
    }
    let auth = Auth::new(store.clone())?;
    bootstrap(&cfg, &auth)?;
    let events = Arc::new(Events::new(store.clone(), cfg.events.replay_window)?);
    let jobs = Jobs::new(store.clone(), events.clone())?;
    let tls_files = if cfg.http {
        None
    } else {
        Some(tls::ensure_files(&cfg)?)
    };
    let tls_config = match &tls_files {
        Some(f) => Some(tls::load(f).await?),
        None => None,
    };
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0])
        .ok()
        .and_then(|b| b.install_recorder().ok());

    // Bind everything before serving anything, so a bad address fails the start cleanly.
    let mut tcp = Vec::new();
    for addr in &cfg.listen {
        let l = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
        l.set_nonblocking(true)?;
        tcp.push(l);
    }
    let socket_path = cfg.socket_path();
    let unix = match &socket_path {
        Some(p) => Some(bind_unix(p)?),
        None => None,
    };

    let mut services = Services {
        login_limiter: LoginLimiter::new(cfg.auth.login_attempts_per_minute),
        anon_limiter: AnonLimiter::new(cfg.auth.anonymous_failures_per_minute),
        audit,
        tls: tls_config.clone(),
        config: cfg.clone(),
        store,
        auth,
        jobs,
        events,
        metrics,
        started: t0,
        tickets: Default::default(),
        pool_users: Default::default(),
        workloads: Default::default(),
        link_users: Default::default(),
        stack_images: Default::default(),
        processes: Default::default(),
        secrets: crate::platform::secrets::Secrets::open_dir(&cfg.data_dir)?,
        serial: Default::default(),
        areas: Default::default(),
    };
    // Each area prepares itself and its own state (areas::Area::init).
    crate::areas::init_all(&mut services)?;
    let state = AppState(Arc::new(services));
    let init_ms = t0.elapsed().as_millis() as u64;
    let prepared = prepared
        .join()
        .map_err(|_| anyhow::anyhow!("building the router panicked"))?;
    let routes_ms = prepared.took.as_millis() as u64;
    let app = http::app_from(prepared, state.clone());
    let handle = Handle::new();
    let mut servers = tokio::task::JoinSet::new();
    // One count for all TCP listeners; the unix socket below is not counted.
    let conns = &cfg.connections;
    let max_total = conn_limit::effective_max_total(conns.max, nofile);
    if max_total < conns.max {
        tracing::warn!(
            configured = conns.max,
            applied = max_total,
            open_files_limit = nofile,
            "connections.max lowered to fit the open-files limit"
        );
    }
    let tracker = ConnTracker::new(ConnLimits {
        max_total,
        max_per_ip: conns.max_per_ip.min(max_total),
        idle_timeout: (conns.idle_timeout_secs > 0)
            .then(|| Duration::from_secs(conns.idle_timeout_secs)),
    });
    let header_timeout = Duration::from_secs(conns.header_read_timeout_secs);
    let acceptor = LimitAcceptor::new(tracker);
    let mut bound = Vec::new();
    for l in tcp {
        let addr = l.local_addr()?;
        bound.push(addr.to_string());
        let svc = app.clone().into_make_service_with_connect_info::<Peer>();
        let handle = handle.clone();
        match &tls_config {
            Some(tls) => {
                let acceptor = acceptor.clone();
                let mut server = axum_server::from_tcp_rustls(l, tls.clone())?
                    .map(|tls| tls.acceptor(acceptor))
                    .handle(handle)
                    .first_request_timeout(header_timeout);
                server
                    .http_builder()
                    .http1()
                    .header_read_timeout(header_timeout);
                servers.spawn(async move { server.serve(svc).await });
                tracing::info!("listening on https://{addr}");
            }
            None => {
                let mut server = axum_server::from_tcp(l)?
                    .acceptor(acceptor.clone())
                    .handle(handle)
                    .first_request_timeout(header_timeout);
                server
                    .http_builder()
                    .http1()
                    .header_read_timeout(header_timeout);
                servers.spawn(async move { server.serve(svc).await });
                tracing::info!("listening on http://{addr}");
            }
        }
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    if let (Some(listener), Some(path)) = (unix, &socket_path) {
        let svc = app.clone().into_make_service_with_connect_info::<Peer>();
        let stop = shutdown.clone();
        servers.spawn(async move {
            axum::serve(listener, svc)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        });
        tracing::info!("listening on unix:{}", path.display());
    }
    tracing::info!(
        ready_ms = t0.elapsed().as_millis() as u64,
        // Start-up's two parallel parts: the store and the areas' init, and the routes with
        // the document (docs/benchmarks.md, start-to-ready).
        init_ms,
        routes_ms,
        data_dir = %cfg.data_dir.display(),
        "hostplane ready"
    );
    // The areas' start hooks (disk uevents are subscribed before readiness, pools remount and
    // VMs re-attach in the background).
    crate::areas::start_all(&state).await;
    // For supervisors and tests: this process, ready, and the addresses it got (a `--listen`
    // port 0 picks a free one). Written atomically once everything listens.
    let ready = serde_json::json!({"pid": std::process::id(), "tcp": bound});
    if let Err(e) = crate::fsutil::write_atomic(
        &cfg.data_dir.join("ready.json"),
        ready.to_string().as_bytes(),
        0o644,
    ) {
        tracing::warn!(error = %e, "could not write ready.json");
    }

    spawn_housekeeping(state.clone());
    if let Some(m) = state.metrics.clone() {
        crate::platform::memory::before_trim(move || m.run_upkeep());
    }
    crate::platform::memory::spawn_trimmer();
    if let (Some(files), Some(live)) = (tls_files, tls_config.clone()) {
        spawn_tls_reloader(files, live);
    }

    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down"),
        Some(res) = servers.join_next() => {
            if let Ok(Err(e)) = res {
                tracing::error!(error = %e, "a listener failed");
            }
        }
    }
    handle.graceful_shutdown(Some(Duration::from_secs(5)));
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(6), async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    crate::areas::shutdown_all(&state).await;
    let _ = state.auth.flush_last_used();
    state.audit.flush();
    if let Some(p) = &socket_path {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

fn spawn_housekeeping(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            n += 1;
            if let Err(e) = state.auth.flush_last_used() {
                tracing::warn!(error = %e, "cannot record token use");
            }
            // Aggregated audit counts (refused anonymous requests).
            state.audit.flush();
            // The request-latency histograms keep every raw sample until upkeep folds them
            // into their buckets (the recorder's own `install` would run this; `install_recorder`
            // leaves it to us). Without it each request added 8+ bytes that stayed until a
            // scrape: 47 MiB after bench/run's load (docs/benchmarks.md).
            if let Some(m) = &state.metrics {
                m.run_upkeep();
            }
            if n.is_multiple_of(12) {
                let _ = state.auth.prune_expired_sessions();
                state.login_limiter.shrink();
                state.anon_limiter.shrink();
            }
            // Audit retention, hourly (and at start, in run).
            if n.is_multiple_of(720)
                && let Err(e) = state.audit.prune()
            {
                tracing::warn!(error = %e, "cannot prune the audit log");
            }
        }
    });
}

/// SIGHUP re-reads the certificate files and swaps them into the running listeners; a bad
/// pair is logged and the old certificate stays.
fn spawn_tls_reloader(files: tls::TlsFiles, live: axum_server::tls_rustls::RustlsConfig) {
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            match tls::reload_from_files(&live, &files).await {
                Ok(()) => tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS reload failed; keeping the old certificate")
                }
            }
        }
    });
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
