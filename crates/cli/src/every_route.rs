//! Every option of the one options model (`src/options/mod.rs` of the root
//! package) is reachable from
//! every route: as a flag of the binary, a `--config` key, a field of every
//! preset (overridable on top of it) and a batch `[defaults]` and `[[job]]`
//! key — each giving the same value — and `Options::to_cli_args` gives it
//! back. The options are enumerated from the model itself, so a new option
//! is checked without touching this test.
//!
//! A unit test of the binary's crate: it reaches the batch planner and the
//! binary's own command-line parser (whose `--help` it reads).

use clap::{CommandFactory, Parser};
use neural_style::options::{Files, Settings, StyleArgs};
use neural_style::{Options, Preset};
use std::path::Path;

/// The flags as the binary's commands take them (each flattens `StyleArgs`).
#[derive(Parser, Debug)]
struct Flags {
    #[command(flatten)]
    style: StyleArgs,
}

fn parse(args: &[String]) -> StyleArgs {
    let mut argv = vec!["neural-style".to_string()];
    argv.extend(args.iter().cloned());
    Flags::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
        .style
}

fn table(o: &Options) -> toml::Table {
    toml::Table::try_from(o).expect("options serialise to TOML")
}

/// `o` with `key` taken from `from`.
fn with_key(o: &Options, key: &str, from: &Options) -> Options {
    let mut t = table(o);
    match table(from).get(key) {
        Some(v) => t.insert(key.to_string(), v.clone()),
        None => t.remove(key),
    };
    t.try_into().expect("options deserialise")
}

/// One `key = value` line.
fn line(key: &str, o: &Options) -> String {
    let mut t = toml::Table::new();
    t.insert(key.into(), table(o)[key].clone());
    toml::to_string(&t).unwrap()
}

fn settings(dir: &Path, o: &Options) -> Settings {
    let mut o = o.clone();
    o.weights = o.weights.map(|w| dir.join(w));
    Settings::new(
        Files {
            content: dir.join("c.png"),
            styles: vec![dir.join("s.png")],
            ..Files::default()
        },
        &o,
    )
    .unwrap()
}

#[test]
fn every_option_is_a_flag_a_config_key_a_preset_field_and_a_batch_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let defaults = Options::default();
    let keys = Options::keys();
    // The model's keys are exactly the serialised fields.
    let mut every = Options::default();
    for (key, example) in &keys {
        every.apply(&parse(&[format!("--{key}={example}")]));
    }
    let mut serialised: Vec<String> = table(&every).keys().cloned().collect();
    let mut listed: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
    serialised.sort();
    listed.sort();
    assert_eq!(serialised, listed);

    // The binary's `--help`.
    let help = crate::with_defaults(crate::Cli::command())
        .render_long_help()
        .to_string();

    for (key, example) in &keys {
        // A flag of the binary, giving this option only, to a non-default value.
        assert!(help.contains(&format!("--{key} ")) || help.contains(&format!("--{key}[")));
        let flags = parse(&[format!("--{key}={example}")]);
        assert_eq!(Options::given(&flags), vec![key.clone()], "--{key}");
        let mut want = defaults.clone();
        want.apply(&flags);
        assert_ne!(want, defaults, "--{key}={example} is the default");
        // to_cli_args gives exactly that flag back.
        let back = want.to_cli_args();
        assert_eq!(back.len(), 1, "{key}: {back:?}");
        assert_eq!(parse(&back).options().unwrap(), want, "{key}: {back:?}");

        // A --config key.
        let cfg = d.join("c.toml");
        std::fs::write(&cfg, line(key, &want)).unwrap();
        let file = StyleArgs {
            config: Some(cfg.clone()),
            ..StyleArgs::default()
        };
        // A path in a config file is relative to the file's directory.
        let mut want_file = want.clone();
        if let (true, Some(w)) = (key == "weights", &want.weights) {
            want_file.weights = Some(d.join(w));
        }
        assert_eq!(file.options().unwrap(), want_file, "config key {key}");

        // A field of every preset, overridden by the flag and by the file.
        for p in Preset::ALL {
            let preset = Options::preset(p);
            let expect = with_key(&preset, key, &want);
            let mut flags = flags.clone();
            flags.preset = Some(p);
            assert_eq!(flags.options().unwrap(), expect, "{p:?} + --{key}");
            let from_file = StyleArgs {
                preset: Some(p),
                config: Some(cfg.clone()),
                ..StyleArgs::default()
            };
            assert_eq!(
                from_file.options().unwrap(),
                with_key(&preset, key, &want_file),
                "{p:?} + {key} in a file"
            );
        }

        // A batch [defaults] key and a [[job]] key.
        let job = "content = \"c.png\"\nstyle = [\"s.png\"]\noutput = \"o.png\"\n";
        for text in [
            format!("[defaults]\n{}\n[[job]]\n{job}", line(key, &want)),
            format!("[[job]]\n{job}{}", line(key, &want)),
        ] {
            let jobs_file = d.join("jobs.toml");
            std::fs::write(&jobs_file, &text).unwrap();
            let jobs = crate::batch::plan::plan(&jobs_file, &StyleArgs::default(), false)
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(jobs[0].settings, settings(d, &want), "{text}");
        }
    }
}
