//! Checkpoints and claims through the binary, on the real engine at tiny
//! sizes: the main job stopped mid-way resumes from its checkpoint (the
//! iteration count continues) and a checkpoint of other settings is ignored
//! with a warning; a batch skips a job claimed by a live process and takes
//! over the claim of a dead one, saying so.

use image::{Rgb, RgbImage};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{bin, describe};

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    RgbImage::from_fn(48, 36, |x, y| {
        let check = if (x / 6 + y / 6) % 2 == 0 { 40 } else { 210 };
        Rgb([(x * 5) as u8, (y * 7) as u8, check])
    })
    .save(dir.path().join("c.png"))
    .unwrap();
    RgbImage::from_fn(32, 32, |x, y| {
        Rgb([((x * y) % 256) as u8, 80, (y * 8) as u8])
    })
    .save(dir.path().join("s.png"))
    .unwrap();
    dir
}

/// The main job at 48 px, `n` iterations, a checkpoint every 3.
fn paint(dir: &Path, n: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args([
        "-c",
        "c.png",
        "-s",
        "s.png",
        "-o",
        "out.png",
        "--size",
        "48",
        "-n",
        n,
        "--threads",
        "1",
        "--checkpoint-every",
        "3",
        "--json-log",
        "log.jsonl",
    ])
    .args(extra)
    .current_dir(dir)
    .stdin(Stdio::null());
    c
}

fn iterations_logged(dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(dir.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["iteration"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

#[test]
fn a_stopped_job_resumes_from_its_checkpoint_and_other_settings_do_not() {
    let fx = fixture();
    let d = fx.path();
    let ckpt = d.join("out.png.ckpt.json");
    // Stop it (SIGINT, as Ctrl-C) once the first periodic checkpoint exists.
    let child = paint(d, "120", &[]).stderr(Stdio::piped()).spawn().unwrap();
    let t = Instant::now();
    while !ckpt.exists() {
        assert!(t.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(&ckpt).unwrap()).unwrap();
    let k = meta["iteration"].as_u64().unwrap();
    let first = iterations_logged(d);
    assert_eq!(
        *first.last().unwrap(),
        k,
        "the interrupt checkpoints the last iteration"
    );
    assert!((3..120).contains(&k), "{meta}");

    // Other settings: ignored with a warning, never used.
    let out = paint(d, "4", &["--style-weight", "7"]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: checkpoint ignored") && err.contains("other settings"),
        "{err}"
    );
    assert_eq!(iterations_logged(d), [1, 2, 3, 4], "started afresh");
    // That run, finished, removed the checkpoint of `out.png`.
    assert!(!ckpt.exists());

    // Resume proper: interrupt again, then rerun the same command to the end.
    let child = paint(d, "120", &[]).stderr(Stdio::piped()).spawn().unwrap();
    let t = Instant::now();
    while !ckpt.exists() {
        assert!(t.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(&ckpt).unwrap()).unwrap();
    let k = meta["iteration"].as_u64().unwrap();
    let out = paint(d, "120", &[]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("from its checkpoint at iteration {k} of 120")),
        "{err}"
    );
    let resumed = iterations_logged(d);
    assert_eq!(resumed.first(), Some(&(k + 1)), "numbering continues");
    assert_eq!(resumed.last(), Some(&120));
    assert!(!ckpt.exists() && !d.join("out.png.ckpt.png").exists());
    let img = image::open(d.join("out.png")).unwrap();
    assert_eq!((img.width(), img.height()), (48, 36));
}

/// Paints `chain` (`n` iterations), stops it with SIGTERM once a checkpoint
/// of its second scale exists, and returns that checkpoint's JSON (the one
/// the stop wrote: exit code 143).
fn stop_in_second_scale(d: &Path, n: &str, chain: &[&str]) -> Value {
    let ckpt = d.join("out.png.ckpt.json");
    let child = paint(d, n, chain).stderr(Stdio::piped()).spawn().unwrap();
    let t = Instant::now();
    let in_second = |ckpt: &Path| {
        std::fs::read_to_string(ckpt)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .filter(|m| m["scale"] == 1)
    };
    while in_second(&ckpt).is_none() {
        assert!(t.elapsed() < Duration::from_secs(240), "no checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143), "{}", describe(&out));
    in_second(&ckpt).expect("a checkpoint of the second scale")
}

/// A multi-scale job stopped by SIGTERM in its second scale resumes in that
/// scale at the iteration it reached (the checkpoint's image is at that
/// scale's size), and a checkpoint of another scale chain with the same
/// total is ignored: the chain is part of the fingerprint.
#[test]
fn a_multi_scale_job_resumes_at_its_scale_after_sigterm() {
    let fx = fixture();
    let d = fx.path();
    let ckpt = d.join("out.png.ckpt.json");
    let chain = ["--scales", "24,48", "--scale-iterations", "6,114"];
    let meta = stop_in_second_scale(d, "120", &chain);
    let k = meta["iteration"].as_u64().unwrap();
    assert_eq!(meta["scale"], 1, "{meta}");
    assert_eq!(meta["scale_iteration"].as_u64(), Some(k - 6), "{meta}");
    assert!((9..120).contains(&k), "{meta}");
    // The image is the second scale's: 48×36.
    let img = image::open(d.join("out.png.ckpt.png")).unwrap();
    assert_eq!((img.width(), img.height()), (48, 36));
    assert_eq!(*iterations_logged(d).last().unwrap(), k);

    // Another chain with the same 120 iterations: not this job's checkpoint.
    // (The chain is in the fingerprint: the iteration alone cannot tell,
    // since a first scale that ended early numbers the next one sooner.)
    let other = ["--scales", "24,48", "--scale-iterations", "7,113"];
    let out = paint(d, "120", &other).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: checkpoint ignored") && err.contains("other settings"),
        "{err}"
    );
    assert!(!ckpt.exists(), "that run, finished, removed it");

    // Again, and resumed by the same command: scale 2 goes on from k.
    let meta = stop_in_second_scale(d, "120", &chain);
    let k = meta["iteration"].as_u64().unwrap();
    let out = paint(d, "120", &chain).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("from its checkpoint at iteration {k} of 120")),
        "{err}"
    );
    let resumed = iterations_logged(d);
    assert_eq!(resumed.first(), Some(&(k + 1)), "numbering continues");
    assert_eq!(resumed.last(), Some(&120));
    assert!(!ckpt.exists() && !d.join("out.png.ckpt.png").exists());
    let img = image::open(d.join("out.png")).unwrap();
    assert_eq!((img.width(), img.height()), (48, 36));
}

/// A scale that ends before its iterations (the stopping rule) numbers the next scale's iterations
/// from where it ended: a checkpoint there is resumed, not ignored as an
/// impossible state (failed before: the poster's default chain, whose
/// 256 px scale stops early, started afresh after a SIGTERM hours in).
#[test]
fn a_checkpoint_after_a_scale_that_ended_early_is_resumed() {
    let fx = fixture();
    let d = fx.path();
    // A small step: the stopping rule ends each scale after a few windows.
    let chain = [
        "--scales",
        "24,48",
        "--scale-iterations",
        "400,400",
        "--learning-rate",
        "1e-5",
    ];
    let m = stop_in_second_scale(d, "800", &chain);
    let k = m["iteration"].as_u64().unwrap();
    let first = k - m["scale_iteration"].as_u64().unwrap();
    assert!(
        first < 400,
        "the first scale ran all 400: nothing tested ({m})"
    );
    let out = paint(d, "800", &chain).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("from its checkpoint at iteration {k} of 800"))
            && !err.contains("checkpoint ignored"),
        "{err}"
    );
    assert_eq!(iterations_logged(d).first(), Some(&(k + 1)), "{err}");
    let img = image::open(d.join("out.png")).unwrap();
    assert_eq!((img.width(), img.height()), (48, 36));
}

/// The start time (clock ticks since boot) a claim records for `pid`: the
/// 22nd field of `/proc/PID/stat`, read here independently of the binary
/// (batch/claim.rs), so that a claim the test writes is one it accepts.
fn proc_start(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("Linux, with /proc");
    let (_, fields) = stat.rsplit_once(") ").expect("pid (comm) state ...");
    // `fields` starts at field 3 (the state): field 22 is its 20th.
    let ticks = fields.split(' ').nth(22 - 3).expect("22 fields");
    ticks.parse().expect("a number of clock ticks")
}

/// The host name a claim records: the kernel's.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("Linux, with /proc");
    name.trim().to_string()
}

#[test]
fn batch_respects_live_claims_and_takes_over_dead_ones() {
    let fx = fixture();
    let d = fx.path();
    std::fs::write(
        d.join("jobs.toml"),
        "[defaults]\nsize = 32\niterations = 3\nthreads = 1\n\n\
         [[job]]\ncontent = \"c.png\"\nstyle = [\"s.png\"]\noutput = \"live.png\"\n\n\
         [[job]]\ncontent = \"c.png\"\nstyle = [\"s.png\"]\noutput = \"dead.png\"\n",
    )
    .unwrap();
    let host = host_name();
    let me = std::process::id();
    // Claims of this build say their PID namespace (the test's own: a pid is
    // judged only in the namespace it belongs to).
    let ns = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self/ns/pid").unwrap().ino()
    };
    let claim = |pid: u32, start: u64, token: &str| {
        serde_json::json!({"host": host, "pid": pid, "proc_start": start, "pid_ns": ns, "since": 1, "token": token})
            .to_string()
    };
    // This test process is alive; the other pid has exited.
    std::fs::write(d.join("live.png.claim"), claim(me, proc_start(me), "live")).unwrap();
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    let gone_start = proc_start(gone_pid);
    gone.wait().unwrap();
    std::fs::write(
        d.join("dead.png.claim"),
        claim(gone_pid, gone_start, "dead"),
    )
    .unwrap();

    let out = Command::new(bin())
        .args(["batch", "jobs.toml", "--json", "--shard", "none"])
        .current_dir(d)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let events: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<(String, u64)> = events
        .iter()
        .filter(|e| e["event"] != "summary")
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["job"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = [
        ("skipped", 0),
        ("claimed", 1),
        ("started", 1),
        ("written", 1),
    ]
    .iter()
    .map(|(k, j)| (k.to_string(), *j))
    .collect();
    assert_eq!(kinds, want, "{events:?}");
    let skipped = &events[0];
    assert!(
        skipped["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("claimed by pid {me}")),
        "{skipped}"
    );
    let claimed = &events[1];
    let why = claimed["reason"].as_str().unwrap();
    assert!(
        why.contains("took over") && why.contains("is gone"),
        "{why}"
    );
    assert!(err.contains("took over the stale claim"), "{err}");
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(
        (
            summary["jobs"].as_u64(),
            summary["written"].as_u64(),
            summary["skipped"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    assert!(
        !d.join("live.png").exists(),
        "a live claim's job is not done twice"
    );
    assert!(d.join("dead.png").exists() && !d.join("dead.png.claim").exists());
    // The live claim is not touched.
    assert!(std::fs::read_to_string(d.join("live.png.claim"))
        .unwrap()
        .contains("\"live\""));
}
