//! A future that wakes its own task while it is being polled is polled again at once, in the same
//! poll, instead of going back to the scheduler.
//!
//! hyper's HTTP/1 connection does this on every request (found from a `perf` trace of the
//! eventfd writes that followed every answer: `Harness::poll` rescheduling the connection's
//! task as a yield). tokio treats a task woken during its own poll as one that yielded: it
//! queues it again and wakes a parked worker to steal it, an eventfd write and a thread wake-up
//! per request whose only effect is that the next request on the connection is read by another
//! thread, with cold caches. [`PollAgainOnSelfWake`] notes such a wake and polls the future
//! again before returning, a bounded number of times, so a future that keeps waking itself (a
//! deliberate yield) still yields.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// Polls again within one poll at most this often; a future woken again after that yields.
const POLLS_AGAIN_MAX: usize = 2;

/// Not being polled: a wake goes to the task's waker.
const IDLE: u8 = 0;
/// Being polled, not woken yet.
const POLLING: u8 = 1;
/// Woken while being polled: the poll polls again.
const WOKEN: u8 = 2;

/// Wraps a task's future: see the module's documentation.
pub struct PollAgainOnSelfWake<F> {
    future: Pin<Box<F>>,
    wake: Arc<SelfWake>,
    waker: Waker,
}

impl<F: Future> PollAgainOnSelfWake<F> {
    pub fn new(future: F) -> PollAgainOnSelfWake<F> {
        let wake = Arc::new(SelfWake {
            state: AtomicU8::new(IDLE),
            task: Mutex::new(None),
        });
        PollAgainOnSelfWake {
            future: Box::pin(future),
            waker: Waker::from(wake.clone()),
            wake,
        }
    }
}

impl<F: Future> Future for PollAgainOnSelfWake<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.wake.remember(cx.waker());
        let mut inner = Context::from_waker(&this.waker);
        for _ in 0..=POLLS_AGAIN_MAX {
            this.wake.state.store(POLLING, Ordering::SeqCst);
            if let Poll::Ready(output) = this.future.as_mut().poll(&mut inner) {
                this.wake.state.store(IDLE, Ordering::SeqCst);
                return Poll::Ready(output);
            }
            // Not woken meanwhile: later wakes go to the task.
            if this
                .wake
                .state
                .compare_exchange(POLLING, IDLE, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return Poll::Pending;
            }
        }
        // Woken during every poll: yield to the scheduler as the future asked.
        this.wake.state.store(IDLE, Ordering::SeqCst);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

struct SelfWake {
    state: AtomicU8,
    /// The waker of the task that polls the future, from its latest poll.
    task: Mutex<Option<Waker>>,
}

impl SelfWake {
    fn remember(&self, waker: &Waker) {
        let mut task = self
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match task.as_ref() {
            Some(known) if known.will_wake(waker) => {}
            _ => *task = Some(waker.clone()),
        }
    }
}

impl Wake for SelfWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // During a poll the poll itself polls again (WOKEN already means it will).
        match self
            .state
            .compare_exchange(POLLING, WOKEN, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) | Err(WOKEN) => return,
            Err(_) => {}
        }
        let task = self
            .task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Wakes itself in each of its first `self_wakes` polls, then is ready.
    struct WakesItself {
        self_wakes: usize,
        polls: usize,
    }

    impl Future for WakesItself {
        type Output = usize;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            self.polls += 1;
            if self.polls > self.self_wakes {
                return Poll::Ready(self.polls);
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn task() -> (Arc<CountingWaker>, Waker) {
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(counter.clone());
        (counter, waker)
    }

    #[test]
    fn a_self_wake_is_polled_again_in_the_same_poll_without_waking_the_task() {
        let (counter, waker) = task();
        let mut future = PollAgainOnSelfWake::new(WakesItself {
            self_wakes: POLLS_AGAIN_MAX,
            polls: 0,
        });
        let outcome = Pin::new(&mut future).poll(&mut Context::from_waker(&waker));
        assert_eq!(outcome, Poll::Ready(POLLS_AGAIN_MAX + 1));
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_future_that_keeps_waking_itself_still_yields_to_the_scheduler() {
        let (counter, waker) = task();
        let mut future = PollAgainOnSelfWake::new(WakesItself {
            self_wakes: usize::MAX,
            polls: 0,
        });
        let mut cx = Context::from_waker(&waker);
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Pending);
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "yielded through the task's waker"
        );
        assert_eq!(future.future.polls, POLLS_AGAIN_MAX + 1);
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Pending);
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
    }

    /// Pending until its flag is set; hands its waker out on its first poll, and may have it
    /// woken from another thread while it is being polled.
    struct Flagged {
        ready: Arc<std::sync::atomic::AtomicBool>,
        waker: Arc<Mutex<Option<Waker>>>,
        wake_from_thread_once: bool,
    }

    impl Future for Flagged {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.ready.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if std::mem::take(&mut self.wake_from_thread_once) {
                let (ready, waker) = (self.ready.clone(), cx.waker().clone());
                std::thread::spawn(move || {
                    ready.store(true, Ordering::SeqCst);
                    waker.wake();
                })
                .join()
                .unwrap();
            }
            Poll::Pending
        }
    }

    #[test]
    fn a_wake_between_polls_reaches_the_task_and_one_during_a_poll_from_another_thread_is_not_lost()
    {
        let (counter, waker) = task();
        let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handed_out = Arc::new(Mutex::new(None));
        let mut future = PollAgainOnSelfWake::new(Flagged {
            ready: ready.clone(),
            waker: handed_out.clone(),
            wake_from_thread_once: false,
        });
        let mut cx = Context::from_waker(&waker);
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Pending);
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        ready.store(true, Ordering::SeqCst);
        handed_out.lock().unwrap().take().unwrap().wake();
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "the wake reached the task"
        );
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Ready(()));

        let mut future = PollAgainOnSelfWake::new(Flagged {
            ready: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            waker: Arc::new(Mutex::new(None)),
            wake_from_thread_once: true,
        });
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Ready(()));
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "polled again, the task not woken"
        );
    }
}
