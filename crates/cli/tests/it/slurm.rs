//! Batches under real schedulers, on the real engine at tiny sizes:
//!
//! - `slurm_single_node`: a one-node Slurm cluster started here
//!   (`tests/slurm/cluster.sh`: munged, slurmctld and slurmd as children in
//!   a temporary directory, stopped afterwards) runs `tests/slurm/array.sh`,
//!   the README's array script: (1) an array of 4 tasks over 10 jobs, every
//!   output written exactly once and the tasks' summaries adding up; (2) a
//!   task sent SIGTERM mid-job: a checkpoint is written, and the requeued
//!   task resumes from it and completes the image; (3) the same array
//!   submitted twice at once: no output written twice, none lost. Where
//!   Slurm cannot be started (not installed, not root, the daemons fail),
//!   it prints exactly why and skips.
//! - `kubernetes_indexed_job_command`: the command of
//!   `tests/slurm/indexed-job.yaml`, the README's manifest, run once per
//!   completion index at once, as the Job's pods would (no Kubernetes here).

use image::{Rgb, RgbImage};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{bin, describe};

use crate::support::ROOT;

/// The weights file the binary would use (never fetched here: the suite's
/// runner, `cargo xtask test`, fetches them first).
fn weights() -> PathBuf {
    let out = Command::new(bin())
        .arg("weights")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "{}", describe(&out));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// `n` distinct tiny contents and two styles in `dir`.
fn images(dir: &Path, n: u32) {
    for k in 0..n {
        RgbImage::from_fn(40, 32, |x, y| {
            let check = if (x / (4 + k) + y / 4) % 2 == 0 {
                30
            } else {
                220
            };
            Rgb([(x * 6 + k * 40) as u8, (y * 7) as u8, check])
        })
        .save(dir.join(format!("c{k}.png")))
        .unwrap();
    }
    RgbImage::from_fn(32, 32, |x, y| {
        Rgb([((x * y) % 256) as u8, 90, (y * 8) as u8])
    })
    .save(dir.join("s0.png"))
    .unwrap();
    RgbImage::from_fn(32, 32, |x, y| {
        Rgb([200, ((x ^ y) * 8) as u8, if x % 6 < 3 { 0 } else { 255 }])
    })
    .save(dir.join("s1.png"))
    .unwrap();
}

/// A jobs file: 5 contents × 2 styles = 10 jobs into `out_dir`.
fn jobs_file(dir: &Path, name: &str, out_dir: &str, size: u32, iterations: usize) -> PathBuf {
    std::fs::create_dir_all(dir.join(out_dir)).unwrap();
    let f = dir.join(name);
    std::fs::write(
        &f,
        format!(
            "contents = [\"c0.png\", \"c1.png\", \"c2.png\", \"c3.png\", \"c4.png\"]\n\
             styles = [\"s0.png\", \"s1.png\"]\noutput-dir = \"{out_dir}\"\n\n\
             [defaults]\nsize = {size}\niterations = {iterations}\nthreads = 1\n"
        ),
    )
    .unwrap();
    f
}

/// The JSON event lines of some task outputs.
fn events(files: &[PathBuf]) -> Vec<Value> {
    let mut v = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        // Whole lines only: a task may be writing the last one.
        let whole = text.split_inclusive('\n').filter(|l| l.ends_with('\n'));
        for line in whole.map(str::trim_end).filter(|l| l.starts_with('{')) {
            v.push(
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", f.display())),
            );
        }
    }
    v
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// How many `written` events each output has.
fn written_counts(events: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in of_kind(events, "written") {
        *m.entry(e["output"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    m
}

/// Every summary adds up (written + skipped + failed = the shard's jobs);
/// returns the total written and failed.
#[track_caller]
fn check_summaries(events: &[Value], tasks: usize) -> (u64, u64) {
    let summaries = of_kind(events, "summary");
    assert_eq!(
        summaries.len(),
        tasks,
        "one summary per task: {summaries:?}"
    );
    let (mut written, mut failed) = (0, 0);
    for s in summaries {
        let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
        assert_eq!(n("written") + n("skipped") + n("failed"), n("jobs"), "{s}");
        written += n("written");
        failed += n("failed");
    }
    (written, failed)
}

/// The ten outputs exist and decode at the job's size.
#[track_caller]
fn check_outputs(dir: &Path, size: u32) {
    for c in 0..5 {
        for s in 0..2 {
            let p = dir.join(format!("c{c}_s{s}.png"));
            let img = image::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(img.width().max(img.height()), size, "{}", p.display());
        }
    }
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".claim") || n.contains(".ckpt") || n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

// ------------------------------------------------------------------ Slurm

/// A one-node cluster; stopped (jobs cancelled, daemons ended) on drop.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Result<Cluster, String> {
        for tool in ["sbatch", "slurmctld", "slurmd", "munged"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if !found {
                return Err(format!(
                    "`{tool}` is not installed (Debian: apt-get install slurm-wlm munge; `cargo xtask test` does, as root)"
                ));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("ns-slurm-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        // A port pair of our own, so that concurrent clusters do not collide.
        let port = 40000 + (std::process::id() % 10000) * 2;
        let out = Command::new("bash")
            .arg(Path::new(ROOT).join("tests/slurm/cluster.sh"))
            .args(["start", dir.path().to_str().unwrap(), &port.to_string()])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        let cluster = Cluster { dir };
        if !out.status.success() {
            return Err(format!(
                "the one-node cluster did not start ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(cluster)
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", self.conf()).stdin(Stdio::null());
        c
    }

    #[track_caller]
    fn ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.cmd(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            describe(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Submit `tests/slurm/array.sh jobs` from `dir`; returns the job id.
    fn submit(&self, dir: &Path, jobs: &Path, array: &str, checkpoint_every: usize) -> String {
        let bin = PathBuf::from(bin());
        let bin_dir = bin.parent().unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let out = self
            .cmd("sbatch")
            .current_dir(dir)
            .env("PATH", path)
            .env(neural_style_weights::WEIGHTS_ENV, weights())
            .env(
                "NEURAL_STYLE_CHECKPOINT_EVERY",
                checkpoint_every.to_string(),
            )
            .args([
                "--parsable",
                &format!("--array={array}"),
                "--output=logs/%A_%a.out",
                "--error=logs/%A_%a.err",
            ])
            .arg(Path::new(ROOT).join("tests/slurm/array.sh"))
            .arg(jobs)
            .output()
            .unwrap();
        assert!(out.status.success(), "sbatch: {}", describe(&out));
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    }

    /// Wait until none of `ids` is pending or running.
    #[track_caller]
    fn wait(&self, ids: &[&str], limit: Duration) {
        let t = Instant::now();
        loop {
            let q = self.ok("squeue", &["-h", "-o", "%i %T", "-j", &ids.join(",")]);
            if q.trim().is_empty() {
                return;
            }
            assert!(
                t.elapsed() < limit,
                "still queued after {limit:?}:\n{q}\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn log_tail(&self) -> String {
        let log = |f: &str| {
            std::fs::read_to_string(self.dir.path().join("log").join(f)).unwrap_or_default()
        };
        let tail = |s: String| {
            s.lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        };
        format!(
            "--- slurmctld.log\n{}\n--- slurmd.log\n{}",
            tail(log("slurmctld.log")),
            tail(log("slurmd.log"))
        )
    }

    /// `JobState` and `ExitCode` of each task of a job.
    fn states(&self, id: &str) -> Vec<(String, String)> {
        let text = self.ok("scontrol", &["show", "job", id, "-o"]);
        text.lines()
            .map(|l| {
                let field = |k: &str| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix(k))
                        .unwrap_or("")
                        .to_string()
                };
                (field("JobState="), field("ExitCode="))
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Path::new(ROOT).join("tests/slurm/cluster.sh"))
            .args(["stop", self.dir.path().to_str().unwrap()])
            .stdin(Stdio::null())
            .status();
    }
}

fn task_files(dir: &Path, id: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(&format!("{id}_")) && n.ends_with(ext)
        })
        .collect();
    v.sort();
    v
}

fn task_text(dir: &Path, id: &str) -> String {
    let mut s = String::new();
    for f in task_files(dir, id, ".out")
        .into_iter()
        .chain(task_files(dir, id, ".err"))
    {
        s += &format!(
            "--- {}\n{}",
            f.display(),
            std::fs::read_to_string(&f).unwrap_or_default()
        );
    }
    s
}

#[test]
fn slurm_single_node() {
    let cluster = match Cluster::start() {
        Ok(c) => c,
        Err(why) => {
            neural_style_core::testing::skip::skip(format!("Slurm cannot be started here: {why}"));
            return;
        }
    };
    let work = tempfile::tempdir().unwrap();
    let d = work.path();
    images(d, 5);
    let minutes = |m: u64| Duration::from_secs(60 * m);

    // (1) An array of 4 tasks over 10 jobs.
    let jobs = jobs_file(d, "jobs.toml", "out1", 32, 20);
    let t = Instant::now();
    let id = cluster.submit(d, &jobs, "0-3", 50);
    cluster.wait(&[&id], minutes(10));
    let array_time = t.elapsed();
    let text = task_text(d, &id);
    for (state, code) in cluster.states(&id) {
        assert_eq!((&state[..], &code[..]), ("COMPLETED", "0:0"), "{text}");
    }
    for k in 0..4 {
        assert!(
            text.contains(&format!("shard {k}/4 from Slurm")),
            "task {k} names its shard: {text}"
        );
    }
    let ev = events(&task_files(d, &id, ".out"));
    let counts = written_counts(&ev);
    assert_eq!(counts.len(), 10, "{text}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert_eq!(check_summaries(&ev, 4), (10, 0), "{text}");
    check_outputs(&d.join("out1"), 32);
    // The same ten jobs in one process, for the timing note.
    let single = jobs_file(d, "single.toml", "single", 32, 20);
    let t = Instant::now();
    let out = Command::new(bin())
        .args(["batch", single.to_str().unwrap(), "--shard", "none", "-q"])
        .env(neural_style_weights::WEIGHTS_ENV, weights())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let single_time = t.elapsed();
    assert!(out.status.success(), "{}", describe(&out));
    eprintln!(
        "timing (not asserted; shared machine): 10 jobs at 32 px × 20 iterations: \
         Slurm array of 4 tasks {:.1} s (submit to last task done), one process {:.1} s",
        array_time.as_secs_f64(),
        single_time.as_secs_f64()
    );

    // (2) SIGTERM mid-job, then requeue: the job resumes from its checkpoint.
    let long = d.join("long.toml");
    std::fs::create_dir_all(d.join("out2")).unwrap();
    std::fs::write(
        &long,
        "[[job]]\ncontent = \"c0.png\"\nstyle = [\"s1.png\"]\noutput = \"out2/long.png\"\n\n\
         [defaults]\nsize = 48\niterations = 150\nthreads = 1\n",
    )
    .unwrap();
    let id = cluster.submit(d, &long, "0", 5);
    let out_file = || task_files(d, &id, ".out");
    let t = Instant::now();
    while of_kind(&events(&out_file()), "checkpoint").is_empty() {
        assert!(
            t.elapsed() < minutes(5),
            "no checkpoint: {}",
            task_text(d, &id)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let task = format!("{id}_0");
    cluster.ok("scancel", &["--full", "--signal=TERM", &task]);
    cluster.wait(&[&id], minutes(2));
    let first = events(&out_file());
    assert!(
        of_kind(&first, "written").is_empty(),
        "finished before the signal: {}",
        task_text(d, &id)
    );
    let last_ckpt = of_kind(&first, "checkpoint").last().unwrap()["iteration"]
        .as_u64()
        .unwrap();
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("out2/long.png.ckpt.json"))
            .unwrap_or_else(|e| panic!("no checkpoint file ({e}): {}", task_text(d, &id))),
    )
    .unwrap();
    assert_eq!(meta["iteration"].as_u64(), Some(last_ckpt));
    assert!((5..150).contains(&last_ckpt), "{meta}");
    assert!(
        !d.join("out2/long.png.claim").exists(),
        "the claim is released"
    );
    cluster.ok("scontrol", &["requeue", &task]);
    // A requeued job is held ~2 minutes before it is eligible again; start it
    // now, but not within the second of the requeue: slurmd refuses a job
    // credential created in the same second as the old one's revocation
    // ("Job credential revoked", and the task fails without running).
    std::thread::sleep(Duration::from_secs(2));
    cluster.ok(
        "scontrol",
        &["update", &format!("JobId={task}"), "StartTime=now"],
    );
    // squeue may not list the requeued task for a moment: wait for the
    // second run's summary line (the first run wrote one), then for the queue.
    let t = Instant::now();
    let second_run_done = || of_kind(&events(&out_file()), "summary").len() >= 2;
    while !second_run_done() {
        let queued = cluster.ok("squeue", &["-h", "-o", "%i %T", "-j", &id]);
        assert!(
            second_run_done() || !queued.trim().is_empty() || t.elapsed() < Duration::from_secs(10),
            "the requeued task left the queue without running: {}\n{}",
            task_text(d, &id),
            cluster.log_tail()
        );
        assert!(
            t.elapsed() < minutes(10),
            "the requeued task did not finish: {}",
            task_text(d, &id)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    cluster.wait(&[&id], minutes(2));
    let all = events(&out_file());
    let resumed = of_kind(&all, "started");
    let resumed = resumed.last().unwrap();
    assert_eq!(
        resumed["resumed_from"].as_u64(),
        Some(last_ckpt),
        "{}",
        task_text(d, &id)
    );
    let written = of_kind(&all, "written");
    assert_eq!(written.len(), 1, "{}", task_text(d, &id));
    assert_eq!(written[0]["iteration"].as_u64(), Some(150));
    let img = image::open(d.join("out2/long.png")).unwrap();
    assert_eq!((img.width(), img.height()), (48, 38));
    assert!(
        !d.join("out2/long.png.ckpt.json").exists() && !d.join("out2/long.png.ckpt.png").exists()
    );

    // (3) The same array submitted twice at once.
    let jobs = jobs_file(d, "twice.toml", "out3", 32, 20);
    let a = cluster.submit(d, &jobs, "0-3", 50);
    let b = cluster.submit(d, &jobs, "0-3", 50);
    cluster.wait(&[&a, &b], minutes(10));
    let text = format!("{}{}", task_text(d, &a), task_text(d, &b));
    let mut files = task_files(d, &a, ".out");
    files.extend(task_files(d, &b, ".out"));
    let ev = events(&files);
    let counts = written_counts(&ev);
    assert_eq!(counts.len(), 10, "no job lost: {text}");
    assert!(
        counts.values().all(|&n| n == 1),
        "written twice: {counts:?}\n{text}"
    );
    assert_eq!(check_summaries(&ev, 8), (10, 0), "{text}");
    check_outputs(&d.join("out3"), 32);
    drop(cluster);
}

// ------------------------------------------------------------- Kubernetes

#[test]
fn kubernetes_indexed_job_command() {
    let manifest =
        std::fs::read_to_string(Path::new(ROOT).join("tests/slurm/indexed-job.yaml")).unwrap();
    let completions: usize = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("completions:"))
        .expect("completions")
        .trim()
        .parse()
        .unwrap();
    let command: Vec<String> = serde_json::from_str(
        manifest
            .lines()
            .find_map(|l| l.trim().strip_prefix("command:"))
            .expect("a command line")
            .trim(),
    )
    .expect("the command is a flow sequence of quoted strings");
    let weights_at = manifest
        .lines()
        .skip_while(|l| !l.contains("name: NEURAL_STYLE_WEIGHTS"))
        .find_map(|l| l.trim().strip_prefix("value:"))
        .expect("the weights' path")
        .trim()
        .to_string();
    assert_eq!(command[0], "neural-style");

    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let at = |s: &str| s.replace("/data", d.to_str().unwrap());
    images(d, 5);
    std::fs::copy(weights(), at(&weights_at)).unwrap();
    // jobs.toml as the manifest names it.
    let jobs = PathBuf::from(at(command.iter().find(|a| a.ends_with(".toml")).unwrap()));
    jobs_file(
        d,
        jobs.file_name().unwrap().to_str().unwrap(),
        "out",
        32,
        10,
    );
    // Every pod at once.
    let pods: Vec<_> = (0..completions)
        .map(|i| {
            Command::new(bin())
                .args(command[1..].iter().map(|a| at(a)))
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .env(neural_style_weights::WEIGHTS_ENV, at(&weights_at))
                .env_remove("SLURM_ARRAY_TASK_ID")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ev = Vec::new();
    for (i, p) in pods.into_iter().enumerate() {
        let out = p.wait_with_output().unwrap();
        assert!(out.status.success(), "pod {i}: {}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("shard {i}/{completions} from Kubernetes")),
            "pod {i}: {err}"
        );
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            ev.push(serde_json::from_str::<Value>(line).unwrap());
        }
    }
    let counts = written_counts(&ev);
    assert_eq!(counts.len(), 10);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert_eq!(check_summaries(&ev, completions), (10, 0));
    check_outputs(&d.join("out"), 32);
}

#[test]
fn the_readme_shows_the_tested_files() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    for (file, lang) in [("array.sh", "sh"), ("indexed-job.yaml", "yaml")] {
        let text = std::fs::read_to_string(Path::new(ROOT).join("tests/slurm").join(file)).unwrap();
        assert!(
            readme.contains(&format!("`tests/slurm/{file}`:\n\n```{lang}\n{text}```\n")),
            "README.md must show tests/slurm/{file} verbatim"
        );
    }
}
