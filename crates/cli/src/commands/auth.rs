//! `login`, `logout`, `whoami`.

use anyhow::{Context, bail};
use hostplane_types::auth::{LoginRequest, LoginResponse, Whoami};
use hyper::Method;

use super::{Ctx, api};
use crate::client::json_answer;
use crate::config::{self, SavedLogin};
use crate::output::{self, fields, print_json, print_table};
use crate::prompt;

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// User name [default: the saved login's user, else asked].
    #[arg(long, short = 'u', value_name = "NAME")]
    pub user: Option<String>,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    pub password_stdin: bool,
}

pub async fn login(ctx: &Ctx, args: LoginArgs) -> anyhow::Result<i32> {
    let saved_user = ctx
        .saved
        .as_ref()
        .filter(|_| ctx.endpoint.saved_applies)
        .and_then(|s| s.user.clone());
    let user = match args.user.or(saved_user) {
        Some(u) => u,
        None => match prompt::ask("Username: ")? {
            Some(u) if !u.is_empty() => u,
            _ => bail!("give the user name with --user"),
        },
    };
    let password = if args.password_stdin {
        prompt::stdin_line("password")?
    } else {
        prompt::password(&format!("Password for {user} at {}: ", ctx.client.target()))?
    };
    let body = serde_json::to_vec(&LoginRequest {
        username: user,
        password,
    })?;
    let resp = ctx
        .client
        .send_anonymous(Method::POST, &api("/auth/login"), Some(body))
        .await?;
    let (_, headers, bytes) = resp.ok_bytes().await?;
    let answer = json_answer(headers, bytes)?;
    let login: LoginResponse = answer.parse()?;

    let path = ctx
        .config_path
        .as_ref()
        .context("no home directory to save the login in (set HOME or XDG_CONFIG_HOME)")?;
    let ep = &ctx.endpoint;
    let ca = ep
        .ca
        .as_ref()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
    config::save(
        path,
        &SavedLogin {
            url: ep.target.to_string(),
            token: Some(login.token.clone()),
            user: Some(login.user.clone()),
            insecure: ep.insecure,
            ca,
        },
    )?;
    if ctx.json {
        print_json(&answer)?;
    } else {
        output::println(&format!(
            "Logged in to {} as {} ({}) until {}; saved in {}",
            ep.target,
            login.user,
            login.role.as_str(),
            output::time(Some(&login.expires_at)),
            path.display()
        ))?;
    }
    Ok(0)
}

pub async fn logout(ctx: &Ctx) -> anyhow::Result<i32> {
    if ctx.endpoint.token.is_none() {
        bail!("not logged in to {}", ctx.endpoint.target);
    }
    let result = ctx
        .client
        .send(Method::POST, &api("/auth/logout"), None)
        .await?
        .ok_bytes()
        .await;
    // An expired or revoked session still leaves a token to forget.
    let expired = matches!(&result, Err(e) if e
        .downcast_ref::<crate::client::ApiFailure>()
        .is_some_and(|f| f.status == hyper::StatusCode::UNAUTHORIZED));
    if result.is_err() && !expired {
        result?;
    }
    let forgot = forget_token(ctx)?;
    if !ctx.json {
        let mut msg = format!("Logged out of {}", ctx.endpoint.target);
        if expired {
            msg.push_str(" (the session had already ended)");
        }
        if let Some(p) = forgot {
            msg.push_str(&format!("; removed the token from {}", p.display()));
        }
        output::println(&msg)?;
    }
    Ok(0)
}

/// Drops token and user from the saved login of this URL (keeps url, insecure, ca).
fn forget_token(ctx: &Ctx) -> anyhow::Result<Option<std::path::PathBuf>> {
    let (Some(path), Some(saved)) = (&ctx.config_path, &ctx.saved) else {
        return Ok(None);
    };
    if !ctx.endpoint.saved_applies || saved.token.is_none() {
        return Ok(None);
    }
    let kept = SavedLogin {
        token: None,
        user: None,
        ..saved.clone()
    };
    config::save(path, &kept)?;
    Ok(Some(path.clone()))
}

pub async fn whoami(ctx: &Ctx) -> anyhow::Result<i32> {
    let answer = ctx.client.get(&api("/auth/whoami")).await?;
    if ctx.json {
        print_json(&answer)?;
        return Ok(0);
    }
    let w: Whoami = answer.parse()?;
    print_table(fields(vec![
        ("USER", w.user),
        ("ROLE", w.role.as_str().into()),
        ("METHOD", output::name(&w.method)),
        ("TOKEN", w.token_id.unwrap_or_else(|| "-".into())),
        ("SCOPES", output::scopes(&w.scopes)),
        ("SERVER", ctx.client.target().to_string()),
    ]))?;
    Ok(0)
}
