//! The commands of the binary (the batch is `crate::batch`, the studio
//! `crate::serve`).

pub(crate) mod compare;
pub(crate) mod info;
pub(crate) mod loss;
pub(crate) mod paint;
#[cfg(feature = "video")]
pub(crate) mod video;
