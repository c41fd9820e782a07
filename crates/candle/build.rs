//! Links the system CBLAS the `openblas` or `blis` feature asks for
//! (src/matmul.rs).
fn main() {
    if std::env::var_os("CARGO_FEATURE_OPENBLAS").is_some() {
        println!("cargo:rustc-link-lib=openblas");
    } else if std::env::var_os("CARGO_FEATURE_BLIS").is_some() {
        println!("cargo:rustc-link-lib=blis");
    }
}
