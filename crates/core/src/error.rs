//! One error type for the whole core. Every variant renders as a single line
//! that names the culprit (a file, an option, a layer) and, where there is
//! one, what to do about it.
//!
//! Options are named by their key (`style-weight`, as in a config file),
//! never by a command-line flag: a message cites an option in backticks
//! (`` `size` ``), and a command line maps those to its own flags.

use std::path::{Path, PathBuf};

/// Result alias used throughout the workspace.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with the culprit named (see the module docs).
///
/// Non-exhaustive: a match outside this crate keeps a wildcard arm, so a new
/// kind of failure is not a breaking change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// An image file that cannot be used (undecodable, empty, unsupported extension...).
    #[error("{}: {msg}", path.display())]
    Image {
        /// The file, or an in-memory image's label.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A weights file that is missing, corrupt or of the wrong shape.
    #[error("weights {}: {msg}", path.display())]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong with it, and how to get good weights.
        msg: String,
    },
    /// The weights could not be fetched; the message says how to get them by hand.
    #[error("{0}")]
    Fetch(String),
    /// An unknown or unusable layer name.
    #[error("unknown layer `{name}`: {hint}")]
    Layer {
        /// The name as given.
        name: String,
        /// The names that exist, or the nearest one.
        hint: String,
    },
    /// A bad option value or input: `option` is the option's key (`size`)
    /// or the role of an input or output (`content`, `job 3 output`).
    #[error("{option}: {msg}")]
    Config {
        /// The option's key or the input's role.
        option: String,
        /// What is wrong with its value.
        msg: String,
    },
    /// The backend failed (device, kernel, engine error).
    #[error("backend {backend}: {source}")]
    Backend {
        /// The backend's name.
        backend: String,
        /// Its error: the engine's own (its [`std::error::Error::source`]
        /// chain kept), or a message of the backend's.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The objective or its gradient stopped being finite.
    #[error("the loss became non-finite ({what}) at iteration {iteration}: lower `learning-rate` or the loss weights")]
    NonFinite {
        /// Which value (a loss part or the gradient).
        what: String,
        /// The iteration it happened at.
        iteration: usize,
    },
}

impl Error {
    /// A read or write of `path` failed.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
    /// The image `path` (or an in-memory image's label) cannot be used.
    pub fn image(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Image {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }
    /// The weights file `path` cannot be used.
    pub fn weights(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Weights {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }
    /// A bad value of `option` (its key, or an input's or output's role).
    pub fn config(option: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Config {
            option: option.into(),
            msg: msg.into(),
        }
    }
    /// The message, with a bad option's key cited (`` `size`: must be… ``)
    /// so that it can be recognised inside a longer message.
    pub fn cited(&self) -> String {
        match self {
            Error::Config { option, msg } => format!("{}: {msg}", cite(option)),
            e => e.to_string(),
        }
    }
    /// The backend `backend` failed, as `msg` says (a message of its own;
    /// for an engine's error value use [`Error::backend_source`], which keeps it).
    pub fn backend(backend: impl Into<String>, msg: impl std::fmt::Display) -> Self {
        Error::Backend {
            backend: backend.into(),
            source: msg.to_string().into(),
        }
    }
    /// The backend `backend` failed with the engine's error `source`, kept as
    /// this error's [`std::error::Error::source`] (the message is the same as
    /// [`Error::backend`]'s with `source` displayed).
    pub fn backend_source(
        backend: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Backend {
            backend: backend.into(),
            source: Box::new(source),
        }
    }
}

/// An option's key or a role as a message cites it: a single word in
/// backticks (`` `content` ``), a longer role (`job 3 output`) as it is.
pub fn cite(role: &str) -> String {
    if role.contains([' ', '`']) {
        role.to_string()
    } else {
        format!("`{role}`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_backend_error_keeps_its_source_and_its_message() {
        let io = std::io::Error::other("device lost");
        let e = Error::backend_source("cuda", io);
        assert_eq!(e.to_string(), "backend cuda: device lost");
        let source = e.source().expect("the engine's error is kept");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        let m = Error::backend("tch", "no such device");
        assert_eq!(m.to_string(), "backend tch: no such device");
        assert_eq!(m.source().unwrap().to_string(), "no such device");
    }
}
