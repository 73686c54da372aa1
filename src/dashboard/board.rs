//! What the dashboard reads of a queue and does to it, whatever its job type ([`Board`]), and the
//! samples its charts draw ([`History`]).

use std::collections::VecDeque;
use std::fmt::{self, Debug, Write as _};

use crate::panics::Catcher;
use crate::{DeadLetterReason, FailureKind, JobId, JobInfo, PanicSite, Queue, RedriveReport, Stats};

/// The longest job text a page shows; longer ones are cut, and say so.
const TEXT_LIMIT: usize = 400;

/// A dead letter as a page shows it.
pub(crate) struct Dead {
    pub id: JobId,
    pub reason: DeadLetterReason,
    pub attempts: u32,
    /// The job's `Debug` text, cut at [`TEXT_LIMIT`].
    pub text: String,
    /// Each failure: its attempt, its kind and its message.
    pub history: Vec<(u32, FailureKind, Option<String>)>,
}

/// A queue behind the dashboard, its job type erased.
pub(crate) trait Board: Send + Sync {
    fn stats(&self) -> Stats;
    fn is_paused(&self) -> bool;
    /// The first `limit` live jobs, oldest first, each with its `Debug` text where the store holds the
    /// payload in this process.
    fn jobs(&self, limit: usize) -> Vec<(JobInfo, Option<String>)>;
    /// The first `limit` dead letters, oldest first.
    fn dead_letters(&self, limit: usize) -> Vec<Dead>;
    fn pause(&self);
    fn resume(&self);
    fn purge(&self) -> usize;
    /// Moves one dead letter (`Some(id)`) or all of them back into the queue.
    fn redrive(&self, id: Option<JobId>) -> RedriveReport;
}

impl<T: Debug + Send + Sync + 'static> Board for Queue<T> {
    fn stats(&self) -> Stats {
        Queue::stats(self)
    }

    fn is_paused(&self) -> bool {
        Queue::is_paused(self)
    }

    fn jobs(&self, limit: usize) -> Vec<(JobInfo, Option<String>)> {
        self.jobs_with_payloads(limit)
            .into_iter()
            .map(|(info, job)| {
                let text = job.as_deref().map(|job| text_of(self.catcher(), info.id, job));
                // The job may have left the queue meanwhile: this copy is then the last, and its `Drop`
                // is user code.
                self.catcher().dispose_job(job);
                (info, text)
            })
            .collect()
    }

    fn dead_letters(&self, limit: usize) -> Vec<Dead> {
        self.first_dead_letters(limit)
            .into_iter()
            .map(|dead| {
                let shown = Dead {
                    id: dead.id(),
                    reason: dead.reason(),
                    attempts: dead.attempts(),
                    text: text_of(self.catcher(), dead.id(), dead.job()),
                    history: dead.history().iter().map(|f| (f.attempt, f.kind, f.message.clone())).collect(),
                };
                // Redriven or drained meanwhile, this copy is the last: its job's `Drop` is user code.
                self.catcher().dispose(dead);
                shown
            })
            .collect()
    }

    fn pause(&self) {
        Queue::pause(self);
    }

    fn resume(&self) {
        Queue::resume(self);
    }

    fn purge(&self) -> usize {
        Queue::purge(self)
    }

    fn redrive(&self, id: Option<JobId>) -> RedriveReport {
        match id {
            Some(id) => self.redrive().matching(move |dead| dead.id() == id).limit(1).run(),
            None => self.redrive().run(),
        }
    }
}

/// A job's `Debug` text, at most [`TEXT_LIMIT`] characters. Its `Debug` is user code: a panic in it is
/// reported to the queue's catcher (counted, and given to its panic hook as
/// [`PanicSite::PayloadDebug`]) and shows as such on the page.
fn text_of<T: Debug>(catcher: &Catcher, id: JobId, job: &T) -> String {
    let mut limited = Limited { text: String::new(), cut: false };
    match catcher.try_call(PanicSite::PayloadDebug, Some(id), || write!(limited, "{job:?}")) {
        Ok(_) if limited.cut => limited.text + "…",
        Ok(_) => limited.text,
        Err(message) => format!("(its Debug panicked: {message})"),
    }
}

/// A writer that keeps the first [`TEXT_LIMIT`] characters and stops the formatting after them.
struct Limited {
    text: String,
    cut: bool,
}

impl fmt::Write for Limited {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = TEXT_LIMIT.saturating_sub(self.text.chars().count());
        if s.chars().count() > room {
            self.text.extend(s.chars().take(room));
            self.cut = true;
            return Err(fmt::Error); // enough: the rest is not formatted
        }
        self.text.push_str(s);
        Ok(())
    }
}

/// One look at a queue, for its chart.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sample {
    /// Live jobs: ready, delayed and leased.
    pub depth: usize,
    /// Jobs acked per second since the sample before.
    pub throughput: f64,
}

/// The last samples of one queue, oldest first.
pub(crate) struct History {
    samples: VecDeque<Sample>,
    capacity: usize,
    /// The acked counter at the last sample.
    last_acked: Option<u64>,
}

impl History {
    pub fn new(capacity: usize) -> Self {
        History { samples: VecDeque::with_capacity(capacity), capacity, last_acked: None }
    }

    /// Adds a sample taken `seconds` after the one before.
    pub fn record(&mut self, stats: &Stats, seconds: f64) {
        let acked = self.last_acked.map_or(0, |last| stats.acked.saturating_sub(last));
        self.last_acked = Some(stats.acked);
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        let throughput = if seconds > 0.0 { acked as f64 / seconds } else { 0.0 };
        self.samples.push_back(Sample { depth: stats.ready + stats.delayed + stats.leased, throughput });
    }

    pub fn samples(&self) -> impl ExactSizeIterator<Item = &Sample> {
        self.samples.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_or_panicking_debug_is_cut_or_reported() {
        let catcher = Catcher::new(None);
        let id = JobId::from_u64(7);
        assert_eq!(text_of(&catcher, id, &"<b>"), "\"<b>\"");
        let long = "x".repeat(1000);
        let text = text_of(&catcher, id, &long);
        assert_eq!(text.chars().count(), TEXT_LIMIT + 1);
        assert!(text.ends_with('…'));
        struct Bad;
        impl Debug for Bad {
            fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
                panic!("no debug for you")
            }
        }
        assert_eq!(text_of(&catcher, id, &Bad), "(its Debug panicked: no debug for you)");
        assert_eq!(catcher.count(), 1, "reported to the queue's catcher");
    }

    #[test]
    fn history_keeps_the_last_samples_and_rates_the_acks() {
        let mut history = History::new(2);
        let mut stats = Stats { ready: 3, ..Stats::default() };
        history.record(&stats, 1.0);
        stats.acked = 10;
        stats.ready = 1;
        history.record(&stats, 2.0);
        stats.acked = 12;
        history.record(&stats, 1.0);
        let samples: Vec<_> = history.samples().copied().collect();
        assert_eq!(samples, [Sample { depth: 1, throughput: 5.0 }, Sample { depth: 1, throughput: 2.0 }]);
    }
}
