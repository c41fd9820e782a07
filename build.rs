//! With the `tch` feature, records libtorch's library directory (reported by
//! torch-sys, `links = "tch"`) as the run-time search path of the binary and
//! the tests, so `neural-style --backend tch` runs without `LD_LIBRARY_PATH`.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
