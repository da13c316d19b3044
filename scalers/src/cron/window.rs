//! Whether a cron window is open: the pure part of the cron scaler, tested with a fixed clock.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Parses a five-field schedule as KEDA does (robfig/cron's standard parser: minute, hour,
/// day of month, month, day of week; Sunday is 0; names like `MON` and `JAN`; when both day
/// fields are restricted either may match; `0/10` means "from 0 every 10").
pub fn parse_schedule(expr: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .sloppy_ranges(true)
        .build()
        .parse(expr)
        .map_err(|e| e.to_string())
}

/// Parsed schedules by expression, shared by every scaler that uses one while any does.
#[derive(Default)]
struct Parsed {
    by_expr: HashMap<String, Weak<Cron>>,
    /// Insertions since dead entries were last dropped.
    since_prune: usize,
}

static PARSED: LazyLock<Mutex<Parsed>> = LazyLock::new(Mutex::default);

/// [`parse_schedule`], shared: triggers with the same expression get the same parsed schedule.
///
/// A parsed `Cron` is about 5 KiB (croner keeps a byte per possible year even when years are
/// disallowed), which dominated the memory of thousands of cron triggers; schedules repeat
/// across triggers ("0 8 * * 1-5"), so one copy per distinct expression is kept, for as long as
/// a scaler holds it.
pub fn parse_schedule_shared(expr: &str) -> Result<Arc<Cron>, String> {
    let mut parsed = PARSED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(cron) = parsed.by_expr.get(expr).and_then(Weak::upgrade) {
        return Ok(cron);
    }
    let cron = Arc::new(parse_schedule(expr)?);
    parsed
        .by_expr
        .insert(expr.to_owned(), Arc::downgrade(&cron));
    parsed.since_prune += 1;
    // Drop entries of schedules no scaler holds any more; amortized O(1) per insertion.
    if parsed.since_prune > parsed.by_expr.len() / 2 {
        parsed.by_expr.retain(|_, w| w.strong_count() > 0);
        parsed.since_prune = 0;
    }
    Ok(cron)
}

/// A start and end schedule in a time zone.
#[derive(Clone, Debug)]
pub struct Window {
    /// When the window opens.
    pub start: Arc<Cron>,
    /// When the window closes.
    pub end: Arc<Cron>,
    /// The zone both schedules are read in.
    pub timezone: Tz,
}

impl Window {
    /// True when `now` lies inside the window: the next end comes no later than the next start.
    ///
    /// This is KEDA's rule. It needs no memory of past runs, so a window that opened while kedge
    /// was down is still seen as open, and a window crossing midnight (22:00 to 06:00) works.
    pub fn is_open(&self, now: DateTime<Utc>) -> Result<bool, String> {
        let local = now.with_timezone(&self.timezone);
        let next_start = self
            .start
            .find_next_occurrence(&local, false)
            .map_err(|e| format!("error computing next start: {e}"))?;
        let next_end = self
            .end
            .find_next_occurrence(&local, false)
            .map_err(|e| format!("error computing next end: {e}"))?;
        Ok(next_end <= next_start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn window(start: &str, end: &str, tz: Tz) -> Window {
        Window {
            start: parse_schedule_shared(start).expect("start"),
            end: parse_schedule_shared(end).expect("end"),
            timezone: tz,
        }
    }

    /// `y-m-d h:m` in `tz`, as a UTC instant.
    fn at(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .earliest()
            .expect("valid local time")
            .with_timezone(&Utc)
    }

    #[test]
    fn equal_expressions_share_one_parsed_schedule() {
        let a = parse_schedule_shared("7 3 * * 1-5").expect("valid");
        let b = parse_schedule_shared("7 3 * * 1-5").expect("valid");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(*a, parse_schedule("7 3 * * 1-5").expect("valid"));
        let other = parse_schedule_shared("8 3 * * 1-5").expect("valid");
        assert!(!Arc::ptr_eq(&a, &other));
        assert!(parse_schedule_shared("nonsense").is_err());
        // Once nobody holds it, it is parsed again (and the dead entry is pruned eventually).
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(weak.upgrade().is_none());
        let again = parse_schedule_shared("7 3 * * 1-5").expect("valid");
        assert_eq!(Arc::strong_count(&again), 1);
    }

    #[test]
    fn same_day_window() {
        let tz = chrono_tz::UTC;
        let w = window("0 8 * * *", "0 17 * * *", tz);
        assert!(!w.is_open(at(tz, 2026, 6, 10, 7, 59)).unwrap_or(true));
        assert!(w.is_open(at(tz, 2026, 6, 10, 8, 0)).unwrap_or(false));
        assert!(w.is_open(at(tz, 2026, 6, 10, 16, 59)).unwrap_or(false));
        assert!(!w.is_open(at(tz, 2026, 6, 10, 17, 0)).unwrap_or(true));
    }

    #[test]
    fn window_crossing_midnight() {
        let tz = chrono_tz::Europe::Paris;
        let w = window("0 22 * * *", "0 6 * * *", tz);
        assert!(w.is_open(at(tz, 2026, 6, 10, 23, 0)).unwrap_or(false));
        assert!(w.is_open(at(tz, 2026, 6, 11, 0, 30)).unwrap_or(false));
        assert!(w.is_open(at(tz, 2026, 6, 11, 5, 59)).unwrap_or(false));
        assert!(!w.is_open(at(tz, 2026, 6, 11, 6, 0)).unwrap_or(true));
        assert!(!w.is_open(at(tz, 2026, 6, 11, 21, 59)).unwrap_or(true));
    }

    #[test]
    fn time_zone_is_honoured() {
        let ny = chrono_tz::America::New_York;
        let w = window("0 9 * * *", "0 10 * * *", ny);
        // 13:30 UTC is 09:30 in New York in summer (EDT, UTC-4).
        let t = Utc
            .with_ymd_and_hms(2026, 7, 1, 13, 30, 0)
            .single()
            .expect("utc");
        assert!(w.is_open(t).unwrap_or(false));
        let utc = window("0 9 * * *", "0 10 * * *", chrono_tz::UTC);
        assert!(!utc.is_open(t).unwrap_or(true));
    }

    #[test]
    fn weekdays_use_sunday_zero_like_keda() {
        let tz = chrono_tz::UTC;
        // Monday to Friday, 08:00–17:00. 2026-06-08 is a Monday, 2026-06-07 a Sunday.
        let w = window("0 8 * * 1-5", "0 17 * * 1-5", tz);
        assert!(w.is_open(at(tz, 2026, 6, 8, 9, 0)).unwrap_or(false));
        assert!(!w.is_open(at(tz, 2026, 6, 7, 9, 0)).unwrap_or(true));
        let sunday = window("0 8 * * 0", "0 17 * * 0", tz);
        assert!(sunday.is_open(at(tz, 2026, 6, 7, 9, 0)).unwrap_or(false));
        let names = window("0 8 * * MON-FRI", "0 17 * * MON-FRI", tz);
        assert!(names.is_open(at(tz, 2026, 6, 12, 9, 0)).unwrap_or(false));
        assert!(!names.is_open(at(tz, 2026, 6, 13, 9, 0)).unwrap_or(true));
    }

    #[test]
    fn day_of_month_or_day_of_week_like_vixie_cron() {
        let tz = chrono_tz::UTC;
        // Either the 1st of the month or any Sunday.
        let w = window("0 8 1 * 0", "0 9 1 * 0", tz);
        assert!(w.is_open(at(tz, 2026, 6, 1, 8, 30)).unwrap_or(false)); // Monday the 1st
        assert!(w.is_open(at(tz, 2026, 6, 7, 8, 30)).unwrap_or(false)); // Sunday the 7th
        assert!(!w.is_open(at(tz, 2026, 6, 8, 8, 30)).unwrap_or(true)); // Monday the 8th
    }

    #[test]
    fn steps_and_start_slash_step() {
        let tz = chrono_tz::UTC;
        // Open for the first 5 minutes of every 10.
        let w = window("*/10 * * * *", "5/10 * * * *", tz);
        assert!(w.is_open(at(tz, 2026, 6, 1, 8, 22)).unwrap_or(false));
        assert!(!w.is_open(at(tz, 2026, 6, 1, 8, 27)).unwrap_or(true));
    }

    #[test]
    fn spring_forward_gap() {
        // Berlin skips 02:00–03:00 on 2026-03-29. A window opening at 02:30 opens at the first
        // valid instant after the gap and is open at 03:10; the day before it works as usual.
        let tz = chrono_tz::Europe::Berlin;
        let w = window("30 2 * * *", "0 4 * * *", tz);
        assert!(w.is_open(at(tz, 2026, 3, 28, 3, 10)).unwrap_or(false));
        assert!(!w.is_open(at(tz, 2026, 3, 29, 1, 50)).unwrap_or(true));
        assert!(w.is_open(at(tz, 2026, 3, 29, 3, 10)).unwrap_or(false));
        assert!(!w.is_open(at(tz, 2026, 3, 29, 4, 10)).unwrap_or(true));
    }

    #[test]
    fn fall_back_overlap() {
        // Berlin repeats 02:00–03:00 on 2026-10-25 (CEST, then CET). A window of 01:00–04:00
        // stays open through both passes of the repeated hour and closes at 04:00 CET.
        let tz = chrono_tz::Europe::Berlin;
        let w = window("0 1 * * *", "0 4 * * *", tz);
        let first_pass = Utc
            .with_ymd_and_hms(2026, 10, 25, 0, 30, 0)
            .single()
            .expect("utc"); // 02:30 CEST
        let second_pass = Utc
            .with_ymd_and_hms(2026, 10, 25, 1, 30, 0)
            .single()
            .expect("utc"); // 02:30 CET
        let after = Utc
            .with_ymd_and_hms(2026, 10, 25, 3, 1, 0)
            .single()
            .expect("utc"); // 04:01 CET
        assert!(w.is_open(first_pass).unwrap_or(false));
        assert!(w.is_open(second_pass).unwrap_or(false));
        assert!(!w.is_open(after).unwrap_or(true));
    }

    #[test]
    fn rejects_what_robfig_rejects() {
        for bad in [
            "",
            "* * * *",
            "0 0 * * * *",
            "61 * * * *",
            "0 25 * * *",
            "nonsense",
        ] {
            assert!(parse_schedule(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in [
            "0 8 * * *",
            "*/5 * * * *",
            "0 0 1,15 * *",
            "0 9 ? * MON",
            "0 0 * JAN-MAR *",
        ] {
            assert!(parse_schedule(good).is_ok(), "{good:?} should parse");
        }
    }
}
