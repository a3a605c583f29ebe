//! The autostart order: stored, checked, and followed once when the daemon starts.
//!
//! Flow at start: [`at_start`] reads the order; when it has items it starts the job
//! `workloads.autostart` ([`follow`]), which takes the items one by one: the provider of the
//! item's kind says what is missing (a bind mount's source, a VM's disk on a pool that is not
//! mounted, the object itself): then the item is skipped. Otherwise it is started unless it
//! runs already, and its wait is served (a delay, or polling until running/healthy up to its
//! timeout). A skipped, failed or timed-out item is logged in the job, published as an event
//! (`resource.updated` on `/api/v1/autostart`, data: the outcome) and never retried: the next
//! item follows. The job's result lists every item's outcome with its times.

use std::time::Duration;

use hostplane_types::workloads::{
    Autostart, AutostartItem, AutostartOutcome, AutostartResult, AutostartWait, WaitFor,
};

use crate::error::{ApiError, ApiResult};
use crate::platform::jobs::{JobCtx, JobSpec};
use crate::platform::time::now_string;
use crate::state::AppState;

pub const HREF: &str = "/api/v1/autostart";
const SETTING: &str = "autostart";
/// Who the starts are attributed to.
const ACTOR: &str = "autostart";
const DEFAULT_TIMEOUT: u32 = 120;
const MAX_ITEMS: usize = 256;

pub fn load(state: &AppState) -> ApiResult<Autostart> {
    match state.store.get_setting(SETTING)? {
        Some(s) => serde_json::from_str(&s).map_err(ApiError::internal),
        None => Ok(Autostart::default()),
    }
}

pub fn save(state: &AppState, a: &Autostart) -> ApiResult<()> {
    let s = serde_json::to_string(a).map_err(ApiError::internal)?;
    Ok(state.store.set_setting(SETTING, &s)?)
}

/// The order's form: known kinds, well-formed names, no item twice, bounded waits.
pub fn check(state: &AppState, a: &Autostart) -> ApiResult<()> {
    if a.items.len() > MAX_ITEMS {
        return Err(ApiError::invalid_field(
            "invalid_autostart",
            "items",
            format!("at most {MAX_ITEMS} items"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, item) in a.items.iter().enumerate() {
        let field = format!("items[{i}]");
        let Some(p) = state.workloads.provider(&item.kind) else {
            return Err(ApiError::invalid_field(
                "unknown_kind",
                format!("{field}.kind"),
                format!(
                    "kind {:?} is not one of {}",
                    item.kind,
                    state.workloads.kinds().join(", ")
                ),
            ));
        };
        p.check_name(&item.name).map_err(|e| {
            ApiError::invalid_field("invalid_autostart", format!("{field}.name"), e)
        })?;
        if !seen.insert((item.kind.as_str(), item.name.as_str())) {
            return Err(ApiError::invalid_field(
                "invalid_autostart",
                format!("{field}.name"),
                format!("{} {:?} is in the order twice", item.kind, item.name),
            ));
        }
        if let AutostartWait::Seconds { seconds } = item.wait
            && seconds > 3600
        {
            return Err(ApiError::invalid_field(
                "invalid_autostart",
                format!("{field}.wait"),
                "seconds is 0 .. 3600",
            ));
        }
        if item.timeout_secs.is_some_and(|t| !(1..=3600).contains(&t)) {
            return Err(ApiError::invalid_field(
                "invalid_autostart",
                format!("{field}.timeout_secs"),
                "timeout_secs is 1 .. 3600",
            ));
        }
    }
    Ok(())
}

/// At daemon start: starts the job when the order has items.
pub async fn at_start(state: AppState) {
    let order = match load(&state) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "autostart: cannot read the order");
            return;
        }
    };
    if order.items.is_empty() {
        return;
    }
    let st = state.clone();
    let res = state.jobs.spawn(
        JobSpec {
            kind: "workloads.autostart",
            target: Some(HREF.to_string()),
            lock_key: Some("workloads/autostart".into()),
            actor: ACTOR.into(),
        },
        move |ctx| async move { Ok(follow(&st, &ctx, &order.items).await) },
    );
    if let Err(e) = res {
        tracing::error!(error = %e, "autostart: cannot start the job");
    }
}

/// Follows the order once; every item gets an outcome, none is retried.
pub async fn follow(state: &AppState, ctx: &JobCtx, items: &[AutostartItem]) -> AutostartResult {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if ctx.is_cancelled() {
            break;
        }
        let o = one(state, ctx, item).await;
        if matches!(o.outcome.as_str(), "skipped" | "failed" | "timeout") {
            ctx.log(format!(
                "{} {}: {}: {}",
                item.kind,
                item.name,
                o.outcome,
                o.reason.as_deref().unwrap_or("")
            ));
            state.events.publish(
                "resource.updated",
                HREF,
                ACTOR,
                serde_json::to_value(&o).unwrap_or_default(),
            );
        }
        out.push(o);
        ctx.progress((((i + 1) * 100) / items.len()) as u8);
    }
    AutostartResult { items: out }
}

async fn one(state: &AppState, ctx: &JobCtx, item: &AutostartItem) -> AutostartOutcome {
    let mut o = AutostartOutcome {
        kind: item.kind.clone(),
        name: item.name.clone(),
        outcome: String::new(),
        reason: None,
        started_at: None,
        done_at: None,
    };
    let end = |mut o: AutostartOutcome, outcome: &str, reason: Option<String>| {
        o.outcome = outcome.to_string();
        o.reason = reason;
        o.done_at = Some(now_string());
        o
    };
    let Some(p) = state.workloads.provider(&item.kind) else {
        return end(o, "skipped", Some(format!("no provider of kind {:?}", item.kind)));
    };
    match p.missing(state, &item.name).await {
        Ok(m) if m.is_empty() => {}
        Ok(m) => return end(o, "skipped", Some(m.join("; "))),
        Err(e) => return end(o, "skipped", Some(e.to_string())),
    }
    let already = p
        .status(state, &item.name)
        .await
        .is_ok_and(|s| s.running);
    if already {
        ctx.log(format!("{} {}: already running", item.kind, item.name));
        return end(o, "running", None);
    }
    o.started_at = Some(now_string());
    ctx.log(format!("{} {}: starting", item.kind, item.name));
    if let Err(e) = p.start(state, &item.name, ACTOR).await {
        return end(o, "failed", Some(e.to_string()));
    }
    let want = match item.wait {
        AutostartWait::Seconds { seconds } => {
            if seconds > 0 {
                ctx.log(format!("{} {}: started; waiting {seconds} s", item.kind, item.name));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(seconds.into())) => {}
                    _ = ctx.cancelled() => {}
                }
            } else {
                ctx.log(format!("{} {}: started", item.kind, item.name));
            }
            return end(o, "started", None);
        }
        AutostartWait::Until(w) => w,
    };
    let limit = Duration::from_secs(item.timeout_secs.unwrap_or(DEFAULT_TIMEOUT).into());
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let reached = match p.status(state, &item.name).await {
            Ok(s) => match want {
                WaitFor::Running => s.running,
                WaitFor::Healthy => s.healthy(),
            },
            Err(_) => false,
        };
        if reached {
            ctx.log(format!(
                "{} {}: started; {}",
                item.kind,
                item.name,
                match want {
                    WaitFor::Running => "running",
                    WaitFor::Healthy => "healthy",
                }
            ));
            return end(o, "started", None);
        }
        if tokio::time::Instant::now() >= deadline || ctx.is_cancelled() {
            return end(
                o,
                "timeout",
                Some(format!("not {want:?} within {} s", limit.as_secs()).to_lowercase()),
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
