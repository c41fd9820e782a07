//! Flow, warping and certainty against known motion; probing, decoding and
//! encoding; bad clips refused with the file named.

use crate::support::{clip, ffmpeg, have_ffmpeg, have_flow, pan_filter, photo};
use neural_style_core::image_io::Picture;
use neural_style_video::ffmpeg::{self, Probe};
use neural_style_video::flow::{dis, Flow};
use neural_style_video::warp::{certainty, warp_picture, warping_error};
use std::path::Path;

fn frames(path: &Path) -> (Probe, Vec<Picture>) {
    let p = ffmpeg::probe(path).expect("probe");
    let mut out = Vec::new();
    ffmpeg::decode(path, &p, &mut |_, pic| {
        out.push(pic);
        Ok(())
    })
    .expect("decode");
    (p, out)
}

/// Mean of `f` over the pixels at least `margin` from every side.
fn interior_mean(w: usize, h: usize, margin: usize, f: impl Fn(usize, usize) -> f64) -> f64 {
    let mut sum = 0.0;
    let mut n = 0.0;
    for y in margin..h - margin {
        for x in margin..w - margin {
            sum += f(x, y);
            n += 1.0;
        }
    }
    sum / n
}

fn mean_abs_diff(a: &Picture, b: &Picture, mask: Option<&[f32]>) -> f64 {
    let mut s = 0.0;
    let mut n = 0.0;
    for (i, (x, y)) in a.rgb.chunks_exact(3).zip(b.rgb.chunks_exact(3)).enumerate() {
        let m = mask.map_or(1.0, |m| m[i] as f64);
        s += m * (0..3).map(|c| (x[c] - y[c]).abs() as f64).sum::<f64>() / 3.0;
        n += m;
    }
    s / n
}

#[test]
fn a_pan_is_probed_and_decoded_with_its_size_rate_and_frames() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path(), "pan.mkv", &pan_filter(3), 6);
    let (p, pics) = frames(&path);
    assert_eq!(
        (p.width, p.height, p.fps_value, p.audio),
        (96, 64, 25.0, false)
    );
    assert_eq!(pics.len(), 6);
    // Frame 1 is frame 0 moved left by 3 pixels, exactly (lossless).
    let px =
        |q: &Picture, x: usize, y: usize| q.rgb[3 * (y * 96 + x)..3 * (y * 96 + x) + 3].to_vec();
    assert_eq!(px(&pics[1], 10, 20), px(&pics[0], 13, 20));
}

#[test]
fn the_flow_of_a_pan_is_its_shift_and_warping_undoes_it() {
    if !have_ffmpeg() || !have_flow() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path(), "pan.mkv", &pan_filter(3), 4);
    let (_, pics) = frames(&path);
    let (w, h) = (96, 64);
    for t in 1..pics.len() {
        // Frame t's pixel p was at p + 3 in frame t − 1.
        let back = dis(&pics[t], &pics[t - 1]).unwrap();
        let fwd = dis(&pics[t - 1], &pics[t]).unwrap();
        let mu = interior_mean(w, h, 8, |x, y| back.at(x, y)[0] as f64);
        let mv = interior_mean(w, h, 8, |x, y| back.at(x, y)[1] as f64);
        assert!(
            (mu - 3.0).abs() < 0.25 && mv.abs() < 0.25,
            "backward flow ({mu}, {mv})"
        );
        let fu = interior_mean(w, h, 8, |x, y| fwd.at(x, y)[0] as f64);
        assert!((fu + 3.0).abs() < 0.25, "forward flow {fu}");
        // Warping frame t − 1 along the backward flow gives frame t.
        let warped = warp_picture(&pics[t - 1], &back);
        let c = certainty(&back, &fwd);
        let err = mean_abs_diff(&warped, &pics[t], Some(&c.data));
        let unwarped = mean_abs_diff(&pics[t - 1], &pics[t], None);
        assert!(
            err < 4.0 && err < unwarped / 4.0,
            "warped error {err}, unwarped {unwarped}"
        );
        // The known shift warps as well as the flow does.
        let exact = warp_picture(&pics[t - 1], &Flow::constant(w, h, 3.0, 0.0));
        let known = mean_abs_diff(&exact, &pics[t], Some(&c.data));
        assert!(known < 1.0, "warped by the true shift: {known}");
        // Certain inside; the 3 columns that come into view are not.
        let inner = interior_mean(w, h, 8, |x, y| c.data[y * w + x] as f64);
        assert!(inner > 0.9, "interior certainty {inner}");
        for y in 0..h {
            assert_eq!(
                c.data[y * w + w - 1],
                0.0,
                "row {y}: the last column is new"
            );
        }
        let e = warping_error(&pics[t], &warped, &c).unwrap();
        assert!(e < 2e-3, "warping error {e}");
    }
}

#[test]
fn a_zoom_is_followed_by_the_flow() {
    if !have_ffmpeg() || !have_flow() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = clip(
        dir.path(),
        "zoom.mkv",
        "scale=320:-2,zoompan=z='1+0.03*on':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':d=1:s=96x64:fps=25",
        4,
    );
    let (_, pics) = frames(&path);
    let (w, h) = (96usize, 64usize);
    for t in 1..pics.len() {
        let back = dis(&pics[t], &pics[t - 1]).unwrap();
        let fwd = dis(&pics[t - 1], &pics[t]).unwrap();
        // Zooming in: frame t's pixels came from nearer the centre of
        // frame t − 1, so the backward flow points inwards.
        let left = interior_mean(w, h, 6, |x, y| {
            if x < w / 3 {
                back.at(x, y)[0] as f64
            } else {
                0.0
            }
        });
        let right = interior_mean(w, h, 6, |x, y| {
            if x > 2 * w / 3 {
                back.at(x, y)[0] as f64
            } else {
                0.0
            }
        });
        assert!(left > 0.1 && right < -0.1, "left {left}, right {right}");
        let warped = warp_picture(&pics[t - 1], &back);
        let c = certainty(&back, &fwd);
        let err = mean_abs_diff(&warped, &pics[t], Some(&c.data));
        let unwarped = mean_abs_diff(&pics[t - 1], &pics[t], None);
        assert!(err < unwarped / 2.0, "warped {err}, unwarped {unwarped}");
        let certain = c.data.iter().map(|v| *v as f64).sum::<f64>() / c.data.len() as f64;
        assert!(certain > 0.7, "certain fraction {certain}");
    }
}

#[test]
fn the_band_an_object_uncovers_is_marked_uncertain() {
    if !have_ffmpeg() || !have_flow() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The background pans left by 3 px per frame; a 12-pixel wide box
    // crosses it to the right at 4 px per frame, x = 30 + 4n.
    let filter = "[0:v]scale=320:-2,crop=128:64:x='40+3*n':y=30[bg];\
         color=c=0xd02020:s=12x64:r=25[box];[bg][box]overlay=x='30+4*n':y=0:shortest=1";
    let path = clip(dir.path(), "occlusion.mkv", filter, 5);
    let (_, pics) = frames(&path);
    let (w, h) = (128usize, 64usize);
    for t in 2..pics.len() {
        let back = dis(&pics[t], &pics[t - 1]).unwrap();
        let fwd = dis(&pics[t - 1], &pics[t]).unwrap();
        let c = certainty(&back, &fwd);
        // Background at x in frame t came from x + 3 in frame t − 1, which
        // the box covered for x + 3 in [26 + 4t, 38 + 4t): the band
        // [23 + 4t, 30 + 4t) is newly uncovered.
        let band = (23 + 4 * t)..(30 + 4 * t);
        let zeros = |xs: std::ops::Range<usize>| {
            let n = xs.len() * (h - 8);
            let z: usize = xs
                .flat_map(|x| (4..h - 4).map(move |y| (x, y)))
                .filter(|(x, y)| c.data[y * w + x] == 0.0)
                .count();
            z as f64 / n as f64
        };
        let in_band = zeros(band.clone());
        let far = zeros((70 + 4 * t).min(w - 20)..(w - 8));
        assert!(
            in_band > 0.6,
            "frame {t}: only {in_band} of the uncovered band is uncertain"
        );
        assert!(
            far < 0.1,
            "frame {t}: {far} of the plain background is uncertain"
        );
    }
}

#[test]
fn frames_are_encoded_with_the_rate_and_the_audio_of_the_input() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let photo = photo();
    // A 12 fps clip with a sine tone.
    let with_audio = d.join("tone.mkv");
    ffmpeg(&[
        "-loop",
        "1",
        "-framerate",
        "12",
        "-i",
        photo.to_str().unwrap(),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=0.5",
        "-filter_complex",
        "[0:v]scale=64:-2[v]",
        "-map",
        "[v]",
        "-map",
        "1:a",
        "-frames:v",
        "6",
        "-c:v",
        "ffv1",
        "-c:a",
        "flac",
        with_audio.to_str().unwrap(),
    ]);
    let (p, pics) = frames(&with_audio);
    assert!(p.audio);
    assert_eq!(p.fps, "12/1");
    let out_dir = d.join("frames");
    std::fs::create_dir(&out_dir).unwrap();
    for (i, pic) in pics.iter().enumerate() {
        pic.save(&out_dir.join(ffmpeg::frame_name(i))).unwrap();
    }
    assert_eq!(ffmpeg::numbered_frames(&out_dir).unwrap().len(), 6);
    let out = d.join("out.mp4");
    ffmpeg::encode(&out_dir, &p.fps, Some(&with_audio), &out).unwrap();
    let q = ffmpeg::probe(&out).unwrap();
    assert_eq!((q.fps_value, q.audio, q.frames), (12.0, true, Some(6)));
    // Nothing but the output is left in the directory.
    let names: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn bad_clips_are_refused_naming_the_file() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let refused = |path: &Path, what: &str| {
        let err = ffmpeg::probe(path).and_then(|p| {
            ffmpeg::decode(path, &p, &mut |_, _| Ok(()))?;
            Ok(p)
        });
        let e = err.expect_err(what).to_string();
        assert!(e.starts_with(&path.display().to_string()), "{what}: {e}");
        e
    };
    // A still image.
    let e = refused(&photo(), "a still image");
    assert!(e.contains("still image"), "{e}");
    // No video stream.
    let audio = d.join("tone.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=duration=0.3",
        audio.to_str().unwrap(),
    ]);
    let e = refused(&audio, "an audio file");
    assert!(e.contains("no video stream"), "{e}");
    // Truncated: an H.264 MP4 with its index first, cut in the middle.
    let photo = photo();
    let full = d.join("full.mp4");
    ffmpeg(&[
        "-loop",
        "1",
        "-framerate",
        "25",
        "-i",
        photo.to_str().unwrap(),
        "-vf",
        &pan_filter(3),
        "-frames:v",
        "20",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        full.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&full).unwrap();
    let cut = d.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = refused(&cut, "a truncated clip");
    assert!(
        e.contains("truncated") || e.contains("damaged") || e.contains("decode"),
        "{e}"
    );
    // Not a video at all, and a missing file.
    let junk = d.join("junk.mp4");
    std::fs::write(&junk, b"not a video").unwrap();
    refused(&junk, "junk");
    refused(&d.join("missing.mp4"), "a missing file");
}
