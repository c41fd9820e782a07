//! `neural-style serve`: the studio, a local web page to paint with.
//!
//! One process: an axum HTTP server on a tokio runtime (`routes.rs`), an upload
//! store in a private temporary directory (`uploads.rs`), one painting thread
//! fed by a queue (`jobs.rs`, built on the library's `Painter`), live updates as
//! Server-Sent Events (`events.rs`) and the page itself, embedded (`assets.rs`).
//!
//! Safe by default, also on a machine with other users: every request must
//! carry the server's random token (`auth.rs`); it binds to loopback, answers
//! only requests whose `Host` is this server (an IP address, `localhost` or an
//! `--allow-origin`), checks `Origin` on every request that changes state,
//! never lets a client-supplied name reach the file system, and validates
//! every job's options through the same options model as the command line.
//! Every resource a client can make it hold is bounded (`net.rs`: headers,
//! bodies, connections; `uploads.rs`: decoded pixels, concurrent decodes,
//! uploads kept; `jobs.rs`: the queue, iterations, sizes, the gallery).

mod assets;
mod auth;
mod events;
mod jobs;
mod net;
mod routes;
mod uploads;

use clap::Args;
use neural_style_core::{Error, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `neural-style serve`: its flags.
#[derive(Args, Debug, Clone)]
pub(crate) struct ServeArgs {
    /// Address to listen on. The default is loopback only; anything else makes
    /// the studio reachable from other machines.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub(crate) bind: SocketAddr,
    /// Largest --size (and scale, --style-size) a job may ask for, in pixels;
    /// --style-scale may not make the style images larger than that either.
    #[arg(long, value_name = "PX", default_value_t = 1024)]
    pub(crate) max_size: u32,
    /// Largest upload, in MiB (pixels are limited as for the command line's inputs).
    #[arg(long, value_name = "MIB", default_value_t = 50)]
    pub(crate) max_upload_mib: u64,
    /// Compute backend of every job (`neural-style backends` lists them).
    #[arg(long)]
    pub(crate) backend: Option<String>,
    /// Device of the backend (as the command line's --device).
    #[arg(long)]
    pub(crate) device: Option<String>,
    /// CPU threads of every job [default: all cores].
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// VGG19 weights file [default: found or fetched automatically].
    #[arg(long, value_name = "FILE")]
    pub(crate) weights: Option<PathBuf>,
    /// Also save every finished or stopped result here (PNG + its settings as JSON);
    /// on SIGINT/SIGTERM the job in flight is stopped and saved here.
    #[arg(long, value_name = "DIR")]
    pub(crate) gallery: Option<PathBuf>,
    /// Send a preview image every N iterations (and at the first and last).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub(crate) preview_every: usize,
    /// Another origin allowed to use the studio, e.g. http://studio.lan:8080 (the
    /// server's own address is always allowed). Repeatable.
    #[arg(long, value_name = "URL")]
    pub(crate) allow_origin: Vec<String>,
    /// No messages but errors (the start-up line is still printed).
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
    /// Require no token: anyone who can reach the port can use the studio
    /// (read every result, upload, paint, stop jobs). Unsafe on a machine with
    /// other users (a cluster login node, a shared workstation), where any of
    /// them can reach 127.0.0.1.
    #[arg(long)]
    pub(crate) no_token: bool,
    /// Seconds a client has to send a request's headers (also how long an idle
    /// connection stays open).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub(crate) header_timeout: u64,
    /// Seconds a client has to send a request's body, once its headers are in.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub(crate) body_timeout: u64,
    /// Most connections open at once (fewer if the open-files limit is low).
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub(crate) max_connections: usize,
    /// Most pixels of one upload, in megapixels (its header is read before
    /// anything is decoded).
    #[arg(long, value_name = "MPX", default_value_t = 40)]
    pub(crate) max_upload_megapixels: u64,
    /// Most uploads kept (the oldest not used by a queued job are removed first).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub(crate) max_uploads: usize,
    /// Most bytes of uploads kept on disk, in MiB (as --max-uploads).
    #[arg(long, value_name = "MIB", default_value_t = 512)]
    pub(crate) max_uploads_mib: u64,
    /// Most results the gallery keeps in memory (the oldest go first; those
    /// saved with --gallery stay on disk).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub(crate) max_results: usize,
    /// Most memory the gallery's results take, in MiB (as --max-results).
    #[arg(long, value_name = "MIB", default_value_t = 512)]
    pub(crate) max_results_mib: u64,
    /// Most jobs waiting in the queue, all clients together.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub(crate) max_queue: usize,
    /// Most jobs one client (one browser session) may have waiting or painting.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub(crate) max_queue_per_client: usize,
    /// Most iterations of one job (over every scale).
    #[arg(long, value_name = "N", default_value_t = 5000)]
    pub(crate) max_iterations: usize,
}

/// What every request handler shares.
pub(crate) struct Studio {
    args: ServeArgs,
    auth: auth::Auth,
    uploads: uploads::Uploads,
    jobs: Arc<jobs::Jobs>,
    hub: events::Hub,
    /// The port actually bound (the configured one may be 0).
    port: u16,
    /// Uploads being read, and being decoded (`routes::READS`, `routes::DECODES`).
    reads: tokio::sync::Semaphore,
    decodes: tokio::sync::Semaphore,
}

/// A line to stderr that never panics (a closed terminal, a full disk).
pub(crate) fn eprint_line(m: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{m}");
}

/// Removes the private directory: on every way out (its `Drop`), and from
/// the second signal's handler, which exits at once.
struct RemoveOnExit(PathBuf);

impl RemoveOnExit {
    fn remove(dir: &std::path::Path) {
        // A file being written as it goes can make one pass fail: retry.
        for _ in 0..5 {
            match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                _ => return,
            }
        }
    }
}

impl Drop for RemoveOnExit {
    fn drop(&mut self) {
        RemoveOnExit::remove(&self.0);
    }
}

/// Runs the studio until SIGINT, SIGTERM or SIGHUP.
pub(crate) fn run(args: ServeArgs) -> Result<ExitCode> {
    let at_least = |flag: &'static str, v: u64, min: u64| {
        if v < min {
            Err(Error::config(flag, format!("must be at least {min}")))
        } else {
            Ok(())
        }
    };
    at_least("max-size", args.max_size.into(), 16)?;
    at_least("max-upload-mib", args.max_upload_mib, 1)?;
    at_least("preview-every", args.preview_every as u64, 1)?;
    at_least("header-timeout", args.header_timeout, 1)?;
    at_least("body-timeout", args.body_timeout, 1)?;
    at_least("max-connections", args.max_connections as u64, 4)?;
    at_least("max-upload-megapixels", args.max_upload_megapixels, 1)?;
    at_least("max-uploads", args.max_uploads as u64, 2)?;
    at_least("max-uploads-mib", args.max_uploads_mib, 1)?;
    at_least("max-results", args.max_results as u64, 1)?;
    at_least("max-results-mib", args.max_results_mib, 1)?;
    at_least("max-queue", args.max_queue as u64, 1)?;
    at_least("max-queue-per-client", args.max_queue_per_client as u64, 1)?;
    at_least("max-iterations", args.max_iterations as u64, 1)?;
    if args.max_upload_mib > 1 << 20 {
        return Err(Error::config("max-upload-mib", "must be at most 1048576"));
    }
    for o in &args.allow_origin {
        routes::parse_origin(o).map_err(|m| Error::config("allow-origin", m))?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // The painting has the cores; the server only moves bytes.
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::config("serve", format!("cannot start the runtime: {e}")))?;
    let code = runtime.block_on(serve(args));
    // A handler still decoding an upload is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

async fn serve(args: ServeArgs) -> Result<ExitCode> {
    let quiet = args.quiet;
    let say = move |m: &str| {
        if !quiet {
            eprint_line(m);
        }
    };
    let engine = jobs::Engine::new(&args, &say)?;
    if let Some(dir) = &args.gallery {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let uploads = uploads::Uploads::new(uploads::Bounds {
        max_bytes: args.max_upload_mib << 20,
        max_pixels: args.max_upload_megapixels.saturating_mul(1_000_000),
        max_kept: args.max_uploads,
        max_kept_bytes: args.max_uploads_mib.saturating_mul(1 << 20),
    })?;
    let private = RemoveOnExit(uploads.dir());
    let hub = events::Hub::new();
    let listener = net::listen(args.bind)
        .map_err(|e| Error::config("bind", format!("cannot listen on {}: {e}", args.bind)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::config("bind", e.to_string()))?;
    let auth = auth::Auth::new(addr.port(), !args.no_token)
        .map_err(|e| Error::config("serve", format!("cannot draw a random token: {e}")))?;
    let jobs = jobs::Jobs::start(engine, hub.clone(), args.gallery.clone(), uploads.dir());
    let studio = Arc::new(Studio {
        args: args.clone(),
        auth,
        uploads,
        jobs: jobs.clone(),
        hub: hub.clone(),
        port: addr.port(),
        reads: tokio::sync::Semaphore::new(routes::READS),
        decodes: tokio::sync::Semaphore::new(routes::DECODES),
    });
    // Caught before the start-up line: from then on a signal stops cleanly.
    let signal = shutdown_signal()?;
    let limits = net::Limits {
        header_timeout: std::time::Duration::from_secs(args.header_timeout),
        body_timeout: std::time::Duration::from_secs(args.body_timeout),
        max_connections: net::connection_cap(args.max_connections),
    };
    let shown = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let url = match studio.auth.token() {
        Some(t) => format!("http://{shown}/?token={t}"),
        None => format!("http://{shown}/"),
    };
    // The one line a user (and the tests) need: always printed.
    eprint_line(&format!(
        "neural-style studio: {url} ({})",
        if addr.ip().is_loopback() {
            "loopback only: this machine alone can reach it; --bind 0.0.0.0:PORT to share it"
        } else {
            "listening beyond loopback: other machines can reach it"
        }
    ));
    if args.no_token {
        eprint_line(
            "warning: --no-token: anyone who can reach this port can use the studio (every user of this machine, at least)",
        );
    }
    say(&format!(
        "uploads in {} (removed on exit); Ctrl-C stops{}",
        studio.uploads.dir().display(),
        match &args.gallery {
            Some(d) => format!(", saving the job in flight to {}", d.display()),
            None => String::new(),
        }
    ));
    if limits.max_connections < args.max_connections {
        say(&format!(
            "at most {} connections at once (the open-files limit)",
            limits.max_connections
        ));
    }
    let app = routes::router(studio.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let private_dir = studio.uploads.dir();
    tokio::spawn(async move {
        let name = signal.await;
        say(&format!(
            "{name}: stopping (the job in flight is kept; a second signal quits at once)"
        ));
        if let Ok(second) = shutdown_signal() {
            tokio::spawn(async move {
                let name = second.await;
                eprint_line(&format!("{name} again: quitting without saving"));
                RemoveOnExit::remove(&private_dir);
                std::process::exit(130);
            });
        }
        // Stop the painting first (its result goes to the gallery), then
        // end the event streams and the connections.
        let _ = tokio::task::spawn_blocking(move || jobs.shutdown()).await;
        hub.close();
        stop_tx.send_replace(true);
    });
    net::serve(listener, app, limits, stop_rx, say).await;
    drop(private);
    say("stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGINT, SIGTERM and SIGHUP (a closed terminal, a logout), caught from now
/// on; `.await` waits for one and returns its name.
fn shutdown_signal() -> Result<impl std::future::Future<Output = &'static str>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let cannot =
            |e: std::io::Error| Error::config("serve", format!("cannot catch signals: {e}"));
        let mut int = signal(SignalKind::interrupt()).map_err(cannot)?;
        let mut term = signal(SignalKind::terminate()).map_err(cannot)?;
        let mut hup = signal(SignalKind::hangup()).map_err(cannot)?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
                _ = hup.recv() => "SIGHUP",
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        })
    }
}
