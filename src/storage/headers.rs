//! The HTTP header values downloads act on (`Content-Range`, `Retry-After`) and the retry
//! backoff, parsed leniently: a malformed value from a server is `None`, never a panic.

use std::time::Duration;

/// Retry delay after `failures` failures in a row: doubles from `base`, capped at 30 s.
pub(crate) fn backoff(base: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    base.checked_mul(factor)
        .unwrap_or(Duration::MAX)
        .min(Duration::from_secs(30))
}

/// `bytes 100-199/1000` (or `/*`) -> the first byte position.
pub(crate) fn parse_content_range(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, _total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let first: u64 = first.trim().parse().ok()?;
    let last: u64 = last.trim().parse().ok()?;
    (last >= first).then_some(first)
}

/// `bytes */1000` (a 416's Content-Range) -> the full length.
pub(crate) fn parse_unsatisfied_range(v: &str) -> Option<u64> {
    v.trim().strip_prefix("bytes */")?.trim().parse().ok()
}

/// Retry-After in seconds (HTTP dates are rare for downloads; ignored), capped at a minute.
pub(crate) fn retry_after(v: &str) -> Option<Duration> {
    let secs: u64 = v.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_backoff() {
        assert_eq!(backoff(Duration::MAX, 20), Duration::from_secs(30));
        assert_eq!(parse_content_range("bytes 99999999999999999999-1/2"), None);
        assert_eq!(parse_content_range("bytes 100-199/1000"), Some(100));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some(5));
        assert_eq!(parse_content_range("bytes 9-5/10"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_unsatisfied_range("bytes */1000"), Some(1000));
        assert_eq!(retry_after("120"), Some(Duration::from_secs(60)));
        let b = Duration::from_millis(100);
        assert_eq!(backoff(b, 1), b);
        assert_eq!(backoff(b, 3), b * 4);
        assert_eq!(backoff(b, 30), Duration::from_secs(30));
    }
}
