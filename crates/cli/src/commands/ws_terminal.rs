//! The one interactive WebSocket terminal client, used by `vms console`, `terminal`,
//! `lxc console` and `containers exec -it`.
//!
//! Flow: the caller opens the WebSocket (each API has its own way: a ticket, a query with the
//! size) and hands it to [`ws_terminal`] with [`Options`] saying what differs. Binary frames are
//! terminal bytes both ways; text frames are JSON control: `exit` (the program's exit code),
//! `closed` (the VM stopped), `lagged` (output was lost) come in, `resize` goes out — first
//! with the window's size when asked, then on every SIGWINCH. On a terminal, stdin is switched to
//! raw mode for the session (restored on every return, also on errors) and Ctrl-] may leave.
//! Piped input either goes out as it comes and the session ends a while after it ended
//! ([`Piped::Linger`]), or is held until the shell is ready and its end sent as Ctrl-D
//! ([`Piped::HoldUntilQuiet`]).

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::client::WebSocket;
use crate::prompt;

/// Ctrl-]: leaves, as in telnet and virsh.
pub(crate) const ESCAPE: u8 = 0x1d;
/// Ctrl-D: the end of piped input, for the shell.
const EOT: u8 = 0x04;
/// How long the shell's output must pause before held piped input is sent.
const QUIET: Duration = Duration::from_millis(300);

/// What to do with input from a pipe (a terminal's keys always go out as typed).
pub(crate) enum Piped {
    /// Send it as it comes; once it ended, wait this long for the other side, then leave.
    Linger(Duration),
    /// Hold it until the output pauses for a moment (busybox ash flushes what arrived before
    /// its prompt) — or, with `silent`, until no output came for that long — then send it, and
    /// its end as Ctrl-D, what a terminal sends.
    HoldUntilQuiet { silent: Option<Duration> },
}

/// What differs between the terminals.
pub(crate) struct Options {
    /// Names the connection in errors ("console", "terminal").
    pub what: &'static str,
    /// Shown on stderr when stdin is a terminal (then an empty line at the end, too).
    pub banner: Option<String>,
    /// Ctrl-] on a terminal leaves.
    pub escape: bool,
    pub piped: Piped,
    /// Send the window's size as a `resize` frame at the start.
    pub initial_resize: bool,
    /// Send a `resize` frame when the window's size changes (SIGWINCH).
    pub follow_resize: bool,
    /// An `exit` frame ends the session (otherwise it is noted and the close awaited).
    pub exit_ends: bool,
}

/// How the session ended.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// From an `exit` frame.
    pub exit_code: Option<i64>,
    /// Something to tell the user: a `closed` frame's reason, or lost output.
    pub notice: Option<String>,
}

/// Columns and rows of the terminal on stdout, if it is one.
pub(crate) fn window_size() -> Option<(u16, u16)> {
    // SAFETY: winsize is plain data; TIOCGWINSZ fills it for a terminal fd.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and a winsize to fill.
    let ok = unsafe { libc::ioctl(std::io::stdout().as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

fn resize_frame((cols, rows): (u16, u16)) -> Message {
    let msg = serde_json::json!({"type": "resize", "cols": cols, "rows": rows});
    Message::Text(msg.to_string().into())
}

/// The terminal in raw mode while this lives (keys go to the other side as typed, no echo).
pub(crate) struct RawMode {
    fd: i32,
    saved: libc::termios,
}

impl RawMode {
    pub(crate) fn enable() -> anyhow::Result<RawMode> {
        let fd = std::io::stdin().as_raw_fd();
        // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
        let mut term: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut term) } != 0 {
            return Err(std::io::Error::last_os_error()).context("reading the terminal mode");
        }
        let saved = term;
        // SAFETY: a termios from tcgetattr; cfmakeraw only edits it.
        unsafe { libc::cfmakeraw(&mut term) };
        // SAFETY: valid fd and termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) } != 0 {
            return Err(std::io::Error::last_os_error()).context("switching the terminal to raw");
        }
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: valid fd and the termios saved by enable().
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

/// Reads stdin on a thread (std's stdin blocks) and hands the pieces over; closes at its end.
fn stdin_pump() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// Sleeps until `at`, or forever without one (a disabled `select!` timer).
async fn until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Speaks the terminal WebSocket `ws` between stdin/stdout and the other side until it ends:
/// an `exit` (with `exit_ends`) or `closed` frame, the close of the connection, Ctrl-], or the
/// linger after piped input ended.
pub(crate) async fn ws_terminal(ws: WebSocket, o: Options) -> anyhow::Result<Outcome> {
    let what = o.what;
    let (mut sink, mut stream) = ws.split();
    let tty = prompt::stdin_is_tty();
    let raw = if tty { Some(RawMode::enable()?) } else { None };
    if tty && let Some(b) = &o.banner {
        // Raw mode: the terminal no longer turns \n into \r\n.
        eprint!("{b}\r\n");
    }
    if o.initial_resize
        && let Some(size) = window_size()
    {
        sink.send(resize_frame(size))
            .await
            .context("sending the window size")?;
    }
    let mut winch = if o.follow_resize {
        Some(signal(SignalKind::window_change()).context("watching the window size")?)
    } else {
        None
    };
    let mut input = stdin_pump();
    let mut input_open = true;
    let (hold, linger) = match o.piped {
        Piped::Linger(d) => (None, Some(d)),
        Piped::HoldUntilQuiet { silent } => (Some(silent), None),
    };
    // Held piped input (HoldUntilQuiet), sent when the output pauses.
    let mut held: Vec<u8> = Vec::new();
    let mut released = tty || hold.is_none();
    let mut quiet_at = hold.flatten().filter(|_| !tty).map(|s| Instant::now() + s);
    let mut deadline: Option<Instant> = None;
    let mut out = Outcome::default();
    let result: anyhow::Result<()> = async {
        loop {
            let winched = async {
                match winch.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(Message::Binary(b))) => {
                        let mut stdout = std::io::stdout().lock();
                        stdout.write_all(&b)?;
                        stdout.flush()?;
                        if !released {
                            quiet_at = Some(Instant::now() + QUIET);
                        }
                    }
                    Some(Ok(Message::Text(t))) => {
                        let v: serde_json::Value =
                            serde_json::from_str(t.as_str()).unwrap_or_default();
                        match v["type"].as_str() {
                            Some("exit") => {
                                out.exit_code = Some(v["code"].as_i64().unwrap_or(1));
                                if o.exit_ends {
                                    return Ok(());
                                }
                            }
                            Some("closed") => {
                                out.notice = v["reason"].as_str().map(str::to_string);
                                return Ok(());
                            }
                            Some("lagged") => {
                                out.notice = Some(format!("some {what} output was lost"));
                            }
                            _ => {}
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => return Ok(()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        return Err(anyhow::Error::new(e).context(format!("{what} connection")));
                    }
                },
                _ = until(quiet_at), if !released => {
                    released = true;
                    quiet_at = None;
                    if !input_open {
                        held.push(EOT);
                    }
                    if !held.is_empty() {
                        sink.send(Message::Binary(std::mem::take(&mut held).into())).await
                            .with_context(|| format!("sending to the {what}"))?;
                    }
                }
                data = input.recv(), if input_open => match data {
                    Some(d) if !released => held.extend_from_slice(&d),
                    Some(mut d) => {
                        let leave = o.escape && tty && d.contains(&ESCAPE);
                        if leave && let Some(i) = d.iter().position(|&b| b == ESCAPE) {
                            d.truncate(i);
                        }
                        if !d.is_empty() {
                            sink.send(Message::Binary(d.into())).await
                                .with_context(|| format!("sending to the {what}"))?;
                        }
                        if leave {
                            return Ok(());
                        }
                    }
                    None => {
                        input_open = false;
                        match linger {
                            Some(l) => deadline = Some(Instant::now() + l),
                            None if released && !tty => {
                                sink.send(Message::Binary(vec![EOT].into())).await
                                    .with_context(|| format!("sending to the {what}"))?;
                            }
                            None => {}
                        }
                    }
                },
                Some(()) = winched => {
                    if let Some(size) = window_size() {
                        sink.send(resize_frame(size)).await
                            .context("sending the window size")?;
                    }
                }
                _ = until(deadline) => return Ok(()),
            }
        }
    }
    .await;
    let _ = sink.send(Message::Close(None)).await;
    drop(raw);
    if tty && o.banner.is_some() {
        eprintln!();
    }
    result.map(|()| out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_frames_are_the_servers_json() {
        let Message::Text(t) = resize_frame((132, 43)) else {
            panic!("a text frame")
        };
        let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "resize", "cols": 132, "rows": 43})
        );
    }
}
