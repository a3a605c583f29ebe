//! `terminal`: a shell on the host through the API (`POST /system/terminals`, then its
//! WebSocket). On a terminal, stdin is switched to raw mode (restored on exit) and Ctrl-]
//! leaves (ending the session); from a pipe, input is sent until its end and the output shown
//! until the shell exits (or for `--linger` seconds more, then the session is ended). The
//! exit code is the shell's.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use hostplane_types::terminal::{TerminalCreate, TerminalTicket};
use hyper::Method;
use tokio_tungstenite::tungstenite::Message;

use super::vms::{RawMode, stdin_pump};
use super::{Ctx, api};
use crate::prompt;

/// Ctrl-]: leaves, as `vms console` does.
const ESCAPE: u8 = 0x1d;

#[derive(Debug, clap::Args)]
pub struct TerminalArgs {
    /// The shell (one of the daemon's `terminal.shells`) [default: its first].
    #[arg(long, value_name = "PATH")]
    shell: Option<String>,
    /// With piped input: seconds to wait for the shell after the input ended.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    linger: u64,
}

/// Columns and rows of the terminal on stdout, if it is one.
fn window_size() -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills the winsize it is given.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

pub async fn run(ctx: &Ctx, a: TerminalArgs) -> anyhow::Result<i32> {
    let (cols, rows) = window_size().unwrap_or((80, 24));
    let req = TerminalCreate {
        cols: Some(cols),
        rows: Some(rows),
        shell: a.shell.clone(),
    };
    let t: TerminalTicket = ctx
        .client
        .call(Method::POST, &api("/system/terminals"), Some(&req))
        .await?
        .parse()?;
    let session = api(&format!("/system/terminals/{}", t.id));
    let ws = ctx.client.websocket(&t.ws_url).await?;
    let (mut sink, mut stream) = ws.split();
    let tty = prompt::stdin_is_tty();
    let raw = if tty { Some(RawMode::enable()?) } else { None };
    if tty {
        eprint!("Connected to a shell on the host; Ctrl-] leaves (and ends it).\r\n");
    }
    let mut input = stdin_pump();
    let mut input_open = true;
    let mut deadline: Option<tokio::time::Instant> = None;
    let linger = Duration::from_secs(a.linger);
    let mut code: Option<i32> = None;
    let outcome: anyhow::Result<()> = async {
        loop {
            let until_deadline = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(Message::Binary(b))) => {
                        let mut out = std::io::stdout().lock();
                        out.write_all(&b)?;
                        out.flush()?;
                    }
                    Some(Ok(Message::Text(t))) => {
                        let v: serde_json::Value =
                            serde_json::from_str(t.as_str()).unwrap_or_default();
                        if v["type"] == "exit" {
                            code = Some(v["code"].as_i64().map(|c| c as i32).unwrap_or(1));
                            return Ok(());
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => return Ok(()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(anyhow::Error::new(e).context("terminal connection")),
                },
                data = input.recv(), if input_open => match data {
                    Some(mut d) => {
                        let leave = tty && d.contains(&ESCAPE);
                        if let Some(i) = d.iter().position(|&b| b == ESCAPE).filter(|_| tty) {
                            d.truncate(i);
                        }
                        if !d.is_empty() {
                            sink.send(Message::Binary(d.into())).await
                                .context("sending to the terminal")?;
                        }
                        if leave {
                            return Ok(());
                        }
                    }
                    None => {
                        input_open = false;
                        deadline = Some(tokio::time::Instant::now() + linger);
                    }
                },
                _ = until_deadline => return Ok(()),
            }
        }
    }
    .await;
    let _ = sink.send(Message::Close(None)).await;
    drop(raw);
    if code.is_none() {
        // Left (Ctrl-], end of input): the shell does not linger on the host.
        let _ = ctx.client.call(Method::DELETE, &session, None::<&()>).await;
    }
    if tty {
        eprintln!();
    }
    outcome.map(|()| code.unwrap_or(0))
}
