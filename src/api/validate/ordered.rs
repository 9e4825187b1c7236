//! Work on many items across the machine's cores, with the results taken in the items' order,
//! as if one thread had done them: the manifest reader parses documents (and files) this way.
//!
//! Workers pull the items in order; the taker sees result `i` only after every result before
//! it, and may stop at any result (the items after it are then not started). A worker never
//! runs more than [`WINDOW`] items ahead of the taker, so a slow item cannot make the others
//! pile up results in memory (a file of a million broken documents stays a few hundred
//! messages, whatever the speed of each document).

use std::{
    collections::BTreeMap,
    sync::{Condvar, Mutex, mpsc},
};

/// How far ahead of the taker the workers may run, in items.
pub const WINDOW: usize = 256;

/// The threads worth using: `RUNPOD_OPERATOR_THREADS` when set (1 reads on the calling thread
/// alone), else the machine's cores; at most 8.
pub fn threads() -> usize {
    std::env::var("RUNPOD_OPERATOR_THREADS")
        .ok()
        .and_then(|t| t.trim().parse::<usize>().ok())
        .filter(|t| *t >= 1)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(std::num::NonZeroUsize::get)
                .unwrap_or(1)
        })
        .min(8)
}

struct Queue<I> {
    items: I,
    /// The index of the next item to pull.
    next: usize,
    /// How many results the taker has taken.
    taken: usize,
    stop: bool,
}

/// Runs `work` on each item on up to `threads` threads and hands the results to `take` in the
/// items' order; `take` returns `false` to stop. With one thread, or one item, no thread is
/// started.
pub fn in_order<I, T, R>(
    items: I,
    threads: usize,
    work: impl Fn(T) -> R + Sync,
    mut take: impl FnMut(R) -> bool,
) where
    I: Iterator<Item = T> + Send,
    T: Send,
    R: Send,
{
    if threads <= 1 {
        for item in items {
            if !take(work(item)) {
                return;
            }
        }
        return;
    }
    let queue = Mutex::new(Queue {
        items,
        next: 0,
        taken: 0,
        stop: false,
    });
    let room = Condvar::new();
    let lock = || queue.lock().unwrap_or_else(|e| e.into_inner());
    std::thread::scope(|scope| {
        let (results, received) = mpsc::channel::<(usize, R)>();
        for _ in 0..threads {
            let results = results.clone();
            let (queue, room, work) = (&queue, &room, &work);
            scope.spawn(move || {
                loop {
                    let (index, item) = {
                        let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                        while !q.stop && q.next >= q.taken + WINDOW {
                            q = room.wait(q).unwrap_or_else(|e| e.into_inner());
                        }
                        if q.stop {
                            return;
                        }
                        let Some(item) = q.items.next() else {
                            return;
                        };
                        q.next += 1;
                        (q.next - 1, item)
                    };
                    if results.send((index, work(item))).is_err() {
                        return;
                    }
                }
            });
        }
        drop(results);
        let mut early: BTreeMap<usize, R> = BTreeMap::new();
        let mut expected = 0usize;
        'receive: for (index, result) in received.iter() {
            early.insert(index, result);
            while let Some(result) = early.remove(&expected) {
                expected += 1;
                let go_on = take(result);
                let mut q = lock();
                q.taken = expected;
                if !go_on {
                    q.stop = true;
                }
                drop(q);
                room.notify_all();
                if !go_on {
                    break 'receive;
                }
            }
        }
        // Stopped (or done): the workers finish the item in hand and leave; what they send
        // now is dropped with the receiver.
        lock().stop = true;
        room.notify_all();
        drop(received);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_order_and_a_stop_starts_nothing_after_it() {
        for threads in [1, 2, 4] {
            let mut seen = Vec::new();
            in_order(
                0..10_000u32,
                threads,
                |i| {
                    // Uneven work, so the workers finish out of order.
                    if i % 7 == 0 {
                        std::thread::sleep(std::time::Duration::from_micros(50));
                    }
                    i * 2
                },
                |r| {
                    seen.push(r);
                    true
                },
            );
            assert_eq!(seen, (0..10_000u32).map(|i| i * 2).collect::<Vec<_>>());

            let started = std::sync::atomic::AtomicUsize::new(0);
            let mut taken = Vec::new();
            in_order(
                0..1_000_000u32,
                threads,
                |i| {
                    started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    i
                },
                |r| {
                    taken.push(r);
                    r < 100
                },
            );
            assert_eq!(taken, (0..=100).collect::<Vec<_>>());
            // At most the window (plus one in hand per thread) beyond the stop.
            let started = started.load(std::sync::atomic::Ordering::SeqCst);
            assert!(started <= 101 + WINDOW + threads, "{started} started");
        }
    }
}
