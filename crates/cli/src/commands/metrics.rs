//! `metrics show METRIC --since 1h` and `metrics series` over `/api/v1/metrics`: the history
//! as a table of series with their last, average and maximum values and a sparkline.

use hostplane_types::metrics::{RangeResponse, SeriesInfo};

use super::{Ctx, api};
use crate::client::with_query;
use crate::output;

#[derive(Debug, clap::Subcommand)]
pub enum MetricsCmd {
    /// One metric over a time span, as sparklines (cpu, memory, load, or a full name such as
    /// network_receive_bytes_per_second).
    Show {
        /// cpu, memory, load, pressure, or a metric name (`metrics series` lists them).
        metric: String,
        /// How far back: 30m, 1h, 1d, 1w, 30d, 1y.
        #[arg(long, default_value = "1h")]
        since: String,
        /// Label matchers, e.g. device=eth0.
        #[arg(long = "match", value_name = "LABEL=VALUE")]
        matchers: Option<String>,
        /// Each point's maximum instead of its average.
        #[arg(long)]
        max: bool,
        /// Points per sparkline.
        #[arg(long, default_value_t = 60)]
        width: u32,
    },
    /// The series the history holds.
    Series,
}

/// Short names for the usual metrics.
fn metric_name(s: &str) -> &str {
    match s {
        "cpu" => "cpu_busy_percent",
        "memory" | "mem" => "memory_used_bytes",
        "load" => "load1",
        "pressure" => "pressure_cpu_some_percent",
        other => other,
    }
}

/// `30m`, `1h`, `2d`, `1w`, `1y` in seconds.
pub fn parse_span(s: &str) -> anyhow::Result<u64> {
    let i = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..i]
        .parse()
        .map_err(|_| anyhow::anyhow!("{s:?}: a span is a number and s, m, h, d, w or y"))?;
    let mult = match &s[i..] {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        "y" => 31_536_000,
        _ => anyhow::bail!("{s:?}: a span is a number and s, m, h, d, w or y"),
    };
    Ok(n * mult)
}

/// Values as a line of ▁▂▃▄▅▆▇█ between their minimum and maximum.
pub fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    values
        .iter()
        .map(|&v| {
            if hi - lo <= f64::EPSILON {
                BARS[0]
            } else {
                BARS[(((v - lo) / (hi - lo)) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

fn human(name: &str, v: f64) -> String {
    if name.ends_with("_bytes") {
        output::bytes(v.max(0.0) as u64)
    } else if name.ends_with("_bytes_per_second") {
        format!("{}/s", output::bytes(v.max(0.0) as u64))
    } else if name.ends_with("_percent") {
        format!("{v:.1}%")
    } else {
        format!("{v:.2}")
    }
}

pub async fn run(ctx: &Ctx, cmd: MetricsCmd) -> anyhow::Result<i32> {
    match cmd {
        MetricsCmd::Series => {
            let answer = ctx.client.get(&api("/metrics/series")).await?;
            if ctx.json {
                output::print_json(&answer)?;
                return Ok(0);
            }
            let list: Vec<SeriesInfo> = answer.parse()?;
            for s in list {
                let name = s.metric.get("__name__").cloned().unwrap_or_default();
                let labels: Vec<String> = s
                    .metric
                    .iter()
                    .filter(|(k, _)| *k != "__name__")
                    .map(|(k, v)| format!("{k}=\"{v}\""))
                    .collect();
                if labels.is_empty() {
                    output::println(&name)?;
                } else {
                    output::println(&format!("{name}{{{}}}", labels.join(",")))?;
                }
            }
            Ok(0)
        }
        MetricsCmd::Show {
            metric,
            since,
            matchers,
            max,
            width,
        } => {
            let span = parse_span(&since)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            let step = (span / u64::from(width.max(1))).max(1);
            let name = metric_name(&metric).to_string();
            let path = with_query(
                &api("/metrics/query_range"),
                &[
                    ("metric", Some(name.clone())),
                    ("match", matchers),
                    ("start", Some((now - span).to_string())),
                    ("end", Some(now.to_string())),
                    ("step", Some(step.to_string())),
                    ("agg", max.then(|| "max".to_string())),
                ],
            );
            let answer = ctx.client.get(&path).await?;
            if ctx.json {
                output::print_json(&answer)?;
                return Ok(0);
            }
            let r: RangeResponse = answer.parse()?;
            if r.data.result.is_empty() {
                eprintln!("no points for {name} in the last {since}");
                return Ok(0);
            }
            for s in r.data.result {
                let values: Vec<f64> = s
                    .values
                    .iter()
                    .filter_map(|(_, v)| v.parse().ok())
                    .collect();
                let labels: Vec<String> = s
                    .metric
                    .iter()
                    .filter(|(k, _)| *k != "__name__")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let last = values.last().copied().unwrap_or(0.0);
                let avg = values.iter().sum::<f64>() / values.len().max(1) as f64;
                let peak = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                output::println(&format!(
                    "{name}{}  last {}  avg {}  max {}",
                    if labels.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", labels.join(" "))
                    },
                    human(&name, last),
                    human(&name, avg),
                    human(&name, peak),
                ))?;
                output::println(&format!("  {}", sparkline(&values)))?;
            }
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_sparklines() {
        assert_eq!(parse_span("1h").unwrap(), 3600);
        assert_eq!(parse_span("30m").unwrap(), 1800);
        assert_eq!(parse_span("1y").unwrap(), 31_536_000);
        assert!(parse_span("h").is_err());
        assert!(parse_span("1x").is_err());
        assert_eq!(sparkline(&[0.0, 50.0, 100.0]), "▁▅█");
        assert_eq!(sparkline(&[3.0, 3.0]), "▁▁");
        assert_eq!(metric_name("cpu"), "cpu_busy_percent");
    }
}
