//! `net host show|set|confirm|rollback|status|changes` over `/api/v1/network/host` and
//! `/api/v1/network/changes`.
//!
//! Flow of `set`: `PUT /network/host` (202, the change) → poll the change until it leaves
//! `applying` → rolled back or failed: print why, exit 1 → awaiting confirmation: print the
//! change with its countdown, then keep it (`--keep`, or "y" on a terminal) with a confirm
//! sent over a NEW connection (a fresh client: only a connection opened after the change
//! proves the host is still reachable), give it up ("n": `POST …/rollback`), or, without a
//! terminal, print how to confirm and exit 0. `--no-wait` prints the change as PUT answered.

use std::time::{Duration, Instant};

use anyhow::bail;
use hostplane_types::network_host::{ChangeState, HostSettingsView, NetworkChange};
use hyper::Method;
use serde_json::json;

use super::common::{self, ListArgs};
use super::{Ctx, api};
use crate::client::{Client, seg};
use crate::output::{self, opt};
use crate::prompt;

#[derive(Debug, clap::Subcommand)]
pub enum HostCmd {
    /// The settings last confirmed, the interface's addresses and gateway now, the open change.
    Show,
    /// Change the management settings; rolled back unless confirmed in time.
    Set(SetArgs),
    /// Keep a change awaiting confirmation (default: the open one).
    Confirm { id: Option<String> },
    /// Give up on a change awaiting confirmation: the prior settings come back now.
    #[command(visible_alias = "cancel")]
    Rollback { id: Option<String> },
    /// A change's state and the seconds left to confirm it (default: the open one, else the
    /// newest).
    Status {
        id: Option<String>,
        /// Follow the countdown until the change is confirmed or rolled back.
        #[arg(long)]
        watch: bool,
    },
    /// The last changes, newest first.
    Changes {
        #[command(flatten)]
        list: ListArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// The management interface.
    #[arg(long, short = 'i', value_name = "IF")]
    interface: String,
    /// `dhcp` or `static`.
    #[arg(long, value_parser = ["dhcp", "static"])]
    mode: String,
    /// Static: IPv4 CIDR, e.g. 192.0.2.10/24.
    #[arg(long, value_name = "CIDR")]
    address: Option<String>,
    /// Static: IPv4 default gateway.
    #[arg(long, value_name = "IP")]
    gateway: Option<String>,
    /// DNS server (repeatable, at most 3).
    #[arg(long, value_name = "IP")]
    dns: Vec<String>,
    #[arg(long)]
    hostname: Option<String>,
    /// NTP server (repeatable, at most 4).
    #[arg(long, value_name = "HOST")]
    ntp: Vec<String>,
    /// Seconds to confirm before it rolls back (10–600; default 60).
    #[arg(long = "confirm-timeout", value_name = "SECS")]
    confirm_timeout: Option<u32>,
    /// Make it even though it removes the address or route this client comes in on.
    #[arg(long)]
    force: bool,
    /// Confirm at once over a new connection once it applied (no question asked).
    #[arg(long, conflicts_with = "no_wait")]
    keep: bool,
    /// Print the change as the daemon accepted it and return (confirm it later).
    #[arg(long)]
    no_wait: bool,
}

fn changes_path(rest: &str) -> String {
    api(&format!("/network/changes{rest}"))
}

fn state_word(s: ChangeState) -> &'static str {
    match s {
        ChangeState::Applying => "applying",
        ChangeState::AwaitingConfirmation => "awaiting_confirmation",
        ChangeState::Confirmed => "confirmed",
        ChangeState::RolledBack => "rolled_back",
        ChangeState::Failed => "failed",
    }
}

fn change_rows(c: NetworkChange) -> Vec<(&'static str, String)> {
    let s = &c.settings;
    let mut rows = vec![
        ("ID", c.id.clone()),
        ("STATE", state_word(c.state).to_string()),
        ("INTERFACE", s.interface.clone()),
        ("MODE", format!("{:?}", s.mode).to_lowercase()),
        ("ADDRESS", opt(s.address.clone())),
        ("GATEWAY", opt(s.gateway.clone())),
        ("DNS", s.dns.join(" ")),
        ("HOSTNAME", opt(s.hostname.clone())),
        ("NTP", s.ntp.join(" ")),
        ("CONFIRM-TIMEOUT", format!("{} s", c.confirm_timeout_s)),
    ];
    if let Some(left) = c.seconds_left {
        rows.push(("ROLLS-BACK-IN", format!("{left} s")));
        rows.push(("DEADLINE", opt(c.deadline.clone())));
    }
    if let Some(r) = &c.reason {
        rows.push(("REASON", r.clone()));
    }
    rows.push(("USER", c.user.clone()));
    rows.push(("CREATED", c.created_at.clone()));
    rows
}

fn view_rows(v: HostSettingsView) -> Vec<(&'static str, String)> {
    let mut rows = match &v.settings {
        Some(s) => vec![
            ("INTERFACE", s.interface.clone()),
            ("MODE", format!("{:?}", s.mode).to_lowercase()),
            ("ADDRESS", opt(s.address.clone())),
            ("GATEWAY", opt(s.gateway.clone())),
            ("DNS", s.dns.join(" ")),
            ("HOSTNAME", opt(s.hostname.clone())),
            ("NTP", s.ntp.join(" ")),
        ],
        None => vec![("SETTINGS", "none confirmed yet".to_string())],
    };
    rows.push(("ADDRESSES-NOW", v.addresses.join(" ")));
    rows.push(("GATEWAY-NOW", opt(v.gateway)));
    if let Some(d) = v.dhcp_client {
        rows.push((
            "DHCP-CLIENT",
            format!(
                "{} on {}{}",
                if d.running { "running" } else { "stopped" },
                d.interface,
                d.address
                    .map(|a| format!(", lease {a}"))
                    .unwrap_or_default()
            ),
        ));
    }
    rows.push((
        "PENDING-CHANGE",
        v.pending_change
            .map(|h| h.rsplit('/').next().unwrap_or_default().to_string())
            .unwrap_or_else(|| "-".into()),
    ));
    rows
}

fn print_change(ctx: &Ctx, c: &NetworkChange) -> anyhow::Result<()> {
    if ctx.json {
        println!("{}", serde_json::to_string_pretty(c)?);
    } else {
        output::print_table(output::fields(change_rows(c.clone())))?;
    }
    Ok(())
}

async fn get_change(client: &Client, id: &str) -> anyhow::Result<NetworkChange> {
    client
        .get(&changes_path(&format!("/{}", seg(id))))
        .await?
        .parse()
}

/// The open change's id, else (`newest`) the newest change's.
async fn default_id(ctx: &Ctx, newest: bool) -> anyhow::Result<String> {
    let v: HostSettingsView = ctx.client.get(&api("/network/host")).await?.parse()?;
    if let Some(h) = v.pending_change {
        return Ok(h.rsplit('/').next().unwrap_or_default().to_string());
    }
    if newest {
        let list: Vec<NetworkChange> = ctx.client.get(&changes_path("?limit=1")).await?.parse()?;
        if let Some(c) = list.into_iter().next() {
            return Ok(c.id);
        }
    }
    bail!("no network change is open (give its id; `hostplane net host changes` lists them)")
}

/// Confirms over a new connection: a fresh client, so no pooled connection that predates the
/// change is reused (over the unix socket every request has its own connection anyway).
async fn confirm(ctx: &Ctx, id: &str) -> anyhow::Result<NetworkChange> {
    let fresh = Client::new(&ctx.endpoint)?;
    fresh
        .call(
            Method::POST,
            &changes_path(&format!("/{}/confirm", seg(id))),
            None::<&()>,
        )
        .await?
        .parse()
}

async fn rollback(ctx: &Ctx, id: &str) -> anyhow::Result<NetworkChange> {
    ctx.client
        .call(
            Method::POST,
            &changes_path(&format!("/{}/rollback", seg(id))),
            None::<&()>,
        )
        .await?
        .parse()
}

/// Polls until the change leaves `applying` (at most 2 minutes).
async fn applied(ctx: &Ctx, id: &str) -> anyhow::Result<NetworkChange> {
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let c = get_change(&ctx.client, id).await?;
        if c.state != ChangeState::Applying || Instant::now() > until {
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn final_code(c: &NetworkChange) -> i32 {
    match c.state {
        ChangeState::Confirmed | ChangeState::AwaitingConfirmation | ChangeState::Applying => 0,
        ChangeState::RolledBack | ChangeState::Failed => 1,
    }
}

async fn set(ctx: &Ctx, a: SetArgs) -> anyhow::Result<i32> {
    let body = json!({"interface": a.interface, "mode": a.mode, "address": a.address,
        "gateway": a.gateway, "dns": a.dns, "hostname": a.hostname, "ntp": a.ntp,
        "confirm_timeout_s": a.confirm_timeout, "force": a.force});
    let c: NetworkChange = ctx
        .client
        .call(Method::PUT, &api("/network/host"), Some(&body))
        .await?
        .parse()?;
    if a.no_wait {
        print_change(ctx, &c)?;
        return Ok(0);
    }
    let c = applied(ctx, &c.id).await?;
    if c.state != ChangeState::AwaitingConfirmation {
        print_change(ctx, &c)?;
        if !ctx.json {
            eprintln!(
                "the change was not kept: {}",
                c.reason.as_deref().unwrap_or(state_word(c.state))
            );
        }
        return Ok(final_code(&c));
    }
    if a.keep {
        let c = confirm(ctx, &c.id).await?;
        print_change(ctx, &c)?;
        return Ok(0);
    }
    print_change(ctx, &c)?;
    if !prompt::stdin_is_tty() {
        if !ctx.json {
            eprintln!(
                "applied; keep it with `hostplane net host confirm {}` within {} s (from a new connection), or it rolls back",
                c.id,
                c.seconds_left.unwrap_or(0)
            );
        }
        return Ok(0);
    }
    let answer = prompt::ask(&format!(
        "Applied. Can you still reach the host? Keep this change (it rolls back in {} s otherwise)? [y/N] ",
        c.seconds_left.unwrap_or(0)
    ))?;
    let c = if answer.is_some_and(|x| x.eq_ignore_ascii_case("y") || x.eq_ignore_ascii_case("yes"))
    {
        confirm(ctx, &c.id).await?
    } else {
        rollback(ctx, &c.id).await?
    };
    print_change(ctx, &c)?;
    Ok(final_code(&c))
}

pub async fn run(ctx: &Ctx, c: HostCmd) -> anyhow::Result<i32> {
    match c {
        HostCmd::Show => common::show(ctx, &api("/network/host"), view_rows).await,
        HostCmd::Set(a) => set(ctx, a).await,
        HostCmd::Confirm { id } => {
            let id = match id {
                Some(i) => i,
                None => default_id(ctx, false).await?,
            };
            print_change(ctx, &confirm(ctx, &id).await?)?;
            Ok(0)
        }
        HostCmd::Rollback { id } => {
            let id = match id {
                Some(i) => i,
                None => default_id(ctx, false).await?,
            };
            let c = rollback(ctx, &id).await?;
            print_change(ctx, &c)?;
            Ok(0)
        }
        HostCmd::Status { id, watch } => {
            let id = match id {
                Some(i) => i,
                None => default_id(ctx, true).await?,
            };
            let mut c = get_change(&ctx.client, &id).await?;
            if watch && !ctx.json {
                // One line a second while the countdown runs; then the final state.
                while matches!(
                    c.state,
                    ChangeState::Applying | ChangeState::AwaitingConfirmation
                ) {
                    eprintln!(
                        "{} {}{}",
                        c.id,
                        state_word(c.state),
                        c.seconds_left
                            .map(|s| format!(", rolls back in {s} s"))
                            .unwrap_or_default()
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    c = get_change(&ctx.client, &id).await?;
                }
            }
            print_change(ctx, &c)?;
            Ok(0)
        }
        HostCmd::Changes { list } => {
            common::list(
                ctx,
                &list.path(&changes_path("")),
                &[
                    "ID",
                    "STATE",
                    "INTERFACE",
                    "MODE",
                    "ADDRESS",
                    "REASON",
                    "CREATED",
                ],
                |c: NetworkChange| {
                    vec![
                        c.id,
                        state_word(c.state).to_string(),
                        c.settings.interface,
                        format!("{:?}", c.settings.mode).to_lowercase(),
                        opt(c.settings.address),
                        opt(c.reason),
                        c.created_at,
                    ]
                },
            )
            .await
        }
    }
}
