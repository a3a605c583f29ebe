//! `update …`, `backup …` and `certs …`: the daemon's native system endpoints
//! (`/api/v1/system/update`, `/version`, `/keys`, `/backups`, `/certificate`).

use std::path::PathBuf;

use hostplane_types::system::backup::Backup;
use hostplane_types::system::certificate::{Certificate, CertificateUpload};
use hostplane_types::system::update::{ApplianceKeys, UpdateStatus, VersionInfo};
use hyper::Method;

use super::common::{self, ListArgs, WaitArgs, YesArg};
use super::{Ctx, api};
use crate::client::seg;
use crate::output::{self, bytes, opt, yes_no};

#[derive(Debug, clap::Subcommand)]
pub enum UpdateCmd {
    /// The latest update attempt and the end of its log.
    Status,
    /// The installed version and what the last update recorded.
    Version,
    /// The keys packages are checked with (the appliance recipient vendors encrypt to).
    Keys,
    /// Apply an update package (a job).
    Apply {
        /// The encrypted package (`hostplane package build` output).
        package: PathBuf,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum BackupCmd {
    /// List backups.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one backup.
    Show {
        /// Backup id.
        id: String,
    },
    /// Make a backup of the appliance state (a job).
    Create {
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Download a backup archive.
    Download {
        /// Backup id.
        id: String,
        /// Write to FILE (`-` for stdout) [default: the archive's name].
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Upload a backup archive (to restore it afterwards).
    Upload { archive: PathBuf },
    /// Restore a backup over the current state (a job).
    Restore {
        /// Backup id.
        id: String,
        #[command(flatten)]
        yes: YesArg,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Delete a backup.
    Delete {
        /// Backup id.
        id: String,
        #[command(flatten)]
        yes: YesArg,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum CertsCmd {
    /// The certificate the HTTPS listener serves.
    Show,
    /// Install a certificate and its key (a job; the listener switches without a restart).
    Set {
        /// The certificate (PEM), optionally followed by its chain.
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// Its unencrypted private key (PEM).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Intermediate and root certificates (PEM), issuer first.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

pub async fn update(ctx: &Ctx, cmd: UpdateCmd) -> anyhow::Result<i32> {
    match cmd {
        UpdateCmd::Status => {
            let answer = ctx.client.get(&api("/system/update")).await?;
            common::print_answer(ctx, &answer, |s: UpdateStatus| {
                output::print_table(output::fields(vec![
                    ("STATUS", output::name(&s.status)),
                    ("VERSION", opt(s.version.as_deref())),
                    ("JOB", s.job.clone()),
                    (
                        "ERROR",
                        match (&s.error_code, &s.error_message) {
                            (None, None) => "-".into(),
                            (c, m) => format!("{} ({})", opt(m.as_deref()), opt(c.as_deref())),
                        },
                    ),
                    ("STARTED", output::time(s.started_at.as_deref())),
                    ("FINISHED", output::time(s.finished_at.as_deref())),
                    ("BY", s.created_by.clone()),
                ]))?;
                if !s.log.is_empty() {
                    output::println(&format!("LOG\n{}", s.log.join("\n")))?;
                }
                Ok(())
            })
        }
        UpdateCmd::Version => {
            common::show(ctx, &api("/system/version"), |v: VersionInfo| {
                vec![
                    ("VERSION", v.version),
                    ("SOURCE", output::name(&v.source)),
                    ("HOSTPLANE", v.hostplane_version),
                    ("INSTALLED", output::time(v.installed_at.as_deref())),
                ]
            })
            .await
        }
        UpdateCmd::Keys => {
            common::show(ctx, &api("/system/keys"), |k: ApplianceKeys| {
                vec![
                    (
                        "APPLIANCE-RECIPIENT",
                        k.appliance_recipient
                            .or(k.appliance_identity_error)
                            .unwrap_or_else(|| "-".into()),
                    ),
                    ("APPLIANCE-IDENTITY", k.appliance_identity),
                    ("VENDOR-KEY", opt(k.vendor_public_key)),
                ]
            })
            .await
        }
        UpdateCmd::Apply { package, wait } => {
            let started = common::upload(
                ctx,
                Method::POST,
                &api("/system/update"),
                &package,
                "application/octet-stream",
            )
            .await?;
            Ok(common::job(ctx, started, &wait, "update").await?.code)
        }
    }
}

fn backup_path(id: &str) -> String {
    api(&format!("/system/backups/{}", seg(id)))
}

fn backup_rows(b: Backup) -> Vec<(&'static str, String)> {
    vec![
        ("ID", b.id),
        ("STATUS", output::name(&b.status)),
        ("ORIGIN", output::name(&b.origin)),
        ("SIZE", opt(b.size_bytes.map(bytes))),
        ("FILES", opt(b.files)),
        ("SHA256", opt(b.sha256)),
        ("CREATED", output::time(Some(&b.created_at))),
        ("BY", b.created_by),
        ("FINISHED", output::time(b.finished_at.as_deref())),
        ("ERROR", opt(b.error)),
    ]
}

pub async fn backup(ctx: &Ctx, cmd: BackupCmd) -> anyhow::Result<i32> {
    match cmd {
        BackupCmd::List { list } => {
            common::list(
                ctx,
                &list.path(&api("/system/backups")),
                &["ID", "STATUS", "ORIGIN", "SIZE", "CREATED", "BY"],
                |b: Backup| {
                    vec![
                        b.id,
                        output::name(&b.status),
                        output::name(&b.origin),
                        opt(b.size_bytes.map(bytes)),
                        output::time(Some(&b.created_at)),
                        b.created_by,
                    ]
                },
            )
            .await
        }
        BackupCmd::Show { id } => common::show(ctx, &backup_path(&id), backup_rows).await,
        BackupCmd::Create { wait } => {
            let started = ctx
                .client
                .call(Method::POST, &api("/system/backups"), None::<&()>)
                .await?;
            Ok(common::job(ctx, started, &wait, "backup").await?.code)
        }
        BackupCmd::Download { id, output: out } => {
            let out = out.unwrap_or_else(|| PathBuf::from(format!("hostplane-backup-{id}.tar")));
            let n = common::download(ctx, &format!("{}/download", backup_path(&id)), &out).await?;
            if out.as_os_str() != "-" && !ctx.json {
                output::println(&format!("Wrote {} ({})", out.display(), bytes(n)))?;
            }
            Ok(0)
        }
        BackupCmd::Upload { archive } => {
            let answer = common::upload(
                ctx,
                Method::POST,
                &api("/system/backups/upload"),
                &archive,
                "application/x-tar",
            )
            .await?;
            common::print_answer(ctx, &answer, |b: Backup| {
                Ok(output::println(&format!(
                    "Uploaded backup {} (restore it with: hostplane backup restore {})",
                    b.id, b.id
                ))?)
            })
        }
        BackupCmd::Restore { id, yes, wait } => {
            common::confirm(
                &yes,
                &format!("replace the appliance's state with backup {id}"),
                &id,
            )?;
            let started = ctx
                .client
                .call(
                    Method::POST,
                    &format!("{}/restore", backup_path(&id)),
                    None::<&()>,
                )
                .await?;
            Ok(
                common::job(ctx, started, &wait, &format!("restore of backup {id}"))
                    .await?
                    .code,
            )
        }
        BackupCmd::Delete { id, yes } => {
            common::confirm(&yes, &format!("delete backup {id}"), &id)?;
            common::done(
                ctx,
                Method::DELETE,
                &backup_path(&id),
                &format!("Deleted backup {id}"),
            )
            .await
        }
    }
}

pub async fn certs(ctx: &Ctx, cmd: CertsCmd) -> anyhow::Result<i32> {
    match cmd {
        CertsCmd::Show => {
            common::show(ctx, &api("/system/certificate"), |c: Certificate| {
                let mut names = c.dns_names;
                names.extend(c.ip_addresses);
                vec![
                    ("SUBJECT", c.subject),
                    ("ISSUER", c.issuer),
                    ("NAMES", output::list(&names)),
                    ("NOT-BEFORE", c.not_before),
                    ("NOT-AFTER", c.not_after),
                    ("KEY", c.key_type),
                    ("SELF-SIGNED", yes_no(c.self_signed)),
                    ("CHAIN", c.chain.len().to_string()),
                    ("SHA256", c.sha256),
                    ("SERIAL", c.serial),
                    ("LISTENER", c.listener),
                    ("CERT-FILE", c.cert_file),
                    ("LAST-UPDATE", opt(c.last_update)),
                ]
            })
            .await
        }
        CertsCmd::Set {
            cert,
            key,
            ca,
            wait,
        } => {
            let text = |p: &PathBuf, what: &str| -> anyhow::Result<String> {
                String::from_utf8(common::read_file(p, what)?)
                    .map_err(|_| anyhow::anyhow!("{} is not PEM text", p.display()))
            };
            let req = CertificateUpload {
                certificate: text(&cert, "certificate")?,
                private_key: text(&key, "private key")?,
                ca: ca.as_ref().map(|p| text(p, "CA bundle")).transpose()?,
            };
            let started = ctx
                .client
                .call(Method::PUT, &api("/system/certificate"), Some(&req))
                .await?;
            Ok(common::job(ctx, started, &wait, "certificate update")
                .await?
                .code)
        }
    }
}
