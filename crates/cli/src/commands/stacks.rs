//! `stacks list|show|create|files|up|down|restart|pull|logs|rm` over `/api/v1/stacks`,
//! `workloads` over `/api/v1/workloads`, and `autostart show|set` over `/api/v1/autostart`.

use std::path::PathBuf;

use hostplane_types::stacks::{Stack, StackCreate, StackFiles};
use hostplane_types::workloads::{Autostart, AutostartItem, AutostartWait, WaitFor, Workload};
use hyper::Method;

use super::common::{self, ListArgs, WaitArgs, YesArg};
use super::{Ctx, api};
use crate::client::{seg, with_query};
use crate::output::{self, opt, print_table, table, yes_no};

#[derive(Debug, clap::Subcommand)]
pub enum StacksCmd {
    /// List stacks with their status.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one stack and its containers.
    Show { name: String },
    /// Store a new stack from a compose file (checked first; not started).
    Create {
        /// Stack name (a-z 0-9 _ -).
        name: String,
        /// The compose file.
        #[arg(long, short = 'f', value_name = "FILE")]
        file: PathBuf,
        /// The engine to run it on.
        #[arg(long, default_value = "docker")]
        engine: String,
        /// A `.env` file for it.
        #[arg(long, value_name = "FILE")]
        env_file: Option<PathBuf>,
    },
    /// Print the stored compose file (`--json`: with the .env).
    Files { name: String },
    /// Replace the compose file (and .env) of a stack.
    Set {
        name: String,
        #[arg(long, short = 'f', value_name = "FILE")]
        file: PathBuf,
        #[arg(long, value_name = "FILE")]
        env_file: Option<PathBuf>,
    },
    /// `docker-compose up -d` (a job).
    Up {
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// `docker-compose down` (a job).
    Down {
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// `docker-compose restart` (a job).
    Restart {
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// `docker-compose pull` (a job).
    Pull {
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// The last lines of every service's log.
    Logs {
        name: String,
        /// Lines per service.
        #[arg(long, default_value_t = 200)]
        tail: u64,
    },
    /// Delete a stack that is down (its files and record).
    #[command(visible_alias = "delete")]
    Rm {
        name: String,
        #[command(flatten)]
        yes: YesArg,
    },
}

fn stack_path(name: &str) -> String {
    api(&format!("/stacks/{}", seg(name)))
}

fn read_text(p: &std::path::Path, what: &str) -> anyhow::Result<String> {
    let bytes = common::read_file(p, what)?;
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{what} {} is not UTF-8", p.display()))
}

fn rows(s: Stack) -> Vec<(&'static str, String)> {
    vec![
        ("NAME", s.name),
        ("ENGINE", s.engine),
        ("STATUS", s.status),
        ("SERVICES", output::list(&s.services)),
        ("ENV", yes_no(s.has_env)),
        (
            "CONTAINERS",
            output::list(
                &s.containers
                    .iter()
                    .map(|c| format!("{} ({})", c.name, output::name(&c.state)))
                    .collect::<Vec<_>>(),
            ),
        ),
        ("ENGINE-ERROR", opt(s.engine_error)),
        ("CREATED", output::time(Some(&s.created_at))),
        ("UPDATED", output::time(Some(&s.updated_at))),
    ]
}

pub async fn run(ctx: &Ctx, cmd: StacksCmd) -> anyhow::Result<i32> {
    let (name, action, wait) = match cmd {
        StacksCmd::List { list } => {
            return common::list(
                ctx,
                &list.path(&api("/stacks")),
                &["NAME", "ENGINE", "STATUS", "SERVICES", "CONTAINERS"],
                |s: Stack| {
                    vec![
                        s.name,
                        s.engine,
                        s.status,
                        output::list(&s.services),
                        s.containers.len().to_string(),
                    ]
                },
            )
            .await;
        }
        StacksCmd::Show { name } => return common::show(ctx, &stack_path(&name), rows).await,
        StacksCmd::Create {
            name,
            file,
            engine,
            env_file,
        } => {
            let body = StackCreate {
                name,
                engine,
                compose: read_text(&file, "compose file")?,
                env: env_file
                    .as_ref()
                    .map(|p| read_text(p, ".env file"))
                    .transpose()?,
            };
            let answer = ctx
                .client
                .call(Method::POST, &api("/stacks"), Some(&body))
                .await?;
            return common::print_answer(ctx, &answer, |s: Stack| {
                Ok(output::println(&format!(
                    "Stored stack {} ({} on {}); start it with: hostplane stacks up {}",
                    s.name,
                    output::list(&s.services),
                    s.engine,
                    s.name
                ))?)
            });
        }
        StacksCmd::Files { name } => {
            let answer = ctx
                .client
                .get(&format!("{}/files", stack_path(&name)))
                .await?;
            return common::print_answer(ctx, &answer, |f: StackFiles| {
                print!("{}", f.compose);
                Ok(())
            });
        }
        StacksCmd::Set {
            name,
            file,
            env_file,
        } => {
            let body = StackFiles {
                compose: read_text(&file, "compose file")?,
                env: env_file
                    .as_ref()
                    .map(|p| read_text(p, ".env file"))
                    .transpose()?,
            };
            let answer = ctx
                .client
                .call(
                    Method::PUT,
                    &format!("{}/files", stack_path(&name)),
                    Some(&body),
                )
                .await?;
            return common::print_answer(ctx, &answer, |s: Stack| {
                Ok(output::println(&format!(
                    "Replaced the files of stack {} (applied at the next up)",
                    s.name
                ))?)
            });
        }
        StacksCmd::Logs { name, tail } => {
            let path = with_query(
                &format!("{}/logs", stack_path(&name)),
                &[("tail", Some(tail.to_string()))],
            );
            let resp = ctx.client.send(Method::GET, &path, None).await?;
            let (_, _, body) = resp.ok_bytes().await?;
            use std::io::Write;
            std::io::stdout().write_all(&body)?;
            return Ok(0);
        }
        StacksCmd::Rm { name, yes } => {
            common::confirm(&yes, &format!("delete stack {name}"), &name)?;
            return common::done(
                ctx,
                Method::DELETE,
                &stack_path(&name),
                &format!("Deleted stack {name}"),
            )
            .await;
        }
        StacksCmd::Up { name, wait } => (name, "up", wait),
        StacksCmd::Down { name, wait } => (name, "down", wait),
        StacksCmd::Restart { name, wait } => (name, "restart", wait),
        StacksCmd::Pull { name, wait } => (name, "pull", wait),
    };
    let started = ctx
        .client
        .call(
            Method::POST,
            &format!("{}/{action}", stack_path(&name)),
            None::<&()>,
        )
        .await?;
    let end = common::job(ctx, started, &wait, &format!("{action} of stack {name}")).await?;
    Ok(end.code)
}

/// `hostplane workloads`: containers, LXC and VMs together.
pub async fn workloads(ctx: &Ctx, list: ListArgs) -> anyhow::Result<i32> {
    common::list(
        ctx,
        &list.path(&api("/workloads")),
        &["KIND", "NAME", "ENGINE", "STATE"],
        |w: Workload| vec![w.kind, w.name, opt(w.engine), w.state],
    )
    .await
}

#[derive(Debug, clap::Subcommand)]
pub enum AutostartCmd {
    /// The start order followed when the daemon starts.
    Show,
    /// Replace the order: items `KIND:NAME[@WAIT]`, in order. WAIT is seconds (`30`),
    /// `running` or `healthy`; a container's NAME is ENGINE/NAME. No item empties the order.
    Set {
        #[arg(value_name = "KIND:NAME[@WAIT]")]
        items: Vec<String>,
        /// Longest wait for `running`/`healthy`, in seconds.
        #[arg(long, value_name = "SECS")]
        timeout: Option<u32>,
    },
}

/// Parses `KIND:NAME[@WAIT]`.
pub fn parse_item(s: &str, timeout: Option<u32>) -> anyhow::Result<AutostartItem> {
    let (kind, rest) = s
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("{s:?}: write KIND:NAME[@WAIT], e.g. vm:web@running"))?;
    let (name, wait) = match rest.split_once('@') {
        Some((n, w)) => (n, Some(w)),
        None => (rest, None),
    };
    let wait = match wait {
        None => AutostartWait::default(),
        Some("running") => AutostartWait::Until(WaitFor::Running),
        Some("healthy") => AutostartWait::Until(WaitFor::Healthy),
        Some(n) => AutostartWait::Seconds {
            seconds: n
                .parse()
                .map_err(|_| anyhow::anyhow!("{s:?}: WAIT is seconds, running or healthy"))?,
        },
    };
    let until = matches!(wait, AutostartWait::Until(_));
    Ok(AutostartItem {
        kind: kind.to_string(),
        name: name.to_string(),
        wait,
        timeout_secs: timeout.filter(|_| until),
    })
}

fn wait_word(w: &AutostartWait) -> String {
    match w {
        AutostartWait::Seconds { seconds } => format!("{seconds} s"),
        AutostartWait::Until(WaitFor::Running) => "running".into(),
        AutostartWait::Until(WaitFor::Healthy) => "healthy".into(),
    }
}

fn print_order(a: Autostart) -> anyhow::Result<()> {
    let mut t = table(&["#", "KIND", "NAME", "WAIT", "TIMEOUT"]);
    for (i, item) in a.items.into_iter().enumerate() {
        t.add_row(vec![
            (i + 1).to_string(),
            item.kind,
            item.name,
            wait_word(&item.wait),
            opt(item.timeout_secs),
        ]);
    }
    Ok(print_table(t)?)
}

pub async fn autostart(ctx: &Ctx, cmd: AutostartCmd) -> anyhow::Result<i32> {
    let answer = match cmd {
        AutostartCmd::Show => ctx.client.get(&api("/autostart")).await?,
        AutostartCmd::Set { items, timeout } => {
            let items = items
                .iter()
                .map(|s| parse_item(s, timeout))
                .collect::<anyhow::Result<Vec<_>>>()?;
            ctx.client
                .call(Method::PUT, &api("/autostart"), Some(&Autostart { items }))
                .await?
        }
    };
    common::print_answer(ctx, &answer, print_order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_parse() {
        let i = parse_item("container:docker/web@healthy", Some(30)).unwrap();
        assert_eq!(i.kind, "container");
        assert_eq!(i.name, "docker/web");
        assert_eq!(i.wait, AutostartWait::Until(WaitFor::Healthy));
        assert_eq!(i.timeout_secs, Some(30));
        let i = parse_item("vm:db@15", Some(30)).unwrap();
        assert_eq!(i.wait, AutostartWait::Seconds { seconds: 15 });
        assert_eq!(i.timeout_secs, None);
        assert!(parse_item("vm", None).is_err());
        assert!(parse_item("vm:x@soon", None).is_err());
    }
}
