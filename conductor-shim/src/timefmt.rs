//! Timestamps: UTC, RFC 3339.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The current UTC time.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Formats a timestamp as RFC 3339 (`2026-01-02T03:04:05.123456Z`).
pub fn format(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parses an RFC 3339 timestamp.
pub fn parse(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t = now();
        let s = format(t);
        assert!(s.ends_with('Z'), "{s}");
        assert_eq!(parse(&s).unwrap(), t);
    }
}
