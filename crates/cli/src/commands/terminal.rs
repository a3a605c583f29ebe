//! `terminal`: a shell on the host through the API (`POST /system/terminals`, then its
//! WebSocket). On a terminal, stdin is switched to raw mode (restored on exit) and Ctrl-]
//! leaves (ending the session); from a pipe, input is sent until its end and the output shown
//! until the shell exits (or for `--linger` seconds more, then the session is ended). The
//! exit code is the shell's.

use std::time::Duration;

use hostplane_types::terminal::{TerminalCreate, TerminalTicket};
use hyper::Method;

use super::ws_terminal::{Options, Piped, window_size, ws_terminal};
use super::{Ctx, api};

#[derive(Debug, clap::Args)]
pub struct TerminalArgs {
    /// The shell (one of the daemon's `terminal.shells`) [default: its first].
    #[arg(long, value_name = "PATH")]
    shell: Option<String>,
    /// With piped input: seconds to wait for the shell after the input ended.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    linger: u64,
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
    // The size went with the request; later changes follow as resize frames.
    let opts = Options {
        what: "terminal",
        banner: Some("Connected to a shell on the host; Ctrl-] leaves (and ends it).".into()),
        escape: true,
        piped: Piped::Linger(Duration::from_secs(a.linger)),
        initial_resize: false,
        follow_resize: true,
        exit_ends: true,
    };
    let outcome = ws_terminal(ws, opts).await;
    let code = outcome.as_ref().ok().and_then(|o| o.exit_code);
    if code.is_none() {
        // Left (Ctrl-], end of input): the shell does not linger on the host.
        let _ = ctx.client.call(Method::DELETE, &session, None::<&()>).await;
    }
    outcome.map(|o| o.exit_code.map_or(0, |c| c as i32))
}
