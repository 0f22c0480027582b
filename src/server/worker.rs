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

use super::admin::BookCell;
use super::error::AppError;
use crate::store::drafts::AuditLog;
use super::metrics::Metrics;
use crate::draft::{DraftError, DraftEvent, DraftResponse, Drafter, MoodUsed, ValidDraftRequest};
use crate::mood::EscalationFlag;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
}

/// Starts the worker thread with a bounded queue of `capacity` waiting
/// requests. The thread ends after [`WorkerHandle::stop`] (once the requests
/// queued before it are done) or when every handle is dropped.
///
/// With a `book` cell the worker takes a reloaded style book before its next
/// job; with an `audit` log it records every finished draft (without waiting:
/// the log's writer thread does the disk work).
pub fn spawn(drafter: Drafter, capacity: usize, metrics: Arc<Metrics>, book: Option<Arc<BookCell>>, audit: Option<AuditLog>) -> std::io::Result<(WorkerHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(capacity.max(1));
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
    };
    let thread = std::thread::Builder::new().name("brandvoice-model".into()).spawn(move || {
        run(drafter, rx, &metrics, &avg_job_ms, book, audit);
        alive.store(false, Ordering::Release);
        metrics.model_ready.store(false, Ordering::Release);
        tracing::info!("model worker stopped");
    })?;
    Ok((handle, thread))
}

fn run(mut drafter: Drafter, mut rx: mpsc::Receiver<Msg>, metrics: &Metrics, avg_job_ms: &AtomicU64, book: Option<Arc<BookCell>>, audit: Option<AuditLog>) {
    let mut book_version = book.as_ref().map(|b| b.version()).unwrap_or(0);
    while let Some(msg) = rx.blocking_recv() {
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
