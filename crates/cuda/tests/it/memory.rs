//! The cuda backend's memory management (host executor by default; see
//! `common`): copy-on-write of shared tensors and the buffer pool. Its
//! numerical agreement with the other backends is the generic parity suite's
//! job (the front-end's `tests/parity.rs`, `neural_style_core::testing::parity`).

use crate::common;

use neural_style_core::backend::{Backend, VecOps};
use neural_style_core::objective::{Loss, Objective};
use neural_style_core::testing::conformance::tiny_cases;
use neural_style_core::vgg::Vgg;

#[test]
fn vector_ops_never_corrupt_a_shared_clone() {
    let Some(cuda) = common::backend() else {
        return;
    };
    let x = cuda.upload(&[1.0, 2.0, 3.0], [1, 1, 3]).unwrap();
    let mut y = x.clone();
    cuda.scale(2.0, &mut y).unwrap();
    cuda.axpy(1.0, &x, &mut y).unwrap();
    assert_eq!(cuda.download(&x).unwrap(), vec![1.0, 2.0, 3.0]);
    assert_eq!(cuda.download(&y).unwrap(), vec![3.0, 6.0, 9.0]);
    let mut z = cuda.zeros_like(&x).unwrap();
    cuda.copy_from(&mut z, &y).unwrap();
    cuda.scale(0.5, &mut z).unwrap();
    assert_eq!(cuda.download(&y).unwrap(), vec![3.0, 6.0, 9.0]);
    assert_eq!(cuda.download(&z).unwrap(), vec![1.5, 3.0, 4.5]);
}

#[test]
fn buffers_are_reused_across_iterations() {
    let Some(cuda) = common::backend() else {
        return;
    };
    let case = tiny_cases().remove(0);
    let net = Vgg::new(cuda.clone(), &case.weights, case.spec.pooling).unwrap();
    let obj = Objective::new(&net, case.spec.clone(), &case.content, &case.styles).unwrap();
    let x = cuda.upload(&case.x.data, case.x.shape()).unwrap();
    obj.evaluate(&x).unwrap();
    let after_one = cuda.allocated_bytes();
    for _ in 0..3 {
        obj.evaluate(&x).unwrap();
    }
    assert_eq!(
        cuda.allocated_bytes(),
        after_one,
        "an iteration allocated device memory"
    );
}
