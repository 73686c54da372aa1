//! Stable codes for failure kinds and dead-letter reasons, as the durable stores write them (`Debug` and
//! `Display` are not stable). Never change a code that shipped; add the next.

use crate::{DeadLetterReason, FailureKind};

pub(crate) fn kind_code(kind: FailureKind) -> u8 {
    match kind {
        FailureKind::Nacked => 0,
        FailureKind::Rejected => 1,
        FailureKind::Lapsed => 2,
        FailureKind::Dropped => 3,
        FailureKind::Panicked => 4,
    }
}

pub(crate) fn kind_of(code: u8) -> Option<FailureKind> {
    Some(match code {
        0 => FailureKind::Nacked,
        1 => FailureKind::Rejected,
        2 => FailureKind::Lapsed,
        3 => FailureKind::Dropped,
        4 => FailureKind::Panicked,
        _ => return None,
    })
}

#[cfg_attr(not(feature = "journal"), allow(dead_code))] // the PostgreSQL store writes reasons in SQL
pub(crate) fn reason_code(reason: DeadLetterReason) -> u8 {
    match reason {
        DeadLetterReason::MaxAttempts => 0,
        DeadLetterReason::Rejected => 1,
        DeadLetterReason::Expired => 2,
        DeadLetterReason::Overflow => 3,
    }
}

pub(crate) fn reason_of(code: u8) -> Option<DeadLetterReason> {
    Some(match code {
        0 => DeadLetterReason::MaxAttempts,
        1 => DeadLetterReason::Rejected,
        2 => DeadLetterReason::Expired,
        3 => DeadLetterReason::Overflow,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back() {
        for kind in [
            FailureKind::Nacked,
            FailureKind::Rejected,
            FailureKind::Lapsed,
            FailureKind::Dropped,
            FailureKind::Panicked,
        ] {
            assert_eq!(kind_of(kind_code(kind)), Some(kind));
        }
        for reason in [
            DeadLetterReason::MaxAttempts,
            DeadLetterReason::Rejected,
            DeadLetterReason::Expired,
            DeadLetterReason::Overflow,
        ] {
            assert_eq!(reason_of(reason_code(reason)), Some(reason));
        }
        assert_eq!(kind_of(200), None);
        assert_eq!(reason_of(200), None);
    }
}
