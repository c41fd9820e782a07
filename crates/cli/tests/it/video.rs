//! `neural-style video` end to end (feature `video`): a 12-frame pan made
//! by ffmpeg from the bundled Tübingen photo, styled at 64 px with a
//! report; stopped with SIGTERM and resumed; bad clips refused before any
//! work. Without the feature or ffmpeg the tests say they skipped.

#[cfg(not(feature = "video"))]
#[test]
fn video_needs_the_video_feature() {
    neural_style_core::testing::skip::skip(
        "built without the `video` feature (ffmpeg, libopencv-dev, clang, libclang-dev)",
    );
}

#[cfg(feature = "video")]
mod with_feature {
    use crate::support::{assert_fails, describe, listing, run, text, ROOT};
    use neural_style::run::written::VideoWrites;
    use neural_style_core::testing::skip::skip;
    use serde_json::Value;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    fn sample(name: &str) -> PathBuf {
        Path::new(ROOT)
            .join("crates/cli/src/serve/assets/samples")
            .join(name)
    }

    /// A 12-frame, 12 fps pan over the photo with a tone, in `dir/pan.mp4`;
    /// false (skipped) without ffmpeg.
    fn pan_clip(dir: &Path) -> bool {
        pan_clip_from(dir, "pan.mp4", 40)
    }

    /// The pan starting `x` px from the left, in `dir/name`.
    fn pan_clip_from(dir: &Path, name: &str, x: u32) -> bool {
        if !neural_style_video::ffmpeg::available() {
            skip("ffmpeg and ffprobe are not installed (apt-get install ffmpeg)");
            return false;
        }
        let out = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-nostdin",
                "-y",
                "-loop",
                "1",
                "-framerate",
                "12",
                "-i",
            ])
            .arg(sample("tubingen.jpg"))
            .args(["-f", "lavfi", "-i", "sine=duration=1", "-filter_complex"])
            .arg(format!("[0:v]scale=320:-2,crop=96:64:x='{x}+3*n':y=30[v]"))
            .args([
                "-map",
                "[v]",
                "-map",
                "1:a",
                "-frames:v",
                "12",
                "-c:v",
                "libx264",
            ])
            .args(["-pix_fmt", "yuv420p", "-c:a", "aac"])
            .arg(dir.join(name))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        true
    }

    fn video_args<'a>(iterations: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![
            "video",
            "-c",
            "pan.mp4",
            "-s",
            "starry.jpg",
            "-o",
            "out.mp4",
            "--size",
            "64",
            "--iterations",
            iterations,
            "--first-frame-iterations",
            "10",
            "--threads",
            "2",
            "--long-term",
            "1,2",
        ];
        v.extend_from_slice(extra);
        v
    }

    fn setup() -> Option<tempfile::TempDir> {
        let dir = tempfile::tempdir().unwrap();
        if !pan_clip(dir.path()) {
            return None;
        }
        std::fs::copy(sample("starry_night.jpg"), dir.path().join("starry.jpg")).unwrap();
        Some(dir)
    }

    fn frames(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("frame_"))
            .collect();
        v.sort();
        v
    }

    /// Every path under `d` that is not in `before` is one the video job
    /// declares (`neural_style::run::written::VideoWrites`).
    #[track_caller]
    fn only_declared(d: &Path, before: &std::collections::BTreeSet<String>, w: &VideoWrites) {
        let declared = w.declared();
        for p in listing(d).difference(before) {
            assert!(declared.covers(d, Path::new(p)), "{p} is not declared");
        }
    }

    fn writes(d: &Path, report: bool, baseline: bool) -> VideoWrites {
        VideoWrites {
            frames_dir: d.join("out_frames"),
            video: Some(d.join("out.mp4")),
            report: report.then(|| d.join("r.json")),
            baseline,
        }
    }

    /// sha256 of every file under `dir`.
    fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
        listing(dir)
            .into_iter()
            .filter(|p| dir.join(p).is_file())
            .map(|p| {
                let b = std::fs::read(dir.join(&p)).unwrap();
                (p, b)
            })
            .collect()
    }

    #[test]
    fn a_clip_is_styled_encoded_and_measured() {
        let Some(dir) = setup() else { return };
        let d = dir.path();
        let before = listing(d);
        let out = run(&video_args("5", &["--report", "r.json", "--baseline"]), d);
        assert!(out.status.success(), "{}", describe(&out));
        only_declared(d, &before, &writes(d, true, true));
        let stdout = text(&out.stdout);
        assert!(stdout.starts_with("warping error: "), "{stdout}");
        assert_eq!(frames(&d.join("out_frames")).len(), 12);
        assert_eq!(frames(&d.join("out_frames/baseline")).len(), 12);
        let p = neural_style_video::ffmpeg::probe(&d.join("out.mp4")).unwrap();
        assert_eq!(
            (p.width, p.height, p.fps_value, p.frames, p.audio),
            (64, 44, 12.0, Some(12), true)
        );
        let r: Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
        let e = &r["warping_error"];
        let (output, input, baseline) = (
            e["output"].as_f64().unwrap(),
            e["input"].as_f64().unwrap(),
            e["baseline"].as_f64().unwrap(),
        );
        // The temporal term makes the video steadier than frames styled
        // on their own; the input is steadier than either.
        assert!(input < output && output < baseline, "{e}");
        assert_eq!(r["frames"], 12);
    }

    #[test]
    fn a_stopped_run_keeps_its_frames_and_resumes_at_the_first_missing_one() {
        let Some(dir) = setup() else { return };
        let d = dir.path();
        let frames_dir = d.join("out_frames");
        let start = listing(d);
        // The same settings in both runs: a rerun resumes only those.
        let mut child = crate::support::command(&video_args("12", &[]), d)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while !frames_dir.join("frame_000002.png").exists() {
            assert!(t.elapsed() < Duration::from_secs(600), "no frame written");
            if let Some(st) = child.try_wait().unwrap() {
                panic!("the run ended early: {st:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let st = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(143), "{}", describe(&out));
        assert!(
            !d.join("out.mp4").exists(),
            "no video until every frame is done"
        );
        let kept = frames(&frames_dir);
        assert!((2..12).contains(&kept.len()), "{kept:?}");
        let before: Vec<Vec<u8>> = kept
            .iter()
            .map(|f| std::fs::read(frames_dir.join(f)).unwrap())
            .collect();
        let interrupted = format!("interrupted_{:06}.png", kept.len() + 1);
        assert!(
            frames_dir.join(&interrupted).exists(),
            "{:?}",
            std::fs::read_dir(&frames_dir).unwrap().collect::<Vec<_>>()
        );
        only_declared(d, &start, &writes(d, false, false));

        let out = run(&video_args("12", &[]), d);
        assert!(out.status.success(), "{}", describe(&out));
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("resuming at frame {} of 12", kept.len() + 1)),
            "{err}"
        );
        assert_eq!(frames(&frames_dir).len(), 12);
        for (f, bytes) in kept.iter().zip(before) {
            assert_eq!(
                std::fs::read(frames_dir.join(f)).unwrap(),
                bytes,
                "{f} kept as it was"
            );
        }
        assert!(d.join("out.mp4").is_file());
    }

    #[test]
    fn bad_clips_and_outputs_are_refused_before_any_work() {
        let Some(dir) = setup() else { return };
        let d = dir.path();
        std::fs::copy(sample("tubingen.jpg"), d.join("still.jpg")).unwrap();
        let line = assert_fails(
            &[
                "video",
                "-c",
                "still.jpg",
                "-s",
                "starry.jpg",
                "-o",
                "o.mp4",
                "--size",
                "64",
            ],
            d,
            &["still.jpg", "still image"],
        );
        assert!(!line.contains("o_frames"), "{line}");
        std::fs::write(
            d.join("cut.mp4"),
            &std::fs::read(d.join("pan.mp4")).unwrap()[..1500],
        )
        .unwrap();
        assert_fails(
            &[
                "video",
                "-c",
                "cut.mp4",
                "-s",
                "starry.jpg",
                "-o",
                "o.mp4",
                "--size",
                "64",
            ],
            d,
            &["cut.mp4"],
        );
        assert_fails(
            &[
                "video",
                "-c",
                "pan.mp4",
                "-s",
                "starry.jpg",
                "-o",
                "o.gif",
                "--size",
                "64",
            ],
            d,
            &["--output", "o.gif", ".mp4"],
        );
        assert_fails(
            &[
                "video",
                "-c",
                "pan.mp4",
                "-s",
                "starry.jpg",
                "-o",
                "pan.mp4",
                "--size",
                "64",
            ],
            d,
            &["--output", "pan.mp4", "--content"],
        );
        assert_fails(
            &[
                "video",
                "-c",
                "pan.mp4",
                "-s",
                "starry.jpg",
                "-o",
                "o.mp4",
                "--long-term",
                "2,4",
            ],
            d,
            &["--long-term"],
        );
    }

    /// The registry declares the interrupted frames, the manifest and the
    /// baseline's frames (issue 24): an input named like one is refused
    /// before any work. Before, `interrupted_NNNNNN.png` and the baseline's
    /// frames were not declared and such a run went ahead.
    #[test]
    fn an_input_named_like_a_frame_the_video_writes_is_refused_before_any_work() {
        let Some(dir) = setup() else { return };
        let d = dir.path();
        std::fs::create_dir_all(d.join("out_frames/baseline")).unwrap();
        for name in [
            "out_frames/interrupted_000003.png",
            "out_frames/baseline/frame_000001.png",
            "out_frames/frame_000002.png",
        ] {
            std::fs::copy(d.join("starry.jpg"), d.join(name)).unwrap();
        }
        for (style, extra) in [
            ("out_frames/interrupted_000003.png", vec![]),
            ("out_frames/baseline/frame_000001.png", vec!["--baseline"]),
            ("out_frames/frame_000002.png", vec![]),
        ] {
            let before = snapshot(d);
            let mut args = video_args("3", &extra);
            args[4] = style;
            let line = assert_fails(&args, d, &[style, "style"]);
            assert!(line.contains("would be written there"), "{line}");
            assert!(snapshot(d) == before, "files changed: {line}");
        }
    }

    /// A rerun resumes only the frames of the same clip with the same
    /// settings (the frames directory's manifest, video.json); otherwise it
    /// is refused before any work, naming the directory and the ways on,
    /// every file as it was; `--restart` starts over. Before, a rerun with
    /// another clip or other settings resumed over the old frames.
    #[test]
    fn a_rerun_with_another_clip_or_other_settings_is_refused() {
        let Some(dir) = setup() else { return };
        let d = dir.path();
        assert!(pan_clip_from(d, "other.mp4", 120));
        let first = run(&video_args("3", &["--max-frames", "3"]), d);
        assert!(first.status.success(), "{}", describe(&first));
        let manifest = d.join("out_frames/video.json");
        let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        assert_eq!(
            m["clip_bytes"].as_u64(),
            Some(std::fs::metadata(d.join("pan.mp4")).unwrap().len())
        );
        let refused = |args: &[&str], why: &str| {
            let before = snapshot(d);
            let line = assert_fails(args, d, &["out_frames", why, "--restart", "--frames-dir"]);
            assert!(snapshot(d) == before, "files changed: {line}");
        };
        let mut other_clip = video_args("3", &["--max-frames", "3"]);
        other_clip[2] = "other.mp4";
        refused(&other_clip, "another clip");
        refused(
            &video_args("3", &["--max-frames", "3", "--temporal-weight", "10"]),
            "other settings",
        );
        refused(&video_args("4", &["--max-frames", "3"]), "other settings");
        // The same clip and settings resume, with more frames too.
        let more = run(&video_args("3", &["--max-frames", "4"]), d);
        assert!(more.status.success(), "{}", describe(&more));
        assert!(
            text(&more.stderr).contains("resuming at frame 4 of 4"),
            "{}",
            describe(&more)
        );
        // Frames with no manifest are no known run's.
        std::fs::remove_file(&manifest).unwrap();
        refused(&video_args("3", &["--max-frames", "4"]), "video.json");
        // --restart deletes them and starts over with the other clip.
        other_clip.push("--restart");
        let again = run(&other_clip, d);
        assert!(again.status.success(), "{}", describe(&again));
        assert!(
            !text(&again.stderr).contains("resuming"),
            "{}",
            describe(&again)
        );
        let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        assert_eq!(
            m["clip_bytes"].as_u64(),
            Some(std::fs::metadata(d.join("other.mp4")).unwrap().len())
        );
        assert_eq!(frames(&d.join("out_frames")).len(), 3);
    }
}
