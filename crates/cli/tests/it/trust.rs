//! End-to-end tests of what a run guarantees on hostile input (issue 10's
//! classes 1–6): the real binary, real VGG19 weights where a run gets that
//! far, small images in a temporary directory.
//!
//! Every refused run must exit 1 with one `error:` line naming the culprits,
//! and leave every file of its directory byte-for-byte as it was (compared
//! by sha256 before and after).
//!
//! `NEURAL_STYLE_TEST_BIN=/path/to/neural-style` runs them against another
//! build (an older one, say, to see which of them it fails; `tests/it/support.rs`).

use image::{Rgb, RgbImage};
use neural_style_weights::{self as weights, sha256_hex};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{command, describe, error_line, run};

/// 80×60 content, 48×48 styles.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    RgbImage::from_fn(80, 60, |x, y| Rgb([(x * 3) as u8, (y * 4) as u8, 90]))
        .save(d.join("c.png"))
        .unwrap();
    for (name, phase) in [("s.png", 0u32), ("s2.png", 3)] {
        RgbImage::from_fn(48, 48, |x, y| {
            if ((x + y + phase) / 6) % 2 == 0 {
                Rgb([230, 60, 30])
            } else {
                Rgb([20, 40, 250])
            }
        })
        .save(d.join(name))
        .unwrap();
    }
    dir
}

/// sha256 of every regular file under `dir` (recursively), by relative path;
/// directories and special files by their kind.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                out.insert(rel, "dir".into());
                walk(root, &p, out);
            } else if t.is_file() {
                out.insert(rel, sha256_hex(&std::fs::read(&p).unwrap()));
            } else {
                out.insert(rel, format!("{t:?}"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Runs a command that must be refused: exit 1, one `error:` line holding
/// every culprit, every file in `dir` unchanged. Returns the line.
#[track_caller]
fn assert_refused(args: &[&str], dir: &Path, culprits: &[&str]) -> String {
    let before = snapshot(dir);
    let out = run(args, dir);
    let line = error_line(&out, culprits);
    assert_eq!(snapshot(dir), before, "files changed: {}", describe(&out));
    line
}

/// A quiet run at `size` px for `iterations`, two threads, plus `extra`.
fn paint_at<'a>(size: &'a str, iterations: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    crate::support::paint_flags(Some(size), Some(iterations), true, extra)
}

fn paint<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    paint_at("32", "2", extra)
}

/// The weights file a run would use (fetched now if need be).
fn real_weights() -> PathBuf {
    weights::ensure(None, &mut |m| eprintln!("{m}")).expect("VGG19 weights")
}

// ------------------------------------------------- 1: a written path is never an input

#[test]
fn written_paths_never_overwrite_inputs_or_each_other() {
    let dir = fixture();
    let d = dir.path();
    let cs = ["-c", "c.png", "-s", "s.png"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = paint(&cs);
        v.extend_from_slice(extra);
        v
    };
    // A slip of the tab key: the log onto the photo.
    assert_refused(
        &with(&["-o", "out.png", "--json-log", "c.png"]),
        d,
        &["--json-log", "--content", "c.png"],
    );
    assert_refused(
        &with(&["-o", "s.png"]),
        d,
        &["--output", "--style", "s.png"],
    );
    assert_refused(
        &with(&["-o", "out.png", "--save-every", "1", "--sheet", "out.png"]),
        d,
        &["--sheet", "--output"],
    );
    assert_refused(
        &with(&[
            "-o",
            "out.png",
            "--json-log",
            "log.svg",
            "--plot",
            "log.svg",
        ]),
        d,
        &["--plot", "--json-log"],
    );
    assert_refused(
        &with(&["-o", "out.png", "--json-log", "out.png"]),
        d,
        &["--json-log", "--output"],
    );
    assert_refused(
        &with(&[
            "-o",
            "out.png",
            "--save-every",
            "1",
            "--frames-dir",
            "c.png",
        ]),
        d,
        &["--frames-dir", "--content"],
    );
    // Another name for the same file: a symbolic link, a hard link, `./`.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(d.join("c.png"), d.join("sym.png")).unwrap();
        std::fs::hard_link(d.join("s.png"), d.join("hard.png")).unwrap();
        assert_refused(
            &with(&["-o", "out.png", "--json-log", "sym.png"]),
            d,
            &["--json-log", "--content"],
        );
        assert_refused(&with(&["-o", "hard.png"]), d, &["--output", "--style"]);
    }
    assert_refused(&with(&["-o", "./c.png"]), d, &["--output", "--content"]);
    // The config file and the weights are inputs too.
    std::fs::write(d.join("cfg.toml"), "tv-weight = 0.001\n").unwrap();
    assert_refused(
        &with(&[
            "-o",
            "out.png",
            "--config",
            "cfg.toml",
            "--json-log",
            "cfg.toml",
        ]),
        d,
        &["--json-log", "--config"],
    );
    let w = real_weights();
    let w = w.to_str().unwrap();
    let mut args = with(&["-o", "out.png", "--json-log"]);
    args.push(w);
    assert_refused(&args, d, &["--json-log", "--weights"]);
    // compare writes one file; loss writes none but its --image must exist.
    assert_refused(
        &[
            "compare", "-c", "c.png", "-s", "s.png", "--ratios", "1", "-o", "s.png",
        ],
        d,
        &["--output", "--style"],
    );
}

// ------------------------------------------------- 2: too small for the layers

#[test]
fn images_too_small_for_the_layers_are_refused_with_the_smallest_size() {
    let dir = fixture();
    let d = dir.path();
    // A 2000×55 banner at --size 512 is 512×14; relu5_1 (4 poolings) needs 16.
    RgbImage::from_pixel(2000, 55, Rgb([120, 80, 40]))
        .save(d.join("banner.png"))
        .unwrap();
    RgbImage::from_pixel(1, 10_000, Rgb([10, 200, 40]))
        .save(d.join("thin.png"))
        .unwrap();
    let e = assert_refused(
        &[
            "-c",
            "banner.png",
            "-s",
            "s.png",
            "--size",
            "512",
            "-o",
            "o.png",
        ],
        d,
        &["--size", "banner.png", "512×14", "relu5_1", "16 px"],
    );
    // 55 · L / 2000 ≥ 15.5 from L = 564.
    assert!(e.contains("use --size 564 or more"), "{e}");
    for size in ["1", "15"] {
        assert_refused(
            &["-c", "c.png", "-s", "s.png", "--size", size, "-o", "o.png"],
            d,
            &["--size", "c.png", "needs at least 16 px"],
        );
    }
    assert_refused(
        &[
            "-c",
            "c.png",
            "-s",
            "s.png",
            "--style-size",
            "1",
            "-o",
            "o.png",
        ],
        d,
        &["--style-size", "s.png", "use --style-size 16 or more"],
    );
    assert_refused(
        &[
            "-c",
            "c.png",
            "-s",
            "s.png",
            "--style-scale",
            "1e-6",
            "-o",
            "o.png",
        ],
        d,
        &["--style-scale", "s.png"],
    );
    assert_refused(
        &[
            "-c", "c.png", "-s", "thin.png", "--size", "64", "-o", "o.png",
        ],
        d,
        &["--style", "thin.png", "crop it"],
    );
    assert_refused(
        &[
            "-c", "c.png", "-s", "s.png", "--scales", "8,64", "-o", "o.png",
        ],
        d,
        &["--scales", "at 8 px"],
    );
    // loss, compare and batch check the same way.
    std::fs::write(d.join("img.png"), std::fs::read(d.join("c.png")).unwrap()).unwrap();
    assert_refused(
        &[
            "loss", "-c", "c.png", "-s", "s.png", "--size", "15", "--image", "img.png",
        ],
        d,
        &["--size"],
    );
    assert_refused(
        &[
            "compare", "-c", "c.png", "-s", "s.png", "--size", "15", "--ratios", "1", "-o", "x.png",
        ],
        d,
        &["--size"],
    );
    std::fs::write(
        d.join("jobs.toml"),
        "[defaults]\nsize = 15\n\n[[job]]\ncontent = \"c.png\"\nstyle = [\"s.png\"]\noutput = \"o.png\"\n",
    )
    .unwrap();
    assert_refused(&["batch", "jobs.toml"], d, &["job 0", "--size"]);

    // The smallest size works, with either pooling: 80×60 at 21 px is 21×16.
    for pooling in ["max", "avg"] {
        let out = run(
            &[
                "loss",
                "-c",
                "c.png",
                "-s",
                "s.png",
                "--size",
                "21",
                "--style-size",
                "16",
                "--pooling",
                pooling,
                "--image",
                "img.png",
                "--json",
                "--threads",
                "2",
            ],
            d,
        );
        assert!(out.status.success(), "{pooling}: {}", describe(&out));
    }
}

// ------------------------------------------------- 3: damaged weights

#[test]
fn damaged_weights_are_refused_saying_how_to_fetch_them_again() {
    let dir = fixture();
    let d = dir.path();
    let mut bytes = std::fs::read(real_weights()).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 4096].fill(0);
    std::fs::write(d.join("w.safetensors"), &bytes).unwrap();
    std::fs::write(d.join("img.png"), std::fs::read(d.join("c.png")).unwrap()).unwrap();
    assert_refused(
        &[
            "loss",
            "-c",
            "c.png",
            "-s",
            "s.png",
            "--size",
            "32",
            "--image",
            "img.png",
            "--weights",
            "w.safetensors",
        ],
        d,
        &["w.safetensors", "damaged", "neural-style weights"],
    );
}

// ------------------------------------------------- 4: truncated images

#[test]
fn truncated_images_are_refused_naming_the_file() {
    let dir = fixture();
    let d = dir.path();
    let photo = RgbImage::from_fn(400, 300, |x, y| {
        Rgb([((x * 7) ^ (y * 13)) as u8, (x * y) as u8, (x + 3 * y) as u8])
    });
    photo.save(d.join("full.jpg")).unwrap();
    let jpeg = std::fs::read(d.join("full.jpg")).unwrap();
    std::fs::write(d.join("cut.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    let png = std::fs::read(d.join("c.png")).unwrap();
    std::fs::write(d.join("cut.png"), &png[..png.len() - 12]).unwrap();
    let base = ["--size", "32", "-n", "1", "-q", "-o", "o.png"];
    let cases: [&[&str]; 5] = [
        &["-c", "cut.jpg", "-s", "s.png"],
        &["-c", "cut.png", "-s", "s.png"],
        &["-c", "c.png", "-s", "cut.jpg"],
        &["-c", "c.png", "-s", "s.png", "--init-image", "cut.jpg"],
        &["-c", "c.png", "-s", "s.png", "--style-mask", "cut.jpg"],
    ];
    for case in cases {
        let mut args = case.to_vec();
        args.extend_from_slice(&base);
        let file = if case.contains(&"cut.png") {
            "cut.png"
        } else {
            "cut.jpg"
        };
        assert_refused(&args, d, &[file, "ends too early"]);
    }
}

// ------------------------------------------------- 5: batches

#[test]
fn batch_refuses_colliding_outputs_naming_both_jobs() {
    let dir = fixture();
    let d = dir.path();
    for sub in ["a", "b", "out"] {
        std::fs::create_dir(d.join(sub)).unwrap();
    }
    std::fs::copy(d.join("c.png"), d.join("a/photo.png")).unwrap();
    std::fs::copy(d.join("s.png"), d.join("b/photo.png")).unwrap();
    let cases: [(&str, &str, &[&str]); 4] = [
        // Two contents of one name in other directories: the same output.
        (
            "grid.toml",
            "contents = [\"a/photo.png\", \"b/photo.png\"]\nstyles = [\"s.png\"]\noutput-dir = \"out\"\n\n\
             [defaults]\nsize = 32\niterations = 1\n",
            &["job 0 (", "a/photo.png", "job 1 (", "b/photo.png", "photo_s.png"],
        ),
        // A [[job]] whose output is a grid job's.
        (
            "mixed.toml",
            "contents = [\"c.png\"]\nstyles = [\"s.png\"]\noutput-dir = \"out\"\n\n\
             [defaults]\nsize = 32\niterations = 1\n\n\
             [[job]]\ncontent = \"c.png\"\nstyle = [\"s2.png\"]\noutput = \"out/c_s.png\"\n",
            &["job 0 (", "job 1 (", "c_s.png"],
        ),
        // A job writing another job's input.
        (
            "chain.toml",
            "[defaults]\nsize = 32\niterations = 1\n\n\
             [[job]]\ncontent = \"c.png\"\nstyle = [\"s.png\"]\noutput = \"out/x.png\"\n\n\
             [[job]]\ncontent = \"c.png\"\nstyle = [\"s2.png\"]\noutput = \"s.png\"\n",
            &["job 1 (", "writes s.png", "the --style of job 0 ("],
        ),
        // A missing input of the last job is found before the first job runs.
        (
            "missing.toml",
            "[defaults]\nsize = 32\niterations = 1\n\n\
             [[job]]\ncontent = \"c.png\"\nstyle = [\"s.png\"]\noutput = \"out/one.png\"\n\n\
             [[job]]\ncontent = \"nope.png\"\nstyle = [\"s.png\"]\noutput = \"out/two.png\"\n",
            &["job 1 --content", "nope.png"],
        ),
    ];
    for (file, jobs, culprits) in cases {
        std::fs::write(d.join(file), jobs).unwrap();
        assert_refused(&["batch", file], d, culprits);
    }
}

#[test]
fn batch_goes_on_after_a_failing_job_and_flags_override_the_defaults() {
    let dir = fixture();
    let d = dir.path();
    std::fs::create_dir(d.join("out")).unwrap();
    // Job 1's loss overflows (a failure found only while running).
    std::fs::write(
        d.join("jobs.toml"),
        "[defaults]\nsize = 64\niterations = 50\nthreads = 2\n\n\
         [[job]]\ncontent = \"c.png\"\nstyle = [\"s.png\"]\noutput = \"out/one.png\"\n\n\
         [[job]]\ncontent = \"c.png\"\nstyle = [\"s2.png\"]\noutput = \"out/two.png\"\nstyle-weight = 1e300\n\n\
         [[job]]\ncontent = \"c.png\"\nstyle = [\"s2.png\"]\noutput = \"out/three.png\"\n",
    )
    .unwrap();
    // The command line wins over [defaults]: 32 px, 2 iterations.
    let out = run(
        &["batch", "jobs.toml", "--size", "32", "--iterations", "2"],
        d,
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "2 written, 0 skipped (already there or claimed by another process), 1 failed"
        ),
        "{err}"
    );
    assert!(
        err.contains("error: job 1 (") && err.contains("non-finite"),
        "{err}"
    );
    for name in ["one.png", "three.png"] {
        let img = image::open(d.join("out").join(name)).unwrap();
        assert_eq!((img.width(), img.height()), (32, 24), "{name}");
    }
    assert!(!d.join("out/two.png").exists());
}

// ------------------------------------------------- 6: signals, late checks, logs, temp files

/// Starts a long run (tiny size, many iterations) with a JSON log, waits
/// until it has logged an iteration, sends `signal`, and returns its output.
#[cfg(unix)]
fn signalled_run(d: &Path, signal: i32) -> Output {
    let child = command(
        &paint_at(
            "32",
            "100000",
            &[
                "-c",
                "c.png",
                "-s",
                "s.png",
                "-o",
                "out.png",
                "--json-log",
                "log.jsonl",
            ],
        ),
        d,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let start = Instant::now();
    while std::fs::read(d.join("log.jsonl")).map_or(true, |b| b.is_empty()) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no iteration logged"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    child.wait_with_output().unwrap()
}

#[cfg(unix)]
#[test]
fn sigterm_and_sighup_save_the_best_image_with_their_exit_codes() {
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGHUP, 129)] {
        let dir = fixture();
        let out = signalled_run(dir.path(), signal);
        assert_eq!(out.status.code(), Some(code), "{}", describe(&out));
        let img = image::open(dir.path().join("out.png")).unwrap();
        assert_eq!((img.width(), img.height()), (32, 24));
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }
}

#[cfg(unix)]
#[test]
fn sigterm_stops_a_batch_saving_the_job_in_flight_as_partial() {
    let dir = fixture();
    let d = dir.path();
    std::fs::create_dir(d.join("out")).unwrap();
    std::fs::write(
        d.join("jobs.toml"),
        "contents = [\"c.png\"]\nstyles = [\"s.png\", \"s2.png\"]\noutput-dir = \"out\"\n\n\
         [defaults]\nsize = 32\niterations = 100000\nthreads = 2\n",
    )
    .unwrap();
    let mut child = command(&["batch", "jobs.toml"], d)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first job to start (the handlers are installed by then).
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
        seen.push_str(&line);
        assert!(n > 0, "the batch ended early: {seen}");
        if line.starts_with("[1/2]") {
            break;
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{seen}{rest}");
    assert!(rest.contains("c_s.partial.png"), "{rest}");
    let img = image::open(d.join("out/c_s.partial.png")).unwrap();
    assert_eq!((img.width(), img.height()), (32, 24));
    assert!(!d.join("out/c_s.png").exists());
    assert!(!d.join("out/c_s2.partial.png").exists());
}

#[test]
fn unwritable_outputs_and_odd_inputs_are_refused_before_any_work() {
    let dir = fixture();
    let d = dir.path();
    std::fs::create_dir(d.join("dir.png")).unwrap();
    let cs = ["-c", "c.png", "-s", "s.png"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = paint(&cs);
        v.extend_from_slice(extra);
        v
    };
    assert_refused(
        &with(&["-o", "dir.png"]),
        d,
        &["--output", "not a regular file (a directory)"],
    );
    #[cfg(target_os = "linux")]
    assert_refused(
        &with(&["-o", "/proc/out.png"]),
        d,
        &["--output", "cannot create a file in `/proc`"],
    );
    #[cfg(unix)]
    assert_refused(
        &with(&["-o", "out.png", "--json-log", "/dev/full"]),
        d,
        &["--json-log", "not a regular file (a character device)"],
    );
    assert_refused(
        &with(&["-o", "missing/out.png"]),
        d,
        &["--output", "does not exist"],
    );
    // A directory, /dev/zero and a FIFO as inputs: "not a regular file", at once.
    assert_refused(
        &["-c", "dir.png", "-s", "s.png", "-o", "out.png"],
        d,
        &["--content", "not a regular file (a directory)"],
    );
    #[cfg(unix)]
    {
        assert_refused(
            &["-c", "c.png", "-s", "/dev/zero", "-o", "out.png"],
            d,
            &["--style", "not a regular file (a character device)"],
        );
        let fifo = std::ffi::CString::new(d.join("fifo.png").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        assert_refused(
            &[
                "-c",
                "c.png",
                "-s",
                "s.png",
                "--style-mask",
                "fifo.png",
                "-o",
                "out.png",
            ],
            d,
            &["--style-mask", "not a regular file (a FIFO)"],
        );
    }
    // A backend this build lacks is named before anything is loaded.
    #[cfg(not(feature = "tch"))]
    assert_refused(
        &with(&["-o", "out.png", "--backend", "tch"]),
        d,
        &["--backend", "tch"],
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_log_write_failure_stops_the_run_and_keeps_the_best_image() {
    use std::os::unix::process::CommandExt;
    let dir = fixture();
    let d = dir.path();
    real_weights();
    let mut c = command(
        &paint_at(
            "22",
            "100000",
            &[
                "-c",
                "c.png",
                "-s",
                "s.png",
                "-o",
                "out.png",
                "--json-log",
                "log.jsonl",
            ],
        ),
        d,
    );
    // SAFETY: only async-signal-safe calls between fork and exec. Files may
    // grow to 4 KiB: the log fills that within a few dozen iterations; the
    // 22×17 PNG stays under it. SIGXFSZ is ignored so the write fails (EFBIG).
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 4096,
                rlim_max: 4096,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--json-log") && err.contains("log.jsonl"),
        "{err}"
    );
    assert!(err.contains("best image so far is in out.png"), "{err}");
    let img = image::open(d.join("out.png")).unwrap();
    assert_eq!((img.width(), img.height()), (22, 17));
}

#[test]
fn threads_beyond_the_cores_are_capped_with_a_warning() {
    let dir = fixture();
    let d = dir.path();
    std::fs::write(d.join("img.png"), std::fs::read(d.join("c.png")).unwrap()).unwrap();
    let out = run(
        &[
            "loss",
            "-c",
            "c.png",
            "-s",
            "s.png",
            "--size",
            "32",
            "--image",
            "img.png",
            "--threads",
            "100000",
        ],
        d,
    );
    assert!(out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: --threads 100000 is more than the"),
        "{err}"
    );
}
