//! Words for times, as either face shows them.

/// A Unix time (seconds) as "3 minutes ago" and similar.
pub fn ago(then: i64, now: i64) -> String {
    let secs = (now - then).max(0);
    match secs {
        0..=59 => "just now".into(),
        60..=3599 => plural(secs / 60, "minute"),
        3600..=86_399 => plural(secs / 3600, "hour"),
        _ => plural(secs / 86_400, "day"),
    }
}

/// A Unix time (milliseconds) as the day it fell on, in UTC: "4 December",
/// with the year when it is not the year of `now_ms`.
pub fn day(at_ms: i64, now_ms: i64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let civil = |ms: i64| crate::plan::calendar::civil_from_days(ms.div_euclid(86_400_000));
    let (year, month, d) = civil(at_ms);
    let month = MONTHS[(month as usize).saturating_sub(1).min(11)];
    if year == civil(now_ms).0 { format!("{d} {month}") } else { format!("{d} {month} {year}") }
}

/// A Unix time (milliseconds) as a clock time in UTC: "14:02 UTC", with
/// the day when it is not the day of `now_ms` ("14:02 UTC on 3 December").
pub fn moment(at_ms: i64, now_ms: i64) -> String {
    let minutes = at_ms.div_euclid(60_000).rem_euclid(24 * 60);
    let clock = format!("{:02}:{:02} UTC", minutes / 60, minutes % 60);
    if at_ms.div_euclid(86_400_000) == now_ms.div_euclid(86_400_000) {
        clock
    } else {
        format!("{clock} on {}", day(at_ms, now_ms))
    }
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 { format!("1 {unit} ago") } else { format!("{n} {unit}s ago") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(ago(100, 100), "just now");
        assert_eq!(ago(0, 60), "1 minute ago");
        assert_eq!(ago(0, 7200), "2 hours ago");
        assert_eq!(ago(0, 3 * 86_400), "3 days ago");
        assert_eq!(ago(100, 50), "just now");
    }

    #[test]
    fn days_read_naturally() {
        // 2026-12-04 and 2025-01-31, UTC.
        let (december, january) = (1_796_342_400_000, 1_738_281_600_000);
        assert_eq!(day(december + 3_600_000, december), "4 December");
        assert_eq!(day(january, december), "31 January 2025");
    }

    #[test]
    fn moments_read_naturally() {
        let december = 1_796_342_400_000;
        let at = december + (14 * 60 + 2) * 60_000 + 59_000;
        assert_eq!(moment(at, december + 86_399_000), "14:02 UTC");
        assert_eq!(moment(at, december + 86_400_000), "14:02 UTC on 4 December");
    }
}
