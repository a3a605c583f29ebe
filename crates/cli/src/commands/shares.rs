//! `shares list|status` and `shares smb|nfs list|show|create|delete` over `/api/v1/shares`.
//! Deleting a share only stops serving it (its files stay), so it asks for no confirmation.

use hostplane_types::shares::{
    CreateNfsShareRequest, CreateSmbShareRequest, NfsAccess, NfsClientRule, NfsShare, NfsSquash,
    ShareSummary, SharesStatus, SmbShare,
};
use hyper::Method;

use super::common::{self, ListArgs};
use super::pools::split_dataset;
use super::{Ctx, api};
use crate::client::seg;
use crate::output::{self, opt, yes_no};

#[derive(Debug, clap::Subcommand)]
pub enum SharesCmd {
    /// List the shares of both protocols.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Whether Samba and the NFS server are installed, running and reading hostplane's files.
    Status,
    /// SMB shares (Samba).
    #[command(subcommand)]
    Smb(SmbCmd),
    /// NFS exports.
    #[command(subcommand)]
    Nfs(NfsCmd),
}

/// Where a share points, common to both protocols.
#[derive(Debug, clap::Args)]
pub struct ShareTarget {
    /// The dataset to share, POOL/DATASET.
    #[arg(long, value_name = "POOL/DATASET")]
    dataset: String,
    /// A folder inside the dataset (`a/b`) instead of the whole dataset.
    #[arg(long)]
    subpath: Option<String>,
    #[arg(long)]
    comment: Option<String>,
    /// Nobody may write.
    #[arg(long)]
    read_only: bool,
    /// Create it switched off (kept, not served).
    #[arg(long)]
    disabled: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum SmbCmd {
    /// List SMB shares.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one SMB share.
    Show {
        /// Share name (SMB share name or NFS export name).
        name: String,
    },
    /// Share a dataset over SMB.
    Create {
        /// Share name (SMB share name or NFS export name).
        name: String,
        #[command(flatten)]
        target: ShareTarget,
        /// Admit guests without a password.
        #[arg(long)]
        guest_ok: bool,
        /// Hide it from share lists.
        #[arg(long)]
        hidden: bool,
        /// A share user who may connect (repeat); none means every share user.
        #[arg(long = "user", value_name = "USER")]
        valid_users: Vec<String>,
        /// A share user who may write even when the share is read-only (repeat).
        #[arg(long = "writer", value_name = "USER")]
        write_list: Vec<String>,
        /// Deleted files go to .recycle/<user>.
        #[arg(long)]
        recycle_bin: bool,
        /// macOS interoperability (vfs_fruit).
        #[arg(long)]
        macos: bool,
        /// Offer it as a Time Machine destination.
        #[arg(long)]
        time_machine: bool,
    },
    /// Stop sharing (the files stay).
    Delete {
        /// Share name (SMB share name or NFS export name).
        name: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum NfsCmd {
    /// List NFS exports.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one NFS export.
    Show {
        /// Share name (SMB share name or NFS export name).
        name: String,
    },
    /// Export a dataset over NFS.
    Create {
        /// Share name (SMB share name or NFS export name).
        name: String,
        #[command(flatten)]
        target: ShareTarget,
        /// Who may mount: HOST[=ro|rw], e.g. `192.0.2.0/24=rw` or `*` (repeat; at least one).
        #[arg(long = "client", value_name = "HOST[=ro|rw]", required = true, value_parser = parse_client)]
        clients: Vec<NfsClientRule>,
        /// Root squashing: root (default), all or none.
        #[arg(long, value_parser = parse_squash)]
        squash: Option<NfsSquash>,
    },
    /// Stop exporting (the files stay).
    Delete {
        /// Share name (SMB share name or NFS export name).
        name: String,
    },
}

fn parse_client(s: &str) -> Result<NfsClientRule, String> {
    let (host, access) = match s.rsplit_once('=') {
        None => (s, None),
        Some((h, "ro")) => (h, Some(NfsAccess::Ro)),
        Some((h, "rw")) => (h, Some(NfsAccess::Rw)),
        Some(_) => return Err(format!("{s:?}: expected HOST, HOST=ro or HOST=rw")),
    };
    if host.is_empty() {
        return Err(format!("{s:?}: the host is empty"));
    }
    Ok(NfsClientRule {
        host: host.to_string(),
        access,
        squash: None,
    })
}

fn parse_squash(s: &str) -> Result<NfsSquash, String> {
    match s {
        "root" => Ok(NfsSquash::Root),
        "all" => Ok(NfsSquash::All),
        "none" => Ok(NfsSquash::None),
        _ => Err(format!("{s:?}: squash is root, all or none")),
    }
}

fn state(s: &impl serde::Serialize, problem: Option<&str>) -> String {
    match problem {
        Some(p) => format!("{} ({p})", output::name(s)),
        None => output::name(s),
    }
}

pub async fn run(ctx: &Ctx, cmd: SharesCmd) -> anyhow::Result<i32> {
    match cmd {
        SharesCmd::List { list } => {
            common::list(
                ctx,
                &list.path(&api("/shares")),
                &["PROTOCOL", "NAME", "DATASET", "STATE", "PATH"],
                |s: ShareSummary| {
                    vec![
                        s.protocol.as_str().into(),
                        s.name,
                        format!("{}/{}", s.pool, s.dataset),
                        output::name(&s.state),
                        s.path,
                    ]
                },
            )
            .await
        }
        SharesCmd::Status => {
            common::show(ctx, &api("/shares/status"), |s: SharesStatus| {
                vec![
                    ("SMB-AVAILABLE", yes_no(s.smb.available)),
                    ("SMB-RUNNING", yes_no(s.smb.running)),
                    ("SMB-CONFIG", s.smb.config),
                    ("SMB-INCLUDED", yes_no(s.smb.included)),
                    ("SMB-SHARES", s.smb.shares.to_string()),
                    ("NFS-BACKEND", output::name(&s.nfs.backend)),
                    ("NFS-AVAILABLE", yes_no(s.nfs.available)),
                    ("NFS-RUNNING", yes_no(s.nfs.running)),
                    ("NFS-EXPORTS", s.nfs.exports),
                    ("NFS-SHARES", s.nfs.shares.to_string()),
                ]
            })
            .await
        }
        SharesCmd::Smb(c) => smb(ctx, c).await,
        SharesCmd::Nfs(c) => nfs(ctx, c).await,
    }
}

fn smb_path(name: &str) -> String {
    api(&format!("/shares/smb/{}", seg(name)))
}

fn nfs_path(name: &str) -> String {
    api(&format!("/shares/nfs/{}", seg(name)))
}

fn smb_rows(s: SmbShare) -> Vec<(&'static str, String)> {
    vec![
        ("NAME", s.name),
        ("DATASET", format!("{}/{}", s.pool, s.dataset)),
        ("SUBPATH", opt(Some(s.subpath).filter(|p| !p.is_empty()))),
        ("PATH", s.path),
        ("STATE", state(&s.state, s.problem.as_deref())),
        ("COMMENT", s.comment),
        ("READ-ONLY", yes_no(s.read_only)),
        ("BROWSEABLE", yes_no(s.browseable)),
        ("GUEST-OK", yes_no(s.guest_ok)),
        ("USERS", output::list(&s.valid_users)),
        ("WRITERS", output::list(&s.write_list)),
        ("RECYCLE-BIN", yes_no(s.recycle_bin)),
        ("MACOS", yes_no(s.macos)),
        ("TIME-MACHINE", yes_no(s.time_machine)),
        ("CREATED", output::time(Some(&s.created_at))),
    ]
}

fn client_text(c: &NfsClientRule) -> String {
    match c.access {
        Some(a) => format!("{}={}", c.host, output::name(&a)),
        None => c.host.clone(),
    }
}

fn nfs_rows(s: NfsShare) -> Vec<(&'static str, String)> {
    let clients: Vec<String> = s.clients.iter().map(client_text).collect();
    vec![
        ("NAME", s.name),
        ("DATASET", format!("{}/{}", s.pool, s.dataset)),
        ("SUBPATH", opt(Some(s.subpath).filter(|p| !p.is_empty()))),
        ("PATH", s.path),
        ("PSEUDO", s.pseudo),
        ("STATE", state(&s.state, s.problem.as_deref())),
        ("COMMENT", s.comment),
        ("READ-ONLY", yes_no(s.read_only)),
        ("SQUASH", output::name(&s.squash)),
        ("CLIENTS", output::list(&clients)),
        ("EXPORT-ID", s.export_id.to_string()),
        ("CREATED", output::time(Some(&s.created_at))),
    ]
}

async fn smb(ctx: &Ctx, cmd: SmbCmd) -> anyhow::Result<i32> {
    match cmd {
        SmbCmd::List { list } => {
            common::list(
                ctx,
                &list.path(&api("/shares/smb")),
                &[
                    "NAME",
                    "DATASET",
                    "STATE",
                    "READ-ONLY",
                    "GUEST",
                    "USERS",
                    "PATH",
                ],
                |s: SmbShare| {
                    vec![
                        s.name,
                        format!("{}/{}", s.pool, s.dataset),
                        output::name(&s.state),
                        yes_no(s.read_only),
                        yes_no(s.guest_ok),
                        output::list(&s.valid_users),
                        s.path,
                    ]
                },
            )
            .await
        }
        SmbCmd::Show { name } => common::show(ctx, &smb_path(&name), smb_rows).await,
        SmbCmd::Create {
            name,
            target,
            guest_ok,
            hidden,
            valid_users,
            write_list,
            recycle_bin,
            macos,
            time_machine,
        } => {
            let (pool, dataset) = split_dataset(&target.dataset)?;
            let flag = |b: bool| b.then_some(true);
            let req = CreateSmbShareRequest {
                name,
                pool: pool.into(),
                dataset: dataset.into(),
                subpath: target.subpath,
                enabled: target.disabled.then_some(false),
                comment: target.comment,
                read_only: flag(target.read_only),
                browseable: hidden.then_some(false),
                guest_ok: flag(guest_ok),
                valid_users: (!valid_users.is_empty()).then_some(valid_users),
                write_list: (!write_list.is_empty()).then_some(write_list),
                recycle_bin: flag(recycle_bin),
                macos: flag(macos),
                time_machine: flag(time_machine),
                time_machine_max_bytes: None,
            };
            let answer = ctx
                .client
                .call(Method::POST, &api("/shares/smb"), Some(&req))
                .await?;
            common::print_answer(ctx, &answer, |s: SmbShare| {
                Ok(output::println(&format!(
                    "Created SMB share {} of {} ({})",
                    s.name,
                    s.path,
                    output::name(&s.state)
                ))?)
            })
        }
        SmbCmd::Delete { name } => {
            common::done(
                ctx,
                Method::DELETE,
                &smb_path(&name),
                &format!("Deleted SMB share {name}"),
            )
            .await
        }
    }
}

async fn nfs(ctx: &Ctx, cmd: NfsCmd) -> anyhow::Result<i32> {
    match cmd {
        NfsCmd::List { list } => {
            common::list(
                ctx,
                &list.path(&api("/shares/nfs")),
                &["NAME", "DATASET", "STATE", "PSEUDO", "CLIENTS", "PATH"],
                |s: NfsShare| {
                    let clients: Vec<String> = s.clients.iter().map(client_text).collect();
                    vec![
                        s.name,
                        format!("{}/{}", s.pool, s.dataset),
                        output::name(&s.state),
                        s.pseudo,
                        output::list(&clients),
                        s.path,
                    ]
                },
            )
            .await
        }
        NfsCmd::Show { name } => common::show(ctx, &nfs_path(&name), nfs_rows).await,
        NfsCmd::Create {
            name,
            target,
            clients,
            squash,
        } => {
            let (pool, dataset) = split_dataset(&target.dataset)?;
            let req = CreateNfsShareRequest {
                name,
                pool: pool.into(),
                dataset: dataset.into(),
                subpath: target.subpath,
                enabled: target.disabled.then_some(false),
                comment: target.comment,
                read_only: target.read_only.then_some(true),
                squash,
                clients,
            };
            let answer = ctx
                .client
                .call(Method::POST, &api("/shares/nfs"), Some(&req))
                .await?;
            common::print_answer(ctx, &answer, |s: NfsShare| {
                Ok(output::println(&format!(
                    "Created NFS export {} of {} at {} ({})",
                    s.name,
                    s.path,
                    s.pseudo,
                    output::name(&s.state)
                ))?)
            })
        }
        NfsCmd::Delete { name } => {
            common::done(
                ctx,
                Method::DELETE,
                &nfs_path(&name),
                &format!("Deleted NFS export {name}"),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_rules() {
        let c = parse_client("192.0.2.0/24=ro").unwrap();
        assert_eq!(c.host, "192.0.2.0/24");
        assert_eq!(c.access, Some(NfsAccess::Ro));
        let c = parse_client("2001:db8::7").unwrap();
        assert_eq!((c.host.as_str(), c.access), ("2001:db8::7", None));
        assert!(parse_client("h=rx").is_err());
        assert!(parse_client("=rw").is_err());
    }
}
