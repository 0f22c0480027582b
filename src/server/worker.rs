//! The one task that owns the model.
//!
//! Shaped like TGI's queue: a dedicated OS thread owns the [`Drafter`] (the
//! model and its prefix cache are `&mut` state, and generation is blocking CPU
//! work that must not sit on the async runtime); requests reach it through a
//! bounded `tokio::sync::mpsc` channel, each carrying its own reply channel.
//! `try_send` on a full channel is an immediate 503 with `Retry-After`, never
//! a hang. The reply channel doubles as the cancellation signal: when the
//! client goes away axum drops the handler (or the SSE body), the receiver is
//! dropped, and the pipeline's event callback sees the channel closed and
//! returns `false`, which stops generation within one token.
//!
//! Warm-up (`[server] warm`): the worker fills the prefix cache for a list of
//! brand + channel + mood + language combinations, one at a time and only
//! while no request is waiting, so the service answers from the first moment
//! (`/readyz` is ready once the model is loaded) and a request waits for at
//! most one combination's prefill.

use super::admin::BookCell;
use super::error::AppError;
use crate::store::drafts::AuditLog;
use super::metrics::Metrics;
use crate::draft::{DraftError, DraftEvent, DraftResponse, Drafter, MoodUsed, ValidDraftRequest, WarmCombo};
use crate::mood::EscalationFlag;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// What the worker sends back for one request.
#[derive(Debug)]
pub enum WorkerEvent {
    /// Mood, language and escalation are known (streamed requests only).
    Understood { mood: MoodUsed, language: String, escalation: Vec<EscalationFlag> },
    /// Raw text of candidate `candidate` as it is generated (streamed requests only).
    Token { candidate: usize, text: String },
    /// The checked response (with `queued_ms` filled in), or why there is none.
    Done(Result<DraftResponse, AppError>),
}

/// One request in the queue.
struct Job {
    request: ValidDraftRequest,
    /// Send `Understood` and `Token` events, not only `Done`.
    stream: bool,
    /// Route name for the metrics.
    route: &'static str,
    enqueued: Instant,
    reply: mpsc::UnboundedSender<WorkerEvent>,
}

/// What travels through the queue: a request, or the signal to stop after
/// the requests before it (graceful shutdown).
enum Msg {
    Job(Job),
    Stop,
}

/// The cloneable front of the worker: how handlers submit drafts.
#[derive(Clone)]
pub struct WorkerHandle {
    tx: mpsc::Sender<Msg>,
    capacity: usize,
    metrics: Arc<Metrics>,
    /// Moving average of a job's time in the worker, for `Retry-After`.
    avg_job_ms: Arc<AtomicU64>,
    alive: Arc<AtomicBool>,
    model_name: Arc<str>,
    warm: Arc<WarmProgress>,
}

/// How far the start-up warm-up got.
#[derive(Debug, Default)]
pub struct WarmProgress {
    /// Combinations to warm.
    pub total: AtomicUsize,
    /// Combinations in the prefix cache so far.
    pub done: AtomicUsize,
    /// The warm-up is over (all done, the cache is full, or it failed).
    pub finished: AtomicBool,
}

impl WarmProgress {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "total": self.total.load(Ordering::Relaxed),
            "done": self.done.load(Ordering::Relaxed),
            "finished": self.finished.load(Ordering::Acquire),
        })
    }
}

impl WorkerHandle {
    /// Queues a validated request. Fails at once with 503 when the queue is
    /// full or the worker has stopped. The receiver yields the events and
    /// ends with `Done`; dropping it cancels the generation.
    pub fn submit(&self, request: ValidDraftRequest, stream: bool, route: &'static str) -> Result<mpsc::UnboundedReceiver<WorkerEvent>, AppError> {
        if !self.alive.load(Ordering::Acquire) {
            return Err(AppError::NotReady);
        }
        let (reply, rx) = mpsc::unbounded_channel();
        let depth = self.metrics.queue_depth.fetch_add(1, Ordering::AcqRel) + 1;
        match self.tx.try_send(Msg::Job(Job { request, stream, route, enqueued: Instant::now(), reply })) {
            Ok(()) => Ok(rx),
            Err(e) => {
                self.metrics.queue_depth.fetch_sub(1, Ordering::AcqRel);
                match e {
                    mpsc::error::TrySendError::Full(_) => {
                        self.metrics.queue_rejected.fetch_add(1, Ordering::Relaxed);
                        Err(AppError::Overloaded { queued: depth.saturating_sub(1), capacity: self.capacity, retry_after_secs: self.retry_after_secs() })
                    }
                    mpsc::error::TrySendError::Closed(_) => Err(AppError::NotReady),
                }
            }
        }
    }

    /// How long until a slot is likely free: the queue drained at the
    /// average job time, at least 1 s, at most 60 s.
    pub fn retry_after_secs(&self) -> u64 {
        let avg = self.avg_job_ms.load(Ordering::Relaxed).max(500) as f64;
        let waiting = self.capacity as f64 + 1.0;
        ((avg * waiting / 1000.0).ceil() as u64).clamp(1, 60)
    }

    /// Asks the worker to stop once the requests already queued are done
    /// (waits for room in the queue, so nothing queued is dropped).
    pub async fn stop(&self) {
        let _ = self.tx.send(Msg::Stop).await;
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// The start-up warm-up's progress.
    pub fn warm_progress(&self) -> &WarmProgress {
        &self.warm
    }
}

/// Starts the worker thread with a bounded queue of `capacity` waiting
/// requests. The thread ends after [`WorkerHandle::stop`] (once the requests
/// queued before it are done) or when every handle is dropped.
///
/// With a `book` cell the worker takes a reloaded style book before its next
/// job; with an `audit` log it records every finished draft (without waiting:
/// the log's writer thread does the disk work).
///
/// `warm` lists the combinations to pre-fill the prefix cache with, hottest
/// first (see [`Drafter::hot_combos`]); the worker works through it while no
/// request is waiting and stops early when the cache is full.
pub fn spawn(drafter: Drafter, capacity: usize, metrics: Arc<Metrics>, book: Option<Arc<BookCell>>, audit: Option<AuditLog>, warm: Vec<WarmCombo>) -> std::io::Result<(WorkerHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let progress = Arc::new(WarmProgress::default());
    progress.total.store(warm.len(), Ordering::Relaxed);
    progress.finished.store(warm.is_empty(), Ordering::Release);
    let alive = Arc::new(AtomicBool::new(true));
    let avg_job_ms = Arc::new(AtomicU64::new(0));
    metrics.model_ready.store(true, Ordering::Release);
    let handle = WorkerHandle {
        tx,
        capacity,
        metrics: metrics.clone(),
        avg_job_ms: avg_job_ms.clone(),
        alive: alive.clone(),
        model_name: Arc::from(drafter.model_name()),
        warm: progress.clone(),
    };
    let thread = std::thread::Builder::new().name("brandvoice-model".into()).spawn(move || {
        run(drafter, rx, &metrics, &avg_job_ms, book, audit, Warmer::new(warm, progress));
        alive.store(false, Ordering::Release);
        metrics.model_ready.store(false, Ordering::Release);
        tracing::info!("model worker stopped");
    })?;
    Ok((handle, thread))
}

/// The warm-up list and where the worker is in it.
struct Warmer {
    todo: std::vec::IntoIter<WarmCombo>,
    progress: Arc<WarmProgress>,
    started: Instant,
    tokens_fed: usize,
}

impl Warmer {
    fn new(combos: Vec<WarmCombo>, progress: Arc<WarmProgress>) -> Self {
        Warmer { todo: combos.into_iter(), progress, started: Instant::now(), tokens_fed: 0 }
    }

    fn busy(&self) -> bool {
        !self.progress.finished.load(Ordering::Acquire)
    }

    /// Warms the next combination; marks the warm-up finished when the list
    /// is done, the cache is full, or warming fails (logged, not fatal).
    fn step(&mut self, drafter: &mut Drafter) {
        let Some(combo) = self.todo.next() else { return self.finish("all combinations warmed") };
        match drafter.warm_one(&combo) {
            Ok(Some(fed)) => {
                self.tokens_fed += fed;
                self.progress.done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(None) => self.finish("the prefix cache is full (model.prefix_cache_bytes)"),
            Err(e) => {
                tracing::warn!(brand = %combo.brand, channel = %combo.channel, mood = %combo.mood, language = %combo.language, "warm-up stopped: {e}");
                self.finish("failed");
            }
        }
    }

    fn finish(&mut self, why: &str) {
        self.progress.finished.store(true, Ordering::Release);
        tracing::info!(
            warmed = self.progress.done.load(Ordering::Relaxed),
            of = self.progress.total.load(Ordering::Relaxed),
            tokens_fed = self.tokens_fed,
            ms = self.started.elapsed().as_millis() as u64,
            "prefix-cache warm-up over: {why}"
        );
    }
}

fn run(mut drafter: Drafter, mut rx: mpsc::Receiver<Msg>, metrics: &Metrics, avg_job_ms: &AtomicU64, book: Option<Arc<BookCell>>, audit: Option<AuditLog>, mut warmer: Warmer) {
    let mut book_version = book.as_ref().map(|b| b.version()).unwrap_or(0);
    loop {
        let msg = if warmer.busy() {
            match rx.try_recv() {
                Ok(m) => m,
                Err(mpsc::error::TryRecvError::Empty) => {
                    warmer.step(&mut drafter);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        } else {
            match rx.blocking_recv() {
                Some(m) => m,
                None => break,
            }
        };
        let job = match msg {
            Msg::Job(job) => job,
            Msg::Stop => break,
        };
        if let Some(cell) = &book {
            if cell.version() != book_version {
                book_version = cell.version();
                drafter.set_book(cell.get());
                tracing::info!(version = book_version, "model worker switched to the reloaded style book");
            }
        }
        metrics.queue_depth.fetch_sub(1, Ordering::AcqRel);
        let queued_ms = job.enqueued.elapsed().as_secs_f64() * 1000.0;
        if job.reply.is_closed() {
            // The client left while waiting: do not spend the model on it.
            metrics.observe_draft_failed(true);
            continue;
        }
        let started = Instant::now();
        let reply = &job.reply;
        let stream = job.stream;
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            drafter.draft(&job.request, &mut |ev| {
                if reply.is_closed() {
                    return false;
                }
                if !stream {
                    return true;
                }
                let owned = match ev {
                    DraftEvent::Understood { mood, language, escalation } => WorkerEvent::Understood { mood: mood.clone(), language: language.to_string(), escalation: escalation.to_vec() },
                    DraftEvent::Token { candidate, text } => WorkerEvent::Token { candidate, text: text.to_string() },
                };
                reply.send(owned).is_ok()
            })
        }));
        let job_ms = started.elapsed().as_secs_f64() * 1000.0;
        let prev = avg_job_ms.load(Ordering::Relaxed) as f64;
        let next = if prev == 0.0 { job_ms } else { 0.8 * prev + 0.2 * job_ms };
        avg_job_ms.store(next as u64, Ordering::Relaxed);
        let done = match result {
            Ok(Ok(mut resp)) => {
                resp.timings.queued_ms = queued_ms;
                metrics.observe_draft(job.route, &resp);
                let t = &resp.timings;
                tracing::info!(
                    route = job.route,
                    brand = %job.request.brand,
                    channel = %job.request.channel,
                    n = job.request.n,
                    queued_ms = t.queued_ms as u64,
                    total_ms = t.total_ms as u64,
                    prompt_tokens = t.prompt_tokens,
                    cached_tokens = t.cached_tokens,
                    generated_tokens = t.generated_tokens,
                    fallback = resp.drafts.iter().any(|d| d.fallback),
                    "draft"
                );
                if let Some(a) = &audit {
                    a.record(job.route, &job.request, &resp);
                }
                Ok(resp)
            }
            Ok(Err(DraftError::Cancelled)) => {
                tracing::info!(route = job.route, "draft cancelled: the client went away");
                metrics.observe_draft_failed(true);
                continue;
            }
            Ok(Err(e)) => {
                metrics.observe_draft_failed(false);
                Err(AppError::from(e))
            }
            Err(panic) => {
                let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_default();
                metrics.observe_draft_failed(false);
                Err(AppError::Internal(format!("the drafting pipeline panicked: {what}")))
            }
        };
        let _ = job.reply.send(WorkerEvent::Done(done));
    }
}
