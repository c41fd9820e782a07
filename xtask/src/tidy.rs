//! `cargo xtask tidy` (run by `cargo xtask lint`): every repository path and
//! every code symbol that the docs and the comments cite exists.
//!
//! * Docs: every `*.md` file. Comments: `//`, `///` and `//!` in `.rs`
//!   files; `#` in `.sh`, `.py` and `.toml` files.
//! * Paths: tokens, backticked or bare, that start with one of [`ROOTS`]
//!   (`src/`, `crates/`, `tests/`, …), possibly after `../`. One exists when
//!   it is found from the repository's root, from the citing file's crate
//!   (`src/lib.rs` in `crates/cuda/…` is `crates/cuda/src/lib.rs`) or from
//!   the citing file's folder (`../x` always from there). Not checked: URLs
//!   (a path inside one is not at a word's start), paths with a
//!   `<placeholder>`, a glob or a `{a,b}` in them, and what the root
//!   `.gitignore` ignores (generated files).
//! * The folder beside the repository that helpers share (`..` then
//!   `/shared`) is never to be cited: a citation of it is always reported.
//! * Symbols: backticked Rust paths, `a::b`, `a::b()`, `a::b(args)`. The last
//!   segment must be defined in one of the workspace's `.rs` files (as a fn,
//!   method, struct, enum, variant, field, trait, const, static, type, mod
//!   or macro), and every lower-case segment before it a crate or module of
//!   the workspace. Paths into other crates (`std::…`, `candle_core::…`, a
//!   type the workspace does not define) are not checked.

use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The folders a cited repository path starts with.
pub const ROOTS: &[&str] = &[
    "src/",
    "crates/",
    "tests/",
    "xtask/",
    "benches/",
    "docs/",
    "weights/",
    "examples/",
    ".ci/",
    ".cargo/",
];

/// Folders never read (build outputs, version control, caches).
const SKIP_DIRS: &[&str] = &["target", ".git", "node_modules", "__pycache__"];

/// One stale citation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// The citing file, relative to the root.
    pub file: String,
    pub line: usize,
    pub cited: String,
    pub why: &'static str,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: `{}`: {}",
            self.file, self.line, self.cited, self.why
        )
    }
}

/// `cargo xtask tidy`: fails, listing them, if any citation is stale.
pub fn main(root: &Path) -> Result<()> {
    let Checked {
        stale,
        paths,
        symbols,
    } = check(root)?;
    for s in &stale {
        eprintln!("{s}");
    }
    if !stale.is_empty() {
        bail!(
            "tidy: {} stale citation{} in docs and comments (listed above)",
            stale.len(),
            if stale.len() == 1 { "" } else { "s" }
        );
    }
    eprintln!("tidy: the {paths} paths and {symbols} symbols cited in docs and comments exist");
    Ok(())
}

/// What [`check`] found.
pub struct Checked {
    /// The stale citations, in file and line order.
    pub stale: Vec<Stale>,
    /// How many path and symbol citations were checked.
    pub paths: usize,
    pub symbols: usize,
}

/// The citations under `root`, checked.
pub fn check(root: &Path) -> Result<Checked> {
    let mut files = Vec::new();
    walk(root, root, &mut files)?;
    files.sort();
    let ignored = Ignore::read(root)?;
    let mut sources = Vec::new();
    let mut texts = Vec::new();
    for rel in &files {
        let kind = match rel.extension().and_then(|e| e.to_str()) {
            Some("md") => Kind::Markdown,
            Some("rs") => Kind::Rust,
            Some("sh" | "py" | "toml") => Kind::Hash,
            // A script without an extension (`.ci/run`), told by its `#!`.
            None => Kind::Script,
            _ => continue,
        };
        let path = root.join(rel);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(_) if kind == Kind::Script => continue, // not text
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let kind = match kind {
            Kind::Script if text.starts_with("#!") => Kind::Hash,
            Kind::Script => continue,
            kind => kind,
        };
        if kind == Kind::Rust {
            sources.push(text.clone());
        }
        texts.push((rel.clone(), kind, text));
    }
    let mut symbols = Symbols::from_sources(&sources);
    add_file_modules(&mut symbols, root, &files);
    let mut stale = Vec::new();
    let (mut paths, mut symbol_count) = (0, 0);
    for (rel, kind, text) in &texts {
        let file_crate = crate_of(root, rel);
        let file = rel.to_string_lossy().into_owned();
        // In Markdown, a heading that cites a crate's folder (`### `crates/cuda``)
        // makes that crate the one its section's paths are relative to.
        let mut section: Option<(usize, PathBuf)> = None;
        let mut fenced = false;
        for (i, prose) in prose_lines(*kind, text) {
            if *kind == Kind::Markdown && prose.starts_with("```") {
                fenced = !fenced;
            }
            if *kind == Kind::Markdown && !fenced && prose.starts_with('#') {
                let level = prose.chars().take_while(|c| *c == '#').count();
                let cited_crate = path_citations(prose)
                    .into_iter()
                    .map(|p| PathBuf::from(p.trim_end_matches('/')))
                    .find(|p| root.join(p).join("Cargo.toml").is_file());
                match cited_crate {
                    Some(dir) => section = Some((level, dir)),
                    None if section.as_ref().is_some_and(|(l, _)| level <= *l) => section = None,
                    None => {}
                }
            }
            let crate_dir = section.as_ref().map(|(_, d)| d).or(file_crate.as_ref());
            let mut report = |cited: &str, why| {
                stale.push(Stale {
                    file: file.clone(),
                    line: i + 1,
                    cited: cited.to_string(),
                    why,
                })
            };
            if prose.contains("../shared") {
                report("../shared", "outside this repository: never cite it");
            }
            for cited in path_citations(prose) {
                paths += 1;
                if !ignored.ignores(&cited)
                    && !path_exists(root, rel, crate_dir.map(PathBuf::as_path), &cited)
                {
                    report(&cited, "no such file or folder");
                }
            }
            for cited in symbol_citations(prose) {
                symbol_count += 1;
                if let Some(why) = symbols.stale(&cited) {
                    report(&cited, why);
                }
            }
        }
    }
    Ok(Checked {
        stale,
        paths,
        symbols: symbol_count,
    })
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading folder {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading folder {}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let file_type = entry
            .file_type()
            .with_context(|| format!("reading {}", path.display()))?;
        if file_type.is_dir() {
            let hidden = name.starts_with('.') && name != ".ci" && name != ".cargo";
            if !hidden && !SKIP_DIRS.contains(&&*name) {
                walk(root, &path, out)?;
            }
        } else if file_type.is_file() {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Markdown,
    Rust,
    /// `#` comments.
    Hash,
    /// No extension: a script if it starts with `#!`.
    Script,
}

/// The lines (index, text) of a file that are prose: all of a Markdown
/// file; the comments of the others.
fn prose_lines(kind: Kind, text: &str) -> Vec<(usize, &str)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let prose = match kind {
                Kind::Markdown => Some(line),
                Kind::Rust => comment(line, "//"),
                Kind::Hash | Kind::Script => comment(line, "#").filter(|c| !c.starts_with('!')),
            }?;
            Some((i, prose))
        })
        .collect()
}

/// The comment of `line` after `marker`: the whole line when it starts
/// with it, else after a ` marker ` outside a string literal.
fn comment<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    if let Some(rest) = line.trim_start().strip_prefix(marker) {
        return Some(rest);
    }
    let spaced = format!(" {marker} ");
    let mut from = 0;
    while let Some(at) = line[from..].find(&spaced) {
        let at = from + at;
        let quotes = line[..at].matches('"').count() - line[..at].matches("\\\"").count();
        if quotes.is_multiple_of(2) {
            return Some(&line[at + spaced.len()..]);
        }
        from = at + 1;
    }
    None
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

/// The repository paths cited in `prose`: tokens that start with one of
/// [`ROOTS`] (after any `../`) at a word's start, minus trailing
/// punctuation; placeholders, globs and brace lists are left out.
fn path_citations(prose: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut prev = ' ';
    let mut skip_to = 0;
    for (i, c) in prose.char_indices() {
        let at_start = i >= skip_to && !is_path_char(prev);
        prev = c;
        if !at_start {
            continue;
        }
        let mut j = i;
        while prose[j..].starts_with("../") {
            j += 3;
        }
        let Some(root) = ROOTS.iter().find(|r| prose[j..].starts_with(*r)) else {
            continue;
        };
        // Path characters are ASCII: `end` stays on a character boundary.
        let end = j + prose[j..]
            .find(|c: char| !is_path_char(c))
            .unwrap_or(prose.len() - j);
        skip_to = end;
        let next = prose[end..].chars().next().unwrap_or(' ');
        // `src/<name>.rs`, `tests/*.rs`, `src/{a,b}.rs`, `crates/$x`: not one path.
        let pattern = matches!(next, '<' | '*' | '{' | '$' | '[') || prose[j..end].contains("..");
        let token = prose[i..end].trim_end_matches(['.', ',', ':', ';', '-']);
        if !pattern && token.len() >= (j - i) + root.len() {
            out.push(token.to_string());
        }
    }
    out
}

/// The crate folder (one holding a `Cargo.toml`) that holds `rel`, below the root.
fn crate_of(root: &Path, rel: &Path) -> Option<PathBuf> {
    rel.ancestors()
        .skip(1)
        .filter(|a| !a.as_os_str().is_empty())
        .find(|a| root.join(a).join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
}

fn path_exists(root: &Path, rel: &Path, crate_dir: Option<&Path>, cited: &str) -> bool {
    let here = rel.parent().unwrap_or(Path::new(""));
    if cited.starts_with("../") {
        return root.join(here).join(cited).exists();
    }
    root.join(cited).exists()
        || crate_dir.is_some_and(|c| root.join(c).join(cited).exists())
        || root.join(here).join(cited).exists()
}

/// The root `.gitignore`'s patterns: a cited path they match is generated,
/// not checked.
struct Ignore(Vec<String>);

impl Ignore {
    fn read(root: &Path) -> Result<Ignore> {
        let path = root.join(".gitignore");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Ignore(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
                .map(str::to_string)
                .collect(),
        ))
    }

    fn ignores(&self, cited: &str) -> bool {
        let cited = cited.trim_end_matches('/');
        self.0.iter().any(|pattern| {
            let p = pattern.trim_end_matches('/');
            match p.strip_prefix('/') {
                // Anchored: the path or a folder above it.
                Some(anchored) => {
                    let segments = anchored.split('/').count();
                    let head: Vec<&str> = cited.split('/').take(segments).collect();
                    head.len() == segments && glob(anchored, &head.join("/"))
                }
                // A name anywhere.
                None => cited.split('/').any(|seg| glob(p, seg)),
            }
        })
    }
}

/// `*` matches any run of characters but `/`.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|&k| rest.is_char_boundary(k) && !rest[..k].contains('/'))
                .any(|k| glob(tail, &rest[k..]))
        }
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The Rust paths cited in backticks: `a::b`, `a::b()`, `a::b(x, y)`.
fn symbol_citations(prose: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut parts = prose.split('`');
    parts.next(); // before the first backtick
    while let Some(code) = parts.next() {
        parts.next(); // prose between two code spans
        let path = match code.find('(') {
            Some(at) if code.ends_with(')') => &code[..at],
            Some(_) => continue,
            None => code,
        };
        let segments: Vec<&str> = path.split("::").collect();
        if segments.len() >= 2 && segments.iter().all(|s| is_ident(s)) {
            out.push(path.to_string());
        }
    }
    out
}

/// What the workspace's `.rs` files define.
struct Symbols {
    /// Items, variants, fields and methods by name.
    items: HashSet<String>,
    /// Modules (declared with `mod`, or files and folders), crates
    /// (`neural_style_core`) and the path keywords (`crate`, `self`…).
    modules: HashSet<String>,
    /// The crates the workspace depends on (`image`, `candle_core`), and `std`.
    external: HashSet<String>,
}

const ITEM_KEYWORDS: &[&str] = &[
    "fn",
    "struct",
    "enum",
    "trait",
    "const",
    "static",
    "type",
    "mod",
    "union",
    "macro_rules!",
];

impl Symbols {
    fn from_sources(sources: &[String]) -> Symbols {
        let mut items = HashSet::new();
        let mut modules: HashSet<String> = ["crate", "self", "super", "Self"]
            .into_iter()
            .map(String::from)
            .collect();
        for text in sources {
            // Depth of `{`, and the depths at which a struct's or enum's
            // body is open (its lines' first identifier is a field or variant).
            let mut depth = 0usize;
            let mut bodies: Vec<usize> = Vec::new();
            let mut pending_body = false;
            for line in text.lines() {
                let code = line.split("//").next().unwrap_or("");
                let words: Vec<&str> = code
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '!'))
                    .filter(|w| !w.is_empty())
                    .collect();
                // `name: Type` starting a line: a field (also one declared
                // in a macro's input, as the options are).
                let trimmed = code.trim_start().trim_start_matches("pub ");
                if let Some((name, rest)) = trimmed.split_once(':') {
                    if is_ident(name) && !rest.starts_with(':') {
                        items.insert(name.to_string());
                    }
                }
                if bodies.last() == Some(&depth) {
                    let first = words
                        .iter()
                        .find(|w| !matches!(**w, "pub" | "crate" | "super" | "in" | "self"));
                    if let Some(first) = first.filter(|w| is_ident(w)) {
                        items.insert(first.to_string());
                    }
                }
                for pair in words.windows(2) {
                    if ITEM_KEYWORDS.contains(&pair[0]) && is_ident(pair[1]) {
                        items.insert(pair[1].to_string());
                        if pair[0] == "mod" {
                            modules.insert(pair[1].to_string());
                        }
                        if matches!(pair[0], "struct" | "enum" | "union") {
                            pending_body = true;
                        }
                    }
                }
                for c in code.chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            if pending_body {
                                bodies.push(depth);
                                pending_body = false;
                            }
                        }
                        '}' => {
                            if bodies.last() == Some(&depth) {
                                bodies.pop();
                            }
                            depth = depth.saturating_sub(1);
                        }
                        ';' => pending_body = false,
                        _ => {}
                    }
                }
            }
        }
        let external = ["std", "core", "alloc"]
            .into_iter()
            .map(String::from)
            .collect();
        Symbols {
            items,
            modules,
            external,
        }
    }

    /// Also the crates (`neural-style-core` → `neural_style_core`) and the
    /// files and folders that are modules (`src/backends.rs` → `backends`).
    fn add_module(&mut self, name: &str) {
        self.modules.insert(name.replace('-', "_"));
    }

    /// Why the cited path is stale, or `None`: it exists or is not ours.
    fn stale(&self, cited: &str) -> Option<&'static str> {
        let segments: Vec<&str> = cited.split("::").collect();
        let (last, heads) = segments.split_last()?;
        let first = heads[0];
        if self.external.contains(first) {
            return None;
        }
        let ours = self.modules.contains(first) || self.items.contains(first);
        if !ours {
            return None; // `std::…`, `candle_core::…`, `Vec::new`
        }
        for head in heads {
            let lower = head.starts_with(|c: char| c.is_ascii_lowercase());
            if lower && !self.modules.contains(*head) && !self.items.contains(*head) {
                return Some("no such module in the workspace");
            }
        }
        if self.items.contains(*last) || self.modules.contains(*last) {
            None
        } else {
            Some("not defined in the workspace")
        }
    }
}

/// Adds the modules that are files and folders, and the crates, under `root`.
fn add_file_modules(symbols: &mut Symbols, root: &Path, files: &[PathBuf]) {
    for rel in files {
        if rel.file_name().is_some_and(|n| n == "Cargo.toml") {
            let text = std::fs::read_to_string(root.join(rel)).unwrap_or_default();
            let mut dependencies = false;
            for line in text.lines().map(str::trim) {
                if line.starts_with('[') {
                    dependencies = line.contains("dependencies");
                } else if let Some(name) = line.strip_prefix("name = \"") {
                    symbols.add_module(name.trim_end_matches('"'));
                } else if dependencies {
                    // `name = …`, `name.workspace = true`
                    let name = line.split(['=', '.', ' ']).next().unwrap_or("");
                    if is_ident(&name.replace('-', "_")) && !name.starts_with("neural") {
                        symbols.external.insert(name.replace('-', "_"));
                    }
                }
            }
        }
        // `crates/cli/src/serve/mod.rs` declares `serve`, `crates/core/src/optim/lbfgs/batched.rs`
        // `optim`, `lbfgs` and `batched`.
        if rel.extension().is_some_and(|e| e == "rs") {
            let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
            if let Some(src) = parts.iter().position(|p| *p == "src") {
                for part in &parts[src + 1..] {
                    symbols.add_module(part.trim_end_matches(".rs"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_found_backticked_or_bare_and_patterns_are_not() {
        assert_eq!(
            path_citations(
                "see `src/lib.rs`, crates/cuda/src/lib.rs: and (../weights/README.md). \
                 Not https://example.org/x/src/lib.rs, src/<name>.rs, tests/*.rs, \
                 src/{a,b}.rs, my/src/x.rs, `src/` itself."
            ),
            [
                "src/lib.rs",
                "crates/cuda/src/lib.rs",
                "../weights/README.md",
                "src/"
            ]
        );
    }

    #[test]
    fn symbols_are_backticked_rust_paths() {
        assert_eq!(
            symbol_citations(
                "`backends::list()`, `Painter::style_masked`, `a::b(x, y)`, `list()`, \
                 `cargo xtask test`, `Vec::<u8>::new`, `x::y`"
            ),
            ["backends::list", "Painter::style_masked", "a::b", "x::y"]
        );
    }

    #[test]
    fn comments_are_the_prose_of_code() {
        assert_eq!(comment("    //! crate doc", "//"), Some("! crate doc"));
        assert_eq!(
            comment("let a = 1; // see src/a.rs", "//"),
            Some("see src/a.rs")
        );
        assert_eq!(comment(r#"let u = "http://x // y";"#, "//"), None);
        assert_eq!(comment("x = 1 # toml note", "#"), Some("toml note"));
    }

    #[test]
    fn gitignored_paths_are_generated() {
        let ignore = Ignore(vec![
            "/target".into(),
            "/weights/*.safetensors".into(),
            "*.partial".into(),
        ]);
        assert!(ignore.ignores("weights/vgg19.safetensors"));
        assert!(ignore.ignores("weights/a/b.partial"));
        assert!(!ignore.ignores("weights/README.md"));
    }

    /// A small workspace: a root crate, a member crate, docs and comments.
    fn tree(readme: &str) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "xtask-tidy-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&root);
        let files: &[(&str, &str)] = &[
            (
                "Cargo.toml",
                "[package]\nname = \"front-end\"\n# `backends::list()` lists them\n",
            ),
            (".gitignore", "/target\n/weights/*.safetensors\n"),
            (
                "src/lib.rs",
                "//! See `docs/DESIGN.md`.\npub mod backends;\n",
            ),
            (
                "src/backends.rs",
                "/// What this build has (`crate::backends::Backend::Candle`).\n\
                 pub fn list() {}\npub enum Backend {\n    Candle,\n    Tch(u8),\n}\n",
            ),
            ("crates/kit/Cargo.toml", "[package]\nname = \"kit\"\n"),
            (
                "crates/kit/src/lib.rs",
                "//! Checked against `src/reference.rs` (this crate's) and\n\
                 //! `tests/reference/objective.py` (the root's).\nmod reference;\n",
            ),
            (
                "crates/kit/src/reference.rs",
                "pub struct Reference {\n    pub loss: f64,\n}\n",
            ),
            (
                "tests/reference/objective.py",
                "# the f64 objective; see weights/vgg19.safetensors\n",
            ),
            (
                "docs/DESIGN.md",
                "Weights: [`weights/README.md`](../weights/README.md).\n",
            ),
            (
                "weights/README.md",
                "`kit::reference::Reference::loss`, `std::env::var`\n",
            ),
            ("target/debug/x.md", "`src/missing.rs`\n"),
            ("README.md", readme),
        ];
        for (path, text) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        root
    }

    #[test]
    fn a_clean_tree_passes() {
        let root = tree("Run `cargo xtask test`; `backends::list()`, src/backends.rs.\n");
        assert_eq!(check(&root).unwrap().stale, []);
        main(&root).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_planted_stale_citation_fails() {
        let root = tree(
            "Line one.\n`backends::available()` and benches/bench_torch.py;\n\
             kit's `src/backends.rs` is the root's; ../shared/notes.md\n",
        );
        let cited: Vec<(String, usize, String)> = check(&root)
            .unwrap()
            .stale
            .into_iter()
            .map(|s| (s.file, s.line, s.cited))
            .collect();
        assert_eq!(
            cited,
            [
                ("README.md".into(), 2, "benches/bench_torch.py".into()),
                ("README.md".into(), 2, "backends::available".into()),
                ("README.md".into(), 3, "../shared".into()),
            ]
        );
        let e = main(&root).unwrap_err().to_string();
        assert!(e.contains("3 stale citations"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_crate_s_own_paths_are_its_own() {
        let root = tree("ok\n");
        let lib = root.join("crates/kit/src/lib.rs");
        let text = std::fs::read_to_string(&lib).unwrap();
        std::fs::write(
            &lib,
            format!("{text}// and `src/backends.rs`, which kit lacks\n"),
        )
        .unwrap();
        // The root has src/backends.rs: found from the root, not stale.
        assert_eq!(check(&root).unwrap().stale, []);
        std::fs::write(&lib, format!("{text}// `src/gone.rs`\n")).unwrap();
        let stale = check(&root).unwrap().stale;
        assert_eq!(stale.len(), 1, "{stale:?}");
        assert_eq!(stale[0].file, "crates/kit/src/lib.rs");
        assert_eq!(stale[0].cited, "src/gone.rs");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_script_s_comments_are_read_not_its_commands() {
        let root = tree("ok\n");
        std::fs::create_dir_all(root.join(".ci")).unwrap();
        std::fs::write(
            root.join(".ci/run"),
            "#!/usr/bin/env bash\n# runs src/gone.sh\nbash src/also-gone.sh # and src/backends.rs\n",
        )
        .unwrap();
        let stale = check(&root).unwrap().stale;
        assert_eq!(stale.len(), 1, "{stale:?}");
        assert_eq!((&*stale[0].file, stale[0].line), (".ci/run", 2));
        assert_eq!(stale[0].cited, "src/gone.sh");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
