//! `user list|show|create|set|delete` (admin only, except `show` of yourself).

use anyhow::bail;
use hostplane_types::auth::{CreateUserRequest, Role, UpdateUserRequest, User};
use hyper::Method;

use super::{Ctx, api, parse_role};
use crate::client::seg;
use crate::output::{self, fields, print_json, print_table, table};
use crate::prompt;

#[derive(Debug, clap::Args)]
pub struct PasswordArgs {
    /// Read the password from the first line of stdin.
    #[arg(long, conflicts_with = "ask_password")]
    password_stdin: bool,
    /// Ask for the password (twice) on the terminal.
    #[arg(long)]
    ask_password: bool,
}

impl PasswordArgs {
    fn read(&self) -> anyhow::Result<Option<String>> {
        if self.password_stdin {
            Ok(Some(prompt::stdin_line("password")?))
        } else if self.ask_password {
            Ok(Some(prompt::new_password()?))
        } else {
            Ok(None)
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum UserCmd {
    /// List users.
    List,
    /// Show one user.
    Show { name: String },
    /// Create a user; without a password it uses API tokens only.
    Create {
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Change a user's role or password.
    Set {
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Delete a user and all their tokens.
    Delete { name: String },
}

fn user_path(name: &str) -> String {
    api(&format!("/users/{}", seg(name)))
}

pub async fn run(ctx: &Ctx, cmd: UserCmd) -> anyhow::Result<i32> {
    let answer = match cmd {
        UserCmd::List => {
            let answer = ctx.client.get(&api("/users")).await?;
            if ctx.json {
                print_json(&answer)?;
                return Ok(0);
            }
            let users: Vec<User> = answer.parse()?;
            let mut t = table(&["NAME", "ROLE", "PASSWORD", "CREATED", "UPDATED"]);
            for u in users {
                t.add_row(vec![
                    u.name,
                    u.role.as_str().into(),
                    if u.has_password { "yes" } else { "no" }.into(),
                    output::time(Some(&u.created_at)),
                    output::time(Some(&u.updated_at)),
                ]);
            }
            print_table(t)?;
            return Ok(0);
        }
        UserCmd::Show { name } => ctx.client.get(&user_path(&name)).await?,
        UserCmd::Create {
            name,
            role,
            password,
        } => {
            let req = CreateUserRequest {
                name,
                role,
                password: password.read()?,
            };
            ctx.client
                .call(Method::POST, &api("/users"), Some(&req))
                .await?
        }
        UserCmd::Set {
            name,
            role,
            password,
        } => {
            let req = UpdateUserRequest {
                role,
                password: password.read()?,
            };
            if req.role.is_none() && req.password.is_none() {
                bail!("nothing to change: give --role, --password-stdin or --ask-password");
            }
            ctx.client
                .call(Method::PATCH, &user_path(&name), Some(&req))
                .await?
        }
        UserCmd::Delete { name } => {
            ctx.client
                .call(Method::DELETE, &user_path(&name), None::<&()>)
                .await?;
            if !ctx.json {
                output::println(&format!("Deleted user {name} and their tokens"))?;
            }
            return Ok(0);
        }
    };
    if ctx.json {
        print_json(&answer)?;
        return Ok(0);
    }
    let u: User = answer.parse()?;
    print_table(fields(vec![
        ("NAME", u.name),
        ("ROLE", u.role.as_str().into()),
        ("PASSWORD", if u.has_password { "yes" } else { "no" }.into()),
        ("CREATED", output::time(Some(&u.created_at))),
        ("UPDATED", output::time(Some(&u.updated_at))),
    ]))?;
    Ok(0)
}
