//! The cuda backend's section of `cargo xtask bench`'s report: device
//! counters per size (launches, copies, synchronisations, peak bytes; from
//! `benches/iteration.rs --stats` on the host executor, which counts exactly
//! what the GPU executor would do), a roofline prediction of the time per
//! iteration on an H100 and an H200 in both precision modes, beside PyTorch
//! eager's from the same model, and the kernels' register use on sm_90 (from
//! `crates/cuda/tests/it/nvrtc.rs`, which assembles them when a `ptxas` is found).

use anyhow::Result;
use serde_json::Value;
use std::fmt::Write as _;

/// A GPU's peaks, from NVIDIA's data sheets (SXM parts, dense tensor-core
/// figures, i.e. without the 2:4 sparsity doubling).
struct Gpu {
    name: &'static str,
    /// FP32 on CUDA cores, FLOP/s.
    fp32: f64,
    /// TF32 on tensor cores, FLOP/s.
    tf32: f64,
    /// HBM bandwidth, bytes/s.
    hbm: f64,
}

const GPUS: &[Gpu] = &[
    // NVIDIA H100 Tensor Core GPU data sheet: 67 TFLOPS FP32, 494.7 TFLOPS
    // TF32 (989.4 with sparsity), 3.35 TB/s HBM3.
    Gpu {
        name: "H100 SXM",
        fp32: 67e12,
        tf32: 494.7e12,
        hbm: 3.35e12,
    },
    // NVIDIA H200 data sheet: the same compute, 4.8 TB/s HBM3e.
    Gpu {
        name: "H200 SXM",
        fp32: 67e12,
        tf32: 494.7e12,
        hbm: 4.8e12,
    },
];

/// Host-side cost of one kernel launch (cuLaunchKernel / a cuBLAS call),
/// seconds: stated, not measured; launches are assumed not to overlap.
const LAUNCH_S: f64 = 4e-6;
/// One synchronisation: a small device→host copy and the stream drained.
const SYNC_S: f64 = 10e-6;
/// One small host→device copy (pageable, asynchronous).
const UPLOAD_S: f64 = 3e-6;
/// PyTorch eager's `torch.optim.LBFGS` (torch/optim/lbfgs.py): per history
/// pair and loop, a dot, a scaling and an `add_` (3 launches, none
/// synchronising); plus about 20 launches and 4 synchronisations per step
/// (`.item()`-style checks: the loss, `ys > 1e-10`, the gradient and step
/// tolerances). Its evaluation is assumed to launch as many kernels as ours
/// and to move the same bytes less the im2col matrices (cuDNN's implicit GEMM
/// does not materialise them).
const TORCH_LAUNCHES_PER_PAIR: f64 = 6.0;
const TORCH_STEP_LAUNCHES: f64 = 20.0;
const TORCH_SYNCS: f64 = 4.0;

/// `--stats` results per size: `((w, h), json)` (errors as strings).
pub type Counted = Vec<((usize, usize), Result<Value, String>)>;

/// Run `--stats` for the cuda backend on the host executor at every size.
pub fn collect(
    run: impl Fn(&[String]) -> Result<Value>,
    sizes: &[(usize, usize)],
    backends: &[String],
) -> Counted {
    if !backends.iter().any(|b| b == "cuda") {
        return Vec::new();
    }
    sizes
        .iter()
        .map(|&(w, h)| {
            eprintln!("bench: cuda device counters at {w}x{h} (host executor)");
            let args = ["--backend", "cuda", "--device", "host", "--stats"]
                .map(String::from)
                .into_iter()
                .chain(["--size".into(), format!("{w}x{h}")])
                .collect::<Vec<_>>();
            ((w, h), run(&args).map_err(|e| format!("{e:#}")))
        })
        .collect()
}

/// One set of counters' totals.
#[derive(Clone, Copy, Default)]
struct Totals {
    launches: f64,
    syncs: f64,
    uploads: f64,
    /// FLOPs and bytes of the GEMMs, and bytes of everything else.
    gemm_flops: f64,
    gemm_bytes: f64,
    other_flops: f64,
    other_bytes: f64,
    im2col_bytes: f64,
}

impl Totals {
    fn of(c: &Value) -> Self {
        let mut t = Totals {
            launches: c["launches"].as_f64().unwrap_or(0.0),
            syncs: c["syncs"].as_f64().unwrap_or(0.0),
            uploads: c["uploads"].as_f64().unwrap_or(0.0),
            ..Default::default()
        };
        for k in c["kernels"].as_array().into_iter().flatten() {
            let (f, b) = (
                k["flops"].as_f64().unwrap_or(0.0),
                k["bytes"].as_f64().unwrap_or(0.0),
            );
            match k["name"].as_str() {
                Some("sgemm") => {
                    t.gemm_flops += f;
                    t.gemm_bytes += b;
                }
                Some(name) => {
                    t.other_flops += f;
                    t.other_bytes += b;
                    if name == "ns_im2col" {
                        t.im2col_bytes += b;
                    }
                }
                None => {}
            }
        }
        t
    }
    fn plus(self, o: Totals) -> Totals {
        Totals {
            launches: self.launches + o.launches,
            syncs: self.syncs + o.syncs,
            uploads: self.uploads + o.uploads,
            gemm_flops: self.gemm_flops + o.gemm_flops,
            gemm_bytes: self.gemm_bytes + o.gemm_bytes,
            other_flops: self.other_flops + o.other_flops,
            other_bytes: self.other_bytes + o.other_bytes,
            im2col_bytes: self.im2col_bytes + o.im2col_bytes,
        }
    }
    /// Roofline time: GEMMs and the rest each bound by compute or memory,
    /// plus fixed costs per launch, synchronisation and upload.
    fn seconds(&self, gpu: &Gpu, tf32: bool) -> f64 {
        let peak = if tf32 { gpu.tf32 } else { gpu.fp32 };
        (self.gemm_flops / peak).max(self.gemm_bytes / gpu.hbm)
            + (self.other_flops / gpu.fp32).max(self.other_bytes / gpu.hbm)
            + self.launches * LAUNCH_S
            + self.syncs * SYNC_S
            + self.uploads * UPLOAD_S
    }
}

/// The report section (empty when cuda is not built).
pub fn section(counted: &Counted) -> Result<String> {
    let mut md = String::new();
    if counted.is_empty() {
        return Ok(md);
    }
    writeln!(
        md,
        "## cuda backend: device counters and a roofline prediction\n\n\
         Counted on the host executor (`iteration --backend cuda --device host --stats`), \
         which launches exactly what the GPU executor would. One iteration = one evaluation \
         + one L-BFGS update with a full history of 100 pairs; *batched* is L-BFGS's \
         batched path (the cuda default, `crates/core/src/optim/lbfgs/batched.rs`), \
         *per-operation* the path every backend had before. A synchronisation is any \
         point where the host waits for the device (a download is one).\n\n\
         | size | part | launches | syncs | uploads | downloads | peak MB |\n|---|---|---|---|---|---|---|"
    )?;
    let mut rows = Vec::new();
    for ((w, h), v) in counted {
        let v = match v {
            Ok(v) => &v["stats"],
            Err(e) => {
                writeln!(md, "| {w}×{h} | failed: {e} | | | | | |")?;
                continue;
            }
        };
        let parts = [
            ("evaluation", &v["evaluation"]),
            ("update, batched", &v["update_batched"]["counters"]),
            (
                "update, per-operation",
                &v["update_per_operation"]["counters"],
            ),
        ];
        for (name, c) in parts {
            writeln!(
                md,
                "| {w}×{h} | {name} | {} | {} | {} | {} | {:.1} |",
                c["launches"],
                c["syncs"],
                c["uploads"],
                c["downloads"],
                c["peak_bytes"].as_f64().unwrap_or(f64::NAN) / 1e6
            )?;
        }
        let eval = Totals::of(&v["evaluation"]);
        let after = eval.plus(Totals::of(&v["update_batched"]["counters"]));
        let before = eval.plus(Totals::of(&v["update_per_operation"]["counters"]));
        writeln!(
            md,
            "| {w}×{h} | **iteration** | **{:.0}** (per-operation: {:.0}, {:.0} %) | **{:.0}** (per-operation: {:.0}) | {:.0} | | |",
            after.launches,
            before.launches,
            100.0 * after.launches / before.launches.max(1.0),
            after.syncs,
            before.syncs,
            after.uploads,
        )?;
        let history = v["update_batched"]["history"].as_f64().unwrap_or(100.0);
        let torch = Totals {
            launches: eval.launches + TORCH_LAUNCHES_PER_PAIR * history + TORCH_STEP_LAUNCHES,
            syncs: TORCH_SYNCS,
            uploads: 0.0,
            other_bytes: after.other_bytes - after.im2col_bytes,
            ..after
        };
        rows.push(((w, h), after, before, torch));
    }
    writeln!(
        md,
        "\nPredicted time per iteration (ms): each GEMM phase and the rest bound by \
         peak FLOP/s or HBM bandwidth (NVIDIA data sheets: H100 SXM 67 TFLOPS FP32, 494.7 \
         TFLOPS TF32 dense, 3.35 TB/s; H200 SXM the same compute, 4.8 TB/s), plus {} µs per \
         launch, {} µs per synchronisation and {} µs per upload (stated constants, not \
         measured). Bytes are compulsory traffic (each operand once). PyTorch eager from the \
         same model: our FLOPs and bytes less the im2col matrices, our evaluation's launch \
         count, `torch.optim.LBFGS`'s {TORCH_LAUNCHES_PER_PAIR} launches per history pair + \
         {TORCH_STEP_LAUNCHES} and {TORCH_SYNCS} synchronisations per step (xtask/src/roofline.rs).\n\n\
         | size | GPU | mode | ours (batched) | ours (per-operation) | PyTorch eager | GEMM GFLOP | GB moved |\n|---|---|---|---|---|---|---|---|",
        LAUNCH_S * 1e6,
        SYNC_S * 1e6,
        UPLOAD_S * 1e6
    )?;
    for ((w, h), after, before, torch) in &rows {
        for gpu in GPUS {
            for (mode, tf32) in [("fp32", false), ("tf32", true)] {
                writeln!(
                    md,
                    "| {w}×{h} | {} | {mode} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2} |",
                    gpu.name,
                    1e3 * after.seconds(gpu, tf32),
                    1e3 * before.seconds(gpu, tf32),
                    1e3 * torch.seconds(gpu, tf32),
                    after.gemm_flops / 1e9,
                    (after.gemm_bytes + after.other_bytes) / 1e9
                )?;
            }
        }
    }
    writeln!(md)?;
    registers(&mut md)?;
    Ok(md)
}

/// Registers per kernel on sm_90, when `crates/cuda/tests/it/nvrtc.rs` could assemble them.
fn registers(md: &mut String) -> Result<()> {
    let path = super::root().join("target/nvrtc/registers-sm_90.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        writeln!(
            md,
            "Register use per kernel: not available (`cargo test -p neural-style-cuda --test \
             nvrtc` writes it when NVRTC and a `ptxas` for sm_90 are found).\n"
        )?;
        return Ok(());
    };
    let v: Value = serde_json::from_str(&text)?;
    writeln!(
        md,
        "Register use per kernel on sm_90 (NVRTC's PTX assembled by `ptxas -v`, \
         `crates/cuda/tests/it/nvrtc.rs`):\n\n| kernel | registers | spill bytes |\n|---|---|---|"
    )?;
    for k in v.as_array().into_iter().flatten() {
        writeln!(
            md,
            "| {} | {} | {} |",
            k["kernel"].as_str().unwrap_or("?"),
            k["registers"],
            k["spill_bytes"]
        )?;
    }
    writeln!(md)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roofline_is_the_slower_bound_plus_fixed_costs() {
        let t = Totals {
            launches: 10.0,
            syncs: 2.0,
            gemm_flops: 67e9,
            gemm_bytes: 1.0,
            other_bytes: 3.35e9,
            ..Default::default()
        };
        // 1 ms of FP32 GEMM, 1 ms of HBM, 40 µs of launches, 20 µs of syncs.
        let s = t.seconds(&GPUS[0], false);
        assert!((s - 2.06e-3).abs() < 1e-9, "{s}");
        // TF32 makes the GEMM 7.4× faster; bandwidth is what it is.
        assert!(t.seconds(&GPUS[0], true) < s - 0.8e-3);
        assert!(t.seconds(&GPUS[1], false) < s);
    }
}
