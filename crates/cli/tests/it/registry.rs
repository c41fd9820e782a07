//! End-to-end tests of issue 21 (trust, round three), the run side: every
//! path a run may write comes from one registry
//! (`neural_style::run::written`), which the preflight checks whole —
//! checkpoint pairs, frames (a pattern), temporary files (their names and
//! their length) — before any work; temporary files belong to their
//! process; a broken stderr or stdout never panics; counts never wrap;
//! a finished batch job's inputs are not needed; and the property test:
//! random option combinations and names that collide with another
//! feature's files, every refused run leaving every file byte-identical
//! and every accepted run writing only declared paths.
//!
//! Each test here failed before the change it covers.

use crate::support::{command, describe, error_line, fixture, listing, run};
use neural_style::run::written::Writes;
use neural_style_weights::sha256_hex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// sha256 of every regular file under `dir` (recursively), by relative path;
/// directories by their kind.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    listing(dir)
        .into_iter()
        .map(|rel| {
            let p = dir.join(&rel);
            let v = if p.is_dir() {
                "dir".to_string()
            } else {
                sha256_hex(&std::fs::read(&p).unwrap())
            };
            (rel, v)
        })
        .collect()
}

/// A refused run: exit 1, one `error:` line holding every culprit, every
/// file of `dir` byte-identical.
#[track_caller]
fn refused(args: &[&str], dir: &Path, culprits: &[&str]) -> String {
    let before = snapshot(dir);
    let out = run(args, dir);
    let line = error_line(&out, culprits);
    assert_eq!(snapshot(dir), before, "files changed: {}", describe(&out));
    line
}

/// The real weights, fetched now if need be (the runs below reach them).
fn weights() {
    neural_style_weights::ensure(None, &mut |m| eprintln!("{m}")).expect("VGG19 weights");
}

/// A quiet 32 px run of `n` iterations, two threads, plus `extra`.
fn small<'a>(n: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    crate::support::paint_flags(Some("32"), Some(n), true, extra)
}

fn copy(d: &Path, from: &str, to: &str) {
    std::fs::copy(d.join(from), d.join(to)).unwrap();
}

#[test]
fn checkpoint_files_never_overwrite_or_delete_inputs() {
    let dir = fixture();
    let d = dir.path();
    copy(d, "c.png", "out.png.ckpt.png");
    let base = [
        "-c",
        "c.png",
        "-s",
        "s.png",
        "-o",
        "out.png",
        "--checkpoint-every",
        "2",
    ];
    // Before: the input was overwritten at the first checkpoint and deleted at the end.
    let with = |extra: &[&'static str]| {
        let mut v: Vec<&str> = base.to_vec();
        v.extend_from_slice(extra);
        small("4", &v)
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let args = with(&["--init-image", "out.png.ckpt.png"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    refused(
        &args,
        d,
        &["--init-image", "out.png.ckpt.png", "checkpoint"],
    );
    let args = small(
        "4",
        &[
            "-c",
            "c.png",
            "-s",
            "out.png.ckpt.png",
            "-o",
            "out.png",
            "--checkpoint-every",
            "2",
        ],
    );
    refused(&args, d, &["out.png.ckpt.png", "style", "checkpoint"]);
    copy(d, "c.png", "s3.png");
    std::fs::write(d.join("out.png.ckpt.json"), b"{}").unwrap();
    let args = small(
        "4",
        &[
            "-c",
            "c.png",
            "-s",
            "s3.png",
            "-o",
            "out.png",
            "--checkpoint-every",
            "2",
            "--json-log",
            "out.png.ckpt.json",
        ],
    );
    refused(&args, d, &["out.png.ckpt.json", "--json-log", "checkpoint"]);
    // A directory where the checkpoint goes: refused before any work (it
    // killed the run at its first checkpoint).
    std::fs::remove_file(d.join("out.png.ckpt.json")).unwrap();
    std::fs::create_dir(d.join("out.png.ckpt.json")).unwrap();
    let args = small(
        "4",
        &[
            "-c",
            "c.png",
            "-s",
            "s.png",
            "-o",
            "out.png",
            "--checkpoint-every",
            "2",
        ],
    );
    refused(&args, d, &["out.png.ckpt.json", "a directory"]);
}

#[test]
fn a_batch_jobs_checkpoint_never_collides_with_another_jobs_output() {
    let dir = fixture();
    let d = dir.path();
    std::fs::write(
        d.join("jobs.toml"),
        "[defaults]\nsize = 32\niterations = 2\nthreads = 2\n\n\
         [[job]]\ncontent = \"c.png\"\nstyle = [\"s.png\"]\noutput = \"a.png\"\n\n\
         [[job]]\ncontent = \"c.png\"\nstyle = [\"s2.png\"]\noutput = \"a.png.ckpt.png\"\n",
    )
    .unwrap();
    let line = refused(
        &["batch", "jobs.toml", "--checkpoint-every", "1", "--quiet"],
        d,
        &["job 0", "job 1", "a.png.ckpt.png"],
    );
    assert!(line.contains("both write"), "{line}");
}

#[test]
fn frames_never_replace_an_input_or_another_written_file() {
    let dir = fixture();
    let d = dir.path();
    std::fs::create_dir(d.join("fr")).unwrap();
    copy(d, "c.png", "fr/out_00002.png");
    // The content would have been replaced by the second frame.
    let args = small(
        "4",
        &[
            "-c",
            "fr/out_00002.png",
            "-s",
            "s.png",
            "-o",
            "out.png",
            "--save-every",
            "1",
            "--frames-dir",
            "fr",
        ],
    );
    refused(&args, d, &["fr/out_00002.png", "--save-every", "frame"]);
    // A JSON log named like a frame (of the default frames directory too).
    let args = small(
        "4",
        &[
            "-c",
            "c.png",
            "-s",
            "s.png",
            "-o",
            "out.png",
            "--save-every",
            "1",
            "--frames-dir",
            "fr",
            "--json-log",
            "fr/out_00001.png",
        ],
    );
    refused(&args, d, &["--json-log", "fr/out_00001.png", "frame"]);
    std::fs::create_dir(d.join("out_frames")).unwrap();
    let args = small(
        "4",
        &[
            "-c",
            "c.png",
            "-s",
            "s.png",
            "-o",
            "out.png",
            "--save-every",
            "2",
            "--json-log",
            "out_frames/out_123456.png",
        ],
    );
    refused(&args, d, &["--json-log", "frame"]);
}

#[test]
fn names_too_long_for_their_temporary_file_are_refused_up_front() {
    let dir = fixture();
    let d = dir.path();
    // 231–255 bytes passed the preflight and failed after every iteration.
    for len in [220usize, 231, 250, 255] {
        let name = format!("{}.png", "o".repeat(len - 4));
        let args = small("2", &["-c", "c.png", "-s", "s.png", "-o", &name]);
        let line = refused(&args, d, &["--output", "too long", "at most 219 bytes"]);
        assert!(line.contains(&format!("{len} bytes")), "{line}");
    }
    // Frames of a long output stem: their names are checked too.
    let stem = "f".repeat(210);
    let out = format!("{stem}.png");
    let args = small(
        "2",
        &[
            "-c",
            "c.png",
            "-s",
            "s.png",
            "-o",
            &out,
            "--save-every",
            "1",
            "--frames-dir",
            "fr",
        ],
    );
    refused(&args, d, &["--save-every", "too long"]);
}

#[test]
fn an_input_named_like_a_temporary_file_is_refused() {
    let dir = fixture();
    let d = dir.path();
    // The stale-temporary cleanup of out.png could remove it.
    copy(d, "s.png", ".neural-style-out.png.1-aB3dE5.tmp");
    let args = small(
        "2",
        &[
            "-c",
            "c.png",
            "-s",
            ".neural-style-out.png.1-aB3dE5.tmp",
            "-o",
            "out.png",
        ],
    );
    refused(&args, d, &["--style", "temporary file", "--output"]);
}

#[test]
fn the_same_command_twice_at_once_gives_one_good_output() {
    weights();
    for flag in ["--save-every", "--checkpoint-every"] {
        let dir = fixture();
        let d = dir.path();
        let args = small(
            "12",
            &["-c", "c.png", "-s", "s.png", "-o", "out.png", flag, "1"],
        );
        let spawn = || {
            command(&args, d)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && !err.contains("No such file"),
                "{flag}: {}",
                describe(&out)
            );
        }
        let img = image::open(d.join("out.png")).unwrap();
        assert_eq!((img.width(), img.height()), (32, 24));
        let left: Vec<String> = listing(d)
            .into_iter()
            .filter(|n| n.contains(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_stderr_never_panics_and_keeps_the_best_image() {
    weights();
    let dir = fixture();
    let d = dir.path();
    let full = || {
        std::fs::File::options()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    // Not quiet: the first message fails (it panicked: exit 101, no image).
    let args = crate::support::paint_flags(
        Some("32"),
        Some("5"),
        false,
        &["-c", "c.png", "-s", "s.png", "-o", "out.png"],
    );
    let out = command(&args, d).stderr(full()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let img = image::open(d.join("out.png")).unwrap();
    assert_eq!((img.width(), img.height()), (32, 24));
    // A batch still emits its summary on stdout.
    std::fs::write(
        d.join("jobs.toml"),
        "[defaults]\nsize = 32\niterations = 2\nthreads = 2\n\n\
         [[job]]\ncontent = \"c.png\"\nstyle = [\"s.png\"]\noutput = \"b.png\"\n",
    )
    .unwrap();
    let out = command(&["batch", "jobs.toml", "--json"], d)
        .stderr(full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l.contains("\"event\":\"summary\"")),
        "{}",
        describe(&out)
    );
}

#[cfg(unix)]
#[test]
fn a_closed_stdout_never_panics() {
    // `neural-style layers | head -1`: the reader goes away.
    let dir = tempfile::tempdir().unwrap();
    for args in [&["layers"][..], &["backends"]] {
        let mut child = command(args, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_ne!(out.status.code(), Some(101), "{}", describe(&out));
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{}",
            describe(&out)
        );
    }
}

#[test]
fn a_non_finite_loss_late_in_a_run_keeps_the_best_image() {
    weights();
    let dir = fixture();
    let d = dir.path();
    // Adam with a huge step: iteration 1 is finite, the next overflows.
    let args = small(
        "6",
        &[
            "-c",
            "c.png",
            "-s",
            "s.png",
            "-o",
            "out.png",
            "--optimizer",
            "adam",
            "--learning-rate",
            "1e38",
        ],
    );
    let out = run(&args, d);
    let line = error_line(&out, &["non-finite", "best image so far is in out.png"]);
    assert!(line.contains("--learning-rate"), "{line}");
    let img = image::open(d.join("out.png")).unwrap();
    assert_eq!((img.width(), img.height()), (32, 24));
}

#[test]
fn counts_never_wrap() {
    let dir = fixture();
    let d = dir.path();
    let args = small(
        "2",
        &[
            "-c",
            "c.png",
            "-s",
            "s.png",
            "-o",
            "o.png",
            "--scales",
            "32,32",
            "--scale-iterations",
            "18446744073709551615,1",
        ],
    );
    refused(&args, d, &["--scale-iterations"]);
    let args = crate::support::paint_flags(
        Some("32"),
        Some("18446744073709551615"),
        true,
        &["-c", "c.png", "-s", "s.png", "-o", "o.png", "--multires"],
    );
    refused(&args, d, &["--iterations"]);
    // Garbage from the scheduler: refused, naming the variable (it wrapped: 0 jobs, exit 0).
    std::fs::write(
        d.join("jobs.toml"),
        "[[job]]\ncontent = \"c.png\"\nstyle = [\"s.png\"]\noutput = \"b.png\"\n",
    )
    .unwrap();
    let before = snapshot(d);
    let out = command(&["batch", "jobs.toml", "--dry-run"], d)
        .env("SLURM_ARRAY_TASK_ID", "9223372036854775807")
        .env("SLURM_ARRAY_TASK_MIN", "-9223372036854775808")
        .env("SLURM_ARRAY_TASK_COUNT", "4")
        .output()
        .unwrap();
    error_line(&out, &["SLURM_ARRAY_TASK_ID=9223372036854775807"]);
    assert_eq!(snapshot(d), before);
}

#[test]
fn an_lbfgs_history_longer_than_the_run_is_bounded_by_it() {
    weights();
    let dir = fixture();
    let d = dir.path();
    // 2^40 pairs "needed" petabytes; only 2 can exist.
    let args = small(
        "2",
        &[
            "-c",
            "c.png",
            "-s",
            "s.png",
            "-o",
            "o.png",
            "--lbfgs-history",
            "1099511627776",
        ],
    );
    let out = run(&args, d);
    assert!(out.status.success(), "{}", describe(&out));
}

#[test]
fn a_finished_jobs_deleted_input_does_not_block_the_batch() {
    let dir = fixture();
    let d = dir.path();
    copy(d, "c.png", "gone.png");
    copy(d, "c.png", "done.png");
    std::fs::write(
        d.join("jobs.toml"),
        "[defaults]\nsize = 32\niterations = 2\n\n\
         [[job]]\ncontent = \"gone.png\"\nstyle = [\"s.png\"]\noutput = \"done.png\"\n\n\
         [[job]]\ncontent = \"c.png\"\nstyle = [\"s.png\"]\noutput = \"todo.png\"\n",
    )
    .unwrap();
    std::fs::remove_file(d.join("gone.png")).unwrap();
    let out = run(&["batch", "jobs.toml", "--dry-run"], d);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\ttodo.png\n");
}

/// Jobs files of `n` jobs: a grid of `n / 100` contents × 100 styles.
fn big_batch(d: &Path, contents: usize) {
    for i in 0..contents {
        copy(d, "c.png", &format!("c{i}.png"));
    }
    for i in 0..100 {
        copy(d, "s.png", &format!("s{i}.png"));
    }
    let list = |p: &str, n: usize| {
        (0..n)
            .map(|i| format!("\"{p}{i}.png\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    std::fs::create_dir(d.join("out")).unwrap();
    std::fs::write(
        d.join("jobs.toml"),
        format!(
            "contents = [{}]\nstyles = [{}]\noutput-dir = \"out\"\n\n[defaults]\nsize = 32\niterations = 2\n",
            list("c", contents),
            list("s", 100)
        ),
    )
    .unwrap();
}

#[test]
fn ten_thousand_jobs_are_preflighted_and_a_collision_among_them_is_found() {
    let dir = fixture();
    let d = dir.path();
    big_batch(d, 100);
    let out = run(&["batch", "jobs.toml", "--dry-run", "--quiet"], d);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 10_000);
    // The last job's output is the first content: found among 10,000.
    let text = std::fs::read_to_string(d.join("jobs.toml")).unwrap();
    std::fs::write(
        d.join("jobs.toml"),
        text.replace("iterations = 2\n", "iterations = 2\n\n[[job]]\ncontent = \"c.png\"\nstyle = [\"s.png\"]\noutput = \"c0.png\"\n"),
    )
    .unwrap();
    refused(
        &["batch", "jobs.toml", "--dry-run", "--quiet"],
        d,
        &["c0.png", "never writes over an input"],
    );
}

#[test]
fn messages_name_the_option_at_fault() {
    let dir = fixture();
    let d = dir.path();
    refused(
        &[
            "compare", "-c", "c.png", "-s", "s.png", "-o", "cmp.png", "--ratios", "1e-308",
        ],
        d,
        &["--ratios", "1e-308"],
    );
    refused(
        &small(
            "2",
            &[
                "-c",
                "c.png",
                "-s",
                "s.png",
                "-o",
                "o.png",
                "--init",
                "noise",
                "--init-image",
                "s2.png",
            ],
        ),
        d,
        &["--init-image", "--init", "noise"],
    );
    std::fs::write(
        d.join("jobs.toml"),
        "[defaults]\nsize = 32\niterations = 2\n\n\
         [[job]]\ncontent = \"c.png\"\nstyle = [\"s.png\"]\noutput = \"a.png\"\n\n\
         [[job]]\ncontent = \"c.png\"\nstyle = [\"s2.png\"]\noutput = \"b.png\"\nthreads = 1\n",
    )
    .unwrap();
    // It was silently ignored (the first job's count ran every job).
    refused(
        &["batch", "jobs.toml", "--dry-run"],
        d,
        &["job 1", "--threads"],
    );
    // A config file's paths are relative to its directory, as a batch file's.
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(d.join("sub/cfg.toml"), "style = [\"missing.png\"]\n").unwrap();
    refused(
        &small(
            "2",
            &["-c", "c.png", "--config", "sub/cfg.toml", "-o", "o.png"],
        ),
        d,
        &["sub/missing.png"],
    );
}

// ------------------------------------------------- the property test

/// A small deterministic generator (xorshift): the cases are the same on
/// every run, so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
    fn coin(&mut self) -> bool {
        self.next() % 2 == 0
    }
}

/// Random combinations of the written-file options, with names drawn from a
/// pool in which every feature's files collide with another's (checkpoint
/// names, frame names, temporary names, inputs): a refused run leaves every
/// file byte-identical; an accepted run adds or changes only paths its
/// registry declares; and either way the run's inputs are unchanged. Cases: `NEURAL_STYLE_PROPTEST_CASES` (default 24);
/// accepted runs are 1 iteration at 24 px.
#[test]
fn property_every_run_writes_only_declared_paths() {
    weights();
    let cases: usize = std::env::var("NEURAL_STYLE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut rng = Rng(0x5eed_2026_0021);
    let outputs = [
        "out.png",
        "o.jpg",
        "c.png",
        "fr/out_00001.png",
        "s.png.ckpt.png",
    ];
    let logs = [
        "log.jsonl",
        "out.png.ckpt.json",
        "fr/out_00001.png",
        "c.png",
        "sheet.png",
    ];
    let contents = [
        "c.png",
        "out.png.ckpt.png",
        "fr/out_00001.png",
        ".neural-style-out.png.1-aB3dE5.tmp",
    ];
    let styles = ["s.png", "out.png.ckpt.png", "o.jpg.ckpt.png", "log.jsonl"];
    let (mut accepted, mut refused_runs) = (0, 0);
    for case in 0..cases {
        let dir = fixture();
        let d = dir.path();
        std::fs::create_dir(d.join("fr")).unwrap();
        // Files under every colliding name (images, so that each may be read).
        for name in [
            "out.png.ckpt.png",
            "fr/out_00001.png",
            ".neural-style-out.png.1-aB3dE5.tmp",
            "o.jpg.ckpt.png",
            "log.jsonl",
        ] {
            copy(d, "s2.png", name);
        }
        // Half the time the plain name, else one from the colliding pool.
        let mut pick = |pool: &[&'static str]| {
            if rng.coin() {
                pool[0]
            } else {
                rng.pick(pool)
            }
        };
        let (output, content, style) = (pick(&outputs), pick(&contents), pick(&styles));
        let mut args: Vec<String> = ["-c", content, "-s", style, "-o", output]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut w = Writes {
            output: d.join(output),
            iterations: 1,
            ..Writes::default()
        };
        if rng.coin() {
            let log = rng.pick(&logs);
            args.extend(["--json-log".into(), log.into()]);
            w.json_log = Some(d.join(log));
        }
        if rng.coin() {
            args.extend([
                "--save-every".into(),
                "1".into(),
                "--frames-dir".into(),
                "fr".into(),
            ]);
            w.frames = Some(Some(d.join("fr")));
            if rng.coin() {
                let sheet = rng.pick(&["sheet.png", "c.png", "fr/out_00002.png"]);
                args.extend(["--sheet".into(), sheet.into()]);
                w.sheet = Some(d.join(sheet));
            }
        }
        if rng.coin() {
            args.extend(["--checkpoint-every".into(), "1".into()]);
            w.checkpoints = true;
        }
        if rng.coin() {
            let plot = rng.pick(&["p.svg", "out.png.ckpt.json"]);
            args.extend(["--plot".into(), plot.into()]);
            w.plot = Some(d.join(plot));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let args = crate::support::paint_flags(Some("24"), Some("1"), true, &args);
        let before = snapshot(d);
        let out = run(&args, d);
        let after = snapshot(d);
        let what = format!("case {case}: {args:?}\n{}", describe(&out));
        // Whatever happened, the run's inputs are as they were.
        for input in [content, style] {
            if let Some(h) = before.get(input) {
                assert_eq!(after.get(input), Some(h), "input {input} changed: {what}");
            }
        }
        if out.status.success() {
            accepted += 1;
            let declared = w.declared();
            for (path, hash) in &after {
                if before.get(path) != Some(hash) {
                    assert!(
                        declared.covers(d, &PathBuf::from(path)),
                        "{path} written but not declared: {what}"
                    );
                }
            }
            for path in before.keys() {
                assert!(
                    after.contains_key(path) || declared.covers(d, Path::new(path)),
                    "{path} removed but not declared: {what}"
                );
            }
        } else {
            refused_runs += 1;
            assert_eq!(out.status.code(), Some(1), "{what}");
            assert_eq!(after, before, "a refused run changed files: {what}");
        }
    }
    eprintln!("{cases} cases: {accepted} accepted, {refused_runs} refused");
    // The pool is built so that both happen.
    assert!(
        accepted > 0 && refused_runs > 0,
        "{accepted} accepted, {refused_runs} refused"
    );
}

#[test]
fn a_resumed_run_with_nothing_left_prints_no_absurd_speed() {
    weights();
    let dir = fixture();
    let d = dir.path();
    let args = crate::support::paint_flags(
        Some("32"),
        Some("100"),
        false,
        &[
            "-c",
            "c.png",
            "-s",
            "s.png",
            "-o",
            "out.png",
            "--checkpoint-every",
            "1",
        ],
    );
    // The output cannot be written at the end (a non-empty directory took
    // its place meanwhile): the run fails, its last checkpoint (100 of 100) stays.
    let child = command(&args, d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !d.join("out.png.ckpt.json").exists() {
        assert!(start.elapsed().as_secs() < 120, "no checkpoint");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::create_dir(d.join("out.png")).unwrap();
    std::fs::write(d.join("out.png/keep"), b"x").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    std::fs::remove_dir_all(d.join("out.png")).unwrap();
    // The rerun resumes with nothing left to run: it printed 40000000000.00 it/s.
    let out = run(&args, d);
    assert!(out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("wrote out.png"))
        .unwrap_or("");
    assert!(
        line.contains("at iteration") && line.contains("of 100") && !line.contains("it/s"),
        "{err}"
    );
}
