//! Driving a serial console like a person at a terminal: type, wait for text, run a command
//! and read its exit code back.
//!
//! Flow: [`Console::attach`] subscribes to the VM's console (`platform::serial`) and starts
//! from its backlog, so a banner printed before the run began still counts. Output goes
//! through [`Cleaner`] (ANSI escape sequences, `\r` and other control bytes removed, also
//! across chunk boundaries) into a bounded buffer; [`Console::wait`] consumes the buffer up to
//! the end of the first match. [`Console::command`] types
//! `CMD; printf '__HP_%s_%d__\n' NONCE $?` and waits for `__HP_<nonce>_<code>__`: the echo
//! of the typed line never holds that text (the nonce and the code are separate arguments),
//! however the terminal wraps it, so only the shell's own output can match.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use regex::Regex;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::platform::serial::SerialPort;

/// Console text kept while waiting (older text is dropped).
const BUF_MAX: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout { secs: u64, what: String },
    #[error("the console closed (the VM stopped)")]
    Closed,
    #[error("cancelled")]
    Cancelled,
}

/// Strips terminal control sequences from a byte stream, chunk by chunk.
#[derive(Debug, Default)]
pub struct Cleaner {
    state: u8,
    utf8: Vec<u8>,
}

const S_TEXT: u8 = 0;
const S_ESC: u8 = 1;
const S_CSI: u8 = 2;
const S_OSC: u8 = 3;
const S_OSC_ESC: u8 = 4;

impl Cleaner {
    pub fn push(&mut self, data: &[u8]) -> String {
        let mut bytes = std::mem::take(&mut self.utf8);
        for &b in data {
            match self.state {
                S_TEXT => match b {
                    0x1b => self.state = S_ESC,
                    b'\n' | b'\t' => bytes.push(b),
                    0x00..=0x1f | 0x7f => {}
                    _ => bytes.push(b),
                },
                S_ESC => {
                    self.state = match b {
                        b'[' => S_CSI,
                        b']' => S_OSC,
                        _ => S_TEXT,
                    }
                }
                S_CSI => {
                    if (0x40..=0x7e).contains(&b) {
                        self.state = S_TEXT;
                    }
                }
                S_OSC => match b {
                    0x07 => self.state = S_TEXT,
                    0x1b => self.state = S_OSC_ESC,
                    _ => {}
                },
                _ => self.state = if b == b'\\' { S_TEXT } else { S_OSC },
            }
        }
        // Keep an incomplete UTF-8 sequence at the end for the next chunk.
        let cut = match std::str::from_utf8(&bytes) {
            Ok(_) => bytes.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => bytes.len(),
        };
        self.utf8 = bytes.split_off(cut);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// What a wait looks for.
pub enum Pattern {
    Literal(String),
    Regex(Regex),
}

impl Pattern {
    /// The byte range of the first match in `text`.
    pub fn find(&self, text: &str) -> Option<(usize, usize)> {
        match self {
            Pattern::Literal(l) => text.find(l.as_str()).map(|i| (i, i + l.len())),
            Pattern::Regex(r) => r.find(text).map(|m| (m.start(), m.end())),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Pattern::Literal(l) => format!("{l:?}"),
            Pattern::Regex(r) => format!("/{}/", r.as_str()),
        }
    }
}

/// The line typed to run `cmd` with exit-code marker `nonce`.
pub fn command_line(cmd: &str, nonce: &str) -> String {
    format!("{cmd}; printf '__HP_%s_%d__\\n' {nonce} $?\n")
}

/// The marker in `text`: its byte range and the exit code.
pub fn find_marker(text: &str, nonce: &str) -> Option<(usize, usize, i32)> {
    let needle = format!("__HP_{nonce}_");
    let mut from = 0;
    while let Some(i) = text[from..].find(&needle) {
        let start = from + i;
        let rest = &text[start + needle.len()..];
        let digits: usize = rest
            .char_indices()
            .take_while(|(j, c)| c.is_ascii_digit() || (*j == 0 && *c == '-'))
            .map(|(_, c)| c.len_utf8())
            .sum();
        if digits > 0
            && rest[digits..].starts_with("__")
            && let Ok(code) = rest[..digits].parse::<i32>()
        {
            return Some((start, start + needle.len() + digits + 2, code));
        }
        from = start + needle.len();
    }
    None
}

/// The command's output from the text between typing `typed` and its marker: the typed
/// line's echo is dropped, also when the terminal wrapped it (newlines and spaces the
/// terminal added are skipped while matching the echo); when the echo cannot be matched,
/// everything up to the first newline is.
pub fn command_output(before_marker: &str, typed: &str) -> String {
    let want: Vec<char> = typed.trim_end().chars().collect();
    // The echo may follow a late prompt (`/ # `): try each start among the first characters.
    for (start, c) in before_marker.char_indices().take(256) {
        if Some(&c) == want.first()
            && let Some(end) = echo_end(&before_marker[start..], &want)
        {
            let rest = &before_marker[start + end..];
            return match rest.split_once('\n') {
                Some((_, out)) => out.to_string(),
                None => String::new(),
            };
        }
    }
    match before_marker.split_once('\n') {
        Some((_, rest)) => rest.to_string(),
        None => String::new(),
    }
}

/// Where the echo of `want` ends in `text` (which starts with it), skipping the newlines and
/// spaces a wrapping terminal adds; `None` when `text` is not that echo.
fn echo_end(text: &str, want: &[char]) -> Option<usize> {
    let mut k = 0;
    for (i, c) in text.char_indices() {
        if k == want.len() {
            return Some(i);
        }
        if c == want[k] {
            k += 1;
        } else if c != '\n' && c != ' ' {
            return None;
        }
    }
    (k == want.len()).then_some(text.len())
}

pub struct Console {
    port: Arc<dyn SerialPort>,
    rx: broadcast::Receiver<Bytes>,
    cleaner: Cleaner,
    buf: String,
}

impl Console {
    pub fn attach(port: Arc<dyn SerialPort>) -> Console {
        let (backlog, rx) = port.subscribe();
        let mut cleaner = Cleaner::default();
        let buf = cleaner.push(&backlog);
        Console {
            port,
            rx,
            cleaner,
            buf,
        }
    }

    /// Drops what was seen so far (e.g. before a command, so an old marker cannot match).
    pub fn forget(&mut self) {
        self.buf.clear();
    }

    pub async fn send(&self, text: &str) {
        self.port.send(Bytes::copy_from_slice(text.as_bytes())).await;
    }

    async fn more(&mut self, deadline: Instant) -> Result<bool, ConsoleError> {
        let closed = self.port.closed();
        tokio::select! {
            r = self.rx.recv() => match r {
                Ok(b) => {
                    let t = self.cleaner.push(&b);
                    self.buf.push_str(&t);
                    if self.buf.len() > BUF_MAX {
                        let mut cut = self.buf.len() - BUF_MAX;
                        while !self.buf.is_char_boundary(cut) {
                            cut += 1;
                        }
                        self.buf.drain(..cut);
                    }
                    Ok(true)
                }
                Err(broadcast::error::RecvError::Lagged(_)) => Ok(true),
                Err(broadcast::error::RecvError::Closed) => Err(ConsoleError::Closed),
            },
            _ = closed.cancelled() => Err(ConsoleError::Closed),
            _ = tokio::time::sleep_until(deadline) => Ok(false),
        }
    }

    /// Waits for `p`; returns the text consumed (up to the match's end).
    pub async fn wait(&mut self, p: &Pattern, timeout: Duration) -> Result<String, ConsoleError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((_, end)) = p.find(&self.buf) {
                let seen: String = self.buf.drain(..end).collect();
                return Ok(seen);
            }
            if !self.more(deadline).await? {
                return Err(ConsoleError::Timeout {
                    secs: timeout.as_secs(),
                    what: p.describe(),
                });
            }
        }
    }

    /// Runs `cmd` in the guest's shell; its exit code and output (echo dropped). On a timeout
    /// the command is interrupted (Ctrl-C).
    pub async fn command(
        &mut self,
        cmd: &str,
        timeout: Duration,
    ) -> Result<(i32, String), ConsoleError> {
        let nonce = nonce();
        self.forget();
        let line = command_line(cmd, &nonce);
        self.send(&line).await;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((start, end, code)) = find_marker(&self.buf, &nonce) {
                let out = command_output(&self.buf[..start], &line);
                self.buf.drain(..end);
                return Ok((code, out));
            }
            if !self.more(deadline).await? {
                self.send("\x03").await;
                return Err(ConsoleError::Timeout {
                    secs: timeout.as_secs(),
                    what: "the command to finish".into(),
                });
            }
        }
    }

    /// What is buffered and not consumed (for a failure's log).
    pub fn pending(&self) -> &str {
        &self.buf
    }
}

fn nonce() -> String {
    let mut raw = [0u8; 6];
    getrandom::fill(&mut raw).expect("the OS random source works");
    hex::encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_in_wrapped_output_and_never_in_the_echo() {
        let nonce = "a1b2c3d4e5f6";
        let line = command_line("wget -q -O /tmp/kit.tar http://10.0.2.2:8080/api/v1/provisioning/fetch/0123456789abcdef0123456789abcdef && sha256sum -c /tmp/kit.sum", nonce);
        // The echo wrapped at 80 columns by the terminal (ash redraws with `\r` and escapes).
        let mut echo = String::new();
        for (i, c) in line.trim_end().chars().enumerate() {
            if i > 0 && i % 80 == 0 {
                echo.push_str(" \r\x1b[K\n");
            }
            echo.push(c);
        }
        let captured = format!("{echo}\r\n/tmp/kit.tar: OK\r\n__HP_{nonce}_1__\r\n# ");
        let mut cl = Cleaner::default();
        // Fed in small chunks that split escapes and the marker.
        let text: String = captured
            .as_bytes()
            .chunks(7)
            .map(|c| cl.push(c))
            .collect();
        assert!(find_marker(&echo, nonce).is_none());
        let (start, end, code) = find_marker(&text, nonce).unwrap();
        assert_eq!(code, 1);
        assert_eq!(&text[end..], "\n# ");
        assert_eq!(command_output(&text[..start], &line), "/tmp/kit.tar: OK\n");
        assert_eq!(command_output("garbled\nout\n", &line), "out\n");
        // A prompt that arrived late, before the echo.
        let late = format!("/ # {}\nout\n", line.trim_end());
        assert_eq!(command_output(&late, &line), "out\n");
    }

    #[test]
    fn marker_edge_cases() {
        assert_eq!(find_marker("__HP_n_127__", "n").map(|m| m.2), Some(127));
        assert_eq!(find_marker("__HP_n_-1__", "n").map(|m| m.2), Some(-1));
        // An unfinished marker, then a finished one; another nonce never matches.
        assert_eq!(
            find_marker("__HP_n_%d__ __HP_n_4 __HP_n_3__", "n").map(|m| m.2),
            Some(3)
        );
        assert!(find_marker("__HP_m_0__", "n").is_none());
        assert!(find_marker("__HP_n_12", "n").is_none());
    }

    #[test]
    fn cleaner_strips_sequences_across_chunks_and_keeps_utf8() {
        let mut c = Cleaner::default();
        let mut s = c.push(b"a\x1b[3");
        s += &c.push(b"1mb\x1b]0;title\x07c\r\n\xc3");
        s += &c.push(b"\xa9");
        assert_eq!(s, "abc\n\u{e9}");
    }
}
