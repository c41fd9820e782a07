//! L-BFGS's batched path, for backends where every reduction brought back to
//! the host costs a synchronisation ([`VecOps::batched`]): the same
//! algorithm as the per-operation path of `lbfgs.rs`, with the two-loop
//! recursion run on dot products instead of vectors ("vector-free" L-BFGS,
//! Chen, Wang, Zhou & Huang, NeurIPS 2014).
//!
//! The direction `d = −H g` is a linear combination of the basis
//! `s₀, y₀, …, s_{k−1}, y_{k−1}, g`, and the recursion only ever needs dot
//! products of basis vectors. Those between history vectors are kept here
//! ([`PairDots`]); each iteration needs only those of the new pair and of
//! the new gradient with the whole basis. So one iteration is: form the new
//! pair (two vector operations), [`VecOps::dots`] (the new rows plus `‖g‖₁`,
//! one copy back: the only synchronisation), the recursion on the host in
//! f64, then [`VecOps::combine`] (the direction in one pass) and one
//! `axpy` for `x` — a handful of launches whatever the history size, where
//! the per-operation path needs four per pair and a round trip per dot.
//!
//! Same rules as the per-operation path: pairs with `yᵀs ≤ 1e-10` are
//! skipped (the oldest pair is dropped first when the history is full),
//! `γ = sᵀy / yᵀy`, the history is forgotten when the direction is not a
//! descent direction, and the first step (and the step after a reset) is
//! scaled like `lbfgs.rs`'s. Rounding differs: the direction is formed once
//! from f64 coefficients instead of by 4k f32 vector updates.

use super::{is_descent, unusable, Lbfgs, Pair, Step};
use crate::backend::VecOps;
use crate::error::Result;
use std::collections::{HashMap, VecDeque};

/// Dot products between the history's vectors, by vector key
/// (`2·id` for a pair's `s`, `2·id + 1` for its `y`).
#[derive(Default)]
pub(super) struct PairDots {
    /// Ids of the pairs held, in the order of `Lbfgs::pairs`.
    ids: VecDeque<u64>,
    next: u64,
    dots: HashMap<(u64, u64), f64>,
}

impl PairDots {
    fn get(&self, a: u64, b: u64) -> f64 {
        self.dots[&(a.min(b), a.max(b))]
    }
    fn set(&mut self, a: u64, b: u64, v: f64) {
        self.dots.insert((a.min(b), a.max(b)), v);
    }
    fn pop_front(&mut self) {
        if let Some(id) = self.ids.pop_front() {
            self.dots.retain(|&(a, b), _| a / 2 != id && b / 2 != id);
        }
    }
    fn clear(&mut self) {
        self.ids.clear();
        self.dots.clear();
    }
}

impl<V: Clone> Lbfgs<V> {
    pub(super) fn update_batched<O: VecOps<Vector = V>>(
        &mut self,
        ops: &O,
        x: &mut V,
        g: &V,
    ) -> Result<Step> {
        // The candidate pair from the last move, in fresh buffers (the
        // history is only changed once the gradient has passed its checks).
        let new = match (&self.d, &self.g_prev) {
            (Some(d), Some(g_prev)) => {
                let mut y = g.clone();
                ops.axpy(-1.0, g_prev, &mut y)?;
                let mut s = d.clone();
                ops.scale(self.t, &mut s)?;
                Some((s, y))
            }
            _ => None,
        };
        let first = self.d.is_none();

        // Every dot product this iteration needs, and ‖g‖₁, in one call.
        let k = self.pairs.len();
        let mut cols: Vec<&V> = Vec::with_capacity(2 * k + 3);
        for p in &self.pairs {
            cols.push(&p.s);
            cols.push(&p.y);
        }
        let mut rows: Vec<&V> = Vec::with_capacity(3);
        if let Some((s, y)) = &new {
            rows.extend([s, y]);
            cols.extend([s, y]);
        }
        rows.push(g);
        cols.push(g);
        let (dots, g1) = ops.dots(&rows, &cols, g)?;
        let nc = cols.len();
        let row = |r: usize| &dots[r * nc..(r + 1) * nc];

        if let Some(stop) = unusable(g1) {
            return Ok(stop);
        }

        // g's dot products by vector key (history) and with itself.
        let g_row = row(rows.len() - 1);
        let mut g_dots: HashMap<u64, f64> = HashMap::new();
        for (p, id) in self.gram.ids.iter().enumerate() {
            g_dots.insert(2 * id, g_row[2 * p]);
            g_dots.insert(2 * id + 1, g_row[2 * p + 1]);
        }
        let gg = g_row[nc - 1];

        if let Some((s, y)) = new {
            let (s_row, y_row) = (row(0), row(1));
            let ys = s_row[2 * k + 1];
            let yy = y_row[2 * k + 1];
            if self.pairs.len() >= self.cfg.history {
                self.pairs.pop_front();
                self.gram.pop_front();
            }
            if ys > 1e-10 {
                let id = self.gram.next;
                self.gram.next += 1;
                let (ks, ky) = (2 * id, 2 * id + 1);
                for (p, old) in self.gram.ids.clone().iter().enumerate() {
                    // Column of pair `old` in this iteration's `cols`: the
                    // pairs held before any pop, so offset by the pops.
                    let c = 2 * (p + k - self.gram.ids.len());
                    self.gram.set(ks, 2 * old, s_row[c]);
                    self.gram.set(ks, 2 * old + 1, s_row[c + 1]);
                    self.gram.set(ky, 2 * old, y_row[c]);
                    self.gram.set(ky, 2 * old + 1, y_row[c + 1]);
                }
                self.gram.set(ks, ks, s_row[2 * k]);
                self.gram.set(ks, ky, ys);
                self.gram.set(ky, ky, yy);
                g_dots.insert(ks, g_row[2 * k]);
                g_dots.insert(ky, g_row[2 * k + 1]);
                self.gram.ids.push_back(id);
                self.hdiag = ys / yy;
                self.pairs.push_back(Pair {
                    s,
                    y,
                    rho: 1.0 / ys,
                });
            } else {
                self.skipped += 1;
            }
        }

        let (mut coeffs, mut gtd) = self.recursion(&g_dots, gg);
        // The first step's rule (`FirstStep`) reads ‖g‖₂², which the dots already hold.
        let first_step = self.cfg.first_step.length(g1, gg, self.cfg.lr);
        let mut t = if first { first_step } else { self.cfg.lr };
        if !is_descent(gtd) && !self.pairs.is_empty() {
            // As the per-operation path: forget the history, steepest descent.
            self.pairs.clear();
            self.gram.clear();
            self.hdiag = 1.0;
            self.resets += 1;
            (coeffs, gtd) = self.recursion(&g_dots, gg);
            t = first_step;
        }
        if !is_descent(gtd) {
            return Ok(Step::Stop(format!(
                "L-BFGS: no descent direction (gᵀd = {gtd:e}); the loss cannot be lowered further"
            )));
        }

        let mut basis: Vec<&V> = Vec::with_capacity(coeffs.len());
        for p in &self.pairs {
            basis.push(&p.s);
            basis.push(&p.y);
        }
        basis.push(g);
        let mut d = match self.d.take() {
            Some(d) => d,
            None => ops.zeros_like(g)?,
        };
        ops.combine(&coeffs, &basis, &mut d)?;
        ops.axpy(t, &d, x)?;
        self.t = t;
        self.d = Some(d);
        match &mut self.g_prev {
            Some(prev) => ops.copy_from(prev, g)?,
            None => self.g_prev = Some(g.clone()),
        }
        Ok(Step::Continue)
    }

    /// The two-loop recursion on coefficients over the basis
    /// `s₀, y₀, …, g`: returns them and `gᵀd`.
    fn recursion(&self, g_dots: &HashMap<u64, f64>, gg: f64) -> (Vec<f64>, f64) {
        let ids: Vec<u64> = self.gram.ids.iter().copied().collect();
        let k = ids.len();
        let key = |j: usize| 2 * ids[j / 2] + (j % 2) as u64;
        // (basis vector with key `a`) · d, d = Σ c_j b_j.
        let dot = |a: Option<u64>, c: &[f64]| -> f64 {
            let mut acc = 0.0;
            for (j, cj) in c[..2 * k].iter().enumerate() {
                if *cj != 0.0 {
                    acc += cj
                        * match a {
                            Some(a) => self.gram.get(a, key(j)),
                            None => g_dots[&key(j)],
                        };
                }
            }
            acc + c[2 * k]
                * match a {
                    Some(a) => g_dots[&a],
                    None => gg,
                }
        };
        let mut c = vec![0.0; 2 * k + 1];
        c[2 * k] = -1.0;
        let mut alpha = vec![0.0; k];
        for i in (0..k).rev() {
            alpha[i] = self.pairs[i].rho * dot(Some(2 * ids[i]), &c);
            c[2 * i + 1] -= alpha[i];
        }
        c.iter_mut().for_each(|v| *v *= self.hdiag);
        for i in 0..k {
            let beta = self.pairs[i].rho * dot(Some(2 * ids[i] + 1), &c);
            c[2 * i] += alpha[i] - beta;
        }
        let gtd = dot(None, &c);
        (c, gtd)
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::testing::*;
    use super::super::super::Optimizer;
    use super::super::{LbfgsConfig, Step};
    use super::*;
    use crate::backend::AdamCoeffs;

    /// [`HostOps`] taking the batched path (with the default `dots` and
    /// `combine`), so both paths run on the same vectors.
    struct Batched;
    impl VecOps for Batched {
        type Vector = Vec<f64>;
        fn dot(&self, a: &Vec<f64>, b: &Vec<f64>) -> Result<f64> {
            HostOps.dot(a, b)
        }
        fn norm1(&self, a: &Vec<f64>) -> Result<f64> {
            HostOps.norm1(a)
        }
        fn axpy(&self, alpha: f64, x: &Vec<f64>, y: &mut Vec<f64>) -> Result<()> {
            HostOps.axpy(alpha, x, y)
        }
        fn scale(&self, alpha: f64, x: &mut Vec<f64>) -> Result<()> {
            HostOps.scale(alpha, x)
        }
        fn zeros_like(&self, like: &Vec<f64>) -> Result<Vec<f64>> {
            HostOps.zeros_like(like)
        }
        fn adam_update(
            &self,
            x: &mut Vec<f64>,
            g: &Vec<f64>,
            m: &mut Vec<f64>,
            v: &mut Vec<f64>,
            c: AdamCoeffs,
        ) -> Result<()> {
            HostOps.adam_update(x, g, m, v, c)
        }
        fn batched(&self) -> bool {
            true
        }
    }

    /// Both paths from one start on `f`; the largest relative difference of
    /// the iterates over `iters` iterations, and both paths' (pairs held,
    /// skipped, resets).
    fn paths_agree(
        f: fn(&[f64]) -> (f64, Vec<f64>),
        x0: Vec<f64>,
        cfg: LbfgsConfig,
        iters: usize,
    ) -> (f64, [(usize, usize, usize); 2]) {
        let (mut a, mut b) = (Lbfgs::new(cfg), Lbfgs::new(cfg));
        let (mut xa, mut xb) = (x0.clone(), x0);
        let mut worst: f64 = 0.0;
        for _ in 0..iters {
            let (la, ga) = f(&xa);
            let (lb, gb) = f(&xb);
            let sa = Optimizer::<HostOps>::update(&mut a, &HostOps, &mut xa, la, &ga).unwrap();
            let sb = Optimizer::<Batched>::update(&mut b, &Batched, &mut xb, lb, &gb).unwrap();
            assert_eq!(sa, sb);
            if sa != Step::Continue {
                break;
            }
            let scale = xa.iter().map(|v| v.abs()).fold(1e-30, f64::max);
            let diff = xa
                .iter()
                .zip(&xb)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max);
            worst = worst.max(diff / scale);
        }
        (worst, [a.stats(), b.stats()])
    }

    #[test]
    fn batched_path_matches_the_per_operation_path() {
        // History full and recycled (history 3 over 40 iterations), and
        // history longer than the run.
        for history in [3, 100] {
            let cfg = LbfgsConfig {
                history,
                ..Default::default()
            };
            let (worst, [a, b]) = paths_agree(quadratic, vec![0.0; 30], cfg, 40);
            assert!(worst < 1e-9, "history {history}: {worst:e}");
            assert_eq!(a, b, "pairs held, skipped, resets");
        }
        let cfg = LbfgsConfig {
            history: 5,
            lr: 0.1,
            ..Default::default()
        };
        // Near the minimum `yᵀs` meets the 1e-10 skip threshold at rounding
        // level, where the paths may skip different pairs and part ways: the
        // comparison stops before (60 iterations).
        let (worst, _) = paths_agree(rosenbrock, vec![-1.2, 1.0], cfg, 60);
        assert!(worst < 1e-8, "rosenbrock: {worst:e}");
    }

    #[test]
    fn batched_path_converges_and_stops_like_the_other() {
        let mut opt = Lbfgs::new(LbfgsConfig::default());
        let mut x = vec![0.0; 50];
        let mut loss = f64::NAN;
        for _ in 0..300 {
            let (l, g) = quadratic(&x);
            loss = l;
            if Optimizer::<Batched>::update(&mut opt, &Batched, &mut x, l, &g).unwrap()
                != Step::Continue
            {
                break;
            }
        }
        assert!(loss < 1e-10, "loss {loss}");
        let mut opt = Lbfgs::new(LbfgsConfig::default());
        let mut x = vec![1.0; 4];
        let nan = vec![f64::NAN; 4];
        let stop = Optimizer::<Batched>::update(&mut opt, &Batched, &mut x, 0.0, &nan).unwrap();
        assert!(matches!(stop, Step::Stop(w) if w.contains("not finite")));
        assert_eq!(x, vec![1.0; 4], "x unchanged on a stop");
    }
}
