//! Face analysis on bounded slots, in two lanes: a terminal's payment, and
//! the face work of callers who need no credential (an enrolment, a face
//! enrolled again, the public analysis). A flood of the second kind waits
//! on its own slots, in a queue of its own with a bound, and never takes
//! a slot a payment would run on. Its analyses also run at a lower CPU
//! priority: slots alone leave the cores shared, and on a small machine
//! an enrolment's eight large frames would otherwise take a payment's
//! time as surely as its slot.

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
        match lane {
            Lane::Payment => tokio::task::spawn_blocking(task).await.map_err(|e| {
                tracing::error!(error = %e, "face analysis thread");
                Failure::internal()
            }),
            Lane::Enrolment => at_low_priority(task).await,
        }
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

/// How much the enrolment lane's threads lower their CPU priority (a nice
/// increment): when payments want the cores too, the scheduler gives an
/// enrolment about a tenth of a payment's share; when they do not, all of
/// it.
const ENROLMENT_NICE_ADDED: i32 = 10;
/// The lowest priority a nice value gives.
const NICE_MAX: i32 = 19;

/// `task` on a thread of its own, at the enrolment lane's lower priority.
/// A thread each rather than the runtime's blocking pool: a priority,
/// once lowered, cannot be raised again without privilege, and would slow
/// the payment that next ran on that pooled thread. A thread costs
/// microseconds next to the analysis it runs, and the lane's slots bound
/// how many there are.
async fn at_low_priority<T: Send + 'static>(
    task: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Failure> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("enrolment-lane".into())
        .spawn(move || {
            lower_priority();
            let _ = answer.send(task());
        })
        .map_err(|e| {
            tracing::error!(error = %e, "enrolment lane thread");
            Failure::internal()
        })?;
    answered.await.map_err(|_| {
        tracing::error!("an enrolment lane analysis ended without an answer");
        Failure::internal()
    })
}

/// Lowers the calling thread's CPU priority. A nice value belongs to each
/// thread on Linux; elsewhere it is the whole process's, and is left alone.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let lowered = getpriority_process(None).and_then(|nice| {
            setpriority_process(None, (nice + ENROLMENT_NICE_ADDED).min(NICE_MAX))
        });
        if let Err(e) = lowered {
            tracing::warn!(error = %e, "the enrolment lane runs at the payments' priority");
        }
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

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn enrolment_work_runs_at_a_lower_priority_than_payments() {
        let lanes = Lanes::new(1, 1, 1);
        let nice = || rustix::process::getpriority_process(None).unwrap();
        let payment = lanes.run(Lane::Payment, nice).await.unwrap();
        let enrolment = lanes.run(Lane::Enrolment, nice).await.unwrap();
        assert_eq!(enrolment, (payment + ENROLMENT_NICE_ADDED).min(NICE_MAX));
        assert!(enrolment > payment || payment == NICE_MAX);
        // The pooled threads payments run on keep their priority.
        for _ in 0..4 {
            assert_eq!(lanes.run(Lane::Payment, nice).await.unwrap(), payment);
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
