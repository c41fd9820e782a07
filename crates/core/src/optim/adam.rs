//! Adam (Kingma & Ba), the standard algorithm with bias correction.

use super::{Optimizer, Step};
use crate::backend::{AdamCoeffs, VecOps};
use crate::error::Result;

/// Adam's hyper-parameters (Kingma & Ba; PyTorch's defaults but the step size).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Step size on caffe-space pixels (10 is typical for style transfer).
    pub lr: f64,
    /// Decay of the first-moment (mean) estimate.
    pub beta1: f64,
    /// Decay of the second-moment estimate.
    pub beta2: f64,
    /// Added to `√v̂` so that the step stays finite where `v` is zero.
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 10.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Adam over a backend's vectors: the moments live on the device.
pub struct Adam<V> {
    cfg: AdamConfig,
    t: i32,
    moments: Option<(V, V)>,
}

impl<V> Adam<V> {
    /// A fresh optimiser (moments zero, step 0).
    pub fn new(cfg: AdamConfig) -> Self {
        Adam {
            cfg,
            t: 0,
            moments: None,
        }
    }
}

impl<O: VecOps> Optimizer<O> for Adam<O::Vector> {
    fn name(&self) -> &'static str {
        "adam"
    }

    fn update(&mut self, ops: &O, x: &mut O::Vector, _loss: f64, g: &O::Vector) -> Result<Step> {
        if self.moments.is_none() {
            self.moments = Some((ops.zeros_like(g)?, ops.zeros_like(g)?));
        }
        let (m, v) = self.moments.as_mut().expect("initialised above");
        self.t += 1;
        let c = self.cfg;
        let coeffs = AdamCoeffs {
            lr: c.lr,
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            bias1: 1.0 - c.beta1.powi(self.t),
            bias2: 1.0 - c.beta2.powi(self.t),
        };
        ops.adam_update(x, g, m, v, coeffs)?;
        Ok(Step::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn first_step_moves_each_coordinate_by_lr() {
        // With bias correction, step 1 is lr·sign(g) (up to ε).
        let mut adam = Adam::new(AdamConfig {
            lr: 0.5,
            ..Default::default()
        });
        let mut x = vec![0.0, 0.0];
        Optimizer::<HostOps>::update(&mut adam, &HostOps, &mut x, 0.0, &vec![3.0, -0.01]).unwrap();
        assert!(
            (x[0] + 0.5).abs() < 1e-6 && (x[1] - 0.5).abs() < 1e-4,
            "{x:?}"
        );
    }

    #[test]
    fn minimises_a_quadratic() {
        let mut adam = Adam::new(AdamConfig {
            lr: 0.05,
            ..Default::default()
        });
        let (x, loss, stop) = minimise(&mut adam, quadratic, vec![0.0; 10], 2000);
        assert!(stop.is_none());
        assert!(loss < 1e-6, "loss {loss}");
        assert!(x.iter().all(|v| (v - 1.0).abs() < 1e-3), "{x:?}");
    }

    #[test]
    fn minimises_rosenbrock() {
        let mut adam = Adam::new(AdamConfig {
            lr: 0.02,
            ..Default::default()
        });
        let (x, loss, _) = minimise(&mut adam, rosenbrock, vec![-1.2, 1.0], 20000);
        assert!(loss < 1e-4, "loss {loss} at {x:?}");
    }
}
