//! A tiny persistent thread pool for the matmul kernels.
//!
//! Why not rayon or `std::thread::scope`: a decode step runs ~200 matmuls of a
//! few tens of microseconds each, so the cost of handing work to another core
//! must be about a microsecond. Spawning threads costs tens of microseconds
//! and waking a sleeping rayon worker goes through a futex each time. Here the
//! workers spin on a generation counter for a short while after each job (the
//! gap between two matmuls of one forward is shorter than that), then park on
//! a condvar so an idle engine burns no CPU.
//!
//! Work is a number of tasks `0..n`; every thread (the caller included) takes
//! the next task index from an atomic counter until none is left, so a core
//! slowed by another process simply takes fewer tasks. Only one job runs at a
//! time: a caller that finds the pool busy (another thread of the process is
//! inside a matmul) runs its tasks itself instead of waiting.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker spins for the next job before parking.
const SPIN: Duration = Duration::from_micros(300);

type TaskFn<'a> = dyn Fn(usize) + Sync + 'a;

/// The job being run: a lifetime-erased pointer to the caller's closure. It is
/// only dereferenced between publication and the caller's wait for `active`
/// to reach zero, while the closure is alive on the caller's stack.
#[derive(Clone, Copy)]
struct JobPtr(*const TaskFn<'static>);
unsafe impl Send for JobPtr {}
unsafe impl Sync for JobPtr {}

struct Shared {
    generation: AtomicUsize,
    job: Mutex<Option<JobPtr>>,
    n_tasks: AtomicUsize,
    next: AtomicUsize,
    /// Workers still inside the current job.
    active: AtomicUsize,
    shutdown: AtomicBool,
    park: Mutex<()>,
    wake: Condvar,
}

pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    busy: Mutex<()>,
}

impl Pool {
    /// A pool running jobs on `threads` threads: the caller plus `threads - 1` workers.
    pub fn new(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            generation: AtomicUsize::new(0),
            job: Mutex::new(None),
            n_tasks: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            park: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (1..threads.max(1))
            .map(|i| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("bv-matmul-{i}"))
                    .spawn(move || worker(s))
                    .expect("spawning a matmul worker thread")
            })
            .collect();
        Pool { shared, workers, busy: Mutex::new(()) }
    }

    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(0) .. f(n_tasks - 1)` across the pool and returns when all are done.
    pub fn run(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if n_tasks == 0 {
            return;
        }
        let guard = match self.busy.try_lock() {
            Ok(g) if !self.workers.is_empty() && n_tasks > 1 => g,
            _ => {
                (0..n_tasks).for_each(f);
                return;
            }
        };
        let s = &*self.shared;
        // SAFETY: the pointer is erased to 'static only for storage; we wait
        // below until no worker can still dereference it.
        let ptr: *const TaskFn<'_> = f;
        let ptr: *const TaskFn<'static> = unsafe { std::mem::transmute(ptr) };
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(JobPtr(ptr));
        s.n_tasks.store(n_tasks, Ordering::Relaxed);
        s.next.store(0, Ordering::Relaxed);
        s.active.store(self.workers.len(), Ordering::Relaxed);
        s.generation.fetch_add(1, Ordering::Release);
        {
            let _p = s.park.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        loop {
            let t = s.next.fetch_add(1, Ordering::AcqRel);
            if t >= n_tasks {
                break;
            }
            f(t);
        }
        let mut spins = 0u32;
        while s.active.load(Ordering::Acquire) != 0 {
            spins += 1;
            if spins > 2000 {
                // A worker was descheduled (other processes on the cores): let it run.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
        drop(guard);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        {
            let _p = self.shared.park.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(s: Arc<Shared>) {
    // Generation 0 is "no job yet": a worker that starts late still sees job 1.
    let mut seen = 0;
    loop {
        // Spin, then park, until a new generation (or shutdown) appears.
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if s.shutdown.load(Ordering::Acquire) {
                return;
            }
            let g = s.generation.load(Ordering::Acquire);
            if g != seen {
                seen = g;
                break;
            }
            spins += 1;
            if spins % 64 == 0 && start.elapsed() > SPIN {
                let p = s.park.lock().unwrap_or_else(|e| e.into_inner());
                if s.generation.load(Ordering::Acquire) == seen && !s.shutdown.load(Ordering::Acquire) {
                    let _ = s.wake.wait_timeout(p, Duration::from_millis(50));
                }
            } else {
                std::hint::spin_loop();
            }
        }
        let job = *s.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(JobPtr(ptr)) = job {
            // SAFETY: the caller keeps the closure alive until `active` is 0.
            let f = unsafe { &*ptr };
            let n = s.n_tasks.load(Ordering::Acquire);
            loop {
                let t = s.next.fetch_add(1, Ordering::AcqRel);
                if t >= n {
                    break;
                }
                f(t);
            }
        }
        s.active.fetch_sub(1, Ordering::AcqRel);
    }
}

static POOL: OnceLock<Mutex<Arc<Pool>>> = OnceLock::new();

fn default_threads() -> usize {
    if let Some(n) = std::env::var("BRANDVOICE_THREADS").ok().and_then(|v| v.trim().parse::<usize>().ok()) {
        if n > 0 {
            return n;
        }
    }
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn cell() -> &'static Mutex<Arc<Pool>> {
    POOL.get_or_init(|| Mutex::new(Arc::new(Pool::new(default_threads()))))
}

/// The process-wide pool the kernels use.
pub fn global() -> Arc<Pool> {
    Arc::clone(&cell().lock().unwrap_or_else(|e| e.into_inner()))
}

/// Sets the number of threads the matmul kernels use (the caller counts as
/// one). Default: `BRANDVOICE_THREADS`, else the number of cores.
pub fn set_threads(n: usize) {
    let n = n.max(1);
    let mut p = cell().lock().unwrap_or_else(|e| e.into_inner());
    if p.threads() != n {
        *p = Arc::new(Pool::new(n));
    }
}

/// The number of threads the matmul kernels use.
pub fn threads() -> usize {
    global().threads()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_exactly_once() {
        let pool = Pool::new(3);
        for n in [0usize, 1, 2, 7, 100] {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            pool.run(n, &|t| {
                hits[t].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "n={n}");
        }
    }

    #[test]
    fn concurrent_callers_do_not_interfere() {
        let pool = Arc::new(Pool::new(2));
        std::thread::scope(|sc| {
            for _ in 0..4 {
                let pool = Arc::clone(&pool);
                sc.spawn(move || {
                    for _ in 0..200 {
                        let sum = AtomicUsize::new(0);
                        pool.run(16, &|t| {
                            sum.fetch_add(t, Ordering::Relaxed);
                        });
                        assert_eq!(sum.load(Ordering::Relaxed), 120);
                    }
                });
            }
        });
    }
}
