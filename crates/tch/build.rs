//! Records libtorch's library directory as the run-time search path of this
//! crate's tests, so they run without `LD_LIBRARY_PATH`. torch-sys reports
//! the directory it linked against (`links = "tch"` → `DEP_TCH_LIBTORCH_LIB`).
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
