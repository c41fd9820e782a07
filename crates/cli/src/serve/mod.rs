//! `neural-style serve`: the studio, a local web page to paint with.
//!
//! One process: an axum HTTP server on a tokio runtime (`routes.rs`), an upload
//! store in a private temporary directory (`uploads.rs`), one painting thread
//! fed by a queue (`jobs.rs`, built on the library's `Painter`), live updates as
//! Server-Sent Events (`events.rs`) and the page itself, embedded (`assets.rs`).
//!
//! Safe by default: it binds to loopback, answers only requests whose `Host`
//! is this server (an IP address, `localhost` or an `--allow-origin`), checks
//! `Origin` on every request that changes state, never lets a client-supplied
//! name reach the file system, and validates every job's options through the
//! same options model as the command line.

mod assets;
mod events;
mod jobs;
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
    /// Largest --size (and scale) a job may ask for, in pixels.
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
}

/// What every request handler shares.
pub(crate) struct Studio {
    args: ServeArgs,
    uploads: uploads::Uploads,
    jobs: Arc<jobs::Jobs>,
    hub: events::Hub,
    /// The port actually bound (the configured one may be 0).
    port: u16,
}

/// Runs the studio until SIGINT or SIGTERM.
pub(crate) fn run(args: ServeArgs) -> Result<ExitCode> {
    if args.max_size < 16 {
        return Err(Error::config("max-size", "must be at least 16"));
    }
    if args.max_upload_mib == 0 {
        return Err(Error::config("max-upload-mib", "must be at least 1"));
    }
    if args.preview_every == 0 {
        return Err(Error::config("preview-every", "must be at least 1"));
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
    runtime.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> Result<ExitCode> {
    let quiet = args.quiet;
    let say = move |m: &str| {
        if !quiet {
            eprintln!("{m}");
        }
    };
    let engine = jobs::Engine::new(&args, &say)?;
    if let Some(dir) = &args.gallery {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let uploads = uploads::Uploads::new(args.max_upload_mib << 20)?;
    let hub = events::Hub::new();
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| Error::config("bind", format!("cannot listen on {}: {e}", args.bind)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::config("bind", e.to_string()))?;
    let jobs = jobs::Jobs::start(engine, hub.clone(), args.gallery.clone(), uploads.dir());
    let studio = Arc::new(Studio {
        args: args.clone(),
        uploads,
        jobs: jobs.clone(),
        hub: hub.clone(),
        port: addr.port(),
    });
    // Caught before the start-up line: from then on a signal stops cleanly.
    let signal = shutdown_signal()?;
    let shown = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    // The one line a user (and the tests) need: always printed.
    eprintln!(
        "neural-style studio: http://{shown}/ ({})",
        if addr.ip().is_loopback() {
            "loopback only: this machine alone can reach it; --bind 0.0.0.0:PORT to share it"
        } else {
            "listening beyond loopback: other machines can reach it"
        }
    );
    say(&format!(
        "uploads in {} (removed on exit); Ctrl-C stops{}",
        studio.uploads.dir().display(),
        match &args.gallery {
            Some(d) => format!(", saving the job in flight to {}", d.display()),
            None => String::new(),
        }
    ));
    let app = routes::router(studio.clone());
    let stopping = {
        let hub = hub.clone();
        let jobs = jobs.clone();
        async move {
            let name = signal.await;
            say(&format!(
                "{name}: stopping (the job in flight is kept; a second signal quits at once)"
            ));
            if let Ok(second) = shutdown_signal() {
                tokio::spawn(async move {
                    let name = second.await;
                    eprintln!("{name} again: quitting without saving");
                    std::process::exit(130);
                });
            }
            // Stop the painting first (its result goes to the gallery), then
            // end the event streams so that the connections can close.
            let _ = tokio::task::spawn_blocking(move || jobs.shutdown()).await;
            hub.close();
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stopping)
        .await
        .map_err(|e| Error::config("serve", e.to_string()))?;
    studio.uploads.remove_all();
    say("stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGINT and SIGTERM, caught from now on; `.await` waits for either and
/// returns its name.
fn shutdown_signal() -> Result<impl std::future::Future<Output = &'static str>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let cannot =
            |e: std::io::Error| Error::config("serve", format!("cannot catch signals: {e}"));
        let mut int = signal(SignalKind::interrupt()).map_err(cannot)?;
        let mut term = signal(SignalKind::terminate()).map_err(cannot)?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
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
