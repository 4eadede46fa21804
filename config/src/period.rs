//! Calendar quota periods (UTC) and day numbers.
//!
//! API Gateway usage plans cap a key at `limit` requests per DAY, WEEK or MONTH. The periods
//! are calendar-aligned in UTC (not rolling windows): a day starts at 00:00 UTC, a week on
//! Monday 00:00 UTC (ISO 8601), a month on the 1st at 00:00 UTC. AWS's `QuotaSettings.offset`
//! is "the number of requests subtracted from the given limit in the initial time period";
//! here the initial period is the one containing `origin`, the moment the plan (or the key's
//! association) started counting.
//!
//! Month arithmetic needs a calendar. Rather than pull in a date crate for four functions,
//! this module implements Howard Hinnant's `days_from_civil` / `civil_from_days`
//! (proleptic Gregorian calendar, day 0 = 1970-01-01), computed in `i128` so that no `i64`
//! input can overflow or panic; results that do not fit in `i64` saturate.
//!
//! Times are unix seconds (`i64`, negative before 1970) passed in by the caller.

/// Seconds in a day.
const DAY_SECS: i64 = 86_400;
/// Days from 0000-03-01 to 1970-01-01 (Hinnant's shift).
const EPOCH_SHIFT: i128 = 719_468;
/// Days in a 400-year Gregorian era.
const ERA_DAYS: i128 = 146_097;

/// A quota period, calendar-aligned in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// A UTC calendar day, starting 00:00:00 UTC.
    Day,
    /// An ISO 8601 week, starting Monday 00:00:00 UTC.
    Week,
    /// A calendar month, starting on the 1st at 00:00:00 UTC.
    Month,
}

impl Period {
    /// Parses the AWS name: exactly `"DAY"`, `"WEEK"` or `"MONTH"` (uppercase).
    pub fn from_name(s: &str) -> Option<Period> {
        match s {
            "DAY" => Some(Period::Day),
            "WEEK" => Some(Period::Week),
            "MONTH" => Some(Period::Month),
            _ => None,
        }
    }

    /// The AWS name: `"DAY"`, `"WEEK"` or `"MONTH"`.
    pub fn name(self) -> &'static str {
        match self {
            Period::Day => "DAY",
            Period::Week => "WEEK",
            Period::Month => "MONTH",
        }
    }

    /// Start (unix seconds) of the period containing `unix_secs`.
    pub fn start(self, unix_secs: i64) -> i64 {
        let day = day_number(unix_secs);
        let start_day = match self {
            Period::Day => day,
            // 1970-01-01 was a Thursday: (day + 3) mod 7 is days since Monday.
            Period::Week => day - (day + 3).rem_euclid(7),
            Period::Month => {
                let (y, m, _) = civil_from_days(day);
                days_from_civil(y, m, 1)
            }
        };
        start_day.saturating_mul(DAY_SECS)
    }

    /// Start of the next period after the one starting at/containing `unix_secs`.
    /// Saturates at `i64::MAX` (some 292 billion years away).
    pub fn next_start(self, unix_secs: i64) -> i64 {
        let start = self.start(unix_secs);
        match self {
            Period::Day => start.saturating_add(DAY_SECS),
            Period::Week => start.saturating_add(7 * DAY_SECS),
            Period::Month => {
                let (y, m, _) = civil_from_days(day_number(start));
                // Month 13 normalizes to January of the next year.
                days_from_civil(y, m + 1, 1).saturating_mul(DAY_SECS)
            }
        }
    }
}

/// A usage plan's quota: `limit` requests per `period`, minus `offset` in the initial period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSpec {
    /// Requests allowed per period.
    pub limit: u64,
    /// The calendar period the limit applies to.
    pub period: Period,
    /// Requests subtracted from `limit` in the initial period (the one containing the origin).
    pub offset: u64,
}

impl QuotaSpec {
    /// Requests allowed in the period starting at `period_start` (any instant inside the
    /// period works), given that counting began at `origin` (unix seconds):
    /// `limit - offset` (saturating at 0) in the period containing `origin`, `limit` in every
    /// later period. A period before the origin's (only reachable through clock skew) is
    /// treated like the initial period, i.e. the stricter value.
    pub fn allowance(&self, period_start: i64, origin: i64) -> u64 {
        if self.period.start(period_start) <= self.period.start(origin) {
            self.limit.saturating_sub(self.offset)
        } else {
            self.limit
        }
    }
}

/// Days since 1970-01-01 (UTC) of a unix time (floor, negative before 1970).
pub fn day_number(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(DAY_SECS)
}

/// `"YYYY-MM-DD"` of a day number. Years outside 0..=9999 get an explicit sign and at least
/// four digits (ISO 8601 expanded form, e.g. `"+10000-01-01"`, `"-0001-12-31"`), which
/// [`parse_day`] does not accept.
pub fn format_day(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    if (0..=9999).contains(&y) {
        format!("{y:04}-{m:02}-{d:02}")
    } else {
        format!("{y:+05}-{m:02}-{d:02}")
    }
}

/// Parses `"YYYY-MM-DD"` (strict: exactly 4-2-2 ASCII digits, a real calendar date) to a day
/// number.
pub fn parse_day(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let y = i64::from(y);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Whether `y` is a Gregorian leap year.
fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Days in month `m` (1-12) of year `y`.
fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Saturating `i128` to `i64`.
fn sat_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// (year, month 1-12, day 1-31) of a day number (Hinnant's `civil_from_days`).
pub fn civil_from_days(day: i64) -> (i64, u32, u32) {
    let z = i128::from(day) + EPOCH_SHIFT;
    let era = z.div_euclid(ERA_DAYS);
    let doe = z - era * ERA_DAYS; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], March-based
    let mp = (5 * doy + 2) / 153; // [0, 11], 0 = March
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = yoe + era * 400 + i128::from(m <= 2);
    // m and d are within 1..=31, so the conversions cannot fail; year fits i64 for any i64 day.
    (
        sat_i64(y),
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// Day number of (year, month, day) (Hinnant's `days_from_civil`), and the inverse of
/// [`civil_from_days`] for real dates.
///
/// Out-of-range values roll over arithmetically rather than fail: month 13 is January of the
/// next year (month 0 December of the previous one), day 0 is the last day of the previous
/// month, day 32 of January is February 1st. Saturates at the `i64` bounds.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    // Normalize the month into 1..=12, carrying whole years.
    let m0 = i128::from(m) - 1;
    let y = i128::from(y) + m0.div_euclid(12);
    let m = m0.rem_euclid(12) + 1;
    let y = if m <= 2 { y - 1 } else { y }; // March-based year
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = if m > 2 { m - 3 } else { m + 9 }; // [0, 11]
    let doy = (153 * mp + 2) / 5 + i128::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    sat_i64(era * ERA_DAYS + doe - EPOCH_SHIFT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Unix seconds of a "YYYY-MM-DD" date plus h:m:s (test helper).
    fn at(date: &str, h: i64, mi: i64, s: i64) -> i64 {
        parse_day(date).expect("valid date") * DAY_SECS + h * 3600 + mi * 60 + s
    }

    #[test]
    fn names() {
        for p in [Period::Day, Period::Week, Period::Month] {
            assert_eq!(Period::from_name(p.name()), Some(p));
        }
        assert_eq!(Period::from_name("day"), None);
        assert_eq!(Period::from_name("YEAR"), None);
        assert_eq!(Period::from_name(" DAY"), None);
    }

    #[test]
    fn known_day_numbers() {
        // Expectations from `date -u -d DATE +%s` / 86400 on the build machine.
        for (s, day) in [
            ("1970-01-01", 0),
            ("2026-11-25", 20_782),
            ("2025-11-25", 20_417),
            ("2000-02-29", 11_016),
            ("2024-03-01", 19_783),
            ("1900-01-01", -25_567),
            ("1969-12-31", -1),
            ("1600-03-01", -135_080),
        ] {
            assert_eq!(parse_day(s), Some(day), "{s}");
            assert_eq!(format_day(day), s);
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(civil_from_days(20_782), (2026, 11, 25));
        assert_eq!(day_number(1_795_564_800), 20_782);
        assert_eq!(day_number(-1), -1);
        assert_eq!(day_number(-86_400), -1);
        assert_eq!(day_number(-86_401), -2);
    }

    #[test]
    fn month_and_year_ends() {
        let jan31 = at("2026-01-31", 12, 0, 0);
        assert_eq!(jan31, 1_769_860_800);
        assert_eq!(Period::Day.next_start(jan31), 1_769_904_000); // 2026-02-01
        assert_eq!(Period::Month.start(jan31), at("2026-01-01", 0, 0, 0));
        assert_eq!(Period::Month.next_start(jan31), 1_769_904_000);
        let dec31 = at("2026-12-31", 23, 59, 59);
        assert_eq!(dec31, 1_798_761_599);
        assert_eq!(Period::Day.next_start(dec31), 1_798_761_600); // 2027-01-01
        assert_eq!(Period::Month.next_start(dec31), 1_798_761_600);
        assert_eq!(Period::Month.start(dec31), at("2026-12-01", 0, 0, 0));
        assert_eq!(Period::Month.start(1_798_761_600), 1_798_761_600);
        assert_eq!(days_from_civil(2026, 13, 1), days_from_civil(2027, 1, 1));
        assert_eq!(days_from_civil(2026, 0, 1), days_from_civil(2025, 12, 1));
        assert_eq!(days_from_civil(2026, 1, 32), days_from_civil(2026, 2, 1));
        assert_eq!(days_from_civil(2026, 3, 0), days_from_civil(2026, 2, 28));
    }

    #[test]
    fn leap_years() {
        let feb29 = parse_day("2024-02-29").expect("leap day");
        let t = feb29 * DAY_SECS + 3_600;
        assert_eq!(Period::Month.start(t), 1_706_745_600); // 2024-02-01
        assert_eq!(Period::Month.next_start(t), 1_709_251_200); // 2024-03-01
        assert_eq!(Period::Day.next_start(t), 1_709_251_200);
        assert_eq!(parse_day("2100-02-29"), None);
        assert_eq!(parse_day("2023-02-29"), None);
        assert_eq!(parse_day("2000-02-29"), Some(11_016));
        assert_eq!(format_day(feb29), "2024-02-29");
    }

    #[test]
    fn weeks_start_on_monday() {
        let wed = at("2026-11-25", 15, 30, 0);
        assert_eq!(Period::Week.start(wed), 1_795_392_000); // Mon 2026-11-23
        assert_eq!(Period::Week.next_start(wed), 1_795_392_000 + 7 * DAY_SECS);
        assert_eq!(Period::Week.start(1_795_392_000), 1_795_392_000);
        assert_eq!(
            Period::Week.start(1_795_392_000 - 1),
            1_795_392_000 - 7 * DAY_SECS
        );
        let sunday_end = 1_795_996_799; // Sun 2026-11-29 23:59:59
        assert_eq!(Period::Week.start(sunday_end), 1_795_392_000);
        assert_eq!(Period::Week.next_start(sunday_end), sunday_end + 1);
    }

    #[test]
    fn before_1970() {
        assert_eq!(Period::Day.start(-1), -86_400);
        assert_eq!(Period::Week.start(-1), -259_200); // Mon 1969-12-29
        assert_eq!(Period::Month.start(-1), -2_678_400); // 1969-12-01
        assert_eq!(Period::Month.next_start(-1), 0);
        assert_eq!(Period::Month.start(-2_678_401), at("1969-11-01", 0, 0, 0));
        assert_eq!(Period::Week.start(-2_678_401), at("1969-11-24", 0, 0, 0));
        assert_eq!(format_day(-25_567), "1900-01-01");
        assert_eq!(format_day(days_from_civil(-1, 12, 31)), "-0001-12-31");
        assert_eq!(format_day(days_from_civil(10_000, 1, 1)), "+10000-01-01");
    }

    #[test]
    fn offset_only_in_initial_period() {
        let q = QuotaSpec {
            limit: 1_000,
            period: Period::Month,
            offset: 300,
        };
        let origin = at("2026-11-17", 10, 0, 0);
        assert_eq!(q.allowance(Period::Month.start(origin), origin), 700);
        assert_eq!(q.allowance(at("2026-11-30", 23, 59, 59), origin), 700);
        let next = Period::Month.next_start(origin);
        assert_eq!(q.allowance(next, origin), 1_000);
        assert_eq!(q.allowance(Period::Month.next_start(next), origin), 1_000);
        assert_eq!(q.allowance(at("2026-10-31", 0, 0, 0), origin), 700);
        let over = QuotaSpec { offset: 5_000, ..q };
        assert_eq!(over.allowance(origin, origin), 0);
        assert_eq!(over.allowance(next, origin), 1_000);
        let weekly = QuotaSpec {
            period: Period::Week,
            ..q
        };
        assert_eq!(weekly.allowance(at("2026-11-22", 23, 0, 0), origin), 700);
        assert_eq!(weekly.allowance(at("2026-11-23", 0, 0, 0), origin), 1_000);
    }

    #[test]
    fn parse_is_strict() {
        for bad in [
            "2026-1-05",
            "2026-01-5",
            " 2026-01-05",
            "2026-01-05 ",
            "2026/01/05",
            "2026-13-01",
            "2026-00-10",
            "2026-01-00",
            "2026-04-31",
            "+026-01-01",
            "2026-0a-01",
            "",
            "20260105",
            "2026-01-０5",
        ] {
            assert_eq!(parse_day(bad), None, "{bad:?}");
        }
        assert_eq!(parse_day("0000-01-01"), Some(days_from_civil(0, 1, 1)));
        assert_eq!(
            parse_day("9999-12-31").map(format_day).as_deref(),
            Some("9999-12-31")
        );
    }

    #[test]
    fn matches_day_by_day_calendar_walk() {
        // Independent check: walk the calendar one day at a time from 1890-01-01.
        let (mut y, mut m, mut d) = (1890i64, 1u32, 1u32);
        let first = days_from_civil(y, m, d);
        assert_eq!(first, -29_219); // `date -u -d 1890-01-01 +%s` / 86400
        for day in first..first + 200 * 366 {
            assert_eq!(civil_from_days(day), (y, m, d));
            assert_eq!(days_from_civil(y, m, d), day);
            d += 1;
            if d > days_in_month(y, m) {
                (d, m) = (1, m + 1);
                if m > 12 {
                    (m, y) = (1, y + 1);
                }
            }
        }
    }

    #[test]
    fn extremes_do_not_panic() {
        for t in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
            for p in [Period::Day, Period::Week, Period::Month] {
                assert!(p.start(t) <= t);
                assert!(p.next_start(t) >= p.start(t));
            }
            let _ = format_day(t);
            let (y, m, d) = civil_from_days(t);
            assert_eq!(days_from_civil(y, m, d), t);
        }
        assert_eq!(days_from_civil(i64::MAX, 12, 31), i64::MAX);
        assert_eq!(days_from_civil(i64::MIN, 1, 1), i64::MIN);
    }

    fn period() -> impl Strategy<Value = Period> {
        prop_oneof![Just(Period::Day), Just(Period::Week), Just(Period::Month)]
    }

    proptest! {
        #[test]
        fn start_and_next_start_bracket(p in period(), t in -1i64 << 40..1i64 << 40) {
            let (s, n) = (p.start(t), p.next_start(t));
            prop_assert!(s <= t && t < n, "{} {} {} {}", p.name(), s, t, n);
            prop_assert_eq!(p.start(n), n);
            prop_assert_eq!(p.start(s), s);
            prop_assert_eq!(p.next_start(s), n);
            prop_assert_eq!(p.start(n - 1), s);
            prop_assert_eq!(s.rem_euclid(DAY_SECS), 0);
        }

        #[test]
        fn civil_round_trip(day in -1i64 << 40..1i64 << 40) {
            let (y, m, d) = civil_from_days(day);
            prop_assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            prop_assert_eq!(days_from_civil(y, m, d), day);
            if (0..=9999).contains(&y) {
                prop_assert_eq!(parse_day(&format_day(day)), Some(day));
            }
        }
    }
}
