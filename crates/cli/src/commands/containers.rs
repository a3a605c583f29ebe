//! `containers list|show|create|start|stop|restart|kill|rm|logs|exec` over
//! `/api/v1/containers`, and `images list|import|rm` over
//! `/api/v1/container-engines/{engine}/images`. A container is named `ENGINE/NAME`.
//!
//! `exec -t` asks for a terminal: the POST answers a single-use ticket and the command speaks
//! the exec's WebSocket (binary frames carry the PTY both ways; text frames JSON control:
//! `resize` out, `exit` in). On a terminal stdin is switched to raw mode (restored on exit, also
//! on error) and the window size is sent; from a pipe, input is sent as typed and its end is a
//! Ctrl-D (what a terminal sends). The command's exit code is hostplane's. Without `-t` the
//! command runs to completion and its output and exit code are the command's.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use hostplane_types::container_io::ExecTicket;
use hostplane_types::containers::{
    Container, ContainerCreate, ContainerEngine, ContainerImage, ExecRequest, ExecResult,
    VolumeMount,
};
use hyper::Method;

use super::common::{self, ListArgs, YesArg};
use super::ws_terminal::{Options, Piped, ws_terminal};
use super::{Ctx, api};
use crate::client::{seg, with_query};
use crate::output::{self, bytes};

#[derive(Debug, clap::Subcommand)]
pub enum ContainersCmd {
    /// List the containers of every engine.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one container (ENGINE/NAME).
    Show { container: String },
    /// Create a container (not started): `containers create docker/web --image busybox -- sleep 60`.
    Create {
        /// ENGINE/NAME of the new container.
        container: String,
        /// An image the engine has.
        #[arg(long)]
        image: String,
        /// Environment variable, NAME=VALUE (repeatable).
        #[arg(long = "env", short = 'e', value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// Named volume, NAME:/path (repeatable).
        #[arg(long = "volume", short = 'v', value_name = "NAME:/PATH")]
        volumes: Vec<String>,
        /// Network (`none`, `host`, `bridge` or a network's name).
        #[arg(long)]
        network: Option<String>,
        /// Command and arguments (after `--`); absent = the image's.
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// Start a container.
    Start { container: String },
    /// Stop a container (SIGTERM, SIGKILL after --timeout seconds).
    Stop {
        container: String,
        #[arg(long, value_name = "SECS")]
        timeout: Option<u32>,
    },
    /// Restart a container.
    Restart {
        container: String,
        #[arg(long, value_name = "SECS")]
        timeout: Option<u32>,
    },
    /// Kill a running container (SIGKILL).
    Kill { container: String },
    /// Remove a container.
    Rm {
        container: String,
        /// Remove it although it runs.
        #[arg(long, short = 'f')]
        force: bool,
        /// Remove its anonymous volumes too.
        #[arg(long)]
        volumes: bool,
        #[command(flatten)]
        yes: YesArg,
    },
    /// Print a container's log (stdout and stderr as written).
    Logs {
        container: String,
        /// Keep following new lines.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<u64>,
        /// Prefix each line with its time.
        #[arg(long, short = 't')]
        timestamps: bool,
    },
    /// Run a command in a running container (`-it` for a terminal).
    Exec {
        /// Keep stdin open (implied by -t; accepted for docker's habit).
        #[arg(short = 'i', long = "interactive")]
        interactive: bool,
        /// A terminal: over the exec WebSocket.
        #[arg(short = 't', long = "tty")]
        tty: bool,
        /// Environment variable, NAME=VALUE (repeatable).
        #[arg(long = "env", short = 'e', value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// User (`user`, `user:group`, ids).
        #[arg(long, short = 'u')]
        user: Option<String>,
        /// Working directory inside the container.
        #[arg(long, short = 'w')]
        workdir: Option<String>,
        container: String,
        /// Command and arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        cmd: Vec<String>,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ImagesCmd {
    /// List images (of one engine, or of every engine).
    List {
        /// Engine name; absent = every engine.
        engine: Option<String>,
    },
    /// Import a root filesystem tarball as an image.
    Import {
        engine: String,
        /// The tarball (`-` is not accepted: the upload is streamed from the file).
        file: PathBuf,
        /// Repository of the new image (`localhost/busybox`).
        #[arg(long)]
        repo: String,
        /// Tag [default: latest].
        #[arg(long)]
        tag: Option<String>,
    },
    /// Delete an image (by id or reference).
    Rm {
        engine: String,
        image: String,
        /// Although containers use it.
        #[arg(long, short = 'f')]
        force: bool,
    },
}

/// `ENGINE/NAME` → (engine, name).
pub fn split_target(s: &str) -> anyhow::Result<(&str, &str)> {
    match s.split_once('/') {
        Some((e, n)) if !e.is_empty() && !n.is_empty() && !n.contains('/') => Ok((e, n)),
        _ => bail!("{s:?}: name a container as ENGINE/NAME (e.g. docker/web)"),
    }
}

fn container_path(s: &str) -> anyhow::Result<String> {
    let (e, n) = split_target(s)?;
    Ok(api(&format!("/containers/{}/{}", seg(e), seg(n))))
}

fn env_map(env: &[String]) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    env.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => bail!("{kv:?}: give NAME=VALUE"),
        })
        .collect()
}

fn rows(c: Container) -> Vec<(&'static str, String)> {
    let mounts: Vec<String> = c
        .mounts
        .iter()
        .map(|m| format!("{}:{}", m.source, m.target))
        .collect();
    vec![
        ("NAME", c.name),
        ("ENGINE", c.engine),
        ("ID", c.id.chars().take(12).collect()),
        ("IMAGE", c.image),
        ("STATE", output::name(&c.state)),
        ("EXIT-CODE", c.exit_code.to_string()),
        ("CMD", c.cmd.join(" ")),
        ("MOUNTS", output::list(&mounts)),
        ("NETWORKS", output::list(&c.networks)),
        ("CREATED", output::time(Some(&c.created_at))),
        ("STARTED", output::time(c.started_at.as_deref())),
    ]
}

async fn act(ctx: &Ctx, container: &str, path: String) -> anyhow::Result<i32> {
    let answer = ctx.client.call(Method::POST, &path, None::<&()>).await?;
    common::print_answer(ctx, &answer, |c: Container| {
        Ok(output::println(&format!(
            "Container {container} is {}",
            output::name(&c.state)
        ))?)
    })
}

pub async fn run(ctx: &Ctx, cmd: ContainersCmd) -> anyhow::Result<i32> {
    match cmd {
        ContainersCmd::List { list } => {
            common::list(
                ctx,
                &list.path(&api("/containers")),
                &["ENGINE", "NAME", "IMAGE", "STATE", "STATUS"],
                |c: Container| {
                    vec![
                        c.engine,
                        c.name,
                        c.image,
                        output::name(&c.state),
                        match c.state {
                            hostplane_types::containers::ContainerState::Exited => {
                                format!("exit {}", c.exit_code)
                            }
                            _ => output::time(c.started_at.as_deref()),
                        },
                    ]
                },
            )
            .await
        }
        ContainersCmd::Show { container } => {
            common::show(ctx, &container_path(&container)?, rows).await
        }
        ContainersCmd::Create {
            container,
            image,
            env,
            volumes,
            network,
            cmd,
        } => {
            let (engine, name) = split_target(&container)?;
            let volumes = volumes
                .iter()
                .map(|v| match v.split_once(':') {
                    Some((n, t)) => Ok(VolumeMount {
                        name: n.into(),
                        target: t.into(),
                        read_only: false,
                    }),
                    None => bail!("{v:?}: give NAME:/PATH"),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let req = ContainerCreate {
                name: name.into(),
                image,
                cmd: (!cmd.is_empty()).then_some(cmd),
                env: env_map(&env)?,
                ports: Vec::new(),
                mounts: Vec::new(),
                volumes,
                restart: Default::default(),
                limits: Default::default(),
                network,
                labels: Default::default(),
            };
            let answer = ctx
                .client
                .call(
                    Method::POST,
                    &api(&format!("/containers/{}", seg(engine))),
                    Some(&req),
                )
                .await?;
            common::print_answer(ctx, &answer, |c: Container| {
                Ok(output::println(&format!(
                    "Created container {engine}/{} ({})",
                    c.name,
                    c.id.chars().take(12).collect::<String>()
                ))?)
            })
        }
        ContainersCmd::Start { container } => {
            let p = format!("{}/start", container_path(&container)?);
            act(ctx, &container, p).await
        }
        ContainersCmd::Stop { container, timeout } => {
            let p = with_query(
                &format!("{}/stop", container_path(&container)?),
                &[("timeout", timeout.map(|t| t.to_string()))],
            );
            act(ctx, &container, p).await
        }
        ContainersCmd::Restart { container, timeout } => {
            let p = with_query(
                &format!("{}/restart", container_path(&container)?),
                &[("timeout", timeout.map(|t| t.to_string()))],
            );
            act(ctx, &container, p).await
        }
        ContainersCmd::Kill { container } => {
            let p = format!("{}/kill", container_path(&container)?);
            act(ctx, &container, p).await
        }
        ContainersCmd::Rm {
            container,
            force,
            volumes,
            yes,
        } => {
            let path = container_path(&container)?;
            common::confirm(&yes, &format!("remove container {container}"), &container)?;
            let path = with_query(
                &path,
                &[
                    ("force", force.then(|| "true".into())),
                    ("volumes", volumes.then(|| "true".into())),
                ],
            );
            common::done(
                ctx,
                Method::DELETE,
                &path,
                &format!("Removed container {container}"),
            )
            .await
        }
        ContainersCmd::Logs {
            container,
            follow,
            tail,
            timestamps,
        } => {
            let path = with_query(
                &format!("{}/logs", container_path(&container)?),
                &[
                    ("follow", follow.then(|| "true".into())),
                    ("tail", tail.map(|t| t.to_string())),
                    ("timestamps", timestamps.then(|| "true".into())),
                ],
            );
            let mut resp = ctx
                .client
                .send(Method::GET, &path, None)
                .await?
                .error_for_status()
                .await?;
            while let Some(chunk) = resp.chunk().await? {
                let mut out = std::io::stdout().lock();
                out.write_all(&chunk)?;
                out.flush()?;
            }
            Ok(0)
        }
        ContainersCmd::Exec {
            interactive: _,
            tty,
            env,
            user,
            workdir,
            container,
            cmd,
        } => {
            let req = ExecRequest {
                cmd,
                tty,
                env: env_map(&env)?,
                user,
                workdir,
                timeout_secs: None,
            };
            let path = format!("{}/exec", container_path(&container)?);
            let answer = ctx.client.call(Method::POST, &path, Some(&req)).await?;
            if tty {
                let t: ExecTicket = answer.parse()?;
                return terminal(ctx, &t).await;
            }
            if ctx.json {
                output::print_json(&answer)?;
            }
            let r: ExecResult = answer.parse()?;
            if !ctx.json {
                std::io::stdout().write_all(r.stdout.as_bytes())?;
                std::io::stderr().write_all(r.stderr.as_bytes())?;
            }
            if r.timed_out {
                eprintln!("exec: gave up waiting (the command may still run)");
                return Ok(124);
            }
            Ok(r.exit_code.map(|c| c as i32).unwrap_or(1))
        }
    }
}

/// How long to wait for any output before held piped input is sent all the same.
const SILENT: std::time::Duration = std::time::Duration::from_secs(2);

/// Speaks the exec WebSocket until the command exits; answers its exit code.
async fn terminal(ctx: &Ctx, t: &ExecTicket) -> anyhow::Result<i32> {
    let ws = ctx.client.websocket(&t.ws_url).await?;
    // A command that prints nothing before it reads gets piped input after SILENT anyway.
    let opts = Options {
        what: "terminal",
        banner: None,
        escape: false,
        piped: Piped::HoldUntilQuiet {
            silent: Some(SILENT),
        },
        initial_resize: true,
        follow_resize: true,
        exit_ends: true,
    };
    match ws_terminal(ws, opts).await?.exit_code {
        Some(code) => Ok(code.clamp(0, 255) as i32),
        None => {
            eprintln!("exec: the terminal closed without an exit code");
            Ok(1)
        }
    }
}

pub async fn images(ctx: &Ctx, cmd: ImagesCmd) -> anyhow::Result<i32> {
    match cmd {
        ImagesCmd::List { engine } => {
            let engines = match engine {
                Some(e) => vec![e],
                None => {
                    let all: Vec<ContainerEngine> =
                        ctx.client.get(&api("/container-engines")).await?.parse()?;
                    all.into_iter()
                        .filter(|e| e.reachable)
                        .map(|e| e.name)
                        .collect()
                }
            };
            let mut all: Vec<ContainerImage> = Vec::new();
            for e in &engines {
                let list: Vec<ContainerImage> = ctx
                    .client
                    .get(&api(&format!("/container-engines/{}/images", seg(e))))
                    .await?
                    .parse()?;
                all.extend(list);
            }
            if ctx.json {
                output::println(&serde_json::to_string_pretty(&all)?)?;
                return Ok(0);
            }
            let mut t = output::table(&["ENGINE", "ID", "TAGS", "SIZE", "CREATED"]);
            for i in all {
                t.add_row(vec![
                    i.engine,
                    i.id.trim_start_matches("sha256:")
                        .chars()
                        .take(12)
                        .collect(),
                    output::list(&i.tags),
                    bytes(i.size.max(0) as u64),
                    output::time(Some(&i.created_at)),
                ]);
            }
            output::print_table(t)?;
            Ok(0)
        }
        ImagesCmd::Import {
            engine,
            file,
            repo,
            tag,
        } => {
            let path = with_query(
                &api(&format!(
                    "/container-engines/{}/images/import",
                    seg(&engine)
                )),
                &[("repo", Some(repo)), ("tag", tag)],
            );
            let answer =
                common::upload(ctx, Method::POST, &path, &file, "application/x-tar").await?;
            common::print_answer(ctx, &answer, |i: ContainerImage| {
                Ok(output::println(&format!(
                    "Imported {} as {}",
                    file.display(),
                    output::list(&i.tags)
                ))?)
            })
        }
        ImagesCmd::Rm {
            engine,
            image,
            force,
        } => {
            let path = with_query(
                &api(&format!(
                    "/container-engines/{}/images/{}",
                    seg(&engine),
                    seg(&image)
                )),
                &[("force", force.then(|| "true".into()))],
            );
            common::done(
                ctx,
                Method::DELETE,
                &path,
                &format!("Removed image {image}"),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_engine_slash_name() {
        assert_eq!(split_target("docker/web").unwrap(), ("docker", "web"));
        for bad in ["web", "/web", "docker/", "docker/a/b"] {
            assert!(split_target(bad).is_err(), "{bad}");
        }
    }
}
