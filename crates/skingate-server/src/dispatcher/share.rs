//! How the dispatcher's capacity is shared between projects, so one merchant's slow or failing endpoint (or a
//! backlog of thousands of callbacks) cannot hold up another merchant's deliveries.
//!
//! Two limits, both work-conserving (a project alone may use everything):
//! - **Leases.** A project may have at most `cap` deliveries leased (claimed and not yet recorded), half of
//!   the dispatcher's lease-ahead window; it is claimed again once it is down to half of that. Claims
//!   take projects in turns ([`skingate_store::ClaimLimit`]), so a delivery of another project falling due is
//!   claimed at the next claim, not after the backlog of the first.
//!   When the whole window is leased, a project with at most a quarter of its cap leased may still lease up
//!   to half of it: a merchant whose deliveries come in bursts keeps rows ready for the slots it is due,
//!   however long other merchants' backlogs are.
//! - **Attempts.** The `webhook_concurrency` slots go, as each frees, to the waiting project with the fewest
//!   attempts running, not first come first served: while one project's attempts hang until their timeout,
//!   another's get the next free slot. Among projects running equally few, the one that has held slots for
//!   the least time goes first (slot time, not attempts: a slot a black hole holds for its 10 s timeout counts
//!   as much as thousands of a fast endpoint's attempts). A project starts at the least slot time of the
//!   projects already at work, so a newcomer does not take every slot until it has caught up on hours of
//!   others' time.
//!
//! An audit measured what this prevents: 200 callbacks to a black-hole address held every slot, and another
//! merchant's webhook arrived 56 s late (growing with the number of callbacks, about N / 32 × 10 s). A
//! re-audit of the first version (fewest running, then served longest ago; a full window let in only projects
//! with nothing leased, one round) found a merchant's burst behind two black-hole backlogs still waiting up to
//! 48 s, and with one slot a merchant served once every two timeouts, in rotation with the black holes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use skingate_core::project::ProjectId;
use skingate_store::ClaimLimit;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

/// The dispatcher's shared accounting: leases and attempt slots per project.
#[derive(Debug)]
pub(super) struct Share {
    /// Most deliveries one project may have leased.
    cap: usize,
    inner: Mutex<Inner>,
    /// Woken when a project that had no room has room again: a claim that found nothing for want of room
    /// (its rows were due all along) may find them now.
    pub(super) reopened: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    /// Attempt slots nobody holds.
    free: usize,
    /// Attempts running, per project (absent: none).
    running: HashMap<ProjectId, usize>,
    /// Deliveries leased and not yet recorded, per project (absent: none).
    leased: HashMap<ProjectId, usize>,
    /// Who waits for a slot: per project, in arrival order, with a ticket telling the order across projects.
    waiting: HashMap<ProjectId, VecDeque<(u64, oneshot::Sender<()>)>>,
    next_ticket: u64,
    /// Slot time each project at work (something leased or running) has used, for choosing among projects
    /// running equally few attempts. A project comes to work at the least of the others' figures and leaves
    /// with its own: an idle merchant neither saves up nor owes.
    used: HashMap<ProjectId, Duration>,
}

/// One attempt slot, given back when dropped.
#[derive(Debug)]
pub(super) struct Slot {
    share: Arc<Share>,
    project: ProjectId,
    since: Instant,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.share.lock().release(self.project, self.since.elapsed());
    }
}

impl Share {
    /// `slots` attempts at once; a project may have `cap` deliveries leased.
    pub(super) fn new(slots: usize, cap: usize) -> Arc<Self> {
        let inner = Mutex::new(Inner { free: slots, ..Inner::default() });
        Arc::new(Self { cap: cap.max(1), inner, reopened: Notify::new() })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the next claim may lease: `total` in all, each project up to its room. With no room left in all
    /// (`total` 0), a project with at most a quarter of its cap leased may still lease up to half of it, the
    /// others nothing: other merchants' backlogs filling the window must not keep a merchant from having rows
    /// ready for the slots it is due. Half a cap, refilled at a quarter: a merchant whose endpoint answers at
    /// once drains its leased rows in milliseconds, and with fewer than that ready, its queue ran dry between
    /// two claims and the slots it freed went to attempts to black holes for a whole timeout (a re-audit: a
    /// burst of 300 arrived in steps of 32 to 96 at each 10 s timeout).
    pub(super) fn claim_limit(&self, total: u32) -> ClaimLimit {
        let inner = self.lock();
        if total == 0 {
            let round = (self.cap / 2).max(1);
            let room = |leased: usize| if leased > round / 2 { 0 } else { round - leased };
            let rooms = inner
                .leased
                .iter()
                .map(|(project, &leased)| (*project, u32::try_from(room(leased)).unwrap_or(u32::MAX)))
                .collect();
            let round = u32::try_from(round).unwrap_or(u32::MAX);
            let others = u32::try_from(inner.leased.len()).unwrap_or(u32::MAX);
            return ClaimLimit { total: round.saturating_mul(others.saturating_add(1)), per_project: round, rooms };
        }
        let room = |leased: usize| if leased > self.cap / 2 { 0 } else { self.cap - leased };
        let rooms = inner
            .leased
            .iter()
            .map(|(project, &leased)| (*project, u32::try_from(room(leased)).unwrap_or(u32::MAX)))
            .collect();
        ClaimLimit { total, per_project: u32::try_from(self.cap).unwrap_or(u32::MAX), rooms }
    }

    /// Deliveries leased and not yet recorded, all projects together.
    pub(super) fn leased_total(&self) -> usize {
        self.lock().leased.values().sum()
    }

    /// Counts deliveries leased by a claim.
    pub(super) fn leased(&self, projects: impl IntoIterator<Item = ProjectId>) {
        let mut inner = self.lock();
        for project in projects {
            if !inner.used.contains_key(&project) {
                let least = inner.used.values().min().copied().unwrap_or_default();
                inner.used.insert(project, least);
            }
            *inner.leased.entry(project).or_default() += 1;
        }
    }

    /// Counts deliveries recorded (or handed back): no longer leased. Wakes [`Share::reopened`] if a project
    /// has room again.
    pub(super) fn settled(&self, projects: impl IntoIterator<Item = ProjectId>) {
        let mut inner = self.lock();
        let mut reopened = false;
        for project in projects {
            if let Some(n) = inner.leased.get_mut(&project) {
                reopened |= *n == self.cap / 2 + 1;
                *n = n.saturating_sub(1);
                if *n == 0 {
                    inner.leased.remove(&project);
                    inner.retire(project);
                }
            }
        }
        if reopened {
            self.reopened.notify_one();
        }
    }

    /// An attempt slot for `project`: at once if one is free, else when the slots are shared out again.
    pub(super) async fn slot(self: &Arc<Self>, project: ProjectId) -> Slot {
        let (ticket, rx) = {
            let mut inner = self.lock();
            if inner.free > 0 {
                inner.free -= 1;
                *inner.running.entry(project).or_default() += 1;
                return Slot { share: self.clone(), project, since: Instant::now() };
            }
            let (tx, rx) = oneshot::channel();
            let ticket = inner.next_ticket;
            inner.next_ticket += 1;
            inner.waiting.entry(project).or_default().push_back((ticket, tx));
            (ticket, rx)
        };
        let mut wait = Waiting { share: self, project, ticket, rx, granted: false };
        // The sender lives in `waiting` until it grants the slot, and `self` keeps the map alive: the wait
        // ends only by a grant (the running count was raised for it).
        let _ = (&mut wait.rx).await;
        wait.granted = true;
        Slot { share: self.clone(), project, since: Instant::now() }
    }

    #[cfg(test)]
    fn running(&self, project: ProjectId) -> usize {
        self.lock().running.get(&project).copied().unwrap_or(0)
    }
}

/// A wait for a slot; dropped unfinished (the dispatcher stopping), it leaves the queue, and gives back a slot
/// granted meanwhile.
struct Waiting<'a> {
    share: &'a Arc<Share>,
    project: ProjectId,
    ticket: u64,
    rx: oneshot::Receiver<()>,
    granted: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.granted {
            return;
        }
        let mut inner = self.share.lock();
        if self.rx.try_recv().is_ok() {
            inner.release(self.project, Duration::ZERO);
        } else if let Some(queue) = inner.waiting.get_mut(&self.project) {
            queue.retain(|(ticket, _)| *ticket != self.ticket);
            if queue.is_empty() {
                inner.waiting.remove(&self.project);
            }
        }
    }
}

impl Inner {
    /// A slot `project` held for `held` is free: it goes to the waiting project with the fewest attempts
    /// running, among those to the one that has used the least slot time.
    fn release(&mut self, project: ProjectId, held: Duration) {
        decrement(&mut self.running, project);
        if let Some(used) = self.used.get_mut(&project) {
            *used += held;
        }
        self.retire(project);
        loop {
            let Inner { waiting, running, used, .. } = &mut *self;
            let next = waiting
                .iter()
                .filter_map(|(p, queue)| Some((*p, queue.front()?.0)))
                .min_by_key(|(p, ticket)| {
                    (running.get(p).copied().unwrap_or(0), used.get(p).copied().unwrap_or_default(), *ticket)
                })
                .map(|(p, _)| p);
            let Some(next) = next else {
                self.free += 1;
                return;
            };
            let queue = waiting.get_mut(&next).expect("chosen from the map");
            let (_, tx) = queue.pop_front().expect("chosen for its front");
            if queue.is_empty() {
                waiting.remove(&next);
            }
            *running.entry(next).or_default() += 1;
            if tx.send(()).is_ok() {
                return;
            }
            // Its waiter is gone (and found nothing to give back): the slot goes on to the next.
            decrement(running, next);
            self.retire(next);
        }
    }

    /// Forgets the slot time of `project` once it has nothing leased or running (see [`Inner::used`]).
    fn retire(&mut self, project: ProjectId) {
        if !self.leased.contains_key(&project) && !self.running.contains_key(&project) {
            self.used.remove(&project);
        }
    }
}

fn decrement(counts: &mut HashMap<ProjectId, usize>, project: ProjectId) {
    if let Some(n) = counts.get_mut(&project) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(&project);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ProjectId = ProjectId(1);
    const B: ProjectId = ProjectId(2);

    /// With every slot held by one project, the next free slot goes to another project that waits, even
    /// though the first project asked earlier.
    #[tokio::test]
    async fn a_freed_slot_goes_to_the_project_running_fewest() {
        let share = Share::new(2, 8);
        let (a1, a2) = (share.slot(A).await, share.slot(A).await);
        let a3 = tokio::spawn({
            let share = share.clone();
            async move { share.slot(A).await }
        });
        tokio::task::yield_now().await;
        let b1 = tokio::spawn({
            let share = share.clone();
            async move { share.slot(B).await }
        });
        tokio::task::yield_now().await;
        drop(a1);
        let b1 = b1.await.unwrap();
        assert_eq!((share.running(A), share.running(B)), (1, 1));
        assert!(!a3.is_finished(), "A waits: B ran fewer");
        drop(a2);
        let a3 = a3.await.unwrap();
        drop((a3, b1));
        assert_eq!((share.running(A), share.running(B)), (0, 0));
        assert_eq!(share.lock().free, 2);
    }

    /// A wait given up (the dispatcher stopping) leaves no trace: the slot it may have been granted is free.
    #[tokio::test]
    async fn an_abandoned_wait_gives_its_slot_back() {
        let share = Share::new(1, 8);
        let held = share.slot(A).await;
        let waiting = tokio::spawn({
            let share = share.clone();
            async move { share.slot(B).await }
        });
        tokio::task::yield_now().await;
        waiting.abort();
        let _ = waiting.await;
        drop(held);
        assert_eq!(share.lock().free, 1);
        assert!(share.lock().waiting.is_empty() && share.lock().running.is_empty());
        // Granted, then abandoned before it ran: still given back.
        let held = share.slot(A).await;
        let mut wait = Box::pin(share.slot(B));
        assert!(futures::poll!(wait.as_mut()).is_pending());
        drop(held);
        drop(wait);
        assert_eq!(share.lock().free, 1);
        assert!(share.lock().running.is_empty());
    }

    /// With one slot, a merchant whose endpoint answers at once is not made to take turns with a black hole
    /// that holds the slot for its whole timeout at every turn: among projects running equally few, the one
    /// that has used the least slot time goes first (the re-audit saw a merchant served once every two
    /// timeouts). A newcomer starts at the least slot time of those at work, not at nothing.
    #[tokio::test(start_paused = true)]
    async fn equals_are_served_by_the_slot_time_they_used() {
        const H: ProjectId = ProjectId(3);
        let share = Share::new(1, 8);
        share.leased([A, A, A, H, H, H]);
        let wait = |project| {
            let share = share.clone();
            tokio::spawn(async move { share.slot(project).await })
        };
        let a1 = share.slot(A).await;
        let a2 = wait(A);
        tokio::task::yield_now().await;
        let (h1, h2) = (wait(H), wait(H));
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_secs(10)).await;
        drop(a1);
        let h1 = h1.await.unwrap();
        tokio::time::advance(Duration::from_millis(2)).await;
        drop(h1);
        let h2 = h2.await.unwrap();
        assert!(!a2.is_finished(), "A has used 10 s of slot time, H 2 ms: H again");
        drop(h2);
        let a2 = a2.await.unwrap();
        // B comes to work now, at the least slot time of those at work (H's 2 ms), not at zero.
        share.leased([B]);
        let (b1, h3) = (wait(B), wait(H));
        tokio::task::yield_now().await;
        drop(a2);
        let first = tokio::select! { biased; b = b1 => (B, b.unwrap()), h = h3 => (H, h.unwrap()) };
        assert_eq!(first.0, B, "equal slot time: the earlier waiter");
    }

    /// A project is claimed up to its room; once over half of it, not until it is down to half.
    #[tokio::test]
    async fn leases_are_capped_per_project() {
        let share = Share::new(2, 8);
        assert_eq!(share.claim_limit(100), ClaimLimit { total: 100, per_project: 8, rooms: vec![] });
        share.leased([A, A, A, B]);
        let mut rooms = share.claim_limit(100).rooms;
        rooms.sort();
        assert_eq!(rooms, [(A, 5), (B, 7)]);
        share.leased([A, A]);
        assert_eq!(share.claim_limit(100).rooms.iter().find(|r| r.0 == A), Some(&(A, 0)), "5 > 8 / 2");
        // The whole window leased: a project gets in up to half its cap (4) only while it has at most a
        // quarter of it leased: B (1 leased), and projects with nothing leased; not A (5).
        let full = share.claim_limit(0);
        assert_eq!((full.total, full.per_project), (12, 4), "half a cap for each project leased and for newcomers");
        let mut rooms = full.rooms;
        rooms.sort();
        assert_eq!(rooms, [(A, 0), (B, 3)]);
        share.settled([A, B, B]);
        assert_eq!(share.claim_limit(100).rooms, [(A, 4)]);
        // The project that had no room has room again: a dispatcher waiting for that is woken.
        let woken = share.reopened.notified();
        assert!(futures::poll!(Box::pin(woken)).is_ready(), "a permit was stored when A went from 5 to 4");
    }
}
