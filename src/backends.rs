//! Which backends this build has, and running generic code on one of them.
//!
//! Architecture invariant: this module is the only place that names the
//! backend crates. A backend whose Cargo feature is off still has a name
//! here, and selecting it says how to enable it.

use neural_style_core::backend::Backend;
use neural_style_core::{Error, Result};

/// Every backend the project has, enabled in this build or not.
pub const ALL: &[&str] = &["candle", "tch", "cuda"];

/// The backend used when `--backend` is not given.
pub const DEFAULT: &str = "candle";

/// What `neural-style backends` prints for one backend.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackendInfo {
    /// The backend's name (`--backend`).
    pub name: &'static str,
    /// Whether this build includes it.
    pub enabled: bool,
    /// Devices it found, or why it has none.
    pub devices: Vec<String>,
}

/// All backends with their status in this build.
pub fn list() -> Vec<BackendInfo> {
    ALL.iter()
        .map(|&name| {
            let devices = match name {
                #[cfg(feature = "candle")]
                "candle" => neural_style_candle::CandleBackend::devices(),
                #[cfg(feature = "tch")]
                "tch" => neural_style_tch::TchBackend::devices(),
                #[cfg(feature = "cuda")]
                "cuda" => neural_style_cuda::CudaBackend::devices(),
                _ => Vec::new(),
            };
            BackendInfo {
                name,
                enabled: enabled(name),
                devices,
            }
        })
        .collect()
}

/// Whether `name` is compiled into this build.
pub fn enabled(name: &str) -> bool {
    (name == "candle" && cfg!(feature = "candle"))
        || (name == "tch" && cfg!(feature = "tch"))
        || (name == "cuda" && cfg!(feature = "cuda"))
}

/// How to get a build with backend `name`.
pub fn how_to_enable(name: &str) -> String {
    match name {
        "tch" => "install libtorch with `cargo xtask libtorch`, then rebuild with \
                  `--features tch` in the environment it prints"
            .to_string(),
        _ => format!("rebuild with `--features {name}`"),
    }
}

/// Code that runs on whichever backend is selected.
pub trait WithBackend {
    /// What the job returns.
    type Output;
    /// Run the job on `backend`.
    fn run<B: Backend + Clone + 'static>(self, backend: B) -> Result<Self::Output>;
}

/// Backend selection from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The backend's name.
    pub name: String,
    /// `--device` (backend-specific; `cpu` for candle; `host`, `gpu` or
    /// `cuda:N` for cuda).
    pub device: Option<String>,
}

/// Set the CPU thread count (process-wide; call once before any work): the
/// size of rayon's global pool, which the candle backend's kernels run on,
/// and libtorch's intra-op threads. Nothing here touches the process
/// environment, so it is sound to call while other threads run (a server's
/// painting thread does).
pub fn set_threads(threads: usize) -> Result<()> {
    if threads == 0 {
        return Err(Error::config("threads", "must be at least 1"));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| Error::config("threads", e.to_string()))?;
    #[cfg(feature = "tch")]
    neural_style_tch::set_threads(threads)?;
    Ok(())
}

/// Refuses a backend that this project does not have or this build does not
/// include (checked before anything is loaded, and again by [`dispatch`]).
pub fn check_selection(sel: &Selection) -> Result<()> {
    if !ALL.contains(&sel.name.as_str()) {
        return Err(Error::config(
            "backend",
            format!(
                "unknown backend `{}`; this project has {}",
                sel.name,
                ALL.join(", ")
            ),
        ));
    }
    if !enabled(&sel.name) {
        return Err(Error::config(
            "backend",
            format!(
                "backend `{}` is not enabled in this build; {}",
                sel.name,
                how_to_enable(&sel.name)
            ),
        ));
    }
    Ok(())
}

/// Run `job` on the selected backend.
pub fn dispatch<W: WithBackend>(sel: &Selection, job: W) -> Result<W::Output> {
    check_selection(sel)?;
    match sel.name.as_str() {
        #[cfg(feature = "candle")]
        "candle" => {
            if let Some(d) = sel.device.as_deref().filter(|d| *d != "cpu") {
                return Err(Error::config(
                    "device",
                    format!("the candle backend runs on `cpu` only, not `{d}`"),
                ));
            }
            job.run(neural_style_candle::CandleBackend::cpu())
        }
        #[cfg(feature = "tch")]
        "tch" => job.run(neural_style_tch::TchBackend::new(
            sel.device.as_deref().unwrap_or("cpu"),
        )?),
        #[cfg(feature = "cuda")]
        "cuda" => job.run(neural_style_cuda::CudaBackend::from_device(
            sel.device.as_deref(),
        )?),
        _ => unreachable!("enabled() lists only compiled backends"),
    }
}
