//! Stop requests. The first SIGINT (Ctrl-C), SIGTERM (what `timeout`,
//! Slurm, Kubernetes and systemd send before killing) or SIGHUP asks the run
//! to finish its iteration and save what it has; the process then exits with
//! 128 + the signal number: 130, 143 or 129 ([`exit_code`]). A second signal
//! quits at once with that code.
//!
//! The handler only sets atomics and writes a fixed message with `write(2)`
//! (both async-signal-safe); the run polls [`flag`] between iterations.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;

static STOP: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// What the handler prints after the signal's name (unless quiet).
static MESSAGE: OnceLock<Vec<u8>> = OnceLock::new();

/// The flag the run polls: set by the first stop signal, or by [`request_stop`].
pub(crate) fn flag() -> &'static AtomicBool {
    &STOP
}

/// Ask the run to stop after its iteration, as a signal would (used when a
/// log cannot be written).
pub(crate) fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// The stop signal received, if any.
pub(crate) fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The exit code of a run stopped by a signal: 128 + its number (130 for
/// SIGINT, 143 for SIGTERM, 129 for SIGHUP); 130 when no signal was seen.
pub(crate) fn exit_code() -> ExitCode {
    ExitCode::from((128 + received().unwrap_or(2)) as u8)
}

/// Install the handlers; `what` says what happens to the work in flight
/// (printed, unless `quiet`, when the first signal arrives).
pub(crate) fn install(quiet: bool, what: &str) {
    if !quiet {
        let _ = MESSAGE.set(
            format!(": finishing this iteration; {what} (signal again to quit now)\n").into_bytes(),
        );
    }
    imp::install();
}

#[cfg(unix)]
mod imp {
    use super::{MESSAGE, SIGNAL, STOP};
    use std::sync::atomic::Ordering;

    fn write_stderr(bytes: &[u8]) {
        // SAFETY: write(2) on a valid buffer; async-signal-safe.
        unsafe {
            libc::write(2, bytes.as_ptr().cast(), bytes.len());
        }
    }

    extern "C" fn on_signal(sig: libc::c_int) {
        let name: &[u8] = match sig {
            libc::SIGINT => b"\ninterrupted (Ctrl-C)",
            libc::SIGTERM => b"\nterminated (SIGTERM)",
            libc::SIGHUP => b"\nhung up (SIGHUP)",
            _ => b"\nstopped",
        };
        if STOP.swap(true, Ordering::SeqCst) && SIGNAL.load(Ordering::SeqCst) != 0 {
            write_stderr(name);
            write_stderr(b" again: quitting without saving\n");
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(128 + sig) }
        }
        SIGNAL.store(sig, Ordering::SeqCst);
        if let Some(m) = MESSAGE.get() {
            write_stderr(name);
            write_stderr(m);
        }
    }

    pub(crate) fn install() {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: a zeroed sigaction is valid; the handler only touches
            // atomics and calls async-signal-safe functions.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    }
}

#[cfg(not(unix))]
mod imp {
    use super::{MESSAGE, SIGNAL, STOP};
    use std::sync::atomic::Ordering;

    pub(crate) fn install() {
        let _ = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) && SIGNAL.load(Ordering::SeqCst) != 0 {
                crate::flags::err_line("\ninterrupted again: quitting without saving");
                std::process::exit(130);
            }
            SIGNAL.store(2, Ordering::SeqCst);
            if let Some(m) = MESSAGE.get() {
                crate::flags::err_line(&format!(
                    "\ninterrupted{}",
                    String::from_utf8_lossy(m).trim_end()
                ));
            }
        });
    }
}
