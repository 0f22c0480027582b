//! `brandvoice serve`: the HTTP service.
//!
//! Thin: build the config (file, then `BRANDVOICE_*`, then flags), size the
//! engine's thread pool, load the style book, mood detector and model (the
//! `models` module fetches a known model when missing, as for `generate`),
//! bind, and serve until SIGTERM or ctrl-c, then drain in-flight requests.

use brandvoice::server::{self, Overrides, ServeConfig};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML config file (default: BRANDVOICE_CONFIG, else built-in defaults; see brandvoice.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free one).
    #[arg(long)]
    pub bind: Option<String>,
    /// Model: a known name, a .gguf path or hf:owner/repo/file.gguf (default qwen2.5-0.5b).
    #[arg(long)]
    pub model: Option<String>,
    /// Engine threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Requests that may wait for the model; a full queue answers 503.
    #[arg(long)]
    pub queue: Option<usize>,
    /// Start without the language model and mood detector: lint, brands, channels,
    /// reviews and admin routes work; drafting and triage answer 503.
    #[arg(long)]
    pub no_model: bool,
    /// Pre-fill the prefix cache at start for hot brand × channel × mood combinations
    /// (between requests; see `[server] warm`, BRANDVOICE_WARM).
    #[arg(long)]
    pub warm: bool,
}

pub fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let flags = Overrides { bind: a.bind, model: a.model, threads: a.threads, queue: a.queue, warm: a.warm.then_some(true) };
    let cfg = ServeConfig::load(a.config.as_deref(), &flags)?;
    let threads = super::generate::apply_threads(cfg.model.threads)?;
    tracing::info!(model = %cfg.model.name, threads, queue = cfg.server.queue_size, "starting");
    let (state, worker) = if a.no_model {
        (std::sync::Arc::new(server::load_base_state(&cfg)?), None)
    } else {
        let (s, w) = server::load_state(&cfg)?;
        (s, Some(w))
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let addr = cfg.bind_addr()?;
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let bound = listener.local_addr()?;
        tracing::info!(%bound, "listening");
        // Always say where we listen, even with logging off (port 0 picks one).
        let model = if a.no_model { "none".to_string() } else { cfg.model.name.clone() };
        eprintln!("brandvoice listening on http://{bound} (model {model}, {threads} threads); docs at http://{bound}/docs");
        server::serve(listener, state, worker, shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    eprintln!("brandvoice stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on ctrl-c or SIGTERM (axum's graceful-shutdown example).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for ctrl-c: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received: draining in-flight requests");
    eprintln!("brandvoice: shutting down, draining in-flight requests");
}
