//! Pictures a person would rather look at than read: the loss plot
//! (`--plot`, SVG through plotters), contact sheets of frames (`--sheet`)
//! and weight comparisons (`compare`).
//!
//! Labels in the raster pictures are drawn with an embedded public-domain
//! 8×8 bitmap font (the `font8x8` crate), so they render the same on a
//! machine with no fonts installed. The SVG plot's text is SVG `<text>`,
//! laid out by the viewer.

use neural_style_core::image_io::Picture;
use neural_style_core::objective::LossParts;
use neural_style_core::{Error, Result};

/// Height of one line of label text at `scale`.
fn text_height(scale: u32) -> u32 {
    8 * scale
}

/// Width of `text` at `scale`.
pub(crate) fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * 8 * scale
}

/// Draw `text` with its top-left corner at `(x, y)`, clipped to the picture.
pub(crate) fn draw_text(p: &mut Picture, x: u32, y: u32, text: &str, scale: u32, color: [f32; 3]) {
    for (i, ch) in text.chars().enumerate() {
        let code = ch as usize;
        let glyph = if code < 128 {
            font8x8::legacy::BASIC_LEGACY[code]
        } else {
            font8x8::legacy::BASIC_LEGACY[b'?' as usize]
        };
        let x0 = x + i as u32 * 8 * scale;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (px, py) = (x0 + col * scale + dx, y + row as u32 * scale + dy);
                        if px < p.width && py < p.height {
                            let at = 3 * (py as usize * p.width as usize + px as usize);
                            p.rgb[at..at + 3].copy_from_slice(&color);
                        }
                    }
                }
            }
        }
    }
}

/// A label that fits `width` pixels: at `scale` if it can, else at scale 1,
/// else cut and ended with `..` — never silently shortened into another
/// label (`iteration 100` must not read `iteration 10`).
fn fit_label(label: &str, width: u32, scale: u32) -> (String, u32) {
    for s in [scale, 1] {
        if text_width(label, s) <= width {
            return (label.to_string(), s);
        }
    }
    let max_chars = (width / 8) as usize;
    let mut text: String = label.chars().take(max_chars.saturating_sub(2)).collect();
    text.push_str("..");
    (text, 1)
}

/// Tiles with a label under each, `columns` per row, every image scaled to
/// fit a `cell × cell` square (aspect kept), on white.
pub(crate) fn sheet(tiles: &[(Picture, String)], columns: usize, cell: u32) -> Picture {
    let columns = columns.clamp(1, tiles.len().max(1));
    let rows = tiles.len().div_ceil(columns).max(1);
    let (pad, scale) = (8u32, if cell >= 192 { 2 } else { 1 });
    let label_h = text_height(scale) + pad;
    let (tw, th) = (cell + pad, cell + label_h + pad);
    let (w, h) = (pad + columns as u32 * tw, pad + rows as u32 * th);
    let mut out = Picture {
        width: w,
        height: h,
        rgb: vec![255.0; (w * h * 3) as usize],
    };
    // One label size for the whole sheet: the larger one only if every label fits.
    let scale = if tiles
        .iter()
        .all(|(_, l)| text_width(l, scale) <= cell + pad)
    {
        scale
    } else {
        1
    };
    for (i, (img, label)) in tiles.iter().enumerate() {
        let (cx, cy) = (
            pad + (i % columns) as u32 * tw,
            pad + (i / columns) as u32 * th,
        );
        let thumb = img.resize_longest(cell);
        let (ox, oy) = (
            cx + (cell - thumb.width) / 2,
            cy + (cell - thumb.height) / 2,
        );
        for y in 0..thumb.height {
            let src = (y * thumb.width * 3) as usize;
            let dst = (((oy + y) * w + ox) * 3) as usize;
            let n = (thumb.width * 3) as usize;
            out.rgb[dst..dst + n].copy_from_slice(&thumb.rgb[src..src + n]);
        }
        let (text, scale) = fit_label(label, cell + pad, scale);
        let lx = cx + cell.saturating_sub(text_width(&text, scale)) / 2;
        draw_text(
            &mut out,
            lx,
            cy + cell + pad / 2,
            &text,
            scale,
            [0.0, 0.0, 0.0],
        );
    }
    out
}

/// The weighted loss parts of one iteration (what the total adds up).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PlotPoint {
    /// The iteration, 1-based.
    pub(crate) iteration: usize,
    /// Its loss parts.
    pub(crate) parts: LossParts,
}

/// Each loss part (weighted: content_weight·content, style_weight·style,
/// tv_weight·tv) and the total over the iterations, log scale, as SVG.
pub(crate) fn plot_losses(points: &[PlotPoint], weights: [f64; 3]) -> Result<String> {
    use plotters::prelude::*;
    let part = |p: &LossParts, k: usize| match k {
        0 => p.total,
        1 => weights[0] * p.content,
        2 => weights[1] * p.style,
        _ => weights[2] * p.tv,
    };
    let series = [
        ("total", BLACK, 0),
        ("content", RGBColor(31, 119, 180), 1),
        ("style", RGBColor(214, 39, 40), 2),
        ("tv", RGBColor(44, 160, 44), 3),
    ];
    let values = || {
        points
            .iter()
            .flat_map(|pt| series.iter().map(|s| part(&pt.parts, s.2)))
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    let lo = values().fold(f64::INFINITY, f64::min);
    let hi = values().fold(0.0, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > 0.0 {
        (lo / 1.5, hi * 1.5)
    } else {
        (1e-3, 1.0)
    };
    let last = points.last().map(|p| p.iteration).unwrap_or(1).max(2);
    let plot_err = |e: &dyn std::fmt::Display| Error::config("plot", e.to_string());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("loss (weighted parts)", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(72)
            .build_cartesian_2d(1..last, (lo..hi).log_scale())
            .map_err(|e| plot_err(&e))?;
        chart
            .configure_mesh()
            .x_desc("iteration")
            .y_desc("loss")
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()
            .map_err(|e| plot_err(&e))?;
        for (name, color, k) in &series {
            let pts: Vec<(usize, f64)> = points
                .iter()
                .map(|p| (p.iteration, part(&p.parts, *k)))
                .filter(|(_, v)| v.is_finite() && *v > 0.0)
                .collect();
            if pts.is_empty() {
                continue;
            }
            let color = *color;
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(|e| plot_err(&e))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot_err(&e))?;
        root.present().map_err(|e| plot_err(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_labels_shrink_or_say_they_were_cut() {
        // A 192-px cell at scale 2 holds 12 characters: "iteration 100" used
        // to become "iteration 10".
        assert_eq!(
            fit_label("iteration 100", 200, 2),
            ("iteration 100".into(), 1)
        );
        assert_eq!(
            fit_label("iteration 10", 200, 2),
            ("iteration 10".into(), 2)
        );
        let (cut, scale) = fit_label(&"x".repeat(40), 200, 2);
        assert_eq!((cut.len(), scale), (25, 1));
        assert!(cut.ends_with(".."));
    }

    #[test]
    fn labels_are_drawn_without_fonts() {
        let tile = Picture {
            width: 40,
            height: 20,
            rgb: vec![128.0; 40 * 20 * 3],
        };
        let s = sheet(
            &[(tile.clone(), "10".into()), (tile, "iteration 20".into())],
            2,
            64,
        );
        assert_eq!(s.width, 8 + 2 * 72);
        // Some label pixels are black.
        assert!(s.rgb.chunks_exact(3).any(|p| p == [0.0, 0.0, 0.0]));
    }

    #[test]
    fn plot_is_svg_with_every_part() {
        let points: Vec<PlotPoint> = (1..=20)
            .map(|i| PlotPoint {
                iteration: i,
                parts: LossParts {
                    content: 10.0 / i as f64,
                    style: 100.0 / (i * i) as f64,
                    tv: 0.0,
                    total: 0.0,
                    ..LossParts::default()
                },
            })
            .collect();
        let svg = plot_losses(&points, [5.0, 100.0, 1e-3]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("content") && svg.contains("style"));
        assert!(!svg.contains(">tv<"), "an all-zero part is left out");
    }
}
