//! Taking one of the runtime's locks: [`lock`].
//!
//! The runtime's locks guard a few loads and stores (a queue's ends and counts, a list of
//! waiters, an answer's slot), held for tens of nanoseconds and never across an `.await`;
//! a few are held longer (a walk of a tree under its lists' locks, the ring of recorded
//! events), and a taker of one of those soon blocks. A free lock is taken with one atomic
//! operation. A held one is almost always held by a tokio worker on another core that lets
//! it go within a few hundred cycles, or by one preempted on this core. So the taker spins
//! a little (1, 2, 4, then 8 spin-loop hints, trying again after each), then yields its OS
//! thread three times (a preempted holder gets to finish), and only then blocks in the
//! kernel.
//!
//! Taken directly, a `std` [`Mutex`] spins longer and never yields: a taker whose holder is
//! not running spins in vain, then sleeps, and once a taker sleeps every unlock until the
//! lock is free again is a system call to wake it. Taken as here, takers rarely sleep, and
//! an unlock stays one atomic store. With 16 tasks on two workers sending to one thread
//! (`taskthread-bench`'s contended workload, full size, builds alternated on a 2-core
//! machine), a send takes 255–263 ns with the `Mutex` taken directly and 210–215 ns taken
//! as here, against 202–205 ns through tokio's lock-free channel. More rounds of spinning
//! before the yields are slower, and so is spinning without yielding.
//!
//! A poisoned lock is taken as it is: what each lock guards is left whole between the steps
//! of the code that holds it.

use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

/// Rounds of spinning before yielding: 1, 2, 4 and 8 spin-loop hints.
const SPIN_ROUNDS: u32 = 4;
/// Yields of the OS thread before blocking.
const YIELDS: u32 = 3;

/// Takes `mutex`, waiting for it a little before blocking if another thread holds it.
#[inline]
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => lock_contended(mutex),
    }
}

/// [`lock`] when the lock is held: spin, then yield, then block.
#[cold]
#[inline(never)]
fn lock_contended<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    for round in 0..SPIN_ROUNDS + YIELDS {
        if round < SPIN_ROUNDS {
            for _ in 0..1u32 << round {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
        match mutex.try_lock() {
            Ok(guard) => return guard,
            Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {}
        }
    }
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::lock;

    #[test]
    fn threads_that_meet_on_a_lock_each_get_it() {
        let count = Arc::new(Mutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let count = Arc::clone(&count);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        *lock(&count) += 1;
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no panic");
        }
        assert_eq!(*lock(&count), 40_000);
    }

    #[test]
    fn a_poisoned_lock_is_taken_as_it_is() {
        let value = Arc::new(Mutex::new(vec![1]));
        let poisoner = Arc::clone(&value);
        let panicked = std::thread::spawn(move || {
            let mut guard = poisoner.lock().expect("not poisoned yet");
            guard.push(2);
            panic!("poison the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert!(value.is_poisoned());
        assert_eq!(*lock(&value), vec![1, 2]);
    }

    #[test]
    fn a_lock_poisoned_while_a_taker_waits_is_taken_as_it_is() {
        let value = Arc::new(Mutex::new(vec![1]));
        let held = Arc::new(std::sync::Barrier::new(2));
        let poisoner = {
            let value = Arc::clone(&value);
            let held = Arc::clone(&held);
            std::thread::spawn(move || {
                let mut guard = lock(&value);
                held.wait();
                guard.push(2);
                panic!("poison the lock while the other thread wants it");
            })
        };
        held.wait();
        // Held when this asks for it; poisoned when it gets it.
        let got = lock(&value).clone();
        assert!(poisoner.join().is_err());
        assert_eq!(got, vec![1, 2]);
    }

    #[test]
    fn a_held_lock_is_waited_for() {
        let value = Arc::new(Mutex::new(0u32));
        let started = Arc::new(std::sync::Barrier::new(2));
        let held = lock(&value);
        let taker = {
            let value = Arc::clone(&value);
            let started = Arc::clone(&started);
            std::thread::spawn(move || {
                started.wait();
                *lock(&value) + 1
            })
        };
        // Whether the taker has not reached the lock yet, or is spinning, yielding or
        // blocked on it when it is let go, it gets it then.
        started.wait();
        drop(held);
        assert_eq!(taker.join().expect("no panic"), 1);
    }
}
