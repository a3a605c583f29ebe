//! `lxc list|show|create|start|stop|kill|freeze|unfreeze|snapshot|restore|clone|rm|console`
//! over `/api/v1/lxc`.
//!
//! `console` speaks the attach WebSocket (`GET /lxc/{name}/attach`): binary frames carry the
//! terminal both ways, text frames JSON control (`resize` sent with the terminal's size at the
//! start, `exit` received with the shell's exit code, which becomes this command's). On a
//! terminal stdin is raw (restored on exit) and Ctrl-] leaves; from a pipe, the input is sent
//! once the shell is ready (its output pauses), its end as Ctrl-D, and the output is shown
//! until the shell exits.

use hostplane_types::lxc::{
    LxcBackupRequest, LxcClone, LxcContainer, LxcCreate, LxcLimits, LxcRestoreRequest, LxcSnapshot,
    LxcTemplate,
};
use hyper::Method;
use serde_json::json;

use super::common::{self, ListArgs, WaitArgs, YesArg};
use super::ws_terminal::{Options, Piped, window_size, ws_terminal};
use super::{Ctx, api};
use crate::client::{seg, with_query};
use crate::output::{self, bytes, opt, yes_no};

#[derive(Debug, clap::Subcommand)]
pub enum LxcCmd {
    /// List LXC containers.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one container.
    Show { name: String },
    /// Create a container (a job): `--template busybox`, or `--template local --archive
    /// POOL/DATASET/PATH.tar.xz`.
    Create {
        name: String,
        #[arg(long, value_parser = ["busybox", "local"], default_value = "busybox")]
        template: String,
        /// local: the rootfs .tar.xz in a dataset (POOL/DATASET/PATH).
        #[arg(long, value_name = "POOL/DATASET/PATH")]
        archive: Option<String>,
        /// Put the rootfs in a pool dataset (a btrfs subvolume on btrfs).
        #[arg(long, value_name = "POOL/DATASET")]
        storage: Option<String>,
        /// Attach a veth to this host bridge [default: no network].
        #[arg(long)]
        bridge: Option<String>,
        /// Memory limit in bytes.
        #[arg(long, value_name = "BYTES")]
        memory: Option<u64>,
        /// CPU limit (fractional CPUs).
        #[arg(long)]
        cpus: Option<f64>,
        /// Start it when the daemon starts.
        #[arg(long)]
        autostart: bool,
        /// Start it once made.
        #[arg(long)]
        start: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Start a container.
    Start { name: String },
    /// Stop a container (halt signal, SIGKILL after --timeout seconds).
    Stop {
        name: String,
        #[arg(long, value_name = "SECS")]
        timeout: Option<u32>,
    },
    /// Kill a container at once.
    Kill { name: String },
    /// Freeze a running container.
    Freeze { name: String },
    /// Unfreeze a frozen container.
    Unfreeze { name: String },
    /// Snapshots: `snapshot list NAME`, `snapshot create NAME`, `snapshot delete NAME SNAP`.
    #[command(subcommand)]
    Snapshot(LxcSnapshotCmd),
    /// Put a stopped container's rootfs back to a snapshot (a job).
    Restore {
        name: String,
        snapshot: String,
        #[command(flatten)]
        yes: YesArg,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Copy a stopped container under a new name (a job).
    Clone {
        name: String,
        new_name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Back a stopped container up as a .tar.zst into a pool dataset (a job).
    Backup {
        name: String,
        #[arg(long, value_name = "POOL/DATASET")]
        storage: String,
        /// File name (…tar.zst) [default: NAME-TIME.tar.zst].
        #[arg(long)]
        file: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Make container NAME from a backup in a pool dataset (a job).
    RestoreBackup {
        name: String,
        #[arg(long, value_name = "POOL/DATASET")]
        storage: String,
        #[arg(long)]
        file: String,
        /// Put the rootfs in this dataset [default: the lxcpath].
        #[arg(long, value_name = "POOL/DATASET")]
        rootfs_storage: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Delete a container with its rootfs and snapshots.
    Rm {
        name: String,
        /// Kill it first if it runs.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        yes: YesArg,
    },
    /// A root shell in the running container (Ctrl-] leaves).
    Console { name: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum LxcSnapshotCmd {
    /// List a container's snapshots.
    List { name: String },
    /// Snapshot a stopped container (a job; LXC names it snapN).
    Create {
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Delete a snapshot.
    Delete {
        name: String,
        snapshot: String,
        #[command(flatten)]
        yes: YesArg,
    },
}

fn path(name: &str) -> String {
    api(&format!("/lxc/{}", seg(name)))
}

fn rows(c: LxcContainer) -> Vec<(&'static str, String)> {
    let mounts: Vec<String> = c
        .mounts
        .iter()
        .map(|m| {
            format!(
                "{} -> /{}{}",
                m.source,
                m.target,
                if m.read_only { " (ro)" } else { "" }
            )
        })
        .collect();
    vec![
        ("NAME", c.name),
        ("STATE", output::name(&c.state)),
        ("PID", opt(c.pid)),
        ("IPS", output::list(&c.ips)),
        (
            "MEMORY",
            c.memory_bytes.map(bytes).unwrap_or_else(|| "-".into()),
        ),
        ("STORAGE", c.storage.unwrap_or_else(|| "-".into())),
        ("ROOTFS", c.rootfs),
        ("AUTOSTART", yes_no(c.autostart)),
        (
            "MEMORY-LIMIT",
            c.limits
                .memory_bytes
                .map(bytes)
                .unwrap_or_else(|| "-".into()),
        ),
        ("CPU-LIMIT", opt(c.limits.cpus)),
        ("MOUNTS", output::list(&mounts)),
    ]
}

async fn act(
    ctx: &Ctx,
    name: &str,
    action: &str,
    query: &[(&str, Option<String>)],
) -> anyhow::Result<i32> {
    let p = with_query(&format!("{}/{action}", path(name)), query);
    let answer = ctx.client.call(Method::POST, &p, None::<&()>).await?;
    common::print_answer(ctx, &answer, |c: LxcContainer| {
        Ok(output::println(&format!(
            "LXC container {} is {}",
            c.name,
            output::name(&c.state)
        ))?)
    })
}

async fn job_of(
    ctx: &Ctx,
    p: &str,
    body: &impl serde::Serialize,
    wait: &WaitArgs,
    what: &str,
) -> anyhow::Result<i32> {
    let started = ctx.client.call(Method::POST, p, Some(body)).await?;
    Ok(common::job(ctx, started, wait, what).await?.code)
}

pub async fn run(ctx: &Ctx, cmd: LxcCmd) -> anyhow::Result<i32> {
    match cmd {
        LxcCmd::List { list } => {
            common::list(
                ctx,
                &list.path(&api("/lxc")),
                &["NAME", "STATE", "IPS", "MEMORY", "STORAGE", "AUTOSTART"],
                |c: LxcContainer| {
                    vec![
                        c.name,
                        output::name(&c.state),
                        output::list(&c.ips),
                        c.memory_bytes.map(bytes).unwrap_or_else(|| "-".into()),
                        c.storage.unwrap_or_else(|| "-".into()),
                        yes_no(c.autostart),
                    ]
                },
            )
            .await
        }
        LxcCmd::Show { name } => common::show(ctx, &path(&name), rows).await,
        LxcCmd::Create {
            name,
            template,
            archive,
            storage,
            bridge,
            memory,
            cpus,
            autostart,
            start,
            wait,
        } => {
            let body = LxcCreate {
                name: name.clone(),
                template: if template == "local" {
                    LxcTemplate::Local
                } else {
                    LxcTemplate::Busybox
                },
                rootfs_archive: archive,
                storage,
                bridge,
                limits: LxcLimits {
                    memory_bytes: memory,
                    cpus,
                },
                autostart,
                mounts: Vec::new(),
                start,
            };
            job_of(
                ctx,
                &api("/lxc"),
                &body,
                &wait,
                &format!("creation of {name}"),
            )
            .await
        }
        LxcCmd::Start { name } => act(ctx, &name, "start", &[]).await,
        LxcCmd::Stop { name, timeout } => {
            act(
                ctx,
                &name,
                "stop",
                &[("timeout", timeout.map(|t| t.to_string()))],
            )
            .await
        }
        LxcCmd::Kill { name } => act(ctx, &name, "kill", &[]).await,
        LxcCmd::Freeze { name } => act(ctx, &name, "freeze", &[]).await,
        LxcCmd::Unfreeze { name } => act(ctx, &name, "unfreeze", &[]).await,
        LxcCmd::Snapshot(c) => snapshot(ctx, c).await,
        LxcCmd::Restore {
            name,
            snapshot,
            yes,
            wait,
        } => {
            common::confirm(
                &yes,
                &format!("put the rootfs of {name} back to snapshot {snapshot}"),
                &snapshot,
            )?;
            job_of(
                ctx,
                &format!("{}/snapshots/{}/restore", path(&name), seg(&snapshot)),
                &json!({}),
                &wait,
                &format!("restore of {name} to {snapshot}"),
            )
            .await
        }
        LxcCmd::Clone {
            name,
            new_name,
            wait,
        } => {
            job_of(
                ctx,
                &format!("{}/clone", path(&name)),
                &LxcClone {
                    name: new_name.clone(),
                },
                &wait,
                &format!("clone of {name} as {new_name}"),
            )
            .await
        }
        LxcCmd::Backup {
            name,
            storage,
            file,
            wait,
        } => {
            job_of(
                ctx,
                &format!("{}/backup", path(&name)),
                &LxcBackupRequest { storage, file },
                &wait,
                &format!("backup of {name}"),
            )
            .await
        }
        LxcCmd::RestoreBackup {
            name,
            storage,
            file,
            rootfs_storage,
            wait,
        } => {
            job_of(
                ctx,
                &format!("{}/restore", path(&name)),
                &LxcRestoreRequest {
                    storage,
                    file,
                    rootfs_storage,
                },
                &wait,
                &format!("restore of {name}"),
            )
            .await
        }
        LxcCmd::Rm { name, force, yes } => {
            common::confirm(
                &yes,
                &format!("delete LXC container {name} and its rootfs"),
                &name,
            )?;
            let p = with_query(&path(&name), &[("force", force.then(|| "true".into()))]);
            common::done(
                ctx,
                Method::DELETE,
                &p,
                &format!("Deleted LXC container {name}"),
            )
            .await
        }
        LxcCmd::Console { name } => console(ctx, &name).await,
    }
}

async fn snapshot(ctx: &Ctx, cmd: LxcSnapshotCmd) -> anyhow::Result<i32> {
    match cmd {
        LxcSnapshotCmd::List { name } => {
            common::list(
                ctx,
                &format!("{}/snapshots", path(&name)),
                &["NAME", "CREATED"],
                |s: LxcSnapshot| vec![s.name, s.created],
            )
            .await
        }
        LxcSnapshotCmd::Create { name, wait } => {
            job_of(
                ctx,
                &format!("{}/snapshots", path(&name)),
                &json!({}),
                &wait,
                &format!("snapshot of {name}"),
            )
            .await
        }
        LxcSnapshotCmd::Delete {
            name,
            snapshot,
            yes,
        } => {
            common::confirm(
                &yes,
                &format!("delete snapshot {snapshot} of {name}"),
                &snapshot,
            )?;
            common::done(
                ctx,
                Method::DELETE,
                &format!("{}/snapshots/{}", path(&name), seg(&snapshot)),
                &format!("Deleted snapshot {snapshot} of {name}"),
            )
            .await
        }
    }
}

async fn console(ctx: &Ctx, name: &str) -> anyhow::Result<i32> {
    let (cols, rows) = window_size().unwrap_or((80, 24));
    let ws = ctx
        .client
        .websocket(&format!("{}/attach?cols={cols}&rows={rows}", path(name)))
        .await?;
    // The size went with the query; later changes follow as resize frames. The shell's exit
    // code comes before the server closes, which ends the session.
    let opts = Options {
        what: "console",
        banner: Some(format!("Attached to {name}; Ctrl-] leaves.")),
        escape: true,
        piped: Piped::HoldUntilQuiet { silent: None },
        initial_resize: false,
        follow_resize: true,
        exit_ends: false,
    };
    let out = ws_terminal(ws, opts).await?;
    Ok(out.exit_code.map_or(0, |c| c as i32))
}
