//! `services list|show|start|stop|restart|enable|disable` over `/api/v1/services` (systemd).

use hostplane_types::services::{Service, ServiceActionResult};
use hyper::Method;

use super::common::{self, ListArgs, WaitArgs};
use super::{Ctx, api};
use crate::client::seg;
use crate::output::{self, opt, print_table, table};

#[derive(Debug, clap::Subcommand)]
pub enum ServicesCmd {
    /// List service units.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one service.
    Show {
        /// Unit name, e.g. `ssh` or `ssh.service`.
        name: String,
    },
    /// Start a service (a job).
    Start {
        /// Unit name, e.g. `ssh` or `ssh.service`.
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Stop a service (a job).
    Stop {
        /// Unit name, e.g. `ssh` or `ssh.service`.
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Restart a service (a job).
    Restart {
        /// Unit name, e.g. `ssh` or `ssh.service`.
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Start a service at boot.
    Enable {
        /// Unit name, e.g. `ssh` or `ssh.service`.
        name: String,
    },
    /// Do not start a service at boot.
    Disable {
        /// Unit name, e.g. `ssh` or `ssh.service`.
        name: String,
    },
}

fn service_path(name: &str) -> String {
    api(&format!("/services/{}", seg(name)))
}

fn rows(s: Service) -> Vec<(&'static str, String)> {
    vec![
        ("NAME", s.name),
        ("DESCRIPTION", s.description),
        ("LOADED", s.load_state),
        ("ACTIVE", format!("{} ({})", s.active_state, s.sub_state)),
        (
            "ENABLED",
            opt(Some(s.unit_file_state).filter(|u| !u.is_empty())),
        ),
        ("MAIN-PID", opt(s.main_pid)),
    ]
}

pub async fn run(ctx: &Ctx, cmd: ServicesCmd) -> anyhow::Result<i32> {
    let (name, action, wait) = match cmd {
        ServicesCmd::List { list } => {
            return common::list(
                ctx,
                &list.path(&api("/services")),
                &["NAME", "ACTIVE", "SUB", "ENABLED", "DESCRIPTION"],
                |s: Service| {
                    vec![
                        s.name,
                        s.active_state,
                        s.sub_state,
                        opt(Some(s.unit_file_state).filter(|u| !u.is_empty())),
                        s.description,
                    ]
                },
            )
            .await;
        }
        ServicesCmd::Show { name } => return common::show(ctx, &service_path(&name), rows).await,
        ServicesCmd::Enable { name } => return enable(ctx, &name, "enable").await,
        ServicesCmd::Disable { name } => return enable(ctx, &name, "disable").await,
        ServicesCmd::Start { name, wait } => (name, "start", wait),
        ServicesCmd::Stop { name, wait } => (name, "stop", wait),
        ServicesCmd::Restart { name, wait } => (name, "restart", wait),
    };
    let started = ctx
        .client
        .call(
            Method::POST,
            &format!("{}/{action}", service_path(&name)),
            None::<&()>,
        )
        .await?;
    let end = common::job(ctx, started, &wait, &format!("{action} of {name}")).await?;
    if !ctx.json {
        let result = end.job.and_then(|j| j.result);
        if let Some(r) = result.and_then(|r| serde_json::from_value::<ServiceActionResult>(r).ok())
        {
            let mut t = table(&["NAME", "RESULT", "ACTIVE", "SUB"]);
            t.add_row(vec![
                r.service.name,
                r.result,
                r.service.active_state,
                r.service.sub_state,
            ]);
            print_table(t)?;
        }
    }
    Ok(end.code)
}

async fn enable(ctx: &Ctx, name: &str, action: &str) -> anyhow::Result<i32> {
    let answer = ctx
        .client
        .call(
            Method::POST,
            &format!("{}/{action}", service_path(name)),
            None::<&()>,
        )
        .await?;
    common::print_answer(ctx, &answer, |s: Service| {
        Ok(output::println(&format!(
            "{}: {}",
            s.name,
            opt(Some(s.unit_file_state).filter(|u| !u.is_empty()))
        ))?)
    })
}
