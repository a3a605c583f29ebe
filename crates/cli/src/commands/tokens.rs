//! `token create|list|revoke`.

use hostplane_types::auth::{CreateTokenRequest, CreatedToken, Role, Token};
use hyper::Method;

use super::{Ctx, api, parse_role};
use crate::client::seg;
use crate::output::{self, print_json, print_table, table};

#[derive(Debug, clap::Subcommand)]
pub enum TokenCmd {
    /// Create an API token; its value is printed this once only.
    Create {
        /// A name to recognise it by (1-64 printable characters).
        #[arg(long)]
        name: String,
        /// Its role, at most the owner's [default: the owner's].
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// Limit it to `<area>:read|write` (repeat); none means all areas.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Lifetime in seconds [default: never expires].
        #[arg(long, value_name = "SECS")]
        expires_in: Option<u64>,
        /// Owner (admins only) [default: you].
        #[arg(long, value_name = "USER")]
        owner: Option<String>,
    },
    /// List tokens and sessions (yours; all for admins).
    List,
    /// Revoke a token or session at once.
    Revoke {
        /// Token id (the ID column of `token list`).
        id: String,
    },
}

pub async fn run(ctx: &Ctx, cmd: TokenCmd) -> anyhow::Result<i32> {
    match cmd {
        TokenCmd::Create {
            name,
            role,
            scopes,
            expires_in,
            owner,
        } => {
            let req = CreateTokenRequest {
                name,
                role,
                scopes,
                expires_in,
                owner,
            };
            let answer = ctx
                .client
                .call(Method::POST, &api("/tokens"), Some(&req))
                .await?;
            if ctx.json {
                print_json(&answer)?;
                return Ok(0);
            }
            let c: CreatedToken = answer.parse()?;
            let t = &c.token;
            let expiry = match &t.expires_at {
                Some(e) => format!("expires {}", output::time(Some(e))),
                None => "never expires".into(),
            };
            // The details go to stderr so that `$(hostplane token create …)` is the value alone.
            eprintln!(
                "Created token {} ({:?}, owner {}, role {}, scopes {}, {expiry}).",
                t.id,
                t.name,
                t.owner,
                t.role.as_str(),
                output::scopes(&t.scopes)
            );
            eprintln!("Its value is shown only this once; use it as HOSTPLANE_TOKEN or --token:");
            output::println(&c.value)?;
            Ok(0)
        }
        TokenCmd::List => {
            let answer = ctx.client.get(&api("/tokens")).await?;
            if ctx.json {
                print_json(&answer)?;
                return Ok(0);
            }
            let tokens: Vec<Token> = answer.parse()?;
            let mut t = table(&[
                "ID",
                "NAME",
                "KIND",
                "OWNER",
                "ROLE",
                "SCOPES",
                "EXPIRES",
                "LAST-USED",
            ]);
            for k in tokens {
                t.add_row(vec![
                    k.id,
                    k.name,
                    output::name(&k.kind),
                    k.owner,
                    k.role.as_str().into(),
                    output::scopes(&k.scopes),
                    k.expires_at
                        .as_deref()
                        .map_or("never".into(), |e| output::time(Some(e))),
                    k.last_used_at
                        .as_deref()
                        .map_or("never".into(), |e| output::time(Some(e))),
                ]);
            }
            print_table(t)?;
            Ok(0)
        }
        TokenCmd::Revoke { id } => {
            ctx.client
                .call(
                    Method::DELETE,
                    &api(&format!("/tokens/{}", seg(&id))),
                    None::<&()>,
                )
                .await?;
            if !ctx.json {
                output::println(&format!("Revoked token {id}"))?;
            }
            Ok(0)
        }
    }
}
