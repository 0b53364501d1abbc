//! Face analysis on bounded slots, in two lanes: a terminal's payment, and
//! the face work of callers who need no credential (an enrolment, a face
//! enrolled again, the public analysis). A flood of the second kind waits
//! on its own slots, in a queue of its own with a bound, and never takes
//! a slot a payment would run on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use crate::error::Failure;

/// Whose slots a face analysis runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// A terminal's payment.
    Payment,
    /// An enrolment, a face enrolled again, or the public analysis.
    Enrolment,
}

pub(crate) struct Lanes {
    payment_slots: Arc<Semaphore>,
    enrolment_slots: Arc<Semaphore>,
    enrolment_waiting: AtomicUsize,
    /// Enrolment-lane analyses waiting for a slot at most; one more is
    /// refused (503 `face_work_busy`) rather than queued. Payments'
    /// waiters are bounded by the requests in flight and by their bodies'
    /// budget.
    enrolment_waiting_max: usize,
}

impl Lanes {
    pub(crate) fn new(
        payment_slots: usize,
        enrolment_slots: usize,
        enrolment_waiting_max: usize,
    ) -> Self {
        assert!(payment_slots > 0 && enrolment_slots > 0 && enrolment_waiting_max > 0);
        Self {
            payment_slots: Arc::new(Semaphore::new(payment_slots)),
            enrolment_slots: Arc::new(Semaphore::new(enrolment_slots)),
            enrolment_waiting: AtomicUsize::new(0),
            enrolment_waiting_max,
        }
    }

    /// `work` on a blocking thread once one of `lane`'s slots is free. The
    /// thread holds the slot, so a request given up meanwhile does not free
    /// it while its work still runs.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        lane: Lane,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Failure> {
        let slots = match lane {
            Lane::Payment => &self.payment_slots,
            Lane::Enrolment => &self.enrolment_slots,
        };
        let waiting = match lane {
            Lane::Payment => None,
            Lane::Enrolment => Some(self.enter_enrolment_queue()?),
        };
        let permit = Arc::clone(slots)
            .acquire_owned()
            .await
            .map_err(|_| Failure::unavailable("shutting_down", "the server is shutting down"))?;
        drop(waiting);
        let task = move || {
            let _permit = permit;
            work()
        };
        tokio::task::spawn_blocking(task).await.map_err(|e| {
            tracing::error!(error = %e, "face analysis thread");
            Failure::internal()
        })
    }

    /// A place in the enrolment lane's queue, given back when dropped.
    fn enter_enrolment_queue(&self) -> Result<Waiting<'_>, Failure> {
        let before = self.enrolment_waiting.fetch_add(1, Ordering::AcqRel);
        let waiting = Waiting(&self.enrolment_waiting);
        if before >= self.enrolment_waiting_max {
            return Err(Failure::unavailable(
                "face_work_busy",
                "too many enrolments and face analyses are waiting; retry shortly",
            ));
        }
        Ok(waiting)
    }
}

/// One analysis counted in the enrolment lane's queue.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let before = self.0.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    use super::*;

    /// Work that holds its slot until `released` is set (at most 10 s).
    fn held(released: &Arc<AtomicBool>) -> impl FnOnce() + Send + 'static {
        let released = Arc::clone(released);
        move || {
            let start = Instant::now();
            while !released.load(Ordering::Acquire) && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_enrolment_flood_never_takes_a_payment_slot() {
        let waiting_max = 4;
        let lanes = Arc::new(Lanes::new(2, 1, waiting_max));
        let released = Arc::new(AtomicBool::new(false));
        // One enrolment runs (and blocks) on the lane's only slot; the
        // queue fills behind it; one more is refused at once.
        let mut flood = Vec::new();
        for _ in 0..=waiting_max {
            let (lanes, work) = (Arc::clone(&lanes), held(&released));
            flood.push(tokio::spawn(async move {
                lanes.run(Lane::Enrolment, work).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let refused = lanes.run(Lane::Enrolment, || ()).await.unwrap_err();
        assert_eq!((refused.status, refused.code), (503, "face_work_busy"));
        // Payments run on both their slots while the flood waits.
        let start = Instant::now();
        let (a, b) = tokio::join!(
            lanes.run(Lane::Payment, || 1),
            lanes.run(Lane::Payment, || 2)
        );
        assert_eq!((a.unwrap(), b.unwrap()), (1, 2));
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(flood.iter().all(|task| !task.is_finished()));
        released.store(true, Ordering::Release);
        for task in flood {
            assert!(task.await.unwrap().is_ok());
        }
        assert_eq!(lanes.enrolment_waiting.load(Ordering::Acquire), 0);
    }
}
