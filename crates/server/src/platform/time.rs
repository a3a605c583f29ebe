//! Timestamps: RFC 3339 UTC with exactly three fraction digits, so string order is time order.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub fn format(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

pub fn now_string() -> String {
    format(now())
}

pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn fixed_width_and_parseable() {
        let t = time::macros::datetime!(2026-11-24 09:00:00 UTC);
        let s = super::format(t);
        assert_eq!(s, "2026-11-24T09:00:00.000Z");
        assert_eq!(super::parse(&s), Some(t));
    }
}
