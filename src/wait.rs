//! The wait protocol: who blocks, and who owes whom a wake-up.
//!
//! **Consumers** (`lease`, `lease_timeout`, a pool's workers) that find no ready job first spin a little
//! without the lock ([`SPIN_ROUNDS`] rounds watching the ready hint, then [`YIELD_ROUNDS`] yields: jobs
//! that flow steadily arrive within them, and parking costs two system calls), then block on the queue's
//! `consumers` condvar, counted in `State::waiting_consumers`, until the earliest of their own deadline and
//! the queue's next timed event (a delayed job, a retry, a lapse, an expiry). On the system clock that is
//! a timed wait; on a test clock the wait is untimed and `TestClock::advance` wakes everyone.
//! **Producers** blocked on a full queue wait on `producers`, counted in `State::waiting_producers`.
//!
//! **Wake-ups are owed** by whoever changes what a waiter waits for, under the lock, in
//! [`Inner::wake`] (called by `finish` at the end of every operation that finds someone waiting; the counts
//! kept while nobody waits are dropped when the first waiter begins): one consumer per job that became
//! ready (`Wakes::ready`), and one blocked producer at a time while a bounded queue has room (the woken
//! one, back under the lock, is counted off `State::producers_woken`, and its operation's end wakes the
//! next: one per freed slot would mostly wake producers that find the room taken); every consumer when the
//! earliest timed event moved earlier (`Wakes::rescheduled`: their timed waits are too long), when a closed
//! queue drains (they must return), and, on an auto-advancing test clock, when the queue goes idle (a
//! blocked consumer must move the clock). `close`, `resume`, `purge` and a pool's stop flag
//! ([`Inner::interrupt`]) wake everyone. A test clock's advance calls every queue on it
//! (`Listener::on_advance`), which processes what fell due and wakes everyone.
//!
//! **Auto-advance.** On an auto-advancing test clock a consumer about to block on a queue with no job
//! ready or leased jumps the clock instead, to the earliest of its own wake-up time and every other
//! queue's next event on that clock, but only if every other queue is quiet too (each queue on a test
//! clock publishes after every operation, in `Inner::quiet`, [`BUSY`] or its next event). If one is busy,
//! the consumer blocks; that queue, when it goes quiet, nudges the others' consumers (under their locks,
//! after releasing its own, so that none is missed and no two locks are held at once).

use std::mem;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::MutexGuard;

use crate::clock::{address, Listener, Tick, NEVER};
use crate::core::{State, Waiter};
use crate::deliver::Outbox;
use crate::store::memory::{Core, Inner};

/// Rounds a consumer spins (then yields) waiting for a job before it blocks: parking and waking a thread
/// costs two system calls, far more than a short spin when jobs flow steadily.
pub(crate) const SPIN_ROUNDS: u32 = 6;
pub(crate) const YIELD_ROUNDS: u32 = 4;

/// `Inner::quiet` while the queue has work in flight. Tick 0 is never an idle queue's next event (events
/// lie after the clock's epoch).
pub(crate) const BUSY: Tick = 0;

impl<T: Send + Sync + 'static> Inner<T> {
    pub(crate) fn wake(&self, st: &mut State) {
        let wakes = st.take_wakes();
        if st.waiting_consumers() > 0 {
            let idle = || {
                let counts = st.counts();
                counts.ready == 0 && counts.leased == 0
            };
            // On an auto-advancing test clock, an idle queue (a job just acked, nacked, released...) needs a
            // blocked consumer to move the clock on.
            let auto_idle = self.clock.auto_advances() && idle();
            if wakes.rescheduled || auto_idle || (st.is_closed() && st.live() == 0) {
                self.consumers.notify_all();
            } else {
                for _ in 0..(wakes.ready as usize).min(st.waiting_consumers()) {
                    self.consumers.notify_one();
                }
            }
        }
        // Blocked producers are woken one at a time: the one woken pushes, and its own operation's end wakes
        // the next while there is room. Waking one per freed slot would cost a system call and a context
        // switch each, for producers that mostly find the room taken by the first.
        if st.waiting_producers() > 0
            && st.producers_woken() == 0
            && self.capacity.is_none_or(|capacity| st.live() < capacity)
            && self.producers.notify_one()
        {
            st.producer_woken();
        }
    }

    /// Publishes whether the queue is quiet and its next event (for auto-advance on a shared test clock);
    /// returns whether it just went quiet.
    pub(crate) fn publish_quiet(&self, st: &mut State) -> bool {
        let counts = st.counts();
        // Ready jobs that a rate limit holds back wait for time, as delayed ones do.
        let ready = counts.ready > 0 && st.limited_until().is_none();
        let quiet = if ready || counts.leased > 0 { BUSY } else { st.next_event().max(BUSY + 1) };
        self.quiet.swap(quiet, Ordering::AcqRel) == BUSY && quiet != BUSY
    }

    /// Blocks on `condvar` until woken or `until` (or the next timed event, for consumers) passes.
    pub(crate) fn block(
        &self,
        core: &mut MutexGuard<'_, Core<T>>,
        out: &mut Outbox<T>,
        who: Waiter,
        until: Tick,
    ) {
        self.collect_events(&mut core.st, out);
        if !out.is_empty() {
            let pending = mem::replace(out, Outbox::new());
            MutexGuard::unlocked(core, || self.deliver(pending));
            return; // the state may have changed: look again before waiting
        }
        if who == Waiter::Consumer {
            let wake_at = until.min(core.st.next_event());
            let idle = {
                // Ready jobs that a rate limit holds back wait for time, as delayed ones do.
                let counts = core.st.counts();
                (counts.ready == 0 || core.st.limited_until().is_some()) && counts.leased == 0
            };
            if idle && self.clock.auto_advances() {
                // If every other queue on the clock is quiet too, nothing can happen before the earliest
                // of their next events and `wake_at`: jump there instead of waiting. If one is busy, wait:
                // it nudges this queue's consumers when it goes quiet.
                if let (Some(others), Some(test)) =
                    (self.clock.others_quiet_until(address(self)), self.clock.test_clock())
                {
                    let at = wake_at.min(others);
                    if at != NEVER {
                        if at <= core.st.now() {
                            // Another queue's event is due but nobody has looked: have every queue process
                            // what fell due (and publish its next event), then look again.
                            MutexGuard::unlocked(core, || test.advance(Duration::ZERO));
                        } else {
                            let at = self.clock.instant(at);
                            MutexGuard::unlocked(core, || test.advance_to(at));
                        }
                        return;
                    }
                }
            }
            core.st.wait_begins(who);
            self.clock.wait(&self.consumers, core, wake_at);
            core.st.wait_ends(who);
        } else {
            core.st.wait_begins(who);
            self.clock.wait(&self.producers, core, until);
            core.st.wait_ends(who);
        }
    }

    /// Waits a little, without the lock, for a job to become ready.
    pub(crate) fn spin(&self, round: u32) {
        if round < SPIN_ROUNDS {
            for _ in 0..1 << round {
                if self.ready_hint.load(Ordering::Relaxed) > 0 {
                    return;
                }
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
    }

    /// Wakes every blocked consumer so that it rechecks its stop flag. Raise the flag first.
    pub(crate) fn interrupt(&self) {
        let _core = self.core.lock();
        self.consumers.notify_all();
    }
}

impl<T: Send + Sync + 'static> Listener for Inner<T> {
    fn on_advance(&self) {
        self.locked(|_| ());
        // Blocked calls with a timeout recheck it against the new time.
        self.consumers.notify_all();
        self.producers.notify_all();
    }

    fn quiet_until(&self) -> Option<Tick> {
        let quiet = self.quiet.load(Ordering::Acquire);
        (quiet != BUSY).then_some(quiet)
    }

    fn nudge(&self) {
        // Under the lock, so that a consumer between its look at the other queues and its wait is not
        // missed.
        let _core = self.core.lock();
        self.consumers.notify_all();
    }
}
