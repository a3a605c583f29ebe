//! `vms list|show|start|stop|console|snapshot …|export|delete` over `/api/v1/vms`.
//!
//! `console` speaks the serial console WebSocket (`GET /vms/{id}/serial`): binary frames carry
//! console bytes both ways, text frames carry JSON control messages (`{"type":"closed"}` when
//! the VM stops). On a terminal, stdin is switched to raw mode (restored on exit, also on
//! error) and Ctrl-] leaves; from a pipe, input is sent until its end and the output shown for
//! `--linger` seconds more.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use hostplane_types::vms::{ShutdownRequest, Snapshot, SnapshotCreate, Vm};
use hyper::Method;
use tokio_tungstenite::tungstenite::Message;

use super::common::{self, ListArgs, WaitArgs, YesArg};
use super::{Ctx, api};
use crate::client::{seg, with_query};
use crate::output::{self, bytes, opt, yes_no};
use crate::prompt;

/// Ctrl-]: leaves the console, as in telnet and virsh.
const ESCAPE: u8 = 0x1d;

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
        .map(|n| format!("{}:{} {}", n.index, output::name(&n.mode), n.mac))
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

/// The terminal in raw mode while this lives (keys go to the guest as typed, no echo).
pub(crate) struct RawMode {
    fd: i32,
    saved: libc::termios,
}

impl RawMode {
    pub(crate) fn enable() -> anyhow::Result<RawMode> {
        let fd = std::io::stdin().as_raw_fd();
        // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
        let mut term: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut term) } != 0 {
            return Err(std::io::Error::last_os_error()).context("reading the terminal mode");
        }
        let saved = term;
        // SAFETY: a termios from tcgetattr; cfmakeraw only edits it.
        unsafe { libc::cfmakeraw(&mut term) };
        // SAFETY: valid fd and termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) } != 0 {
            return Err(std::io::Error::last_os_error()).context("switching the terminal to raw");
        }
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: valid fd and the termios saved by enable().
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

/// Reads stdin on a thread (std's stdin blocks) and hands the pieces over; closes at its end.
pub(crate) fn stdin_pump() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

async fn console(ctx: &Ctx, vm: &str, linger: Duration) -> anyhow::Result<i32> {
    let ws = ctx
        .client
        .websocket(&format!("{}/serial", vm_path(vm)))
        .await?;
    let (mut sink, mut stream) = ws.split();
    let tty = prompt::stdin_is_tty();
    let raw = if tty { Some(RawMode::enable()?) } else { None };
    if tty {
        // Raw mode: the terminal no longer turns \n into \r\n.
        eprint!("Connected to the serial console of {vm}; Ctrl-] leaves.\r\n");
    }
    let mut input = stdin_pump();
    let mut input_open = true;
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut reason: Option<String> = None;
    let outcome: anyhow::Result<()> = async {
        loop {
            let until_deadline = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(Message::Binary(b))) => {
                        let mut out = std::io::stdout().lock();
                        out.write_all(&b)?;
                        out.flush()?;
                    }
                    Some(Ok(Message::Text(t))) => {
                        let v: serde_json::Value =
                            serde_json::from_str(t.as_str()).unwrap_or_default();
                        match v["type"].as_str() {
                            Some("closed") => {
                                reason = v["reason"].as_str().map(str::to_string);
                                return Ok(());
                            }
                            Some("lagged") => reason = Some("some console output was lost".into()),
                            _ => {}
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => return Ok(()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(anyhow::Error::new(e).context("console connection")),
                },
                data = input.recv(), if input_open => match data {
                    Some(mut d) => {
                        let leave = tty && d.contains(&ESCAPE);
                        if let Some(i) = d.iter().position(|&b| b == ESCAPE).filter(|_| tty) {
                            d.truncate(i);
                        }
                        if !d.is_empty() {
                            sink.send(Message::Binary(d.into())).await
                                .context("sending to the console")?;
                        }
                        if leave {
                            return Ok(());
                        }
                    }
                    None => {
                        input_open = false;
                        deadline = Some(tokio::time::Instant::now() + linger);
                    }
                },
                _ = until_deadline => return Ok(()),
            }
        }
    }
    .await;
    let _ = sink.send(Message::Close(None)).await;
    drop(raw);
    if tty {
        eprintln!();
    }
    if let Some(r) = reason {
        eprintln!("console: {r}");
    }
    outcome.map(|()| 0)
}
