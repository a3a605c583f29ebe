//! `provision recipes|profiles|secrets|artifacts|runs ...`, `provision run VM --profile P` and
//! `provision retry RUN` over `/api/v1/provisioning` and `POST /api/v1/vms/{id}/provisioning`.
//! Recipes and profiles are created from JSON files (the API's bodies); secret values are read
//! from stdin, never from the command line (which other users can see in `ps`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use hostplane_types::provisioning::{
    Artifact, ArtifactFetch, Profile, ProfileSpec, ProvisioningRun, Recipe, RecipeSpec, RunCreate,
    Secret, SecretCreate,
};
use hyper::Method;

use super::common::{self, ListArgs, WaitArgs, YesArg};
use super::{Ctx, api};
use crate::client::{seg, with_query};
use crate::output::{self, opt};

#[derive(Debug, clap::Subcommand)]
pub enum ListShow {
    /// List them.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show one.
    Show { id: String },
    /// Create one from a JSON file (the API's request body).
    Create {
        #[arg(long, short = 'f', value_name = "FILE")]
        file: PathBuf,
    },
    /// Delete one.
    #[command(visible_alias = "delete")]
    Rm {
        id: String,
        #[command(flatten)]
        yes: YesArg,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ProvisionCmd {
    /// Recipes: list, show, create, rm.
    #[command(subcommand)]
    Recipes(ListShow),
    /// Profiles: list, show, create, rm.
    #[command(subcommand)]
    Profiles(ListShow),
    /// Secrets (values are never shown): list, add (value from stdin), rm.
    #[command(subcommand)]
    Secrets(SecretsCmd),
    /// Artifacts: list, show, upload, fetch (download by URL), rm.
    #[command(subcommand)]
    Artifacts(ArtifactsCmd),
    /// Runs: list, show.
    #[command(subcommand)]
    Runs(RunsCmd),
    /// Provision a VM with a profile (a job).
    Run {
        /// VM id or name.
        vm: String,
        #[arg(long)]
        profile: String,
        /// `NAME=VALUE`, repeatable.
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// Steps to skip: boot, setup, wait_ready, artifacts, provisioners.
        #[arg(long)]
        skip: Vec<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Retry a failed run from the step that failed (a job).
    Retry {
        run: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum SecretsCmd {
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Store a secret; its value is read from stdin (one trailing newline is dropped).
    Add { name: String },
    #[command(visible_alias = "delete")]
    Rm {
        name: String,
        #[command(flatten)]
        yes: YesArg,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ArtifactsCmd {
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    Show {
        name: String,
    },
    /// Upload a file (its sha256 is checked by the daemon when given).
    Upload {
        name: String,
        #[arg(long, short = 'f', value_name = "FILE")]
        file: PathBuf,
        #[arg(long)]
        sha256: Option<String>,
    },
    /// Have the daemon download a URL as an artifact (a job; its sha256 is checked when given).
    /// Loopback and private addresses only when `[provisioning] url_allow` names them.
    Fetch {
        name: String,
        /// An `http` or `https` URL. (Not named `url`: clap would merge it with the global
        /// `--url` that names the daemon.)
        #[arg(value_name = "URL")]
        source: String,
        #[arg(long)]
        sha256: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    #[command(visible_alias = "delete")]
    Rm {
        name: String,
        #[command(flatten)]
        yes: YesArg,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum RunsCmd {
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// A run with its steps.
    Show { id: String },
}

fn p(rest: &str) -> String {
    api(&format!("/provisioning{rest}"))
}

fn read_json<T: serde::de::DeserializeOwned>(file: &Path, what: &str) -> anyhow::Result<T> {
    let b = common::read_file(file, what)?;
    serde_json::from_slice(&b).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

fn run_rows(r: ProvisioningRun) -> Vec<(&'static str, String)> {
    let mut rows = vec![
        ("ID", r.id),
        ("VM", r.vm),
        ("PROFILE", r.profile),
        ("STATUS", output::name(&r.status)),
        ("FAILED-STEP", opt(r.failed_step)),
        ("ATTEMPTS", r.attempts.to_string()),
        ("JOB", r.job),
    ];
    for s in r.steps {
        let code = s
            .exit_code
            .map(|c| format!(" exit {c}"))
            .unwrap_or_default();
        let ms = s
            .duration_ms
            .map(|m| format!(" {:.1} s", m as f64 / 1000.0))
            .unwrap_or_default();
        rows.push((
            "STEP",
            format!(
                "{} {}{code}{ms}{}",
                s.name,
                output::name(&s.status),
                s.error.map(|e| format!(": {e}")).unwrap_or_default()
            ),
        ));
    }
    rows
}

async fn list_show(ctx: &Ctx, what: &str, cmd: ListShow) -> anyhow::Result<i32> {
    let base = p(&format!("/{what}"));
    match cmd {
        ListShow::List { list } if what == "recipes" => {
            common::list(
                ctx,
                &list.path(&base),
                &["NAME", "OS", "BUILTIN", "STEPS"],
                |r: Recipe| {
                    vec![
                        r.id,
                        r.os_family,
                        output::yes_no(r.builtin),
                        r.steps.len().to_string(),
                    ]
                },
            )
            .await
        }
        ListShow::List { list } => {
            common::list(
                ctx,
                &list.path(&base),
                &["NAME", "RECIPE", "ARTIFACTS", "PROVISIONERS"],
                |r: Profile| {
                    vec![
                        r.id,
                        r.recipe,
                        r.artifacts.len().to_string(),
                        r.provisioners.len().to_string(),
                    ]
                },
            )
            .await
        }
        ListShow::Show { id } => {
            let answer = ctx.client.get(&format!("{base}/{}", seg(&id))).await?;
            output::print_json(&answer)?;
            Ok(0)
        }
        ListShow::Create { file } => {
            let answer = if what == "recipes" {
                let body: RecipeSpec = read_json(&file, "recipe")?;
                ctx.client.call(Method::POST, &base, Some(&body)).await?
            } else {
                let body: ProfileSpec = read_json(&file, "profile")?;
                ctx.client.call(Method::POST, &base, Some(&body)).await?
            };
            output::print_json(&answer)?;
            Ok(0)
        }
        ListShow::Rm { id, yes } => {
            common::confirm(&yes, &format!("delete {what} {id}"), &id)?;
            common::done(
                ctx,
                Method::DELETE,
                &format!("{base}/{}", seg(&id)),
                &format!("Deleted {id}"),
            )
            .await
        }
    }
}

fn parse_vars(vars: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    vars.iter()
        .map(|v| {
            v.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("{v:?}: write NAME=VALUE"))
        })
        .collect()
}

pub async fn run(ctx: &Ctx, cmd: ProvisionCmd) -> anyhow::Result<i32> {
    match cmd {
        ProvisionCmd::Recipes(c) => list_show(ctx, "recipes", c).await,
        ProvisionCmd::Profiles(c) => list_show(ctx, "profiles", c).await,
        ProvisionCmd::Secrets(SecretsCmd::List { list }) => {
            common::list(
                ctx,
                &list.path(&p("/secrets")),
                &["NAME", "ID", "CREATED"],
                |s: Secret| vec![s.name, s.id, output::time(Some(&s.created_at))],
            )
            .await
        }
        ProvisionCmd::Secrets(SecretsCmd::Add { name }) => {
            let mut value = String::new();
            std::io::stdin().read_to_string(&mut value)?;
            if value.ends_with('\n') {
                value.pop();
            }
            let body = SecretCreate { name, value };
            let answer = ctx
                .client
                .call(Method::POST, &p("/secrets"), Some(&body))
                .await?;
            common::print_answer(ctx, &answer, |s: Secret| {
                Ok(output::println(&format!("Stored secret {}", s.name))?)
            })?;
            Ok(0)
        }
        ProvisionCmd::Secrets(SecretsCmd::Rm { name, yes }) => {
            common::confirm(&yes, &format!("delete secret {name}"), &name)?;
            common::done(
                ctx,
                Method::DELETE,
                &p(&format!("/secrets/{}", seg(&name))),
                &format!("Deleted secret {name}"),
            )
            .await
        }
        ProvisionCmd::Artifacts(ArtifactsCmd::List { list }) => {
            common::list(
                ctx,
                &list.path(&p("/artifacts")),
                &["NAME", "SIZE", "SHA256", "SOURCE"],
                |a: Artifact| vec![a.name, output::bytes(a.size_bytes), a.sha256, a.source],
            )
            .await
        }
        ProvisionCmd::Artifacts(ArtifactsCmd::Show { name }) => {
            let answer = ctx
                .client
                .get(&p(&format!("/artifacts/{}", seg(&name))))
                .await?;
            output::print_json(&answer)?;
            Ok(0)
        }
        ProvisionCmd::Artifacts(ArtifactsCmd::Upload { name, file, sha256 }) => {
            let path = with_query(
                &p("/artifacts"),
                &[("name", Some(name)), ("sha256", sha256)],
            );
            let answer =
                common::upload(ctx, Method::POST, &path, &file, "application/octet-stream").await?;
            common::print_answer(ctx, &answer, |a: Artifact| {
                Ok(output::println(&format!(
                    "Stored artifact {} ({}, sha256 {})",
                    a.name,
                    output::bytes(a.size_bytes),
                    a.sha256
                ))?)
            })?;
            Ok(0)
        }
        ProvisionCmd::Artifacts(ArtifactsCmd::Fetch {
            source,
            name,
            sha256,
            wait,
        }) => {
            // A JSON body makes the same POST a download job instead of an upload.
            let body = ArtifactFetch {
                name: name.clone(),
                url: source,
                sha256,
            };
            let started = ctx
                .client
                .call(Method::POST, &p("/artifacts"), Some(&body))
                .await?;
            let end =
                common::job(ctx, started, &wait, &format!("download of artifact {name}")).await?;
            Ok(end.code)
        }
        ProvisionCmd::Artifacts(ArtifactsCmd::Rm { name, yes }) => {
            common::confirm(&yes, &format!("delete artifact {name}"), &name)?;
            common::done(
                ctx,
                Method::DELETE,
                &p(&format!("/artifacts/{}", seg(&name))),
                &format!("Deleted artifact {name}"),
            )
            .await
        }
        ProvisionCmd::Runs(RunsCmd::List { list }) => {
            common::list(
                ctx,
                &list.path(&p("/runs")),
                &["ID", "VM", "PROFILE", "STATUS", "FAILED-STEP", "ATTEMPTS"],
                |r: ProvisioningRun| {
                    vec![
                        r.id,
                        r.vm,
                        r.profile,
                        output::name(&r.status),
                        opt(r.failed_step),
                        r.attempts.to_string(),
                    ]
                },
            )
            .await
        }
        ProvisionCmd::Runs(RunsCmd::Show { id }) => {
            common::show(ctx, &p(&format!("/runs/{}", seg(&id))), run_rows).await
        }
        ProvisionCmd::Run {
            vm,
            profile,
            vars,
            skip,
            wait,
        } => {
            let body = RunCreate {
                profile: profile.clone(),
                variables: parse_vars(&vars)?,
                skip,
                guest_base_url: None,
            };
            let started = ctx
                .client
                .call(
                    Method::POST,
                    &api(&format!("/vms/{}/provisioning", seg(&vm))),
                    Some(&body),
                )
                .await?;
            let end = common::job(ctx, started, &wait, &format!("provisioning of {vm}")).await?;
            Ok(end.code)
        }
        ProvisionCmd::Retry { run, wait } => {
            let started = ctx
                .client
                .call(
                    Method::POST,
                    &p(&format!("/runs/{}/retry", seg(&run))),
                    None::<&()>,
                )
                .await?;
            let end = common::job(ctx, started, &wait, &format!("retry of run {run}")).await?;
            Ok(end.code)
        }
    }
}
