//! Human output (borderless comfy-table tables) and machine output (pretty JSON).

use std::io::{IsTerminal, Write};

use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use serde::Serialize;

pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}

/// A table with these column names, kubectl style: no borders, two spaces between columns.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    if stdout_is_tty() {
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

pub fn print_json(v: &impl Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
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
    fn tables_have_no_borders() {
        let mut t = super::table(&["ID", "NAME"]);
        t.add_row(vec!["1", "first"]);
        t.add_row(vec!["22", "second"]);
        assert_eq!(super::render(t), ["ID  NAME", "1   first", "22  second"]);
        let kv = super::fields(vec![("USER", "root".into()), ("ROLE", "admin".into())]);
        assert_eq!(super::render(kv), ["USER  root", "ROLE  admin"]);
    }
}
