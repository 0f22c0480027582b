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
//! slowed by another process simply takes fewer tasks, and a worker that is not
//! scheduled at all never makes the caller wait. Only one job runs at a
//! time: a caller that finds the pool busy (another thread of the process is
//! inside a matmul) runs its tasks itself instead of waiting.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker spins for the next job before parking.
const SPIN: Duration = Duration::from_micros(300);

type TaskFn<'a> = dyn Fn(usize) + Sync + 'a;

/// The job being run: a lifetime-erased pointer to the caller's closure. A
/// worker dereferences it only after claiming a task of the current
/// generation, and the caller returns only when every claimed task is done.
#[derive(Clone, Copy)]
struct JobPtr(*const TaskFn<'static>);
unsafe impl Send for JobPtr {}
unsafe impl Sync for JobPtr {}

/// `state` packs the job generation (high 32 bits) and the next unclaimed task
/// index (low 32 bits), so a claim is one compare-and-swap and a worker that
/// wakes up late can never claim a task of a newer job with an old closure.
const IDX_MASK: u64 = 0xFFFF_FFFF;

struct Shared {
    state: AtomicU64,
    /// (generation, closure, number of tasks) of the latest job.
    job: Mutex<Option<(u64, JobPtr, usize)>>,
    /// Workers between "looking at the job" and "done with it".
    inflight: AtomicUsize,
    shutdown: AtomicBool,
    park: Mutex<()>,
    wake: Condvar,
}

impl Shared {
    /// Claims the next task of generation `gen`, if any is left.
    fn claim(&self, gen: u64, n: usize) -> Option<usize> {
        let mut s = self.state.load(Ordering::SeqCst);
        loop {
            let idx = (s & IDX_MASK) as usize;
            if s >> 32 != gen || idx >= n {
                return None;
            }
            match self.state.compare_exchange_weak(s, s + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Some(idx),
                Err(cur) => s = cur,
            }
        }
    }
}

pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    busy: Mutex<u64>,
}

impl Pool {
    /// A pool running jobs on `threads` threads: the caller plus `threads - 1` workers.
    pub fn new(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            state: AtomicU64::new(0),
            job: Mutex::new(None),
            inflight: AtomicUsize::new(0),
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
        Pool { shared, workers, busy: Mutex::new(0) }
    }

    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(0) .. f(n_tasks - 1)` across the pool and returns when all are done.
    /// A worker that is not running (its core is busy with another process)
    /// does not hold the caller up: the caller takes the tasks it has not claimed.
    pub fn run(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if n_tasks == 0 {
            return;
        }
        let mut guard = match self.busy.try_lock() {
            Ok(g) if !self.workers.is_empty() && n_tasks > 1 && n_tasks <= IDX_MASK as usize => g,
            _ => {
                (0..n_tasks).for_each(f);
                return;
            }
        };
        let s = &*self.shared;
        *guard = (*guard + 1) & IDX_MASK;
        let gen = *guard;
        // SAFETY: the pointer is erased to 'static only for storage; see JobPtr.
        let ptr: *const TaskFn<'_> = f;
        let ptr: *const TaskFn<'static> = unsafe { std::mem::transmute(ptr) };
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some((gen, JobPtr(ptr), n_tasks));
        s.state.store(gen << 32, Ordering::SeqCst);
        {
            let _p = s.park.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        while let Some(t) = s.claim(gen, n_tasks) {
            f(t);
        }
        let mut spins = 0u32;
        while s.inflight.load(Ordering::SeqCst) != 0 {
            spins += 1;
            if spins > 2000 {
                // A worker holding a task was descheduled: let it run.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
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
    let mut seen = 0u64;
    loop {
        // Spin, then park, until a new generation (or shutdown) appears.
        let start = Instant::now();
        let mut spins = 0u32;
        let gen = loop {
            if s.shutdown.load(Ordering::Acquire) {
                return;
            }
            let g = s.state.load(Ordering::Acquire) >> 32;
            if g != seen {
                break g;
            }
            spins += 1;
            if spins % 64 == 0 && start.elapsed() > SPIN {
                let p = s.park.lock().unwrap_or_else(|e| e.into_inner());
                if s.state.load(Ordering::Acquire) >> 32 == seen && !s.shutdown.load(Ordering::Acquire) {
                    let _ = s.wake.wait_timeout(p, Duration::from_millis(50));
                }
            } else {
                std::hint::spin_loop();
            }
        };
        seen = gen;
        s.inflight.fetch_add(1, Ordering::SeqCst);
        let job = *s.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((jgen, JobPtr(p), n)) = job {
            // A record of another generation means our job is over: claim nothing.
            if jgen == gen {
                while let Some(t) = s.claim(gen, n) {
                    // SAFETY: we hold a claimed task of this generation, so its
                    // caller is still inside `run` and the closure alive.
                    let f = unsafe { &*p };
                    f(t);
                }
            }
        }
        s.inflight.fetch_sub(1, Ordering::SeqCst);
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

    /// Back-to-back jobs of different sizes: a late worker must never run a
    /// task of a newer job twice or with the old closure.
    #[test]
    fn rapid_jobs_of_changing_size_run_each_task_once() {
        let pool = Pool::new(2);
        for i in 0..3000 {
            let n = if i % 2 == 0 { 3 } else { 40 };
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            pool.run(n, &|t| {
                hits[t].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "job {i}");
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
