//! Prometheus metrics, written by hand in the text exposition format.
//!
//! Hand-written because the set is small and fixed (requests by route and
//! status, latency histograms, queue depth, tokens, prefix-cache use,
//! fallbacks) and a metrics crate would add dependencies that recompile for
//! minutes on this machine. Counters are atomics; the per-route maps sit
//! behind one mutex held only for an increment. Request latency is measured by
//! a middleware up to the response head, so for SSE it is the time to the
//! first byte; the drafting phases come from the pipeline's own timings.

use crate::draft::DraftResponse;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 13] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (c, b) in self.counts.iter_mut().zip(BUCKETS) {
            if secs <= b {
                *c += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        for (c, b) in self.counts.iter().zip(BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default)]
struct PerRoute {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    /// Whole pipeline time of drafts (queue wait included), by route.
    draft_latency: BTreeMap<String, Histogram>,
}

/// All server metrics.
#[derive(Default)]
pub struct Metrics {
    routes: Mutex<PerRoute>,
    pub queue_depth: AtomicUsize,
    pub queue_capacity: AtomicUsize,
    pub queue_rejected: AtomicU64,
    pub model_ready: AtomicBool,
    drafts_ok: AtomicU64,
    drafts_failed: AtomicU64,
    drafts_cancelled: AtomicU64,
    drafts_returned: AtomicU64,
    fallbacks: AtomicU64,
    prompt_tokens: AtomicU64,
    cached_tokens: AtomicU64,
    cache_hits: AtomicU64,
    generated_tokens: AtomicU64,
    /// Microseconds of decoding (after the prefill), for tokens per second.
    generate_us: AtomicU64,
    triaged: AtomicU64,
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    pub fn new(queue_capacity: usize) -> Self {
        let m = Metrics::default();
        m.queue_capacity.store(queue_capacity, Ordering::Relaxed);
        m
    }

    /// One HTTP request finished (its head was sent).
    pub fn observe_request(&self, route: &str, status: u16, secs: f64) {
        if let Ok(mut r) = self.routes.lock() {
            *r.requests.entry((route.to_string(), status)).or_default() += 1;
            r.latency.entry(route.to_string()).or_default().observe(secs);
        }
    }

    /// A draft finished in the pipeline.
    pub fn observe_draft(&self, route: &str, resp: &DraftResponse) {
        let t = &resp.timings;
        self.drafts_ok.fetch_add(1, Ordering::Relaxed);
        self.drafts_returned.fetch_add(resp.drafts.len() as u64, Ordering::Relaxed);
        self.fallbacks.fetch_add(resp.drafts.iter().filter(|d| d.fallback).count() as u64, Ordering::Relaxed);
        self.prompt_tokens.fetch_add(t.prompt_tokens as u64, Ordering::Relaxed);
        self.cached_tokens.fetch_add(t.cached_tokens as u64, Ordering::Relaxed);
        if t.cache_hit {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
        self.generated_tokens.fetch_add(t.generated_tokens as u64, Ordering::Relaxed);
        self.generate_us.fetch_add((t.generate_ms * 1000.0).max(0.0) as u64, Ordering::Relaxed);
        if let Ok(mut r) = self.routes.lock() {
            r.draft_latency.entry(route.to_string()).or_default().observe((t.queued_ms + t.total_ms) / 1000.0);
        }
    }

    pub fn observe_draft_failed(&self, cancelled: bool) {
        if cancelled {
            self.drafts_cancelled.fetch_add(1, Ordering::Relaxed);
        } else {
            self.drafts_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn observe_triage(&self, n: usize) {
        self.triaged.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let g = |o: &AtomicU64| o.load(Ordering::Relaxed);
        if let Ok(r) = self.routes.lock() {
            out.push_str("# HELP brandvoice_http_requests_total HTTP requests by route and status.\n# TYPE brandvoice_http_requests_total counter\n");
            for ((route, status), n) in &r.requests {
                let _ = writeln!(out, "brandvoice_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}", escape(route));
            }
            out.push_str("# HELP brandvoice_http_request_duration_seconds Time to the response head, by route (for SSE: to the first byte).\n# TYPE brandvoice_http_request_duration_seconds histogram\n");
            for (route, h) in &r.latency {
                h.write(&mut out, "brandvoice_http_request_duration_seconds", &format!("route=\"{}\"", escape(route)));
            }
            out.push_str("# HELP brandvoice_draft_duration_seconds Whole draft time, queue wait included, by route.\n# TYPE brandvoice_draft_duration_seconds histogram\n");
            for (route, h) in &r.draft_latency {
                h.write(&mut out, "brandvoice_draft_duration_seconds", &format!("route=\"{}\"", escape(route)));
            }
        }
        let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        gauge(&mut out, "brandvoice_model_ready", "1 when the model is loaded and its worker runs.", if self.model_ready.load(Ordering::Relaxed) { 1.0 } else { 0.0 });
        gauge(&mut out, "brandvoice_queue_depth", "Requests waiting for the model.", self.queue_depth.load(Ordering::Relaxed) as f64);
        gauge(&mut out, "brandvoice_queue_capacity", "Most requests that may wait.", self.queue_capacity.load(Ordering::Relaxed) as f64);
        counter(&mut out, "brandvoice_queue_rejected_total", "Requests answered 503 because the queue was full.", g(&self.queue_rejected));
        out.push_str("# HELP brandvoice_draft_requests_total Draft pipeline runs by outcome.\n# TYPE brandvoice_draft_requests_total counter\n");
        let _ = writeln!(out, "brandvoice_draft_requests_total{{outcome=\"ok\"}} {}", g(&self.drafts_ok));
        let _ = writeln!(out, "brandvoice_draft_requests_total{{outcome=\"error\"}} {}", g(&self.drafts_failed));
        let _ = writeln!(out, "brandvoice_draft_requests_total{{outcome=\"cancelled\"}} {}", g(&self.drafts_cancelled));
        let returned = g(&self.drafts_returned);
        let fallbacks = g(&self.fallbacks);
        counter(&mut out, "brandvoice_drafts_total", "Drafts returned.", returned);
        counter(&mut out, "brandvoice_fallback_drafts_total", "Drafts that are the brand's approved fallback.", fallbacks);
        gauge(&mut out, "brandvoice_fallback_rate", "Fallback drafts / drafts returned since start.", ratio(fallbacks, returned));
        let prompt = g(&self.prompt_tokens);
        let cached = g(&self.cached_tokens);
        counter(&mut out, "brandvoice_prompt_tokens_total", "Prompt tokens of draft requests.", prompt);
        counter(&mut out, "brandvoice_prompt_cached_tokens_total", "Prompt tokens served by the prefix cache.", cached);
        counter(&mut out, "brandvoice_prefix_cache_hits_total", "Draft requests that reused a cached prefix.", g(&self.cache_hits));
        gauge(&mut out, "brandvoice_prefix_cache_hit_rate", "Share of draft requests that reused a cached prefix.", ratio(g(&self.cache_hits), g(&self.drafts_ok)));
        gauge(&mut out, "brandvoice_prefix_cache_token_rate", "Share of prompt tokens served by the prefix cache.", ratio(cached, prompt));
        let gen = g(&self.generated_tokens);
        let us = g(&self.generate_us);
        counter(&mut out, "brandvoice_generated_tokens_total", "Tokens generated (all candidates).", gen);
        let _ = writeln!(out, "# HELP brandvoice_generation_seconds_total Decoding time.\n# TYPE brandvoice_generation_seconds_total counter\nbrandvoice_generation_seconds_total {}", us as f64 / 1e6);
        gauge(&mut out, "brandvoice_tokens_per_second", "Generated tokens / decoding seconds since start.", if us == 0 { 0.0 } else { gen as f64 / (us as f64 / 1e6) });
        counter(&mut out, "brandvoice_triaged_messages_total", "Messages triaged.", g(&self.triaged));
        out
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::new(4);
        m.observe_request("/v1/lint", 200, 0.003);
        m.observe_request("/v1/lint", 200, 0.2);
        m.observe_request("/v1/lint", 422, 0.001);
        let t = m.render();
        assert!(t.contains("brandvoice_http_requests_total{route=\"/v1/lint\",status=\"200\"} 2"), "{t}");
        assert!(t.contains("brandvoice_http_requests_total{route=\"/v1/lint\",status=\"422\"} 1"), "{t}");
        assert!(t.contains("brandvoice_http_request_duration_seconds_bucket{route=\"/v1/lint\",le=\"0.005\"} 2"), "{t}");
        assert!(t.contains("brandvoice_http_request_duration_seconds_bucket{route=\"/v1/lint\",le=\"+Inf\"} 3"), "{t}");
        assert!(t.contains("brandvoice_queue_capacity 4"), "{t}");
    }
}
