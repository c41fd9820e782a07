//! When the picture is done: a stopping rule on the optimisation's own
//! progress.
//!
//! Every `window` iterations the loop hands the rule the best loss so far and
//! the best image so far (Caffe space: 0–255 units). The window is *calm*
//! when, since the previous check, the best loss fell by less than
//! `loss_decrease` (relative) **and** the best image changed by less than
//! `image_change` per value on average (mean absolute difference, in
//! 1/255ths). After `patience` calm windows in a row the run stops. The loss
//! alone is not enough (a flat loss can hide a picture still moving in its
//! flat directions), nor the image alone (L-BFGS can pause on a step that
//! moves nothing and then find a descent again); both together are what a
//! viewer calls "done". The defaults are strict: on the runs recorded by
//! `benches/early_stop.sh` (figures in `benches/history.md`) the picture at
//! 256 px still drifts by ~1/255 per 25 iterations at iteration 900, so any
//! rule that keeps the stopped picture within 3/255 of the 1000th
//! iteration's stops no sooner than ~900; these thresholds let those runs
//! reach their cap, and stop the ones that have truly settled.

/// The rule's thresholds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StopRule {
    /// Iterations per check (progress is measured over this many).
    pub window: usize,
    /// The best loss's relative decrease over a window below which it is flat.
    pub loss_decrease: f64,
    /// The best image's mean absolute change over a window (1/255ths) below
    /// which it is still.
    pub image_change: f64,
    /// Calm windows in a row before stopping.
    pub patience: usize,
}

impl Default for StopRule {
    fn default() -> Self {
        StopRule {
            window: 25,
            loss_decrease: 0.005,
            image_change: 0.5,
            patience: 2,
        }
    }
}

impl StopRule {
    /// The earliest iteration at which the rule can stop a run: the first
    /// check only records its point, `patience` calm windows follow.
    pub fn earliest(&self) -> usize {
        self.window * (self.patience + 1)
    }
}

/// The rule applied to one run: the point of the previous check and how many
/// calm windows in a row there have been.
#[derive(Clone, Debug)]
pub struct Watch {
    rule: StopRule,
    previous: Option<(f64, Vec<f32>)>,
    calm: usize,
}

/// What one check measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// The best loss's relative decrease since the previous check.
    pub loss_decrease: f64,
    /// The best image's mean absolute change since the previous check.
    pub image_change: f64,
    /// Calm windows in a row, this one included.
    pub calm: usize,
}

impl Watch {
    /// A watch with no check yet.
    pub fn new(rule: StopRule) -> Watch {
        Watch {
            rule,
            previous: None,
            calm: 0,
        }
    }

    /// Whether iteration `iteration` (1-based, of this run) is a check.
    pub fn due(&self, iteration: usize) -> bool {
        self.rule.window > 0 && iteration % self.rule.window == 0
    }

    /// Record the best loss and image at a check; `Some(why)` when the run
    /// should stop (why in words, for the user).
    pub fn check(&mut self, best_loss: f64, best: &[f32]) -> Option<String> {
        let progress = self.measure(best_loss, best)?;
        if progress.calm < self.rule.patience.max(1) {
            return None;
        }
        let n = self.rule.window;
        Some(format!(
            "the picture is done: over each of the last {} windows of {n} iterations the loss \
             fell less than {:.2} % and the image changed less than {:.2}/255 on average (last: \
             {:.3} %, {:.3}/255); `early-stop` false runs every iteration",
            progress.calm,
            self.rule.loss_decrease * 100.0,
            self.rule.image_change,
            progress.loss_decrease * 100.0,
            progress.image_change
        ))
    }

    /// Record a check and say what it measured (`None` at the first one).
    pub fn measure(&mut self, best_loss: f64, best: &[f32]) -> Option<Progress> {
        let previous = self.previous.replace((best_loss, best.to_vec()));
        let (loss, image) = previous?;
        let loss_decrease = if best_loss > 0.0 {
            (loss - best_loss) / best_loss
        } else {
            0.0
        };
        let image_change = mean_abs_diff(&image, best);
        let calm = loss_decrease < self.rule.loss_decrease && image_change < self.rule.image_change;
        self.calm = if calm { self.calm + 1 } else { 0 };
        Some(Progress {
            loss_decrease,
            image_change,
            calm: self.calm,
        })
    }
}

/// Mean absolute difference of two equally long slices (0 when empty; a
/// length mismatch compares the common part).
pub fn mean_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    if n == 0 {
        return 0.0;
    }
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs())
        .sum();
    sum / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> StopRule {
        StopRule {
            window: 10,
            loss_decrease: 0.01,
            image_change: 0.5,
            patience: 2,
        }
    }

    #[test]
    fn stops_after_patience_calm_windows_and_not_before() {
        let mut w = Watch::new(rule());
        let img = vec![100.0f32; 12];
        assert!(w.check(100.0, &img).is_none(), "the first check records");
        assert!(w.check(99.5, &img).is_none(), "one calm window");
        let why = w.check(99.4, &img).expect("two calm windows stop");
        assert!(why.contains("the picture is done"), "{why}");
        assert!(why.contains("`early-stop`"), "{why}");
        assert_eq!(rule().earliest(), 30);
    }

    #[test]
    fn a_falling_loss_or_a_moving_image_is_not_calm() {
        let mut w = Watch::new(rule());
        let a = vec![100.0f32; 12];
        let moved = vec![101.0f32; 12];
        w.check(100.0, &a);
        // The loss falls 5 %: not calm, whatever the image.
        assert!(w.check(95.0, &a).is_none());
        // The image moves 1/255 per value on average: not calm.
        assert!(w.check(94.99, &moved).is_none());
        assert_eq!(w.calm, 0);
        // Calm, once: not yet.
        assert!(w.check(94.98, &moved).is_none());
        // A falling loss again resets the count.
        assert!(w.check(80.0, &moved).is_none());
        assert!(w.check(80.0, &moved).is_none());
        assert!(w.check(80.0, &moved).is_some());
    }

    #[test]
    fn checks_fall_on_multiples_of_the_window() {
        let w = Watch::new(rule());
        assert!(!w.due(1) && !w.due(9) && w.due(10) && w.due(20));
        let off = Watch::new(StopRule {
            window: 0,
            ..rule()
        });
        assert!(!off.due(0) && !off.due(10));
    }

    #[test]
    fn mean_abs_diff_is_the_mean_of_the_absolute_differences() {
        assert_eq!(mean_abs_diff(&[1.0, 2.0, 3.0], &[2.0, 2.0, 0.0]), 4.0 / 3.0);
        assert_eq!(mean_abs_diff(&[], &[]), 0.0);
    }
}
