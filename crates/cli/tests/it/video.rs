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
    use crate::support::{assert_fails, describe, run, text, ROOT};
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
            .arg("[0:v]scale=320:-2,crop=96:64:x='40+3*n':y=30[v]")
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
            .arg(dir.join("pan.mp4"))
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

    #[test]
    fn a_clip_is_styled_encoded_and_measured() {
        let Some(dir) = setup() else { return };
        let d = dir.path();
        let out = run(&video_args("5", &["--report", "r.json", "--baseline"]), d);
        assert!(out.status.success(), "{}", describe(&out));
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
        let mut child = crate::support::command(&video_args("30", &[]), d)
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

        let out = run(&video_args("3", &[]), d);
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
}
