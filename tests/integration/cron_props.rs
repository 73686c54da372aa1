//! Schedules against their reference (feature `cron`): over random cron expressions and random clock
//! jumps, the ticks a queue fires are exactly those the `croner` crate computes for the same span.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use leasequeue::{Queue, Schedule, TestClock};
use proptest::prelude::*;

/// A field: `*`, a step, a value, a range or a list, within `lo..=hi`.
fn field(lo: u32, hi: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        (1..=(hi - lo).min(30)).prop_map(|step| format!("*/{step}")),
        (lo..=hi).prop_map(|v| v.to_string()),
        (lo..=hi, lo..=hi).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        (lo..=hi, lo..=hi).prop_map(|(a, b)| if a == b { a.to_string() } else { format!("{a},{b}") }),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    (field(0, 59), field(0, 23), prop_oneof![Just("*".to_string()), field(1, 28)], field(0, 6))
        .prop_map(|(minute, hour, dom, dow)| format!("{minute} {hour} {dom} * {dow}"))
}

fn secs_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The reference: every occurrence after `from` up to `to`, by croner alone.
fn reference(expression: &str, from: SystemTime, to: SystemTime) -> Vec<u64> {
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(expression)
        .unwrap();
    let to: DateTime<Utc> = DateTime::from_timestamp(secs_of(to) as i64, 0).unwrap();
    let mut at: DateTime<Utc> = DateTime::from_timestamp(secs_of(from) as i64, 0).unwrap();
    let mut ticks = Vec::new();
    while let Ok(next) = cron.find_next_occurrence(&at, false) {
        if next > to {
            break;
        }
        ticks.push(next.timestamp() as u64);
        at = next;
    }
    ticks
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn fired_ticks_equal_the_cron_crates_own(
        expression in expression(),
        // Clock jumps of up to a day each, and whether the queue looks after each.
        jumps in proptest::collection::vec((0u64..86_400, any::<bool>()), 1..5),
    ) {
        let clock = TestClock::new();
        let queue: Queue<u64> = Queue::builder().clock(clock.clone()).build().unwrap();
        let start = clock.wall_time();
        queue.add_schedule("s", Schedule::cron(&expression).unwrap(), secs_of).unwrap();
        for (jump, look) in &jumps {
            clock.advance(Duration::from_secs(*jump));
            if *look {
                let _ = queue.len();
            }
        }
        let mut fired = Vec::new();
        while let Ok(lease) = queue.try_lease() {
            fired.push(*lease);
            lease.ack().unwrap();
        }
        prop_assert_eq!(fired, reference(&expression, start, clock.wall_time()), "{}", expression);
    }
}
