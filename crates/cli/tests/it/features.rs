//! End-to-end tests of colour control, multi-resolution, spatial style
//! masks, pictures (plot, contact sheet, compare) and batches: the binary,
//! real VGG19 weights, tiny images made here, two threads.
//!
//! Failures follow the error contract of `tests/it/cli.rs`: exit status 1, one
//! `error:` line naming the culprit, nothing left behind.

use image::{Luma, Rgb, RgbImage};
use serde_json::Value;
use std::path::Path;

use crate::support::{assert_fails, assert_ok, fixture, listing, run};

fn quick<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    crate::support::paint_flags(None, None, true, extra)
}

fn decode(path: &Path) -> RgbImage {
    crate::support::decode_file(path).1
}

fn loss(dir: &Path, extra: &[&str]) -> serde_json::Map<String, Value> {
    let mut args = vec![
        "loss",
        "-c",
        "c.png",
        "--image",
        "c.png",
        "--size",
        "32",
        "--threads",
        "2",
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = run(&args, dir);
    assert_ok(&out);
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Object(m) => m,
        v => panic!("not an object: {v}"),
    }
}

fn num(m: &serde_json::Map<String, Value>, k: &str) -> f64 {
    m[k].as_f64().unwrap()
}

// ------------------------------------------------------------------ colour

fn chroma(p: &Rgb<u8>) -> (f64, f64) {
    let [r, g, b] = p.0.map(f64::from);
    (
        -0.168736 * r - 0.331264 * g + 0.5 * b,
        0.5 * r - 0.418688 * g - 0.081312 * b,
    )
}

#[test]
fn original_colors_keep_the_contents_chroma() {
    let dir = fixture();
    let d = dir.path();
    let common = ["-c", "c.png", "-s", "s.png", "--size", "40", "-n", "4"];
    let mut a = quick(&common);
    a.extend(["-o", "plain.png"]);
    assert_ok(&run(&a, d));
    let mut a = quick(&common);
    a.extend(["-o", "kept.png", "--original-colors"]);
    assert_ok(&run(&a, d));
    let content = image::imageops::resize(
        &decode(&d.join("c.png")),
        40,
        30,
        image::imageops::FilterType::Lanczos3,
    );
    let diff = |img: &RgbImage| {
        img.pixels()
            .zip(content.pixels())
            .map(|(a, b)| {
                let ((a1, a2), (b1, b2)) = (chroma(a), chroma(b));
                (a1 - b1).abs() + (a2 - b2).abs()
            })
            .sum::<f64>()
            / (40.0 * 30.0)
    };
    let (plain, kept) = (
        diff(&decode(&d.join("plain.png"))),
        diff(&decode(&d.join("kept.png"))),
    );
    assert!(
        kept < 4.0 && kept < plain / 2.0,
        "chroma error kept {kept}, plain {plain}"
    );
}

#[test]
fn color_match_changes_the_style_targets() {
    let dir = fixture();
    let plain = loss(dir.path(), &["-s", "s.png"]);
    let matched = loss(dir.path(), &["-s", "s.png", "--color-match"]);
    assert_eq!(num(&plain, "content"), num(&matched, "content"));
    let (a, b) = (num(&plain, "style"), num(&matched, "style"));
    assert!((a - b).abs() > 1e-3 * a, "style {a} vs {b}");
}

// ------------------------------------------------------------------- masks

#[test]
fn masks_of_any_size_are_resized_and_white_means_unmasked() {
    let dir = fixture();
    let d = dir.path();
    // 13×7: not the content's size, nor its aspect.
    image::GrayImage::from_pixel(13, 7, Luma([255]))
        .save(d.join("white.png"))
        .unwrap();
    image::GrayImage::from_fn(13, 7, |x, _| Luma([if x < 6 { 255 } else { 0 }]))
        .save(d.join("left.png"))
        .unwrap();
    let plain = loss(d, &["-s", "s.png"]);
    let white = loss(d, &["-s", "s.png", "--style-mask", "white.png"]);
    let left = loss(d, &["-s", "s.png", "--style-mask", "left.png"]);
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
    assert!(
        rel(num(&white, "style"), num(&plain, "style")) < 1e-4,
        "{white:?} vs {plain:?}"
    );
    assert!(rel(num(&left, "style"), num(&plain, "style")) > 1e-3);
    // Two styles painting two regions, one of them with `none`.
    let mut a = quick(&[
        "-c", "c.png", "-s", "s.png", "s2.png", "--size", "32", "-n", "2",
    ]);
    a.extend(["--style-mask", "left.png", "none", "-o", "two.png"]);
    assert_ok(&run(&a, d));
    assert_eq!(decode(&d.join("two.png")).dimensions(), (32, 24));
}

#[test]
fn an_all_black_mask_is_an_error_naming_the_file() {
    let dir = fixture();
    let d = dir.path();
    image::GrayImage::from_pixel(20, 20, Luma([0]))
        .save(d.join("black.png"))
        .unwrap();
    let a = quick(&[
        "-c",
        "c.png",
        "-s",
        "s.png",
        "--size",
        "32",
        "-n",
        "2",
        "--style-mask",
        "black.png",
        "-o",
        "out.png",
    ]);
    assert_fails(&a, d, &["black.png", "all black"]);
    let a = quick(&[
        "-c",
        "c.png",
        "-s",
        "s.png",
        "s2.png",
        "--size",
        "32",
        "-n",
        "2",
        "--style-mask",
        "black.png",
        "-o",
        "out.png",
    ]);
    assert_fails(&a, d, &["--style-mask", "none"]);
}

// --------------------------------------------------------- multi-resolution

#[test]
fn scales_run_in_a_row_and_log_across_them() {
    let dir = fixture();
    let d = dir.path();
    let a = quick(&[
        "-c",
        "c.png",
        "-s",
        "s.png",
        "--scales",
        "24,40",
        "--scale-iterations",
        "2,3",
        "--json-log",
        "log.jsonl",
        "-o",
        "out.png",
    ]);
    assert_ok(&run(&a, d));
    assert_eq!(decode(&d.join("out.png")).dimensions(), (40, 30));
    let lines: Vec<Value> = std::fs::read_to_string(d.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let its: Vec<u64> = lines
        .iter()
        .map(|v| v["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(its, vec![1, 2, 3, 4, 5]);
    assert!(lines.iter().all(|v| v["of"].as_u64() == Some(5)));
    let t: Vec<f64> = lines
        .iter()
        .map(|v| v["elapsed"].as_f64().unwrap())
        .collect();
    assert!(t.windows(2).all(|w| w[0] <= w[1]), "{t:?}");
    let a = quick(&[
        "-c",
        "c.png",
        "-s",
        "s.png",
        "--scales",
        "24,40",
        "--scale-iterations",
        "2",
        "-o",
        "x.png",
    ]);
    assert_fails(&a, d, &["--scale-iterations"]);
}

// ---------------------------------------------------------------- pictures

#[test]
fn plot_and_contact_sheet() {
    let dir = fixture();
    let d = dir.path();
    let a = quick(&[
        "-c",
        "c.png",
        "-s",
        "s.png",
        "--size",
        "32",
        "-n",
        "4",
        "--save-every",
        "2",
        "--plot",
        "loss.svg",
        "--sheet",
        "sheet.png",
        "-o",
        "out.png",
    ]);
    assert_ok(&run(&a, d));
    let svg = std::fs::read_to_string(d.join("loss.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("style") && svg.contains("iteration"));
    let sheet = decode(&d.join("sheet.png"));
    // Two frames (2 and 4) side by side, 192 px cells, labels under them.
    assert_eq!(sheet.dimensions(), (8 + 2 * 200, 8 + 192 + 16 + 8 + 8));
    let a = quick(&[
        "-c", "c.png", "-s", "s.png", "--sheet", "s.png", "-o", "o.png",
    ]);
    assert_fails(&a, d, &["--sheet", "--save-every"]);
    let a = quick(&[
        "-c", "c.png", "-s", "s.png", "--plot", "p.png", "-o", "o.png",
    ]);
    assert_fails(&a, d, &["--plot", "svg"]);
}

/// `compare` of `c.png` with `s.png` at 32 px, 2 iterations per cell, plus `extra`.
fn compare_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "compare",
        "-c",
        "c.png",
        "-s",
        "s.png",
        "--size",
        "32",
        "-n",
        "2",
        "--threads",
        "2",
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn compare_lays_out_each_ratio() {
    let dir = fixture();
    let d = dir.path();
    let a = compare_args(&["--ratios", "1,1e-2", "-o", "cmp.jpg", "-q"]);
    assert_ok(&run(&a, d));
    // content, style, two ratios: 256 px cells.
    assert_eq!(
        decode(&d.join("cmp.jpg")).dimensions(),
        (8 + 4 * 264, 8 + 256 + 16 + 8 + 8)
    );
    let bad: Vec<&str> = vec![
        "compare", "-c", "c.png", "-s", "s.png", "--ratios", "0", "-o", "x.png",
    ];
    assert_fails(&bad, d, &["--ratios"]);
}

#[test]
fn compare_without_ratios_uses_content_and_style_focus() {
    let dir = fixture();
    let d = dir.path();
    let out = run(&compare_args(&["-o", "cmp.png"]), d);
    assert_ok(&out);
    // The default ratios, 10 and 1e-4: two cells after content and style.
    assert_eq!(
        decode(&d.join("cmp.png")).dimensions(),
        (8 + 4 * 264, 8 + 256 + 16 + 8 + 8)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("content/style 10 ") && log.contains("content/style 1e-4 "),
        "{log}"
    );
}

#[test]
fn gatys_normalization_scales_each_part_as_the_paper() {
    let dir = fixture();
    let d = dir.path();
    // At 32×24, relu4_2 is 512×4×3 and relu1_1 64×32×24: the paper's
    // content is ½Σ = (N·M/2)·mean, its style 1/(4N²M²)Σ over unnormalised
    // Gram matrices = (N²/4)·mean over normalised ones (style image at the
    // content's pixel count: 48×48 → 28×28 ≈ 32×24).
    // At the image s2.png (the loss helper evaluates at the content).
    let loss = |extra: &[&str]| {
        let mut a = vec![
            "loss",
            "-c",
            "c.png",
            "--image",
            "s2.png",
            "--size",
            "32",
            "--threads",
            "2",
            "--json",
        ];
        a.extend_from_slice(extra);
        let out = run(&a, d);
        assert_ok(&out);
        serde_json::from_slice::<serde_json::Map<String, Value>>(&out.stdout).unwrap()
    };
    let common = [
        "-s",
        "s.png",
        "--style-size",
        "32",
        "--style-layers",
        "relu1_1",
        "--style-layer-weights",
        "1",
    ];
    let jc = loss(&common);
    let mut a = common.to_vec();
    a.extend(["--normalization", "gatys"]);
    let ga = loss(&a);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs();
    let c = num(&ga, "content") / num(&jc, "content");
    assert!(close(c, 512.0 * 12.0 / 2.0), "content ratio {c}");
    let st = num(&ga, "style") / num(&jc, "style");
    assert!(close(st, 64.0 * 64.0 / 4.0), "style ratio {st}");
    // Without --style-layer-weights, gatys weighs each of the 5 layers 1/5.
    let five = ["-s", "s.png"];
    let ones = loss(&five);
    let mut a = five.to_vec();
    a.extend([
        "--normalization",
        "gatys",
        "--style-layer-weights",
        "1,1,1,1,1",
    ]);
    let g1 = loss(&a);
    let mut a = five.to_vec();
    a.extend(["--normalization", "gatys"]);
    let g5 = loss(&a);
    assert!(close(num(&g5, "style") * 5.0, num(&g1, "style")));
    assert!(num(&g1, "style") > 10.0 * num(&ones, "style"));
}

// ------------------------------------------------------------------ batches

#[test]
fn batch_runs_shards_skips_what_exists_and_resumes() {
    let dir = fixture();
    let d = dir.path();
    std::fs::create_dir(d.join("out")).unwrap();
    std::fs::write(
        d.join("jobs.toml"),
        "contents = [\"c.png\"]\nstyles = [\"s.png\", \"s2.png\"]\noutput-dir = \"out\"\n\n\
         [defaults]\nsize = 32\niterations = 2\nthreads = 2\n\n\
         [[job]]\ncontent = \"c.png\"\nstyle = [\"s.png\", \"s2.png\"]\noutput = \"out/both.jpg\"\noriginal-colors = true\n",
    )
    .unwrap();
    // Jobs: 0 = both.jpg, 1 = c_s.png, 2 = c_s2.png. Shard 0/2 runs 0 and 2.
    assert_ok(&run(&["batch", "jobs.toml", "--shard", "0/2", "-q"], d));
    let files = |d: &Path| listing(&d.join("out"));
    assert_eq!(
        files(d),
        ["both.jpg", "c_s2.png"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let out = run(&["batch", "jobs.toml"], d);
    assert_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 to run, 2 already done"), "{err}");
    assert_eq!(files(d).len(), 3);
    assert_eq!(decode(&d.join("out/c_s.png")).dimensions(), (32, 24));

    std::fs::write(
        d.join("bad.toml"),
        "[defaults]\nsize = 32\n\n[[job]]\ncontent = \"c.png\"\nstyel = [\"s.png\"]\n",
    )
    .unwrap();
    assert_fails(&["batch", "bad.toml"], d, &["bad.toml", "line 6", "styel"]);
    assert_fails(&["batch", "jobs.toml", "--shard", "2/2"], d, &["--shard"]);
    assert_fails(&["batch", "jobs.toml", "--shard", "x"], d, &["--shard"]);
}
