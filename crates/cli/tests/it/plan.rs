//! The memory plan of a run (`neural_style_core::memory`) through the
//! binary: every scale checked before anything starts, `--dry-run`, the
//! L-BFGS history never sized beyond the iterations or the memory.

use std::process::{Command, Stdio};

use crate::support::{assert_ok, bin, check_failure, fixture, listing, paint_flags, run, text};

fn job<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--content",
        "c.png",
        "--style",
        "s.png",
        "--output",
        "out.png",
    ];
    v.extend(paint_flags(None, None, false, extra));
    v
}

/// `--scales 100000,64` is refused before anything is allocated, naming the
/// scale (before the plan covered every scale, only the last size was
/// checked and the run aborted allocating the first: exit 134).
#[cfg(unix)] // `sh` and `ulimit`
#[test]
fn every_scale_is_checked_before_the_run() {
    let dir = fixture();
    let d = dir.path();
    let before = listing(d);
    let args = job(&["--scales", "100000,64", "--iterations", "1"]);
    // Cap the address space (8 GiB): a run that tries to allocate the
    // first scale fails instead of taking the machine down.
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 8388608 2>/dev/null; exec \"$0\" \"$@\"")
        .arg(bin())
        .args(&args)
        .current_dir(d)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let line = check_failure(&out, d, &before, &["--scales", "100000 px", "GiB"]);
    assert!(line.contains("100000×"), "{line}");
}

/// `--dry-run` prints the plan (each scale, the history, the peak) and
/// writes nothing; the plan sizes the history to `--memory` and says so.
#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let dir = fixture();
    let d = dir.path();
    let before = listing(d);
    let out = run(
        &job(&[
            "--scales",
            "32,64",
            "--scale-iterations",
            "3,2",
            "--dry-run",
        ]),
        d,
    );
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("plan: 5 iterations over 2 scales"),
        "{stdout}"
    );
    assert!(stdout.contains("L-BFGS history 3"), "{stdout}");
    assert!(stdout.contains("scale 1: 32×"), "{stdout}");
    assert!(stdout.contains("scale 2: 64×"), "{stdout}");
    assert!(stdout.contains("predicted peak"), "{stdout}");
    assert_eq!(listing(d), before, "a dry run writes nothing");

    // History 100 at 2048 px in 6 GiB: recomputation and a smaller history
    // (one scale: the iterations given per scale, so no default chain).
    let out = run(
        &job(&[
            "--size",
            "2048",
            "--scale-iterations",
            "200",
            "--memory",
            "6",
            "--dry-run",
        ]),
        d,
    );
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("activations recomputed"), "{stdout}");
    assert!(
        stdout.contains("warning: --lbfgs-history 100 does not fit in 6.00 GiB"),
        "{stdout}"
    );
    assert!(stdout.contains("of 6.00 GiB (--memory 6 GiB)"), "{stdout}");
    assert_eq!(listing(d), before, "a dry run writes nothing");

    // Too little memory for any plan: refused, naming the option.
    let out = run(
        &job(&[
            "--size",
            "2048",
            "--scale-iterations",
            "1000",
            "--memory",
            "0.5",
            "--dry-run",
        ]),
        d,
    );
    check_failure(&out, d, &before, &["--size", "2048 px"]);
}

/// A history larger than the iterations holds only as many pairs as there
/// are iterations: `--lbfgs-history 1000000 -n 2` runs (it was refused as
/// needing about 69 GiB at 64 px).
#[test]
fn history_beyond_the_iterations_is_not_refused() {
    let dir = fixture();
    let d = dir.path();
    let out = run(
        &job(&[
            "--size",
            "64",
            "--iterations",
            "2",
            "--lbfgs-history",
            "1000000",
        ]),
        d,
    );
    assert_ok(&out);
    assert!(d.join("out.png").exists());
}

/// The plan's predicted peak is within 15 % of the measured peak resident
/// set at a small size, with activations kept and recomputed
/// (`benches/memory.sh` does the same at large sizes). The measured figure
/// is the one the run prints (its own `VmHWM`): the `ru_maxrss` that
/// `wait4` gives for a child started by `posix_spawn` holds the spawning
/// process's high-water mark too, so inside the full suite, where this test
/// binary had grown to ~580 MiB, the child "measured" 574–586 MiB whatever
/// it used (the test was ignored for that).
#[cfg(target_os = "linux")]
#[test]
fn predicted_peak_is_within_15_percent_of_the_measured_one() {
    let dir = fixture();
    let d = dir.path();
    let mib = |line: &str, after: &str| -> f64 {
        let at = line
            .find(after)
            .unwrap_or_else(|| panic!("no `{after}` in {line}"));
        let mut words = line[at + after.len()..].split([' ', ')', ';']);
        let value: f64 = words.next().unwrap().parse().unwrap();
        match words.next().unwrap() {
            "GiB" => value * 1024.0,
            "MiB" => value,
            u => panic!("unit {u} in {line}"),
        }
    };
    for recompute in ["--recompute=false", "--recompute=true"] {
        let args = job(&["--size", "256", "--iterations", "2", recompute]);
        let mut dry = args.clone();
        dry.push("--dry-run");
        let out = run(&dry, d);
        assert_ok(&out);
        let stdout = text(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with("predicted peak "))
            .unwrap_or_else(|| panic!("no predicted peak: {stdout}"));
        let predicted = mib(line, "predicted peak ");
        let out = run(&args, d);
        assert_ok(&out);
        let stderr = text(&out.stderr);
        let line = stderr
            .lines()
            .find(|l| l.starts_with("wrote out.png"))
            .unwrap_or_else(|| panic!("no summary: {stderr}"));
        let measured = mib(line, "peak memory ");
        // The run's own plan says the same as the dry run's (both measure
        // their process before planning).
        let planned = mib(line, "(planned ");
        assert!(
            (planned / predicted - 1.0).abs() < 0.05,
            "{recompute}: dry run {predicted:.0} MiB, run {planned:.0} MiB"
        );
        let ratio = predicted / measured;
        eprintln!(
            "{recompute}: predicted {predicted:.0} MiB, measured {measured:.0} MiB ({ratio:.3})"
        );
        assert!(
            (0.85..=1.15).contains(&ratio),
            "{recompute}: predicted {predicted:.0} MiB, measured {measured:.0} MiB"
        );
    }
}

/// A large output given as one size is planned coarse-to-fine by itself
/// (jcjohnson's proportions, the same iterations in all), printed with the
/// plan; `--scales` overrides it, and at 1024 px or less there is no chain.
#[test]
fn a_large_output_is_planned_coarse_to_fine() {
    let dir = fixture();
    let d = dir.path();
    let before = listing(d);
    let dry = |extra: &[&str]| {
        let mut args = job(&["--memory", "20", "--dry-run"]);
        args.extend_from_slice(extra);
        let out = run(&args, d);
        assert_ok(&out);
        text(&out.stdout)
    };
    let out = dry(&["--size", "4096", "--iterations", "1000"]);
    assert!(
        out.starts_with("plan: 1000 iterations over 5 scales"),
        "{out}"
    );
    assert!(
        out.contains(
            "coarse-to-fine above 1024 px (--scales or --scale-iterations choose another schedule): \
             256 px × 557, 512 px × 222, 1024 px × 111, 2048 px × 55, 4096 px × 55"
        ),
        "{out}"
    );
    assert!(out.contains("scale 5: 4096×3072, 55 iterations"), "{out}");
    // The candle backend has a rate: the plan says how long.
    assert!(out.contains("in all"), "{out}");
    // Given scales are the user's.
    let out = dry(&["--scales", "4096", "--iterations", "10"]);
    assert!(
        out.starts_with("plan: 10 iterations over 1 scale,"),
        "{out}"
    );
    assert!(!out.contains("coarse-to-fine"), "{out}");
    let out = dry(&["--size", "4096", "--scale-iterations", "10"]);
    assert!(!out.contains("coarse-to-fine"), "{out}");
    // At 1024 px one scale is the plan.
    let out = dry(&["--size", "1024", "--iterations", "10"]);
    assert!(
        out.starts_with("plan: 10 iterations over 1 scale,"),
        "{out}"
    );
    assert_eq!(listing(d), before, "a dry run writes nothing");
}

/// `--bit-depth 16 --dpi 300` write a 16-bit PNG that records 300 dpi
/// (11811 pixels per metre in its pHYs chunk); a JPEG cannot hold 16 bits
/// and is refused before any work, naming the option.
#[test]
fn a_sixteen_bit_png_records_its_dpi() {
    let dir = fixture();
    let d = dir.path();
    let mut args = vec![
        "--content",
        "c.png",
        "--style",
        "s.png",
        "--output",
        "o.png",
    ];
    args.extend(paint_flags(
        Some("32"),
        Some("2"),
        true,
        &["--bit-depth", "16", "--dpi", "300"],
    ));
    let out = run(&args, d);
    assert_ok(&out);
    let bytes = std::fs::read(d.join("o.png")).unwrap();
    let img = image::load_from_memory(&bytes).unwrap();
    assert_eq!(img.color(), image::ColorType::Rgb16);
    assert_eq!((img.width(), img.height()), (32, 24));
    let at = bytes
        .windows(4)
        .position(|w| w == b"pHYs")
        .expect("a pHYs chunk");
    let be = |k: usize| u32::from_be_bytes(bytes[k..k + 4].try_into().unwrap());
    assert_eq!((be(at + 4), be(at + 8), bytes[at + 12]), (11811, 11811, 1));

    let before = listing(d);
    let mut args = vec![
        "--content",
        "c.png",
        "--style",
        "s.png",
        "--output",
        "o.jpg",
    ];
    args.extend(paint_flags(
        Some("32"),
        Some("2"),
        true,
        &["--bit-depth", "16"],
    ));
    let out = run(&args, d);
    check_failure(&out, d, &before, &["--bit-depth", ".jpg"]);
}
