//! GPU readiness without a GPU: every kernel source compiled by NVIDIA's
//! NVRTC exactly as the GPU executor compiles it (`gpu::compile`: the same
//! source, the same options), for sm_80 (A100), sm_90 (H100/H200) and
//! sm_100 (B200), failing on any error or warning. Then, where a `ptxas`
//! that understands NVRTC's PTX is found, the sm_90 PTX is assembled to a
//! cubin and each kernel's register use printed (and written to
//! `target/nvrtc/registers-sm_90.json` for `cargo xtask bench`'s report).
//!
//! NVRTC is looked for where the GPU executor looks (the loader's path),
//! then in `NEURAL_STYLE_NVRTC_DIR`, then in the libtorch venv that
//! `cargo xtask libtorch` installs (`NEURAL_STYLE_LIBTORCH_VENV`, or under
//! the user cache: its `nvidia/cu*/lib` carries NVRTC 13).
//! Only when none is found does the test skip, saying so.

use neural_style_cuda::{exec, gpu};
use std::path::{Path, PathBuf};
use std::process::Command;

const ARCHS: &[&str] = &["sm_80", "sm_90", "sm_100"];

/// `~/.cache/neural-style` (or `$XDG_CACHE_HOME/neural-style`), where
/// `cargo xtask libtorch` puts its venvs.
fn cache() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("neural-style"))
}

/// Directories matching `root/<venv>/lib/<python>/site-packages/<tail>`.
fn venv_dirs(tail: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let list = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    // `cargo xtask libtorch`'s venv: NEURAL_STYLE_LIBTORCH_VENV, or any
    // under the cache.
    let mut venvs: Vec<PathBuf> = std::env::var_os("NEURAL_STYLE_LIBTORCH_VENV")
        .map(|v| vec![PathBuf::from(v)])
        .unwrap_or_default();
    venvs.extend(cache().map(|c| list(&c)).unwrap_or_default());
    for venv in venvs {
        for py in list(&venv.join("lib")) {
            let mut dirs = vec![py.join("site-packages")];
            for part in tail {
                dirs = dirs
                    .iter()
                    .flat_map(|d| {
                        if *part == "*" {
                            list(d)
                        } else {
                            vec![d.join(part)]
                        }
                    })
                    .filter(|d| d.exists())
                    .collect();
            }
            out.extend(dirs);
        }
    }
    out
}

/// Make NVRTC loadable: already on the loader's path, or loaded here by
/// full path (cudarc then finds it by its soname, already in the process).
fn find_nvrtc() -> Result<String, String> {
    // SAFETY: only tries to open the library.
    if unsafe { cudarc_present() } {
        return Ok("on the loader's path".into());
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("NEURAL_STYLE_NVRTC_DIR")
        .map(|d| vec![PathBuf::from(d)])
        .unwrap_or_default();
    dirs.extend(venv_dirs(&["nvidia", "*", "lib"]));
    for dir in &dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut libs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        libs.sort();
        let name = |p: &PathBuf, prefix: &str| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.contains(".so") && !n.contains(".alt."))
        };
        let Some(main) = libs.iter().find(|p| name(p, "libnvrtc.so")) else {
            continue;
        };
        // The builtins first: NVRTC opens them by soname when compiling.
        for lib in libs
            .iter()
            .filter(|p| name(p, "libnvrtc-builtins.so"))
            .chain([main])
        {
            // SAFETY: NVIDIA's NVRTC libraries; their initialisers are benign.
            match unsafe { libloading::Library::new(lib) } {
                Ok(l) => std::mem::forget(l),
                Err(e) => return Err(format!("{}: {e}", lib.display())),
            }
        }
        // SAFETY: only tries to open the library.
        if unsafe { cudarc_present() } {
            return Ok(main.display().to_string());
        }
    }
    Err(format!(
        "no NVRTC on the loader's path, in NEURAL_STYLE_NVRTC_DIR or in a venv under {:?} \
         (`cargo xtask libtorch` installs one)",
        cache()
    ))
}

unsafe fn cudarc_present() -> bool {
    // SAFETY: forwarded.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// `ptxas` candidates: `NEURAL_STYLE_PTXAS`, the venv's (triton ships two),
/// then the one on `PATH`.
fn ptxas_candidates() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::env::var_os("NEURAL_STYLE_PTXAS")
        .map(|p| vec![PathBuf::from(p)])
        .unwrap_or_default();
    for dir in venv_dirs(&["triton", "backends", "nvidia", "bin"]) {
        out.push(dir.join("ptxas-blackwell"));
        out.push(dir.join("ptxas"));
    }
    out.push("ptxas".into());
    out
}

#[test]
fn every_kernel_compiles_with_nvrtc_for_sm80_sm90_sm100() {
    let found = match find_nvrtc() {
        Ok(f) => f,
        Err(why) => {
            neural_style_core::testing::skip::skip(why);
            return;
        }
    };
    eprintln!("NVRTC: {found}");
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/nvrtc");
    std::fs::create_dir_all(&target).unwrap();
    let mut failures = Vec::new();
    for arch in ARCHS {
        match gpu::compile(arch) {
            Ok(c) => {
                let missing: Vec<&str> = exec::kernel_names()
                    .filter(|k| !c.ptx.contains(&format!(".entry {k}(")))
                    .collect();
                eprintln!(
                    "{arch}: {} kernels, {} bytes of PTX, log: {:?}",
                    exec::kernel_names().count(),
                    c.ptx.len(),
                    c.log.trim()
                );
                if !c.log.trim().is_empty() {
                    failures.push(format!("{arch}: NVRTC warned:\n{}", c.log));
                }
                if !missing.is_empty() {
                    failures.push(format!("{arch}: no entry for {missing:?}"));
                }
                std::fs::write(target.join(format!("kernels-{arch}.ptx")), &c.ptx).unwrap();
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assemble_sm90(&target);
}

/// Assemble the sm_90 PTX with the first `ptxas` that understands it;
/// registers per kernel printed and written as JSON.
fn assemble_sm90(target: &Path) {
    let ptx = target.join("kernels-sm_90.ptx");
    let cubin = target.join("kernels-sm_90.cubin");
    for ptxas in ptxas_candidates() {
        let Ok(out) = Command::new(&ptxas)
            .args(["-arch=sm_90", "-v", "-o"])
            .arg(&cubin)
            .arg(&ptx)
            .output()
        else {
            continue;
        };
        let log = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            if log.contains("Unsupported .version") || log.contains("not supported") {
                eprintln!("{}: too old for this PTX", ptxas.display());
                continue;
            }
            panic!("{} failed on the sm_90 PTX:\n{log}", ptxas.display());
        }
        assert!(
            !log.to_lowercase().contains("warning"),
            "{} warned:\n{log}",
            ptxas.display()
        );
        let regs = registers(&log);
        assert_eq!(
            regs.len(),
            exec::kernel_names().count(),
            "registers of every kernel in:\n{log}"
        );
        eprintln!(
            "{} (sm_90 cubin, {} bytes):",
            ptxas.display(),
            std::fs::metadata(&cubin).map_or(0, |m| m.len())
        );
        let mut json = Vec::new();
        for (k, r, spill) in &regs {
            eprintln!("  {k}: {r} registers, {spill} bytes spilled");
            json.push(format!(
                "{{\"kernel\":\"{k}\",\"registers\":{r},\"spill_bytes\":{spill}}}"
            ));
        }
        std::fs::write(
            target.join("registers-sm_90.json"),
            format!("[{}]\n", json.join(",")),
        )
        .unwrap();
        return;
    }
    neural_style_core::testing::skip::skip(
        "the cubin is not built: no ptxas here understands NVRTC's PTX",
    );
}

/// (kernel, registers, spill stores in bytes) from `ptxas -v`.
fn registers(log: &str) -> Vec<(String, u32, u32)> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    let mut spill = 0;
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            current = rest.split('\'').next().map(str::to_string);
            spill = 0;
        } else if let Some(rest) = line
            .split("bytes spill stores")
            .next()
            .filter(|_| line.contains("spill stores"))
        {
            spill = rest
                .rsplit(',')
                .next()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
        } else if let Some(rest) = line.split("Used ").nth(1) {
            if let (Some(k), Some(r)) = (
                current.take(),
                rest.split(' ').next().and_then(|n| n.parse().ok()),
            ) {
                out.push((k, r, spill));
            }
        }
    }
    out
}
