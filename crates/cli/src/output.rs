//! Human output (borderless comfy-table tables) and machine output (pretty JSON).

use std::io::{IsTerminal, Write};

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use serde::Serialize;

use crate::client::JsonAnswer;

pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

/// A table with these column names, kubectl style: no borders, two spaces between columns.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    // Wrap to the terminal, when there is one of a sensible width.
    if stdout_is_tty() && t.width().is_some_and(|w| w >= 40) {
        t.set_content_arrangement(ContentArrangement::Dynamic);
    } else {
        t.force_no_tty()
            .set_content_arrangement(ContentArrangement::Disabled);
    }
    if !header.is_empty() {
        t.set_header(header.to_vec());
    }
    t
}

/// A two-column KEY VALUE table, for one object.
pub fn fields(rows: Vec<(&str, String)>) -> Table {
    let mut t = table(&[]);
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    t
}

/// The table's lines: two spaces between columns, none at either end.
pub fn render(mut t: Table) -> Vec<String> {
    let n = t.column_count();
    for (i, col) in t.column_iter_mut().enumerate() {
        col.set_padding((0, if i + 1 == n { 0 } else { 2 }));
        col.set_cell_alignment(CellAlignment::Left);
    }
    t.lines().map(|l| l.trim_end().to_string()).collect()
}

pub fn print_table(t: Table) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for line in render(t) {
        writeln!(out, "{line}")?;
    }
    out.flush()
}

/// The API's JSON as it came (key order kept), indented.
pub fn print_json(answer: &JsonAnswer) -> anyhow::Result<()> {
    let text = pretty_json(&answer.raw)
        .unwrap_or_else(|| String::from_utf8_lossy(&answer.raw).trim().to_string());
    println(&text)?;
    Ok(())
}

/// Re-indents JSON text like `serde_json::to_string_pretty`, keeping its key order (a
/// `serde_json::Value` would sort the keys). None when `raw` is not JSON.
pub fn pretty_json(raw: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde::de::IgnoredAny>(raw).ok()?;
    let text = std::str::from_utf8(raw).ok()?;
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let (mut in_str, mut escaped) = (false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|n| n.is_ascii_whitespace()) {
                    chars.next();
                }
                if chars.peek().is_some_and(|&n| n == '}' || n == ']') {
                    out.extend(chars.next());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

pub fn println(s: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}")?;
    out.flush()
}

/// `2026-11-24T09:00:00.000Z` → `2026-11-24T09:00:00Z`; None → `-`.
pub fn time(t: Option<&str>) -> String {
    match t {
        None => "-".into(),
        Some(s) => match (s.find('.'), s.ends_with('Z')) {
            (Some(dot), true) => format!("{}Z", &s[..dot]),
            _ => s.to_string(),
        },
    }
}

/// The wire name of a serde enum value (`Role::Admin` → `admin`).
pub fn name(v: &impl Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// Bytes for people, binary units: `512 B`, `1.5 KiB`, `256.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// An optional value, `-` when absent.
pub fn opt(v: Option<impl std::fmt::Display>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// `yes` / `no`.
pub fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// A list joined with commas, `-` when empty.
pub fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

/// Scopes as shown: empty means all areas.
pub fn scopes(s: &[String]) -> String {
    if s.is_empty() {
        "all".into()
    } else {
        s.join(",")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_lose_their_fraction() {
        assert_eq!(
            super::time(Some("2026-11-24T09:00:00.123Z")),
            "2026-11-24T09:00:00Z"
        );
        assert_eq!(
            super::time(Some("2026-11-24T09:00:00Z")),
            "2026-11-24T09:00:00Z"
        );
        assert_eq!(super::time(None), "-");
    }

    #[test]
    fn pretty_json_keeps_key_order() {
        let raw =
            br#"{"user":"root","role":"admin","scopes":[],"x":{"b":[1,{"a":"q\"}{,:"}]},"e":{}}"#;
        let want = r#"{
  "user": "root",
  "role": "admin",
  "scopes": [],
  "x": {
    "b": [
      1,
      {
        "a": "q\"}{,:"
      }
    ]
  },
  "e": {}
}"#;
        assert_eq!(super::pretty_json(raw).unwrap(), want);
        // Same as serde_json's pretty printer, apart from key order.
        let v: serde_json::Value = serde_json::from_slice(raw).unwrap();
        let ours: serde_json::Value = serde_json::from_str(want).unwrap();
        assert_eq!(v, ours);
        assert_eq!(super::pretty_json(b"[ ]").unwrap(), "[]");
        assert_eq!(super::pretty_json(b" 42 ").unwrap(), "42");
        assert!(super::pretty_json(b"{nope").is_none());
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(256 << 20), "256.0 MiB");
        assert_eq!(super::bytes(3 << 40), "3.0 TiB");
    }

    #[test]
    fn tables_have_no_borders() {
        let mut t = super::table(&["ID", "NAME"]);
        t.add_row(vec!["1", "first"]);
        t.add_row(vec!["22", "second"]);
        assert_eq!(super::render(t), ["ID  NAME", "1   first", "22  second"]);
        let kv = super::fields(vec![("USER", "root".into()), ("ROLE", "admin".into())]);
        assert_eq!(super::render(kv), ["USER  root", "ROLE  admin"]);
    }
}
