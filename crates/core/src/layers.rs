//! The VGG19 layer table and its names.
//!
//! The network is a fixed sequence of 37 layers: per block `b` (1–5) the
//! convolutions `conv{b}_{i}` (pre-ReLU), each followed by `relu{b}_{i}`,
//! then `pool{b}`. Blocks 1–2 have two convolutions, blocks 3–5 four.
//! Keras names `block{b}_conv{i}` are aliases of `relu{b}_{i}` (Keras fuses
//! the ReLU into its conv layers) and `block{b}_pool` of `pool{b}`.
//!
//! Code refers to layers by [`LayerId`] (a position in the table), obtained
//! from names — never by magic indices.

use crate::error::{Error, Result};
use std::fmt;

/// Number of convolutions per block.
pub const CONVS_PER_BLOCK: [usize; 5] = [2, 2, 4, 4, 4];
/// Output channels per block in the real VGG19.
pub const VGG19_WIDTHS: [usize; 5] = [64, 128, 256, 512, 512];
/// Total convolutions in VGG19.
pub const NUM_CONVS: usize = 16;

/// What a layer computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// 3×3 convolution + bias, padding 1.
    Conv {
        /// Which of the 16 convolutions (0-based).
        conv: usize,
    },
    /// ReLU after a convolution.
    Relu {
        /// The convolution it follows (0-based).
        conv: usize,
    },
    /// 2×2 stride-2 pooling at the end of a block.
    Pool {
        /// The block it ends (1-based).
        block: usize,
    },
}

/// A layer, identified by its position in the 37-layer table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LayerId(pub usize);

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// Its row in the table.
    pub id: LayerId,
    /// Canonical name (`conv1_1`, `relu4_2`, `pool5`).
    pub name: String,
    /// What it computes.
    pub kind: LayerKind,
    /// Block, 1-based.
    pub block: usize,
}

/// The full table, in network order.
pub fn table() -> &'static [Layer] {
    use std::sync::OnceLock;
    static TABLE: OnceLock<Vec<Layer>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut layers = Vec::new();
        let mut conv = 0;
        for (b, &n) in CONVS_PER_BLOCK.iter().enumerate() {
            let block = b + 1;
            for i in 1..=n {
                for (name, kind) in [
                    (format!("conv{block}_{i}"), LayerKind::Conv { conv }),
                    (format!("relu{block}_{i}"), LayerKind::Relu { conv }),
                ] {
                    layers.push(Layer {
                        id: LayerId(layers.len()),
                        name,
                        kind,
                        block,
                    });
                }
                conv += 1;
            }
            layers.push(Layer {
                id: LayerId(layers.len()),
                name: format!("pool{block}"),
                kind: LayerKind::Pool { block },
                block,
            });
        }
        layers
    })
}

/// The table row of convolution number `conv` (0-based).
fn conv_layer(conv: usize) -> &'static Layer {
    table()
        .iter()
        .find(|l| l.kind == LayerKind::Conv { conv })
        .expect("conv index out of range")
}

/// Name of convolution number `conv` (0-based) as `conv{b}_{i}`.
pub fn conv_name(conv: usize) -> &'static str {
    &conv_layer(conv).name
}

/// Block (1-based) of convolution number `conv` (0-based).
pub fn conv_block(conv: usize) -> usize {
    conv_layer(conv).block
}

impl LayerId {
    /// The layer's row of the table.
    pub fn layer(self) -> &'static Layer {
        &table()[self.0]
    }
    /// The canonical name (`relu4_2`).
    pub fn name(self) -> &'static str {
        &self.layer().name
    }
    /// What the layer computes.
    pub fn kind(self) -> LayerKind {
        self.layer().kind
    }
    /// Number of 2×2 pools applied before this layer's output (its
    /// resolution is the input's divided by `2^pools_before`... rounded down).
    pub fn pools_up_to(self) -> usize {
        table()[..=self.0]
            .iter()
            .filter(|l| matches!(l.kind, LayerKind::Pool { .. }))
            .count()
    }
    /// Output channels for a network whose blocks have these widths.
    pub fn channels(self, widths: [usize; 5]) -> usize {
        widths[self.layer().block - 1]
    }

    /// Parse a layer name: `conv4_2`, `relu4_2`, `pool4`, or a Keras alias
    /// `block4_conv2` (= `relu4_2`) / `block4_pool` (= `pool4`).
    pub fn parse(name: &str) -> Result<LayerId> {
        let n = name.trim().to_ascii_lowercase();
        let canonical = match keras_alias(&n) {
            Some(c) => c,
            None => n.clone(),
        };
        table()
            .iter()
            .find(|l| l.name == canonical)
            .map(|l| l.id)
            .ok_or_else(|| Error::Layer {
                name: name.trim().to_string(),
                hint: "expected conv{b}_{i}, relu{b}_{i}, pool{b} or block{b}_conv{i} \
                       (run `neural-style layers` for the list)"
                    .into(),
            })
    }
}

fn keras_alias(n: &str) -> Option<String> {
    let rest = n.strip_prefix("block")?;
    let (b, what) = rest.split_once('_')?;
    let b: usize = b.parse().ok()?;
    if what == "pool" {
        return Some(format!("pool{b}"));
    }
    let i: usize = what.strip_prefix("conv")?.parse().ok()?;
    Some(format!("relu{b}_{i}"))
}

impl fmt::Display for LayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parse a comma-separated list of layer names (empty entries are errors).
pub fn parse_list(list: &str) -> Result<Vec<LayerId>> {
    list.split(',').map(LayerId::parse).collect()
}

/// Spatial size of a layer's output for an input of `h×w` (each pool halves, rounding down).
pub fn output_hw(layer: LayerId, h: usize, w: usize) -> (usize, usize) {
    let p = layer.pools_up_to();
    (h >> p, w >> p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shape() {
        let t = table();
        assert_eq!(t.len(), 2 * NUM_CONVS + 5);
        assert_eq!(t[0].name, "conv1_1");
        assert_eq!(t[1].name, "relu1_1");
        assert_eq!(t[4].name, "pool1");
        assert_eq!(t.last().unwrap().name, "pool5");
        assert_eq!(conv_name(15), "conv5_4");
        assert_eq!(conv_name(9), "conv4_2");
    }

    #[test]
    fn names_and_aliases() {
        let r42 = LayerId::parse("relu4_2").unwrap();
        assert_eq!(r42.kind(), LayerKind::Relu { conv: 9 });
        assert_eq!(LayerId::parse("block4_conv2").unwrap(), r42);
        assert_eq!(LayerId::parse(" RELU4_2 ").unwrap(), r42);
        assert_eq!(
            LayerId::parse("conv4_2").unwrap().kind(),
            LayerKind::Conv { conv: 9 }
        );
        assert_eq!(
            LayerId::parse("block5_pool").unwrap(),
            LayerId::parse("pool5").unwrap()
        );
        assert_eq!(LayerId::parse("pool4").unwrap().pools_up_to(), 4);
        assert_eq!(r42.pools_up_to(), 3);
        assert_eq!(r42.channels(VGG19_WIDTHS), 512);
    }

    #[test]
    fn bad_names_are_errors_naming_the_layer() {
        for bad in ["relu6_1", "conv1_3", "block1_conv3", "pool0", "", "relu4-2"] {
            let e = LayerId::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
        assert!(parse_list("relu1_1,,relu2_1").is_err());
        assert_eq!(parse_list("relu1_1,block2_conv1").unwrap().len(), 2);
    }
}
