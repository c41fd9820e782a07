//! The system programs some tests need, installed by `cargo xtask test` when
//! it can: Debian packages, as root with apt (as `libtorch.rs` installs
//! libtorch with pip). Where it cannot, it says so and the tests that need
//! them skip, with the reason, and are counted as skipped (`tally.rs`).

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Programs a test needs and the Debian packages that provide them.
struct Need {
    /// Who needs them.
    test: &'static str,
    /// Each entry is one program, under any of its names.
    programs: &'static [&'static [&'static str]],
    packages: &'static [&'static str],
}

const NEEDS: &[Need] = &[
    Need {
        test: "tests/slurm.rs (a one-node Slurm cluster)",
        programs: &[&["sbatch"], &["slurmctld"], &["slurmd"], &["munged"]],
        packages: &["slurm-wlm", "munge"],
    },
    Need {
        test: "tests/studio.rs (the studio in a real browser)",
        programs: &[
            &["chromium", "chromium-browser", "google-chrome"],
            &["chromedriver"],
        ],
        packages: &["chromium", "chromium-driver"],
    },
    VIDEO,
];

/// The `video` feature's build (OpenCV through the `opencv` crate, whose
/// bindings need clang and libclang) and its tests (ffmpeg, ffprobe).
const VIDEO: Need = Need {
    test: "crates/video and crates/cli/tests/it/video.rs (feature video)",
    programs: &[&["ffmpeg"], &["ffprobe"], &["opencv_version"], &["clang"]],
    packages: &["ffmpeg", "libopencv-dev", "clang", "libclang-dev"],
};

/// Whether the `video` feature can be built and tested here (after
/// [`ensure_test_programs`]): ffmpeg, ffprobe, OpenCV's development files
/// and clang are installed.
pub fn video_ready() -> bool {
    missing(&VIDEO, std::env::var_os("PATH").as_deref()).is_empty()
}

/// `name` on `PATH` (`path` is its value), if there.
fn on_path(path: Option<&std::ffi::OsStr>, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The programs of `need` that are not on `PATH`, by their first name.
fn missing(need: &Need, path: Option<&std::ffi::OsStr>) -> Vec<&'static str> {
    need.programs
        .iter()
        .filter(|names| names.iter().all(|n| on_path(path, n).is_none()))
        .map(|names| names[0])
        .collect()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// apt-get with its output on our stderr (stdout carries the test results).
fn apt_get(args: &[&str]) -> Result<(), String> {
    eprintln!("$ apt-get {}", args.join(" "));
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| format!("apt-get: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("apt-get {} failed ({status})", args.join(" ")))
    }
}

/// Whether apt-get can install packages here: as root, with apt-get on `path`.
fn can_install(path: Option<&std::ffi::OsStr>, root: bool) -> bool {
    root && on_path(path, "apt-get").is_some()
}

fn cannot_install(need: &Need, programs: &[&str]) -> String {
    format!(
        "xtask: {} not found and not installable here (needs root and apt-get: {}): {} will skip",
        programs.join(", "),
        need.packages.join(" "),
        need.test
    )
}

/// Installs what the tests need and this machine lacks, when it can (as
/// root with apt-get), and says what it installed. What it cannot install
/// is reported, not an error: the tests that need it skip, with the reason.
pub fn ensure_test_programs() {
    let path = std::env::var_os("PATH");
    let lacking: Vec<(&Need, Vec<&str>)> = NEEDS
        .iter()
        .map(|n| (n, missing(n, path.as_deref())))
        .filter(|(_, m)| !m.is_empty())
        .collect();
    if lacking.is_empty() {
        return;
    }
    let can_install = can_install(path.as_deref(), is_root());
    let mut updated = false;
    for (need, programs) in lacking {
        let packages = need.packages.join(" ");
        if !can_install {
            eprintln!("{}", cannot_install(need, &programs));
            continue;
        }
        let installed = (if updated {
            Ok(())
        } else {
            apt_get(&["update"])
        })
        .and_then(|()| {
            updated = true;
            let mut args = vec!["install", "-y", "--no-install-recommends"];
            args.extend(need.packages);
            apt_get(&args)
        });
        // Re-read PATH's directories: the packages may not provide the
        // programs under the names looked for.
        let still = missing(need, path.as_deref());
        match installed {
            Ok(()) if still.is_empty() => {
                eprintln!("xtask: installed {packages} for {}", need.test)
            }
            Ok(()) => eprintln!(
                "xtask: installed {packages}, yet {} still not found: {} will skip",
                still.join(", "),
                need.test
            ),
            Err(e) => eprintln!("xtask: {e}: {} will skip", need.test),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_found_under_any_of_its_names() {
        let dir = std::env::temp_dir().join(format!("xtask-system-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("chromium-browser"), "").unwrap();
        let path = std::env::join_paths([&dir]).unwrap();
        let browser = &NEEDS[1];
        assert_eq!(missing(browser, Some(&path)), ["chromedriver"]);
        std::fs::write(dir.join("chromedriver"), "").unwrap();
        assert!(missing(browser, Some(&path)).is_empty());
        assert_eq!(
            missing(&NEEDS[0], Some(&path)),
            ["sbatch", "slurmctld", "slurmd", "munged"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn apt_get_installs_only_as_root_and_when_present() {
        let dir = std::env::temp_dir().join(format!("xtask-apt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = std::env::join_paths([&dir]).unwrap();
        assert!(!can_install(Some(&path), true), "no apt-get");
        std::fs::write(dir.join("apt-get"), "").unwrap();
        assert!(can_install(Some(&path), true));
        assert!(!can_install(Some(&path), false), "not root");
        assert!(!can_install(None, true), "no PATH");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            cannot_install(&NEEDS[0], &["sbatch", "munged"]),
            "xtask: sbatch, munged not found and not installable here (needs root and apt-get: \
             slurm-wlm munge): tests/slurm.rs (a one-node Slurm cluster) will skip"
        );
    }
}
