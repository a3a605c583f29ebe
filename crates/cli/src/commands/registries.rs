//! `registries list|add|show|browse|pull|rm` over `/api/v1/template-registries`: Vagrant box
//! registries (BoxVault, Vagrant Cloud) templates are pulled from. The token is read from
//! stdin (`--token-stdin`), never from the command line (which other users can see in `ps`);
//! `browse` walks organisations → boxes → versions as deep as it is given; `pull` starts the
//! job that makes a template.

use std::io::Read;

use hostplane_types::vms::{
    RegistryBox, RegistryBoxVersion, RegistryKind, RegistryOrganization, TemplatePull,
    TemplateRegistry, TemplateRegistryCreate,
};
use hyper::Method;

use super::common::{self, ListArgs, WaitArgs, YesArg};
use super::{Ctx, api};
use crate::client::seg;
use crate::output::{self, opt};

#[derive(Debug, clap::Subcommand)]
pub enum RegistriesCmd {
    /// List the registries.
    List {
        #[command(flatten)]
        list: ListArgs,
    },
    /// Add a registry.
    Add {
        name: String,
        /// Its base URL, e.g. https://boxvault.example.com (positional: `--url` is the
        /// daemon's, and clap ids are global).
        #[arg(value_name = "REGISTRY_URL")]
        registry_url: String,
        /// `boxvault` or `vagrant_cloud`.
        #[arg(long, value_parser = parse_kind)]
        kind: RegistryKind,
        /// Read its API token from stdin (never from the command line).
        #[arg(long)]
        token_stdin: bool,
    },
    /// Show one registry (never its token).
    Show { name: String },
    /// Browse a registry: its organisations, an organisation's boxes, a box's versions.
    Browse {
        name: String,
        /// Organisation (BoxVault) or user (Vagrant Cloud).
        org: Option<String>,
        #[arg(name = "BOX")]
        box_name: Option<String>,
    },
    /// Pull a box version into a new template (a job).
    Pull {
        name: String,
        /// ORG/BOX@VERSION, e.g. STARTcloud/debian@1.0.0.
        what: String,
        /// The new template's name.
        #[arg(long)]
        template: String,
        /// Default `libvirt`.
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        architecture: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Remove a registry (its stored token too).
    #[command(visible_alias = "delete")]
    Rm {
        name: String,
        #[command(flatten)]
        yes: YesArg,
    },
}

fn parse_kind(s: &str) -> Result<RegistryKind, String> {
    match s {
        "boxvault" => Ok(RegistryKind::Boxvault),
        "vagrant_cloud" | "vagrant-cloud" => Ok(RegistryKind::VagrantCloud),
        _ => Err(format!("{s:?}: kinds are boxvault and vagrant_cloud")),
    }
}

fn r(rest: &str) -> String {
    api(&format!("/template-registries{rest}"))
}

/// `ORG/BOX@VERSION` → its parts.
fn parse_what(what: &str) -> anyhow::Result<(String, String, String)> {
    let bad = || anyhow::anyhow!("{what:?}: write ORG/BOX@VERSION");
    let (path, version) = what.rsplit_once('@').ok_or_else(bad)?;
    let (org, b) = path.split_once('/').ok_or_else(bad)?;
    if org.is_empty() || b.is_empty() || version.is_empty() {
        return Err(bad());
    }
    Ok((org.into(), b.into(), version.into()))
}

fn rows(g: TemplateRegistry) -> Vec<(&'static str, String)> {
    vec![
        ("NAME", g.name),
        ("KIND", output::name(&g.kind)),
        ("URL", g.url),
        ("TOKEN", output::yes_no(g.has_token)),
        ("CREATED", output::time(Some(&g.created_at))),
        ("UPDATED", output::time(Some(&g.updated_at))),
    ]
}

pub async fn run(ctx: &Ctx, cmd: RegistriesCmd) -> anyhow::Result<i32> {
    match cmd {
        RegistriesCmd::List { list } => {
            common::list(
                ctx,
                &list.path(&r("")),
                &["NAME", "KIND", "URL", "TOKEN"],
                |g: TemplateRegistry| {
                    vec![
                        g.name,
                        output::name(&g.kind),
                        g.url,
                        output::yes_no(g.has_token),
                    ]
                },
            )
            .await
        }
        RegistriesCmd::Add {
            name,
            registry_url: url,
            kind,
            token_stdin,
        } => {
            let token = if token_stdin {
                let mut t = String::new();
                std::io::stdin().read_to_string(&mut t)?;
                Some(t.trim_end_matches('\n').to_string())
            } else {
                None
            };
            let body = TemplateRegistryCreate {
                name,
                kind,
                url,
                token,
            };
            let answer = ctx.client.call(Method::POST, &r(""), Some(&body)).await?;
            common::print_answer(ctx, &answer, |g: TemplateRegistry| {
                Ok(output::println(&format!("Added registry {}", g.name))?)
            })
        }
        RegistriesCmd::Show { name } => {
            common::show(ctx, &r(&format!("/{}", seg(&name))), rows).await
        }
        RegistriesCmd::Browse {
            name, org: None, ..
        } => {
            common::list(
                ctx,
                &r(&format!("/{}/organizations", seg(&name))),
                &["ORGANIZATION", "DESCRIPTION"],
                |o: RegistryOrganization| vec![o.name, opt(o.description)],
            )
            .await
        }
        RegistriesCmd::Browse {
            name,
            org: Some(org),
            box_name: None,
        } => {
            common::list(
                ctx,
                &r(&format!(
                    "/{}/organizations/{}/boxes",
                    seg(&name),
                    seg(&org)
                )),
                &["BOX", "DESCRIPTION"],
                |b: RegistryBox| vec![format!("{}/{}", b.organization, b.name), opt(b.description)],
            )
            .await
        }
        RegistriesCmd::Browse {
            name,
            org: Some(org),
            box_name: Some(b),
        } => {
            common::list(
                ctx,
                &r(&format!(
                    "/{}/organizations/{}/boxes/{}/versions",
                    seg(&name),
                    seg(&org),
                    seg(&b)
                )),
                &["VERSION", "PROVIDERS", "DESCRIPTION"],
                |v: RegistryBoxVersion| {
                    let providers: Vec<String> = v
                        .providers
                        .iter()
                        .map(|p| match &p.architecture {
                            Some(a) => format!("{}/{a}", p.name),
                            None => p.name.clone(),
                        })
                        .collect();
                    vec![v.version, providers.join(", "), opt(v.description)]
                },
            )
            .await
        }
        RegistriesCmd::Pull {
            name,
            what,
            template,
            provider,
            architecture,
            wait,
        } => {
            let (organization, box_name, version) = parse_what(&what)?;
            let body = TemplatePull {
                template: template.clone(),
                organization,
                box_name,
                version,
                provider,
                architecture,
            };
            let started = ctx
                .client
                .call(
                    Method::POST,
                    &r(&format!("/{}/pull", seg(&name))),
                    Some(&body),
                )
                .await?;
            let end = common::job(
                ctx,
                started,
                &wait,
                &format!("pull of {what} into template {template}"),
            )
            .await?;
            Ok(end.code)
        }
        RegistriesCmd::Rm { name, yes } => {
            common::confirm(&yes, &format!("remove registry {name}"), &name)?;
            common::done(
                ctx,
                Method::DELETE,
                &r(&format!("/{}", seg(&name))),
                &format!("Removed registry {name}"),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_org_box_version() {
        assert_eq!(
            parse_what("STARTcloud/debian@1.0.0").unwrap(),
            ("STARTcloud".into(), "debian".into(), "1.0.0".into())
        );
        for bad in ["debian@1", "a/b", "/b@1", "a/@1", "a/b@"] {
            assert!(parse_what(bad).is_err(), "{bad}");
        }
    }
}
