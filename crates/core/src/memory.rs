//! The memory model of a run, and the plan made from it before any work
//! starts (docs/DESIGN.md, "Large pictures: where the memory goes").
//!
//! For each scale, the peak is simulated step by step over the same schedule
//! as `crate::vgg` and `crate::objective` run it: the forward pass (what it
//! keeps: every ReLU output, or with recomputation only the segment
//! boundaries), the loss layers' gradients (the style ones computed when the
//! backward pass reaches them), the backward pass (the gradient in flight,
//! each step's output and the intermediate of the composite steps, the
//! segment being recomputed), the convolution workspace (per thread), the
//! Gram matrices and targets, the optimiser's state (L-BFGS: two image-sized
//! vectors per pair, never more pairs than iterations), the images on the
//! host and on the device, the weights (on the host and as the backend
//! prepared them) and the process itself. The style images' forward passes
//! (features only, once per scale, before the run) are a peak of their own.
//!
//! All arithmetic is checked: a size whose bytes do not fit in a `u64` is
//! "too large", never a wrapped small number.

use crate::error::{Error, Result};
use crate::layers::{output_hw, table, LayerId, LayerKind};
use crate::objective::ObjectiveSpec;
use crate::run::OptimizerKind;
use crate::vgg::Keep;

/// Bytes in a GiB.
pub const GIB: u64 = 1 << 30;

/// Bytes of one element (every backend computes in f32).
const F32: u64 = 4;

/// What the process holds besides the run's own buffers: code, libraries,
/// the allocator's own pages, the decoders (measured at 64 px minus the
/// modelled terms, `benches/memory.sh`).
pub const PROCESS_BYTES: u64 = 48 << 20;

/// Share of the available memory a plan may use by default (the rest is
/// the margin for what the model does not see: other processes, the page
/// cache the system needs, allocator fragmentation).
pub const DEFAULT_SHARE: f64 = 0.9;

/// Seconds per pixel per iteration of the candle backend with every
/// activation kept, on one thread of this project's 2-core machine (release
/// build, 2 threads: about 3.7 s per iteration at 1024×768 and 19.5 s at
/// 2048×1536, i.e. 4.7–6.2 µs per pixel), its cost per iteration whatever
/// the size (2 threads: 0.027 s, the fit of `cargo xtask bench` in
/// `benches/reports/2026-12-03-conv-by-map.md`), and the factor
/// recomputation multiplies both by (its extra multiply-adds,
/// docs/DESIGN.md).
const CANDLE_THREAD_SECONDS_PER_PIXEL: f64 = 2.0 * 5.5e-6;
const CANDLE_THREAD_SECONDS_PER_ITERATION: f64 = 2.0 * 0.027;
const RECOMPUTE_FACTOR: f64 = 1.35;

/// A backend's calibrated time model (for the plan's predicted time): an
/// iteration takes `per_iteration + per_pixel × pixels` seconds, times
/// `recompute` when activations are recomputed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Seconds per pixel per iteration, every activation kept.
    pub per_pixel: f64,
    /// Seconds per iteration whatever the size (layer calls, small maps).
    pub per_iteration: f64,
    /// The factor recomputation multiplies an iteration by.
    pub recompute: f64,
}

impl Rate {
    /// Seconds of `iterations` at `pixels`.
    pub fn seconds(&self, pixels: usize, iterations: usize, recompute: bool) -> f64 {
        let f = if recompute { self.recompute } else { 1.0 };
        f * (self.per_iteration + self.per_pixel * pixels as f64) * iterations as f64
    }
}

/// The calibrated rate of the candle backend on `threads` threads.
pub fn candle_rate(threads: usize) -> Rate {
    let t = threads.max(1) as f64;
    Rate {
        per_pixel: CANDLE_THREAD_SECONDS_PER_PIXEL / t,
        per_iteration: CANDLE_THREAD_SECONDS_PER_ITERATION / t,
        recompute: RECOMPUTE_FACTOR,
    }
}

/// Where the numbers of a plan come from: how many bytes the run may use.
#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    /// Bytes the plan may use.
    pub bytes: u64,
    /// Where that figure comes from (for messages).
    pub source: String,
}

impl Budget {
    /// `gib` GiB, as given by the user (`memory`).
    pub fn given(gib: f64) -> Result<Budget> {
        if !(gib.is_finite() && gib > 0.0) {
            return Err(Error::config(
                "memory",
                format!("must be a positive number of GiB, not {gib}"),
            ));
        }
        let bytes = gib * GIB as f64;
        if bytes >= u64::MAX as f64 {
            return Err(Error::config("memory", format!("{gib} GiB is too large")));
        }
        Ok(Budget {
            bytes: bytes as u64,
            source: format!("`memory` {gib} GiB"),
        })
    }

    /// What this machine has available now, less the margin
    /// ([`DEFAULT_SHARE`]); `None` when unknown.
    pub fn host() -> Option<Budget> {
        let avail = available_memory()?;
        Some(Budget {
            bytes: (avail as f64 * DEFAULT_SHARE) as u64,
            source: format!(
                "{:.0} % of the {} available",
                DEFAULT_SHARE * 100.0,
                gib(avail)
            ),
        })
    }
}

/// What this process holds now besides a run's buffers: its resident set
/// (Linux `VmRSS`: the code and the libraries in memory — libtorch's are
/// some hundreds of MiB when the tch backend is compiled in, whichever
/// backend runs —, the allocator's pages, the decoded inputs), and at least
/// [`PROCESS_BYTES`] (what a process that has not yet decoded anything
/// grows to).
pub fn process_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_status_rss(&s))
        .map_or(PROCESS_BYTES, |rss| rss.max(PROCESS_BYTES))
}

/// The peak resident set of this process so far (Linux `VmHWM`), if known.
///
/// This is the figure to compare a plan with: the kernel's `ru_maxrss` of a
/// child (`wait4`, `getrusage`) also holds the peak of the process that
/// spawned it whenever the child was started by `vfork`/`posix_spawn` (the
/// exec records the old, shared address space's high-water mark), so a test
/// harness that had grown to 580 MiB saw every child "peak" at 580 MiB.
/// `VmHWM` is the high-water mark of this address space only.
pub fn peak_process_bytes() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_status_kb(&s, "VmHWM:"))
}

fn parse_status_rss(status: &str) -> Option<u64> {
    parse_status_kb(status, "VmRSS:")
}

fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Memory the system can give us now (Linux `MemAvailable`), if known.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&info)
}

fn parse_meminfo(info: &str) -> Option<u64> {
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// `bytes` as `12.3 GiB` (or MiB below one GiB).
pub fn gib(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{:.2} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// Where a scale's peak goes, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Peak {
    /// Activations alive at the peak: kept by the forward pass (or its
    /// segment boundaries and the segment being recomputed), the gradient
    /// in flight, the step's output and intermediate, loss-layer gradients.
    pub activations: u64,
    /// Gram matrices, their gradients and the targets (content features,
    /// style Gram matrices).
    pub targets: u64,
    /// The convolutions' per-thread workspace.
    pub workspace: u64,
    /// The L-BFGS history (2 image-sized vectors per pair).
    pub history: u64,
    /// The images: the point, the best point, the gradient, the optimiser's
    /// other vectors, the content and start images on the host.
    pub images: u64,
    /// The weights on the host and as the backend prepared them.
    pub weights: u64,
    /// The process itself ([`PROCESS_BYTES`]).
    pub process: u64,
}

impl Peak {
    /// The sum, or `None` when it does not fit in a `u64`.
    pub fn total(&self) -> Option<u64> {
        [
            self.activations,
            self.targets,
            self.workspace,
            self.history,
            self.images,
            self.weights,
        ]
        .iter()
        .try_fold(self.process, |a, &b| a.checked_add(b))
    }
}

/// One scale of a run, as the model sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Scale {
    /// The content's (and the output's) width at this scale.
    pub width: usize,
    /// Its height.
    pub height: usize,
    /// Iterations at this scale.
    pub iterations: usize,
    /// Each style image's size at this scale.
    pub styles: Vec<(usize, usize)>,
}

/// What the model needs to know about the job besides its scales.
#[derive(Clone, Debug)]
pub struct Job<'a> {
    /// The objective (which layers, hence how deep the network runs).
    pub spec: &'a ObjectiveSpec,
    /// Channels per block (`crate::layers::VGG19_WIDTHS` for the real network).
    pub widths: [usize; 5],
    /// The optimiser (its history is what the user asked for).
    pub optimizer: OptimizerKind,
    /// Whether a style has a spatial mask (one more feature-sized map at a
    /// style layer's gradient).
    pub masked: bool,
    /// CPU threads (per-thread convolution workspace).
    pub threads: usize,
    /// Whether the backend writes a backward step into the memory of the
    /// gradient it is given when the pass owns it (the candle backend's
    /// `relu_backward_owned` and `gram_backward_add`): no second
    /// gradient-sized buffer for the ReLU masks and the style layers.
    pub in_place: bool,
    /// Whether the backend cuts stripes on its device
    /// (`crate::backend::Backend::rows_on_device`: candle, tch, cuda): a
    /// recomputing pass then takes block 1 a stripe at a time.
    pub stripes: bool,
    /// What the process holds besides the run's buffers ([`process_bytes`]
    /// for the running process, [`PROCESS_BYTES`] for a generic one).
    pub process: u64,
}

/// `a · b · …`, checked.
fn mul(factors: &[u64]) -> Option<u64> {
    factors.iter().try_fold(1u64, |a, &b| a.checked_mul(b))
}

fn add(terms: &[u64]) -> Option<u64> {
    terms.iter().try_fold(0u64, |a, &b| a.checked_add(b))
}

/// Floats of each layer's output up to `deepest` at `h×w`.
fn layer_floats(deepest: LayerId, widths: [usize; 5], h: usize, w: usize) -> Option<Vec<u64>> {
    table()[..=deepest.0]
        .iter()
        .map(|l| {
            let (lh, lw) = output_hw(l.id, h, w);
            mul(&[l.id.channels(widths) as u64, lh as u64, lw as u64])
        })
        .collect()
}

/// Fewest channels on either side for which the candle backend's Winograd
/// F(2×2, 3×3) (16 GEMMs of inner dimension `C_in`) beats im2col + GEMM
/// (one of inner dimension `9·C_in`).
pub const WINOGRAD_MIN_CHANNELS: usize = 16;

/// Fewest pixels of a map on which it does: on a smaller one (VGG's deep
/// layers below 32×24) the few tiles make short GEMMs that read the
/// transformed kernel, 16/9 the size of the kernel, once per short band,
/// where im2col reads the kernel once (`crates/candle/examples/layers.rs`
/// times both for every layer; `benches/history.md`, 2026-12-03).
pub const WINOGRAD_MIN_PIXELS: usize = 512;

/// The candle backend's choice for a 3×3 convolution of `c_in` to `c_out`
/// channels on a map of `pixels` pixels: Winograd F(2×2, 3×3), or else
/// im2col + GEMM. The backend calls this; the plan models its weights with
/// it.
pub fn winograd_pays(c_in: usize, c_out: usize, pixels: usize) -> bool {
    c_in.min(c_out) >= WINOGRAD_MIN_CHANNELS && pixels >= WINOGRAD_MIN_PIXELS
}

/// Floats of the convolution weights as held on the host, and as the
/// backend prepares them once a run has been through the scales of `chain`
/// (what a scale prepares stays for the scales after it): the kernel, kept
/// for every layer; its Winograd transform (16/9 of it) once a layer has
/// met a map large enough ([`winograd_pays`], content or style); the
/// transposed copy im2col's input gradient uses once a layer has met a
/// content map too small for Winograd (the style images have no backward).
/// Layers past `deepest` run on no map.
fn weight_floats(widths: [usize; 5], deepest: Option<LayerId>, chain: &[Scale]) -> (u64, u64) {
    let (mut host, mut prepared) = (0u64, 0u64);
    let mut c_in = 3usize;
    for (i, l) in table().iter().enumerate() {
        let LayerKind::Conv { .. } = l.kind else {
            continue;
        };
        let c_out = l.id.channels(widths);
        let runs = deepest.is_some_and(|d| i <= d.0);
        let map = |(w, h): (usize, usize)| {
            let (lh, lw) = output_hw(l.id, h, w);
            lh * lw
        };
        let winograd = runs
            && chain.iter().any(|s| {
                std::iter::once((s.width, s.height))
                    .chain(s.styles.iter().copied())
                    .any(|m| winograd_pays(c_in, c_out, map(m)))
            });
        let transposed = runs
            && chain
                .iter()
                .any(|s| !winograd_pays(c_in, c_out, map((s.width, s.height))));
        let k = (9 * c_in * c_out + c_out) as u64;
        // Floats per (input, output) channel pair of the forms made besides the kernel.
        let forms = 16 * u64::from(winograd) + 9 * u64::from(transposed);
        host += k;
        prepared += k + forms * (c_in * c_out) as u64;
        c_in = c_out;
    }
    (host, prepared)
}

/// The largest per-thread convolution workspace (floats) at width `w`:
/// a Winograd band (at least one row of tiles) or an im2col tile.
fn workspace_floats(deepest: LayerId, widths: [usize; 5], w: usize) -> Option<u64> {
    let mut most = 1u64 << 21; // the Winograd band budget
    let mut c_in = 3u64;
    for l in &table()[..=deepest.0] {
        if let LayerKind::Conv { .. } = l.kind {
            let c_out = l.id.channels(widths) as u64;
            let (_, lw) = output_hw(l.id, 1, w);
            let tiles = (lw as u64).div_ceil(2);
            if c_in.min(c_out) as usize >= WINOGRAD_MIN_CHANNELS {
                most = most.max(mul(&[16, c_in + c_out, tiles])?);
            } else {
                // im2col: 9·C_in rows of a tile of output pixels, both directions.
                most = most.max(mul(&[9, c_in.max(c_out), (lw as u64).max(4096)])?);
            }
            c_in = c_out;
        }
    }
    Some(most)
}

/// Peak floats of one evaluation's activations at `h×w` (forward, losses,
/// backward), simulated over the schedule of `crate::vgg::Vgg::backward_with`
/// with `keep`: what it holds at each step, the step's output and the
/// intermediate of a composite step (a backend may fuse it: the model
/// assumes it does not).
fn evaluation_floats(job: &Job<'_>, h: usize, w: usize, keep: Keep) -> Option<u64> {
    let (spec, widths, masked, in_place) = (job.spec, job.widths, job.masked, job.in_place);
    let layers = spec.layers();
    let Some(deepest) = spec.deepest() else {
        return Some(0);
    };
    let size = layer_floats(deepest, widths, h, w)?;
    let tbl = table();
    let requested = |i: usize| layers.iter().any(|l| l.0 == i);
    let is_relu = |i: usize| matches!(tbl[i].kind, LayerKind::Relu { .. });
    let image = mul(&[3, h as u64, w as u64])?;
    let content: Vec<usize> = spec.content_layers.iter().map(|l| l.0 .0).collect();
    let style: Vec<usize> = spec.style_layers.iter().map(|l| l.0 .0).collect();
    let cost = |row: usize| match tbl[row].kind {
        LayerKind::Conv { conv } => {
            let c_in = if conv == 0 {
                3
            } else {
                LayerId(row - 1).channels(widths) as u64
            };
            c_in.saturating_mul(size[row])
        }
        _ => 0,
    };
    // vgg's `boundaries`: a recomputing pass keeps the loss layers and the
    // pools a segment starts from, less relu1_1 (cheap to make again).
    let bounds = crate::vgg::boundaries(deepest.0, requested, cost);
    let kept_by_forward = |i: usize| match keep {
        Keep::Nothing => false,
        Keep::Everything => requested(i) || is_relu(i),
        Keep::Boundaries => bounds[i],
    };
    // vgg's `block1_stripes`: a recomputing pass over a large picture takes
    // block 1 a stripe of `rows` rows at a time.
    let (pool1, quiet) = (4, layers.iter().all(|l| l.0 == 1 || l.0 > 4));
    let stripes = match keep {
        Keep::Boundaries if job.stripes && deepest.0 > pool1 && quiet => {
            crate::vgg::stripe_rows(h, w, widths[0], crate::vgg::STRIPE_FLOATS)
        }
        _ => None,
    };
    // A stripe of block 1's maps with `halo` more rows.
    let stripe =
        |rows: usize, halo: usize| mul(&[widths[0] as u64, (rows + halo) as u64, w as u64]);
    // Forward: what is kept so far and the content gradients made, plus the
    // step's input and output (a convolution fused with its ReLU counted as
    // two steps, and a kept input counted again: slack that the
    // measurements at 256–1024 px calibrated, benches/history.md). A loss
    // layer's part is made as the layer is (the content gradient is held
    // from then on; a style layer's gradient is made when the backward pass
    // reaches it).
    let mut kept = vec![false; deepest.0 + 1];
    let mut held = 0u64; // floats kept
    let mut pending = 0u64; // content gradients made
    let mut peak = 0u64;
    let mut prev = image;
    let mut i = 0;
    while i <= deepest.0 {
        match stripes {
            Some(rows) if i == 2 => {
                // vgg's `pool1_striped`: next to relu1_1, a stripe of
                // relu1_2 and its trimmed copy, and the pooled stripes so
                // far; then the pooled stripes and their stack.
                peak = peak.max(add(&[
                    held,
                    pending,
                    prev,
                    2 * stripe(rows, 2)?,
                    size[pool1],
                ])?);
                peak = peak.max(add(&[held, pending, prev, 2 * size[pool1]])?);
                i = pool1;
            }
            _ => peak = peak.max(add(&[held, pending, prev, size[i]])?),
        }
        if kept_by_forward(i) {
            kept[i] = true;
            held = held.checked_add(size[i])?;
        }
        for _ in content.iter().filter(|&&c| c == i) {
            peak = peak.max(add(&[held, pending, 2 * size[i]])?);
            pending += size[i];
        }
        prev = size[i];
        i += 1;
    }
    peak = peak.max(add(&[held, pending])?);
    // Recompute the segment ending at `upto` (vgg's `recompute`).
    let recompute = |kept: &mut Vec<bool>,
                     held: &mut u64,
                     peak: &mut u64,
                     g: u64,
                     pending: u64,
                     upto: usize|
     -> Option<()> {
        let from = (0..upto).rev().find(|&k| kept[k]);
        if let Some(k) = from {
            let below = (0..k).rev().find(|&j| kept[j]);
            if crate::vgg::drop_start(below, k, upto, cost) {
                kept[k] = false;
                *held -= size[k];
            }
        }
        let mut k = from.map_or(0, |k| k + 1);
        let mut input = from.map_or(image, |k| size[k]);
        while k <= upto {
            *peak = (*peak).max(add(&[*held, pending, g, input, size[k]])?);
            let below = (0..k).rev().find(|&j| kept[j]);
            let cheap = || crate::vgg::drop_start(below, k, upto, cost);
            if (k == upto || is_relu(k) && !cheap()) && !kept[k] {
                kept[k] = true;
                *held = held.checked_add(size[k])?;
            }
            input = size[k];
            k += 1;
        }
        Some(())
    };
    // Backward, row by row from the deepest.
    let mut g = 0u64; // the gradient in flight
    let mut own = false; // made by the pass (vgg's `own`)
    let mut r = deepest.0 as isize;
    while r >= 0 {
        let i = r as usize;
        let styles_here = style.iter().filter(|&&s| s == i).count();
        if styles_here > 0 && !kept[i] {
            recompute(&mut kept, &mut held, &mut peak, g, pending, i)?;
        }
        for _ in 0..styles_here {
            // The layer's gradient next to g: gram_backward's output, and
            // the sum (`axpy`) when a gradient is already there — added in
            // place by a backend that can into a g the pass owns; the masked
            // products (the masked features or their gradient, and its
            // scaled or masked copy).
            let extra = match (masked, g > 0) {
                (true, _) => 2 * size[i],
                (false, false) => size[i],
                (false, true) if in_place && own => 0,
                (false, true) => 2 * size[i],
            };
            peak = peak.max(add(&[held, pending, g, extra])?);
            g = g.max(size[i]);
            own = true;
        }
        for _ in content.iter().filter(|&&c| c == i) {
            pending -= size[i];
            if g > 0 {
                // The content gradient added to g (`axpy`'s new sum).
                peak = peak.max(add(&[held, pending, g, 2 * size[i]])?);
                own = true;
            } else {
                // Handed in as made: not written in place.
                own = false;
            }
            g = g.max(size[i]);
        }
        if g == 0 {
            r -= 1;
            continue;
        }
        if let (Some(rows), true) = (stripes, i == pool1) {
            // vgg's `block1_backward_striped`: next to the gradient at pool1
            // and the image gradient's stripes (and their stack), three of
            // a stripe's maps with its halo of 8 rows (relu1_1 and relu1_2
            // or their gradients, and a trimmed copy); two more on a
            // backend that does not write in place (the unpooled gradient
            // apart from its mask, a style gradient apart from its sum),
            // two more for a masked style's products, one for a content
            // gradient's stripe at relu1_1. The pass ends there.
            let maps = 3
                + if in_place { 0 } else { 2 }
                + if masked { 2 } else { 0 }
                + content.iter().filter(|&&c| c == 1).count() as u64;
            let s = stripe(rows, 8)?.checked_mul(maps)?;
            peak = peak.max(add(&[held, pending, g, 2 * image, s])?);
            break;
        }
        let below_is_output = i >= 1 && requested(i - 1);
        // The ReLU output this step reads, recomputed when not kept.
        let needs = match tbl[i].kind {
            LayerKind::Pool { .. } => Some(i - 1),
            LayerKind::Relu { .. } => Some(i),
            LayerKind::Conv { .. } => None,
        };
        if let Some(j) = needs {
            if !kept[j] {
                recompute(&mut kept, &mut held, &mut peak, g, pending, j)?;
            }
        }
        let input_of = |k: usize| if k == 0 { image } else { size[k - 1] };
        // The ReLU mask is applied in place by a backend that can: to the
        // pooling gradient just made, or to g when the pass owns it. `out`:
        // the step's result (g below), `extra`: what it allocates, `mid`:
        // the intermediate of a composite step.
        let mask = |n: u64, owned: bool| if in_place && owned { 0 } else { n };
        let (out, extra, mid, lowest) = match (tbl[i].kind, below_is_output) {
            (LayerKind::Pool { .. }, false) if i >= 1 && is_relu(i - 1) => {
                (size[i - 1], size[i - 1], mask(size[i - 1], true), i - 1)
            }
            (LayerKind::Relu { .. }, false) if i >= 1 => {
                (input_of(i - 1), input_of(i - 1), mask(size[i], own), i - 1)
            }
            (LayerKind::Pool { .. }, _) => (size[i - 1], size[i - 1], 0, i),
            (LayerKind::Relu { .. }, _) => (size[i], mask(size[i], own), 0, i),
            (LayerKind::Conv { .. }, _) => (input_of(i), input_of(i), 0, i),
        };
        peak = peak.max(add(&[held, pending, g, mid, extra])?);
        for k in lowest..=i {
            if kept[k] {
                kept[k] = false;
                held -= size[k];
            }
        }
        g = out;
        own = true;
        r = lowest as isize - 1;
    }
    Some(peak)
}

/// Peak floats of a style image's forward pass (`crate::vgg::Vgg::forward_each`:
/// each Gram matrix made as its features appear, nothing else held): each
/// step's input and output, and the Gram matrices.
fn style_floats(spec: &ObjectiveSpec, widths: [usize; 5], h: usize, w: usize) -> Option<u64> {
    let Some(deepest) = spec.style_layers.iter().map(|l| l.0).max() else {
        return Some(0);
    };
    let size = layer_floats(deepest, widths, h, w)?;
    let mut held = 0u64;
    let mut peak = 0u64;
    let mut prev = mul(&[3, h as u64, w as u64])?;
    for (i, &s) in size.iter().enumerate() {
        peak = peak.max(add(&[held, prev, s])?);
        for (l, _) in spec.style_layers.iter().filter(|l| l.0 .0 == i) {
            let c = l.channels(widths) as u64;
            held = held.checked_add(c.checked_mul(c)?)?;
        }
        prev = s;
    }
    Some(peak)
}

/// The peak of the last scale of `chain` (the scales before it have
/// prepared their weights) with `pairs` L-BFGS pairs and `keep`, or `None`
/// when it does not fit in a `u64` (or `chain` is empty).
pub fn scale_peak(job: &Job<'_>, chain: &[Scale], pairs: usize, keep: Keep) -> Option<Peak> {
    let scale = chain.last()?;
    let (h, w) = (scale.height, scale.width);
    let image = mul(&[3, h as u64, w as u64, F32])?;
    let eval = evaluation_floats(job, h, w, keep)?;
    let style = scale
        .styles
        .iter()
        .map(|&(sw, sh)| style_floats(job.spec, job.widths, sh, sw))
        .try_fold(0u64, |a, s| Some(a.max(s?)))?;
    let deepest = job.spec.deepest();
    let mut targets = 0u64;
    if let Some(d) = deepest {
        let size = layer_floats(d, job.widths, h, w)?;
        for (l, _) in &job.spec.content_layers {
            targets = targets.checked_add(size[l.0])?;
        }
        for (l, _) in &job.spec.style_layers {
            let c = l.channels(job.widths) as u64;
            // target, Gram, its gradient; per thread one block in `gram`.
            targets = targets.checked_add(mul(&[c, c, 3 + job.threads as u64])?)?;
        }
    }
    let workspace = match deepest {
        Some(d) => mul(&[workspace_floats(d, job.widths, w)?, job.threads as u64])?,
        None => 0,
    };
    let (vectors, history) = match job.optimizer {
        // x, best, gradient, direction, previous gradient (+ the TV gradient).
        OptimizerKind::Lbfgs(_) => (6, mul(&[2, pairs as u64, image])?),
        // x, best, gradient, two moments (+ the TV gradient).
        OptimizerKind::Adam(_) => (6, 0),
    };
    // Host: the content (f32 and its decoded copy), the start, the styles.
    let host_styles: u64 = scale
        .styles
        .iter()
        .map(|&(sw, sh)| mul(&[3, sw as u64, sh as u64, F32]))
        .try_fold(0u64, |a, s| a.checked_add(s?))?;
    let images = add(&[mul(&[vectors + 3, image])?, host_styles])?;
    let (host_w, prepared_w) = weight_floats(job.widths, deepest, chain);
    Some(Peak {
        activations: mul(&[eval.max(style), F32])?,
        targets: mul(&[targets, F32])?,
        workspace: mul(&[workspace, F32])?,
        history,
        images,
        weights: (host_w + prepared_w) * F32,
        process: job.process,
    })
}

/// One scale of a plan.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ScalePlan {
    /// Width × height at this scale.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// Iterations.
    pub iterations: usize,
    /// L-BFGS pairs held at most at this scale (0 with Adam).
    pub pairs: usize,
    /// Activations recomputed in the backward pass.
    pub recompute: bool,
    /// The predicted peak.
    pub peak: Peak,
    /// Its total.
    pub bytes: u64,
    /// Predicted seconds for this scale (when a rate is known).
    pub seconds: Option<f64>,
}

/// A run's plan: what each scale will hold, the history and recomputation
/// chosen, what was changed to fit.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Plan {
    /// Each scale, in order.
    pub scales: Vec<ScalePlan>,
    /// The L-BFGS history the run will use (`None` with Adam).
    pub history: Option<usize>,
    /// Whether the backward pass recomputes activations.
    pub recompute: bool,
    /// The bytes the plan had, and where that figure came from.
    #[serde(skip)]
    pub budget: Option<Budget>,
    /// What the plan changed to fit, one line each (to print as warnings).
    pub changes: Vec<String>,
}

impl Plan {
    /// The largest peak over the scales.
    pub fn peak(&self) -> u64 {
        self.scales.iter().map(|s| s.bytes).max().unwrap_or(0)
    }

    /// Predicted seconds of the whole run, when every scale has a rate.
    pub fn seconds(&self) -> Option<f64> {
        self.scales.iter().map(|s| s.seconds).sum()
    }

    /// The plan as lines of text (`--dry-run`).
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (k, s) in self.scales.iter().enumerate() {
            let p = &s.peak;
            out.push(format!(
                "scale {}: {}×{}, {} iterations, {}{}; peak {} (activations {}, history {}, images {}, weights {}, workspace {}, targets {}){}",
                k + 1,
                s.width,
                s.height,
                s.iterations,
                match self.history {
                    Some(_) => format!("{} L-BFGS pairs", s.pairs),
                    None => "Adam".into(),
                },
                if s.recompute { ", recomputing activations" } else { "" },
                gib(s.bytes),
                gib(p.activations),
                gib(p.history),
                gib(p.images),
                gib(p.weights),
                gib(p.workspace),
                gib(p.targets),
                match s.seconds {
                    Some(t) => format!("; about {}", duration(t)),
                    None => String::new(),
                }
            ));
        }
        out.push(format!(
            "predicted peak {}{}{}",
            gib(self.peak()),
            match &self.budget {
                Some(b) => format!(" of {} ({})", gib(b.bytes), b.source),
                None => " (no memory limit known: give `memory`)".into(),
            },
            match self.seconds() {
                Some(t) => format!(", about {} in all", duration(t)),
                None => String::new(),
            }
        ));
        out
    }
}

/// `1 h 02 min`, `3 min 20 s`, `12 s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s / 60 % 60),
    }
}

/// Longest side above which a run given neither `scales` nor `multires`
/// nor `scale-iterations` becomes coarse-to-fine by itself
/// ([`coarse_to_fine`]): past it one scale is slow (an iteration at 2048 px
/// costs four at 1024, most of them spent where the coarse structure is
/// still being found) — the size at which the anchors' users switched to
/// chains (jcjohnson/neural-style's multi-resolution script).
pub const COARSE_TO_FINE_ABOVE: u32 = 1024;

/// The smallest scale of a default chain.
pub const COARSE_TO_FINE_FROM: u32 = 256;

/// Iterations per scale of jcjohnson/neural-style's multi-resolution
/// script, smallest scale first (256 → 512 → 1024 → 2048 → 3620 at
/// 500/200/100/50/50): most at the smallest scale, few at the largest. A
/// longer chain repeats the last.
const CHAIN_WEIGHTS: [usize; 5] = [500, 200, 100, 50, 50];

/// The default coarse-to-fine chain of an output whose longest side is
/// `size`, with `iterations` in all: the sizes halve from `size` down to
/// [`COARSE_TO_FINE_FROM`] (at least), the iterations are shared in
/// [`CHAIN_WEIGHTS`]' proportions (each scale at least one, the rounding
/// given to the smallest) and sum to `iterations`; with fewer iterations
/// than scales, the smallest scales are left out. `(size, iterations)`,
/// smallest first; one scale at or below [`COARSE_TO_FINE_ABOVE`].
pub fn coarse_to_fine(size: u32, iterations: usize) -> Vec<(u32, usize)> {
    let mut sizes = vec![size];
    if size > COARSE_TO_FINE_ABOVE {
        while let Some(&last) = sizes.last() {
            let half = last.div_ceil(2);
            if half < COARSE_TO_FINE_FROM {
                break;
            }
            sizes.push(half);
        }
    }
    sizes.truncate(iterations.max(1));
    sizes.reverse();
    let weight = |k: usize| CHAIN_WEIGHTS[k.min(CHAIN_WEIGHTS.len() - 1)] as u128;
    let total: u128 = (0..sizes.len()).map(weight).sum();
    let mut its: Vec<usize> = (0..sizes.len())
        .map(|k| ((iterations as u128 * weight(k) / total) as usize).max(1))
        .collect();
    let given: usize = its.iter().sum();
    if given <= iterations {
        its[0] += iterations - given;
    } else {
        // The minimum of one each took more: from the largest shares.
        let mut over = given - iterations;
        for n in its.iter_mut() {
            let take = over.min(*n - 1);
            *n -= take;
            over -= take;
        }
    }
    sizes.into_iter().zip(its).collect()
}

/// What [`plan`] is asked.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// The job.
    pub job: Job<'a>,
    /// Its scales (the last one is the output's).
    pub scales: Vec<Scale>,
    /// `Some(on)`: recomputation as the user said; `None`: when needed.
    pub recompute: Option<bool>,
    /// What the run may use; `None`: unknown (nothing is refused).
    pub budget: Option<Budget>,
    /// The backend's time model (for the time shown), when calibrated.
    pub rate: Option<Rate>,
    /// The option a refusal names: `None`, `scales` with several scales,
    /// else `size` (a default coarse-to-fine chain came from `size`).
    pub option: Option<&'static str>,
}

/// Plan a run: the L-BFGS history never larger than the iterations, and
/// when the peak would not fit the budget, recomputation (unless the user
/// turned it off) and then a smaller history; a run that still does not
/// fit is refused, naming the scale.
pub fn plan(req: &Request<'_>) -> Result<Plan> {
    let job = &req.job;
    let most_iterations = req.scales.iter().map(|s| s.iterations).max().unwrap_or(0);
    let asked = match job.optimizer {
        OptimizerKind::Lbfgs(c) => Some(c.history),
        OptimizerKind::Adam(_) => None,
    };
    // Pairs held: at most one per iteration.
    let mut history = asked.map(|h| h.min(most_iterations).max(1));
    let mut changes = Vec::new();
    let option = req.option.unwrap_or(if req.scales.len() > 1 {
        "scales"
    } else {
        "size"
    });
    let too_large = |s: &Scale| {
        Error::config(
            option,
            format!(
                "the scale of {}×{} is too large to count its memory; lower `{option}`",
                s.width, s.height
            ),
        )
    };
    let peaks = |history: Option<usize>, recompute: bool| -> Result<Vec<Peak>> {
        let keep = if recompute {
            Keep::Boundaries
        } else {
            Keep::Everything
        };
        req.scales
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let pairs = history.map_or(0, |h| h.min(s.iterations));
                let p =
                    scale_peak(job, &req.scales[..=i], pairs, keep).ok_or_else(|| too_large(s))?;
                p.total().ok_or_else(|| too_large(s))?;
                Ok(p)
            })
            .collect()
    };
    let fits = |ps: &[Peak]| match &req.budget {
        None => true,
        Some(b) => ps.iter().all(|p| p.total().is_some_and(|t| t <= b.bytes)),
    };
    let mut recompute = req.recompute.unwrap_or(false);
    let mut ps = peaks(history, recompute)?;
    if !fits(&ps) && req.recompute.is_none() {
        recompute = true;
        ps = peaks(history, recompute)?;
        changes.push(
            "recomputing activations in the backward pass to fit in memory (`recompute` false to keep them)"
                .to_string(),
        );
    }
    if let (false, Some(h), Some(b)) = (fits(&ps), history, &req.budget) {
        // The largest history with which every scale fits.
        let mut best: Option<usize> = None;
        for (s, p) in req.scales.iter().zip(&ps) {
            let pair =
                mul(&[2, 3, s.height as u64, s.width as u64, F32]).ok_or_else(|| too_large(s))?;
            let rest = p.total().ok_or_else(|| too_large(s))? - p.history;
            let room = b.bytes.saturating_sub(rest) / pair.max(1);
            let room = usize::try_from(room).unwrap_or(usize::MAX);
            if room < h.min(s.iterations) {
                best = Some(best.map_or(room, |x: usize| x.min(room)));
            }
        }
        // Not even one pair fits: the refusal quotes the smallest peak.
        let new = best.unwrap_or(h).max(1);
        {
            let old = ps.clone();
            ps = peaks(Some(new), recompute)?;
            if fits(&ps) {
                let at = req
                    .scales
                    .iter()
                    .zip(&old)
                    .max_by_key(|(_, p)| p.total())
                    .map(|(s, _)| s)
                    .expect("at least one scale");
                changes.push(format!(
                    "`lbfgs-history` {} does not fit in {} at {}×{}: using {new}",
                    asked.unwrap_or(h),
                    gib(b.bytes),
                    at.width,
                    at.height
                ));
                history = Some(new);
            }
        }
    }
    if let Some(b) = &req.budget {
        if let Some((s, p)) = req
            .scales
            .iter()
            .zip(&ps)
            .find(|(_, p)| p.total().is_none_or(|t| t > b.bytes))
        {
            let longest = s.width.max(s.height);
            return Err(Error::config(
                option,
                format!(
                    "the scale of {longest} px ({}×{}) needs about {} but only {} can be used ({}){}; lower `{option}`{}",
                    s.width,
                    s.height,
                    gib(p.total().unwrap_or(u64::MAX)),
                    gib(b.bytes),
                    b.source,
                    if recompute {
                        ", even recomputing activations"
                    } else {
                        ""
                    },
                    if history.is_some() {
                        " (or `style-size` / `lbfgs-history`)"
                    } else {
                        " (or `style-size`)"
                    }
                ),
            ));
        }
    }
    let scales = req
        .scales
        .iter()
        .zip(ps)
        .map(|(s, p)| ScalePlan {
            width: s.width,
            height: s.height,
            iterations: s.iterations,
            pairs: history.map_or(0, |h| h.min(s.iterations)),
            recompute,
            bytes: p.total().expect("checked above"),
            peak: p,
            seconds: req
                .rate
                .map(|r| r.seconds(s.width * s.height, s.iterations, recompute)),
        })
        .collect();
    Ok(Plan {
        scales,
        history,
        recompute,
        budget: req.budget.clone(),
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::VGG19_WIDTHS;
    use crate::optim::LbfgsConfig;

    fn job(spec: &ObjectiveSpec, history: usize) -> Job<'_> {
        Job {
            spec,
            widths: VGG19_WIDTHS,
            optimizer: OptimizerKind::Lbfgs(LbfgsConfig {
                history,
                ..Default::default()
            }),
            masked: false,
            threads: 2,
            in_place: true,
            stripes: true,
            process: PROCESS_BYTES,
        }
    }

    fn scale(w: usize, h: usize, iterations: usize) -> Scale {
        Scale {
            width: w,
            height: h,
            iterations,
            styles: vec![(w, h)],
        }
    }

    fn request<'a>(j: Job<'a>, scales: Vec<Scale>, gib_: Option<f64>) -> Request<'a> {
        Request {
            job: j,
            scales,
            recompute: None,
            budget: gib_.map(|g| Budget::given(g).unwrap()),
            rate: None,
            option: None,
        }
    }

    #[test]
    fn block_1_in_stripes_holds_no_two_whole_full_resolution_maps() {
        // 2048×1536 recomputed: one 64-channel map is 201 M floats (768
        // MiB). Keeping block 1 whole, the pass held three at its peak;
        // in stripes, two at most (the model's slack counts conv1_1's
        // output and relu1_1 as two), and a backend that cannot cut
        // stripes on its device is planned whole.
        let spec = ObjectiveSpec::default();
        let map = 64 * 2048 * 1536 * 4;
        let s = scale(2048, 1536, 5);
        let striped = job(&spec, 5);
        let whole = Job {
            stripes: false,
            ..job(&spec, 5)
        };
        let acts = |j: &Job<'_>| {
            scale_peak(j, std::slice::from_ref(&s), 5, Keep::Boundaries)
                .unwrap()
                .activations
        };
        assert!(acts(&whole) >= 3 * map, "{}", acts(&whole));
        assert!(acts(&striped) <= 2 * map + map / 8, "{}", acts(&striped));
        // Small maps go whole either way.
        let small = scale(256, 192, 5);
        let at = |j: &Job<'_>| scale_peak(j, std::slice::from_ref(&small), 5, Keep::Boundaries);
        assert_eq!(at(&striped), at(&whole));
    }

    #[test]
    fn the_weights_count_each_form_the_scales_so_far_prepared() {
        // Failed before: the prepared weights were one figure whatever the
        // maps, though a deep layer takes im2col (and its transposed kernel)
        // on a small map and Winograd on a large one, and keeps both.
        let spec = ObjectiveSpec::default();
        let j = job(&spec, 100);
        let weights =
            |chain: &[Scale]| scale_peak(&j, chain, 10, Keep::Everything).unwrap().weights;
        let (small, large) = (scale(128, 96, 10), scale(1024, 768, 10));
        let both = weights(&[small.clone(), large.clone()]);
        // At 128×96 block 4 is 16×12 and block 5 8×6 (under 512 pixels):
        // conv4_1..conv4_4 and conv5_1 (to relu5_1) take im2col there.
        let deep = (256 * 512 + 4 * 512 * 512) as u64;
        assert_eq!(both - weights(std::slice::from_ref(&large)), 9 * deep * F32);
        assert_eq!(
            both - weights(std::slice::from_ref(&small)),
            16 * deep * F32
        );
    }

    #[test]
    fn recomputation_keeps_less_and_history_is_two_images_a_pair() {
        let spec = ObjectiveSpec::default();
        let j = job(&spec, 100);
        let s = scale(512, 384, 1000);
        let keep = scale_peak(&j, std::slice::from_ref(&s), 100, Keep::Everything).unwrap();
        let rec = scale_peak(&j, std::slice::from_ref(&s), 100, Keep::Boundaries).unwrap();
        assert!(rec.activations < keep.activations, "{rec:?} vs {keep:?}");
        assert_eq!(keep.history, 2 * 100 * 3 * 512 * 384 * 4);
        assert_eq!(keep.history, rec.history);
        // Activations grow with the pixels (the fixed parts do not).
        let big = scale_peak(&j, &[scale(1024, 768, 1000)], 100, Keep::Everything).unwrap();
        let ratio = big.activations as f64 / keep.activations as f64;
        assert!((3.5..4.5).contains(&ratio), "{ratio}");
    }

    #[test]
    fn every_scale_is_checked_and_the_refusal_names_it() {
        let spec = ObjectiveSpec::default();
        let r = request(
            job(&spec, 100),
            vec![scale(100_000, 75_000, 1), scale(64, 48, 1)],
            Some(16.0),
        );
        let e = plan(&r).unwrap_err().to_string();
        assert!(e.contains("100000 px (100000×75000)"), "{e}");
        assert!(e.contains("`scales`"), "{e}");
        // Sizes whose bytes overflow are refused, not wrapped.
        let r = request(
            job(&spec, 100),
            vec![scale(usize::MAX / 2, usize::MAX / 2, 1)],
            None,
        );
        let e = plan(&r).unwrap_err().to_string();
        assert!(e.contains("too large to count"), "{e}");
    }

    #[test]
    fn history_is_capped_by_the_iterations_and_sized_to_fit() {
        let spec = ObjectiveSpec::default();
        // A huge history with 2 iterations holds at most 2 pairs.
        let p = plan(&request(
            job(&spec, 1_000_000),
            vec![scale(512, 384, 2)],
            Some(8.0),
        ))
        .unwrap();
        assert_eq!(p.history, Some(2));
        assert!(p.changes.is_empty(), "{:?}", p.changes);
        // History 100 at 2048×1536 (7.5 GB of history) in 6 GiB: smaller,
        // with recomputation, and said.
        let p = plan(&request(
            job(&spec, 100),
            vec![scale(2048, 1536, 100)],
            Some(6.0),
        ))
        .unwrap();
        let h = p.history.unwrap();
        assert!((1..100).contains(&h), "{h}");
        assert!(p.recompute);
        assert!(p.peak() <= 6 * GIB);
        assert!(
            p.changes.iter().any(|c| c.contains(&format!("using {h}"))),
            "{:?}",
            p.changes
        );
        // Recomputation turned off by the user is respected (and refused here).
        let mut r = request(job(&spec, 100), vec![scale(2048, 1536, 100)], Some(3.0));
        r.recompute = Some(false);
        let e = plan(&r).map(|p| p.recompute);
        assert!(matches!(e, Err(_) | Ok(false)), "{e:?}");
    }

    #[test]
    fn the_default_chain_halves_down_to_256_in_jcjohnsons_proportions() {
        assert_eq!(coarse_to_fine(1024, 1000), vec![(1024, 1000)]);
        assert_eq!(coarse_to_fine(512, 7), vec![(512, 7)]);
        let c = coarse_to_fine(4096, 1000);
        let sizes: Vec<u32> = c.iter().map(|x| x.0).collect();
        assert_eq!(sizes, [256, 512, 1024, 2048, 4096]);
        let its: Vec<usize> = c.iter().map(|x| x.1).collect();
        // 500:200:100:50:50 of 1000, the rounding to the smallest scale.
        assert_eq!(its, [557, 222, 111, 55, 55]);
        assert_eq!(its.iter().sum::<usize>(), 1000);
        // Odd sizes round up; the chain stops before going under 256.
        let sizes: Vec<u32> = coarse_to_fine(1500, 100).iter().map(|x| x.0).collect();
        assert_eq!(sizes, [375, 750, 1500]);
        // Fewer iterations than scales: the smallest scales are left out,
        // every scale runs at least once, the total is kept.
        assert_eq!(coarse_to_fine(4096, 2), vec![(2048, 1), (4096, 1)]);
        assert_eq!(
            coarse_to_fine(4096, 6).iter().map(|x| x.1).sum::<usize>(),
            6
        );
        assert!(coarse_to_fine(4096, 6).iter().all(|x| x.1 >= 1));
        assert_eq!(
            coarse_to_fine(100_000, usize::MAX)
                .iter()
                .map(|x| x.1 as u128)
                .sum::<u128>(),
            usize::MAX as u128
        );
    }

    #[test]
    fn meminfo_is_read_and_budgets_are_checked() {
        let info = "MemTotal:       24000000 kB\nMemAvailable:   1000 kB\n";
        assert_eq!(parse_meminfo(info), Some(1_024_000));
        assert_eq!(parse_meminfo("MemAvailable: 99999999999999999999 kB"), None);
        let status = "Name:\tneural-style\nVmPeak:\t  900000 kB\nVmRSS:\t  300000 kB\n";
        assert_eq!(parse_status_rss(status), Some(307_200_000));
        assert_eq!(parse_status_rss("VmRSS: lots kB"), None);
        assert_eq!(parse_status_kb(status, "VmHWM:"), None);
        assert_eq!(parse_status_kb(status, "VmPeak:"), Some(921_600_000));
        // The high-water mark is at least what this process holds now, and
        // grows with a buffer touched beyond it.
        #[cfg(target_os = "linux")]
        {
            let status = || std::fs::read_to_string("/proc/self/status").unwrap();
            // The resident set first: other tests' threads may grow it at any
            // moment, and the high-water mark only grows.
            let rss = parse_status_rss(&status()).unwrap();
            let before = peak_process_bytes().expect("Linux has VmHWM");
            assert!(before >= rss, "{before} < {rss}");
            let big = vec![1u8; before as usize + (64 << 20)];
            let after = peak_process_bytes().unwrap();
            assert!(after >= big.len() as u64, "{before} → {after}");
            drop(big);
        }
        assert!(process_bytes() >= PROCESS_BYTES);
        assert!(Budget::given(-1.0).is_err());
        assert!(Budget::given(f64::NAN).is_err());
        assert!(Budget::given(1e30).is_err());
        assert_eq!(Budget::given(2.0).unwrap().bytes, 2 * GIB);
        assert_eq!(duration(3725.0), "1 h 02 min");
        assert_eq!(duration(200.0), "3 min 20 s");
    }
}
