//! `disks list|show|smart|wipe|format|standby|wake` over `/api/v1/disks`.

use hostplane_types::disks::{
    Disk, FormatRequest, FormatType, PowerStateResult, SmartReport, WipeRequest,
};
use hyper::Method;

use super::common::{self, ListArgs, WaitArgs, YesArg};
use super::{Ctx, api};
use crate::client::{seg, with_query};
use crate::output::{self, bytes, fields, opt, print_table, table, yes_no};

#[derive(Debug, clap::Subcommand)]
pub enum DisksCmd {
    /// List block devices.
    List {
        #[command(flatten)]
        list: ListArgs,
        /// Sample throughput (adds a short wait).
        #[arg(long)]
        performance: bool,
        /// Do not wake disks in standby to read them.
        #[arg(long)]
        skip_standby: bool,
    },
    /// Show one disk and its partitions.
    Show {
        /// Disk id or kernel name (`sda`, `loop3`).
        disk: String,
    },
    /// The disk's SMART report.
    Smart {
        /// Disk id or kernel name (`sda`, `loop3`).
        disk: String,
        /// Read it even if the disk is in standby (spins it up).
        #[arg(long)]
        wake: bool,
    },
    /// Erase every signature and partition table on a disk (a job).
    Wipe {
        /// Disk id or kernel name (`sda`, `loop3`).
        disk: String,
        #[command(flatten)]
        yes: YesArg,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Make a filesystem on a disk or one of its partitions (a job).
    Format {
        /// Disk id or kernel name (`sda`, `loop3`).
        disk: String,
        /// ext4, xfs or btrfs.
        #[arg(long = "fs", value_parser = parse_fs)]
        filesystem: FormatType,
        #[arg(long)]
        label: Option<String>,
        /// Format this partition number instead of the whole disk.
        #[arg(long, value_name = "N")]
        partition: Option<u32>,
        #[command(flatten)]
        yes: YesArg,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Spin a disk down.
    Standby {
        /// Disk id or kernel name (`sda`, `loop3`).
        disk: String,
    },
    /// Spin a disk up.
    Wake {
        /// Disk id or kernel name (`sda`, `loop3`).
        disk: String,
    },
}

fn parse_fs(s: &str) -> Result<FormatType, String> {
    match s.to_ascii_lowercase().as_str() {
        "ext4" => Ok(FormatType::Ext4),
        "xfs" => Ok(FormatType::Xfs),
        "btrfs" => Ok(FormatType::Btrfs),
        _ => Err(format!("{s:?}: filesystems are ext4, xfs and btrfs")),
    }
}

fn disk_path(id: &str) -> String {
    api(&format!("/disks/{}", seg(id)))
}

/// What a disk is used for, in one word.
fn usage(d: &Disk) -> String {
    if d.holds_root {
        "root".into()
    } else if let Some(p) = &d.pool {
        format!("pool:{p}")
    } else if !d.mountpoints.is_empty() {
        "mounted".into()
    } else if d.in_use {
        "in-use".into()
    } else {
        "-".into()
    }
}

pub async fn run(ctx: &Ctx, cmd: DisksCmd) -> anyhow::Result<i32> {
    match cmd {
        DisksCmd::List {
            list,
            performance,
            skip_standby,
        } => {
            let path = with_query(
                &api("/disks"),
                &[
                    ("performance", performance.then(|| "true".into())),
                    ("skipStandby", skip_standby.then(|| "true".into())),
                ],
            );
            let header: &[&str] = if performance {
                &[
                    "NAME", "ID", "SIZE", "MODEL", "USE", "ALLOWED", "POWER", "READ/s", "WRITE/s",
                ]
            } else {
                &[
                    "NAME", "ID", "SIZE", "MODEL", "USE", "ALLOWED", "POWER", "HEALTH",
                ]
            };
            common::list(ctx, &list.path(&path), header, |d: Disk| {
                let mut row = vec![
                    d.name.clone(),
                    d.id.clone(),
                    bytes(d.size_bytes),
                    opt(d.model.as_deref()),
                    usage(&d),
                    yes_no(d.allowed),
                    output::name(&d.power_state),
                ];
                match &d.performance {
                    Some(p) if performance => {
                        row.push(bytes(p.read_bytes_per_sec as u64));
                        row.push(bytes(p.write_bytes_per_sec as u64));
                    }
                    _ if performance => row.extend(["-".into(), "-".into()]),
                    _ => row.push(opt(d.smart_health.as_ref().map(output::name))),
                }
                row
            })
            .await
        }
        DisksCmd::Show { disk } => {
            let answer = ctx.client.get(&disk_path(&disk)).await?;
            common::print_answer(ctx, &answer, |d: Disk| {
                let fs = d.filesystem.as_ref().map(|f| f.fstype.clone());
                print_table(fields(vec![
                    ("NAME", d.name.clone()),
                    ("ID", format!("{} ({})", d.id, output::name(&d.id_source))),
                    ("PATH", d.path.clone()),
                    ("KIND", d.kind.clone()),
                    (
                        "SIZE",
                        format!("{} ({} bytes)", bytes(d.size_bytes), d.size_bytes),
                    ),
                    ("MODEL", opt(d.model.as_deref())),
                    ("SERIAL", opt(d.serial.as_deref())),
                    ("TRANSPORT", opt(d.transport.as_deref())),
                    ("ROTATIONAL", yes_no(d.rotational)),
                    ("BACKING-FILE", opt(d.backing_file.as_deref())),
                    ("PARTITION-TABLE", opt(d.partition_table.as_deref())),
                    ("FILESYSTEM", opt(fs)),
                    ("MOUNTPOINTS", output::list(&d.mountpoints)),
                    ("USE", usage(&d)),
                    ("ALLOWED", yes_no(d.allowed)),
                    ("POWER", output::name(&d.power_state)),
                    (
                        "TEMPERATURE",
                        opt(d.temperature_celsius.map(|t| format!("{t} °C"))),
                    ),
                    ("HEALTH", opt(d.smart_health.as_ref().map(output::name))),
                ]))?;
                if !d.partitions.is_empty() {
                    output::println("")?;
                    let mut t = table(&["PARTITION", "NUMBER", "SIZE", "FILESYSTEM", "LABEL"]);
                    for p in d.partitions {
                        let fs = p.filesystem.as_ref();
                        t.add_row(vec![
                            p.name,
                            p.number.to_string(),
                            bytes(p.size_bytes),
                            opt(fs.map(|f| f.fstype.clone())),
                            opt(fs.and_then(|f| f.label.clone()).or(p.part_label)),
                        ]);
                    }
                    print_table(t)?;
                }
                Ok(())
            })
        }
        DisksCmd::Smart { disk, wake } => {
            let path = with_query(
                &format!("{}/smart", disk_path(&disk)),
                &[("wake", wake.then(|| "true".into()))],
            );
            let answer = ctx.client.get(&path).await?;
            common::print_answer(ctx, &answer, |r: SmartReport| {
                print_table(fields(vec![
                    ("DISK", r.disk.clone()),
                    ("PROTOCOL", opt(r.protocol.as_deref())),
                    ("MODEL", opt(r.model.as_deref())),
                    ("SERIAL", opt(r.serial.as_deref())),
                    ("FIRMWARE", opt(r.firmware.as_deref())),
                    ("HEALTH", opt(r.health.as_ref().map(output::name))),
                    (
                        "TEMPERATURE",
                        opt(r.temperature_celsius.map(|t| format!("{t} °C"))),
                    ),
                    ("POWER-ON-HOURS", opt(r.power_on_hours)),
                    ("REALLOCATED", opt(r.reallocated_sectors)),
                    ("PENDING", opt(r.pending_sectors)),
                    ("WARNINGS", output::list(&r.warnings)),
                ]))?;
                if !r.attributes.is_empty() {
                    output::println("")?;
                    let mut t = table(&["ID", "ATTRIBUTE", "VALUE", "WORST", "THRESH", "RAW"]);
                    for a in r.attributes {
                        t.add_row(vec![
                            a.id.to_string(),
                            a.name,
                            a.value.to_string(),
                            a.worst.to_string(),
                            a.threshold.to_string(),
                            a.raw_string,
                        ]);
                    }
                    print_table(t)?;
                }
                Ok(())
            })
        }
        DisksCmd::Wipe { disk, yes, wait } => {
            common::confirm(&yes, &format!("erase everything on disk {disk}"), &disk)?;
            let started = ctx
                .client
                .call(
                    Method::POST,
                    &format!("{}/wipe", disk_path(&disk)),
                    Some(&WipeRequest {}),
                )
                .await?;
            Ok(common::job(ctx, started, &wait, &format!("wipe of {disk}"))
                .await?
                .code)
        }
        DisksCmd::Format {
            disk,
            filesystem,
            label,
            partition,
            yes,
            wait,
        } => {
            common::confirm(&yes, &format!("format disk {disk}"), &disk)?;
            let req = FormatRequest {
                filesystem,
                label,
                partition,
            };
            let started = ctx
                .client
                .call(
                    Method::POST,
                    &format!("{}/format", disk_path(&disk)),
                    Some(&req),
                )
                .await?;
            Ok(
                common::job(ctx, started, &wait, &format!("format of {disk}"))
                    .await?
                    .code,
            )
        }
        DisksCmd::Standby { disk } => power(ctx, &disk, "standby").await,
        DisksCmd::Wake { disk } => power(ctx, &disk, "wake").await,
    }
}

async fn power(ctx: &Ctx, disk: &str, action: &str) -> anyhow::Result<i32> {
    let answer = ctx
        .client
        .call(
            Method::POST,
            &format!("{}/{action}", disk_path(disk)),
            None::<&()>,
        )
        .await?;
    common::print_answer(ctx, &answer, |r: PowerStateResult| {
        Ok(output::println(&format!(
            "{}: {}",
            r.disk,
            output::name(&r.power_state)
        ))?)
    })
}
