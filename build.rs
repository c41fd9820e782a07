//! With the `tch` feature, records libtorch's library directory (reported by
//! torch-sys, `links = "tch"`) as the run-time search path, so programs run
//! without `LD_LIBRARY_PATH`: the root package's tests, examples and
//! benches, and (this same file is crates/cli's build script) the
//! `neural-style` binary and its tests.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
