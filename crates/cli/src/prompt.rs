//! Reading a username or a password: hidden on the terminal, a plain line from stdin otherwise.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::fd::AsRawFd;

use anyhow::{Context, bail};

/// One line from stdin, without its line ending (`--password-stdin`).
pub fn stdin_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("reading the {what} from stdin"))?;
    let line = trim_eol(line);
    if line.is_empty() {
        bail!("no {what} on stdin");
    }
    Ok(line)
}

fn trim_eol(mut s: String) -> String {
    while s.ends_with(['\n', '\r']) {
        s.pop();
    }
    s
}

pub fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks on the terminal with echo; None without a terminal.
pub fn ask(question: &str) -> anyhow::Result<Option<String>> {
    if !stdin_is_tty() {
        return Ok(None);
    }
    let Ok(tty) = open_tty() else {
        return Ok(None);
    };
    (&tty).write_all(question.as_bytes())?;
    let mut line = String::new();
    BufReader::new(&tty).read_line(&mut line)?;
    Ok(Some(trim_eol(line).trim().to_string()))
}

/// A password: asked without echo when stdin is a terminal, else one line of stdin.
pub fn password(question: &str) -> anyhow::Result<String> {
    if !stdin_is_tty() {
        return stdin_line("password");
    }
    let tty = open_tty().context("opening the terminal")?;
    let pw = read_hidden(&tty, question)?;
    if pw.is_empty() {
        bail!("no password given");
    }
    Ok(pw)
}

/// A new password, asked twice on a terminal.
pub fn new_password() -> anyhow::Result<String> {
    let first = password("New password: ")?;
    if stdin_is_tty() && password("Repeat it: ")? != first {
        bail!("the passwords differ");
    }
    Ok(first)
}

fn open_tty() -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).open("/dev/tty")
}

/// Restores the terminal mode when dropped.
struct EchoOff<'a> {
    tty: &'a File,
    saved: libc::termios,
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        // SAFETY: valid fd and a termios obtained from tcgetattr.
        unsafe { libc::tcsetattr(self.tty.as_raw_fd(), libc::TCSANOW, &self.saved) };
    }
}

fn read_hidden(tty: &File, question: &str) -> anyhow::Result<String> {
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut term) } != 0 {
        return Err(std::io::Error::last_os_error()).context("reading the terminal mode");
    }
    let guard = EchoOff { tty, saved: term };
    term.c_lflag &= !libc::ECHO;
    term.c_lflag |= libc::ECHONL;
    // SAFETY: valid fd and termios.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) } != 0 {
        return Err(std::io::Error::last_os_error()).context("turning off the echo");
    }
    (&*guard.tty).write_all(question.as_bytes())?;
    let mut line = String::new();
    BufReader::new(guard.tty).read_line(&mut line)?;
    drop(guard);
    Ok(trim_eol(line))
}
