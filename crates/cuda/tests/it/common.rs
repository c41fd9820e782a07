//! Which executor the tests run on: `NEURAL_STYLE_CUDA_DEVICE` (a `--device`
//! value: `host` by default, `cuda:0` on a GPU machine). When the device is
//! not available the test says it skipped and why — unless
//! `NEURAL_STYLE_REQUIRE_GPU=1`, as the GPU bundle sets, makes that a failure.

use neural_style_cuda::CudaBackend;

pub fn device() -> String {
    std::env::var("NEURAL_STYLE_CUDA_DEVICE").unwrap_or_else(|_| "host".into())
}

/// The backend under test, or `None` (after saying why) when its device is missing.
pub fn backend() -> Option<CudaBackend> {
    backend_on(&device())
}

/// The backend on `dev` (a `--device` value), or `None` as [`backend`].
pub fn backend_on(dev: &str) -> Option<CudaBackend> {
    match CudaBackend::from_device(Some(dev)) {
        Ok(b) => Some(b),
        Err(e) if std::env::var_os("NEURAL_STYLE_REQUIRE_GPU").is_none() => {
            neural_style_core::testing::skip::skip(format!(
                "cuda backend on `{dev}` unavailable: {e}"
            ));
            None
        }
        Err(e) => panic!("cuda backend on `{dev}` required but unavailable: {e}"),
    }
}
