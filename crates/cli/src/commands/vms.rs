//! `vms list|show|start|stop|console|snapshot …|export|delete` over `/api/v1/vms`.
//!
//! `console` speaks the serial console WebSocket (`GET /vms/{id}/serial`): binary frames carry
//! console bytes both ways, text frames carry JSON control messages (`{"type":"closed"}` when
//! the VM stops). On a terminal, stdin is switched to raw mode (restored on exit, also on
//! error) and Ctrl-] leaves; from a pipe, input is sent until its end and the output shown for
//! `--linger` seconds more.

use std::path::PathBuf;
use std::time::Duration;

use hostplane_types::vms::{ShutdownRequest, Snapshot, SnapshotCreate, Vm};
use hyper::Method;

use super::common::{self, ListArgs, WaitArgs, YesArg};
use super::{Ctx, api};
use crate::client::{seg, with_query};
use crate::output::{self, bytes, opt, yes_no};

use super::ws_terminal::{Options, Piped, ws_terminal};

#[derive(Debug, clap::Subcommand)]
pub enum VmsCmd {
    /// List virtual machines.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one VM (id or name).
    Show {
        /// VM id or name.
        vm: String,
    },
    /// Start a VM.
    Start {
        /// VM id or name.
        vm: String,
    },
    /// Shut a VM down: ACPI power-off, forced after --grace seconds (a job); --force stops at once.
    Stop {
        /// VM id or name.
        vm: String,
        /// Stop QEMU at once, without asking the guest.
        #[arg(long, conflicts_with_all = ["grace", "wait", "timeout"])]
        force: bool,
        /// Seconds the guest gets to power off before it is stopped by force [daemon default 60].
        #[arg(long, value_name = "SECS")]
        grace: Option<u64>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Attach to the VM's serial console (Ctrl-] leaves).
    Console {
        /// VM id or name.
        vm: String,
        /// With stdin from a pipe: seconds to keep showing output after the input ends.
        #[arg(long, value_name = "SECS", default_value_t = 1)]
        linger: u64,
    },
    /// Snapshots of a VM (qcow2 internal snapshots).
    #[command(subcommand)]
    Snapshot(VmSnapshotCmd),
    /// Download the VM (definition and disks) as a .tar.zst archive.
    Export {
        /// VM id or name.
        vm: String,
        /// Write to FILE (`-` for stdout) [default: VM.tar.zst].
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Delete a VM and the disk images it owns.
    Delete {
        /// VM id or name.
        vm: String,
        /// Keep the disk images.
        #[arg(long)]
        keep_disks: bool,
        #[command(flatten)]
        yes: YesArg,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum VmSnapshotCmd {
    /// List a VM's snapshots.
    List {
        /// VM id or name.
        vm: String,
    },
    /// Take a snapshot (a job; live when the VM runs).
    Create {
        /// VM id or name.
        vm: String,
        /// Snapshot name.
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Revert the VM to a snapshot (a job).
    Revert {
        /// VM id or name.
        vm: String,
        /// Snapshot name.
        name: String,
        #[command(flatten)]
        yes: YesArg,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Delete a snapshot.
    Delete {
        /// VM id or name.
        vm: String,
        /// Snapshot name.
        name: String,
        #[command(flatten)]
        yes: YesArg,
    },
}

fn vm_path(vm: &str) -> String {
    api(&format!("/vms/{}", seg(vm)))
}

fn vm_rows(v: Vm) -> Vec<(&'static str, String)> {
    let disks: Vec<String> = v
        .disks
        .iter()
        .map(|d| format!("{}:{} {}", d.index, d.format.as_str(), bytes(d.size_bytes)))
        .collect();
    let nics: Vec<String> = v
        .nics
        .iter()
        .map(|n| {
            let forwards: String = n
                .port_forwards
                .iter()
                .map(|f| {
                    let proto = output::name(&f.protocol);
                    format!(" {proto} 127.0.0.1:{}->{}", f.host_port, f.guest_port)
                })
                .collect();
            format!("{}:{} {}{forwards}", n.index, output::name(&n.mode), n.mac)
        })
        .collect();
    vec![
        ("NAME", v.name),
        ("ID", v.id),
        ("STATUS", output::name(&v.status)),
        ("VCPUS", v.vcpus.to_string()),
        ("MEMORY", bytes(v.memory_mib << 20)),
        ("MACHINE", output::name(&v.machine)),
        ("FIRMWARE", output::name(&v.firmware)),
        (
            "ACCELERATOR",
            match v.accelerator_in_use {
                Some(a) => format!("{} (in use: {a})", output::name(&v.accelerator)),
                None => output::name(&v.accelerator),
            },
        ),
        ("DISKS", output::list(&disks)),
        ("NICS", output::list(&nics)),
        ("AUTOSTART", yes_no(v.autostart)),
        ("PID", opt(v.pid)),
        ("PENDING-CHANGES", yes_no(v.pending_changes)),
        ("CREATED", output::time(Some(&v.created_at))),
    ]
}

pub async fn run(ctx: &Ctx, cmd: VmsCmd) -> anyhow::Result<i32> {
    match cmd {
        VmsCmd::List { list } => {
            common::list(
                ctx,
                &list.path(&api("/vms")),
                &[
                    "NAME",
                    "ID",
                    "STATUS",
                    "VCPUS",
                    "MEMORY",
                    "DISKS",
                    "AUTOSTART",
                ],
                |v: Vm| {
                    vec![
                        v.name,
                        v.id,
                        output::name(&v.status),
                        v.vcpus.to_string(),
                        bytes(v.memory_mib << 20),
                        v.disks.len().to_string(),
                        yes_no(v.autostart),
                    ]
                },
            )
            .await
        }
        VmsCmd::Show { vm } => common::show(ctx, &vm_path(&vm), vm_rows).await,
        VmsCmd::Start { vm } => {
            let answer = ctx
                .client
                .call(
                    Method::POST,
                    &format!("{}/start", vm_path(&vm)),
                    None::<&()>,
                )
                .await?;
            common::print_answer(ctx, &answer, |v: Vm| {
                Ok(output::println(&format!(
                    "VM {} is {}",
                    v.name,
                    output::name(&v.status)
                ))?)
            })
        }
        VmsCmd::Stop {
            vm,
            force,
            grace,
            wait,
        } => {
            if force {
                let answer = ctx
                    .client
                    .call(Method::POST, &format!("{}/stop", vm_path(&vm)), None::<&()>)
                    .await?;
                return common::print_answer(ctx, &answer, |v: Vm| {
                    Ok(output::println(&format!(
                        "VM {} is {}",
                        v.name,
                        output::name(&v.status)
                    ))?)
                });
            }
            let started = ctx
                .client
                .call(
                    Method::POST,
                    &format!("{}/shutdown", vm_path(&vm)),
                    Some(&ShutdownRequest {
                        timeout_secs: grace,
                    }),
                )
                .await?;
            Ok(
                common::job(ctx, started, &wait, &format!("shutdown of {vm}"))
                    .await?
                    .code,
            )
        }
        VmsCmd::Console { vm, linger } => console(ctx, &vm, Duration::from_secs(linger)).await,
        VmsCmd::Snapshot(c) => snapshot(ctx, c).await,
        VmsCmd::Export { vm, output: out } => {
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{vm}.tar.zst")));
            let path = api(&format!("/vms/{}.tar.zst", seg(&vm)));
            let n = common::download(ctx, &path, &out).await?;
            if out.as_os_str() != "-" && !ctx.json {
                output::println(&format!("Wrote {} ({})", out.display(), bytes(n)))?;
            }
            Ok(0)
        }
        VmsCmd::Delete {
            vm,
            keep_disks,
            yes,
        } => {
            let what = if keep_disks {
                format!("delete VM {vm} (keeping its disks)")
            } else {
                format!("delete VM {vm} and its disks")
            };
            common::confirm(&yes, &what, &vm)?;
            let path = with_query(
                &vm_path(&vm),
                &[("keep_disks", keep_disks.then(|| "true".into()))],
            );
            common::done(ctx, Method::DELETE, &path, &format!("Deleted VM {vm}")).await
        }
    }
}

async fn snapshot(ctx: &Ctx, cmd: VmSnapshotCmd) -> anyhow::Result<i32> {
    let snap_path = |vm: &str, name: &str| format!("{}/snapshots/{}", vm_path(vm), seg(name));
    match cmd {
        VmSnapshotCmd::List { vm } => {
            common::list(
                ctx,
                &format!("{}/snapshots", vm_path(&vm)),
                &["NAME", "CREATED", "VM-STATE"],
                |s: Snapshot| {
                    vec![
                        s.name,
                        output::time(Some(&s.created_at)),
                        if s.vm_state_bytes > 0 {
                            bytes(s.vm_state_bytes)
                        } else {
                            "-".into()
                        },
                    ]
                },
            )
            .await
        }
        VmSnapshotCmd::Create { vm, name, wait } => {
            let started = ctx
                .client
                .call(
                    Method::POST,
                    &format!("{}/snapshots", vm_path(&vm)),
                    Some(&SnapshotCreate { name: name.clone() }),
                )
                .await?;
            Ok(
                common::job(ctx, started, &wait, &format!("snapshot {name} of {vm}"))
                    .await?
                    .code,
            )
        }
        VmSnapshotCmd::Revert {
            vm,
            name,
            yes,
            wait,
        } => {
            common::confirm(
                &yes,
                &format!("revert VM {vm} to snapshot {name}, losing its current state"),
                &name,
            )?;
            let started = ctx
                .client
                .call(
                    Method::POST,
                    &format!("{}/revert", snap_path(&vm, &name)),
                    None::<&()>,
                )
                .await?;
            Ok(
                common::job(ctx, started, &wait, &format!("revert of {vm} to {name}"))
                    .await?
                    .code,
            )
        }
        VmSnapshotCmd::Delete { vm, name, yes } => {
            common::confirm(&yes, &format!("delete snapshot {name} of VM {vm}"), &name)?;
            common::done(
                ctx,
                Method::DELETE,
                &snap_path(&vm, &name),
                &format!("Deleted snapshot {name} of {vm}"),
            )
            .await
        }
    }
}

async fn console(ctx: &Ctx, vm: &str, linger: Duration) -> anyhow::Result<i32> {
    let ws = ctx
        .client
        .websocket(&format!("{}/serial", vm_path(vm)))
        .await?;
    // A serial console has no window size to follow.
    let opts = Options {
        what: "console",
        banner: Some(format!(
            "Connected to the serial console of {vm}; Ctrl-] leaves."
        )),
        escape: true,
        piped: Piped::Linger(linger),
        initial_resize: false,
        follow_resize: false,
        exit_ends: true,
    };
    let out = ws_terminal(ws, opts).await?;
    if let Some(r) = out.notice {
        eprintln!("console: {r}");
    }
    Ok(0)
}
