//! After the lock: what an operation hands out once the queue's lock is released. Dead letters go to the
//! sink (or the built-in store), events to the observer, alarm crossings to their hooks, all outside
//! every lock, each call caught by the queue's [`Catcher`](crate::panics::Catcher). During an operation
//! they are collected in an [`Outbox`] under the lock; [`Inner::finish`](crate::store::memory::Inner)
//! releases the lock and calls [`Inner::deliver`].

use crate::core::{Exit, Noted, State};
use crate::store::memory::{Core, Inner};
use crate::store::Change;
use crate::{AlarmEvent, AlarmMetric, DeadLetter, Event, Failure, JobId, PanicSite};

/// Dead letters, events and alarms to hand out once the lock is released. Nearly every operation has
/// none, so the lists are only allocated for the first item: an empty outbox is a null pointer to create,
/// test and drop.
pub(crate) struct Outbox<T>(Option<Box<Mail<T>>>);

pub(crate) struct Mail<T> {
    dead: Vec<DeadLetter<T>>,
    events: Vec<Event>,
    alarms: Vec<(usize, AlarmEvent)>,
}

impl<T> Outbox<T> {
    pub(crate) fn new() -> Self {
        Outbox(None)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The lists, to add to.
    pub(crate) fn mail(&mut self) -> &mut Mail<T> {
        self.0.get_or_insert_with(|| {
            Box::new(Mail { dead: Vec::new(), events: Vec::new(), alarms: Vec::new() })
        })
    }
}

impl<T: Send + Sync + 'static> Inner<T> {
    pub(crate) fn bury_all(&self, core: &mut Core<T>, exits: Vec<Exit>, out: &mut Outbox<T>) {
        if !exits.is_empty() {
            for exit in exits {
                self.bury(core, exit, out);
            }
        }
    }

    /// Turns a job that left by dead-lettering into a dead letter for the sink or the built-in store.
    pub(crate) fn bury(&self, core: &mut Core<T>, exit: Exit, out: &mut Outbox<T>) {
        self.record(|| Change::Dead(&exit));
        let Some(job) = core.take_job(exit.slot) else { return };
        let dead = DeadLetter {
            job,
            id: JobId::from_u64(exit.id),
            reason: exit.reason,
            attempts: exit.attempts,
            history: exit
                .history
                .into_iter()
                .map(|r| Failure {
                    attempt: r.attempt,
                    at: self.clock.instant(r.at),
                    kind: r.kind,
                    message: r.message,
                })
                .collect(),
            pushed_at: self.clock.instant(exit.pushed_at),
            dead_lettered_at: self.clock.instant(exit.at),
        };
        if self.sink.is_some() {
            out.mail().dead.push(dead);
        } else {
            core.dead.push_back(dead);
        }
    }

    /// Puts a dead letter the sink did not take into the built-in store.
    fn keep_dead_letter(&self, dead: DeadLetter<T>) {
        self.bury_durably(&dead);
        self.core.lock().dead.push_back(dead);
    }

    pub(crate) fn check_alarms(&self, core: &mut Core<T>, out: &mut Outbox<T>) {
        let now = core.st.now();
        for (i, (alarm, _)) in self.alarms.iter().enumerate() {
            let value = match alarm.metric {
                AlarmMetric::ReadyDepth => core.st.counts().ready as u64,
                AlarmMetric::DeadLetters => core.dead.len() as u64,
                AlarmMetric::OldestReadyAge => core.st.oldest_ready_since().map_or(0, |since| now - since),
            };
            if let Some(raised) = alarm.crossing(core.raised[i], value) {
                core.raised[i] = raised;
                out.mail().alarms.push((i, AlarmEvent { metric: alarm.metric, raised, value }));
            }
        }
    }

    pub(crate) fn collect_events(&self, st: &mut State, out: &mut Outbox<T>) {
        if !st.has_events() {
            return;
        }
        let clock = &self.clock;
        out.mail().events.extend(st.take_events().map(|Noted { kind, id, attempt, at }| Event {
            kind,
            id: JobId::from_u64(id),
            attempt,
            at: clock.instant(at),
        }));
    }

    /// Hands alarms and events to their hooks and dead letters to the sink, outside every lock. What the
    /// sink hands back goes to the store. User code that panics here is caught and reported, never
    /// re-raised: the operation that delivers has already taken effect. While the sink runs the queue
    /// keeps a copy of the dead letter (cheap: the job is shared), so that a sink that panics loses
    /// nothing: the copy goes to the built-in store.
    pub(crate) fn deliver(&self, out: Outbox<T>) {
        let Some(out) = out.0 else { return };
        let Mail { dead, events, alarms } = *out;
        let catcher = &self.catcher;
        for (i, event) in &alarms {
            let hook = &self.alarms[*i].1;
            catcher.call(PanicSite::AlarmHook, None, || hook(event));
        }
        if let Some(observer) = &self.observer {
            for event in &events {
                catcher.call(PanicSite::Observer, Some(event.id), || observer(event));
            }
        }
        // Dead letters are only collected here when there is a sink; without one they went to the store.
        if let Some(sink) = &self.sink {
            for dead in dead {
                let (id, copy) = (dead.id, dead.clone());
                match catcher.call(PanicSite::DeadLetterSink, Some(id), || sink.send(dead)) {
                    Some(Ok(())) => {
                        // The sink has it: out of the durable store's dead letters too.
                        self.dead_letter_moved(id);
                        catcher.dispose(copy);
                    }
                    Some(Err(back)) => {
                        catcher.dispose(copy);
                        self.keep_dead_letter(back);
                    }
                    None => self.keep_dead_letter(copy),
                }
            }
        }
    }
}
