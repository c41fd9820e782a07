//! `cargo xtask api [--bless]` (run by `cargo xtask lint`): the library's
//! public items, as rustdoc lists them for a program that depends on
//! `neural-style` (default features, so without the binary's `cli` feature),
//! are exactly those in `docs/api.txt`. A change to the API is then a change
//! to that file, seen in review; `--bless` rewrites it.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

/// The committed list, one item path per line.
const LIST: &str = "docs/api.txt";

/// Check (or, with `bless`, rewrite) the list.
pub fn main(root: &Path, cargo: Command, bless: bool) -> Result<()> {
    let items = documented_items(root, cargo)?;
    let listed = root.join(LIST);
    let text = format!(
        "# The library's public items (`cargo doc -p neural-style`, default features);\n\
         # checked by `cargo xtask lint`, rewritten by `cargo xtask api --bless`.\n{}\n",
        items.join("\n")
    );
    if bless {
        std::fs::write(&listed, text).with_context(|| format!("writing {}", listed.display()))?;
        eprintln!("api: {} items written to {LIST}", items.len());
        return Ok(());
    }
    let committed = std::fs::read_to_string(&listed).with_context(|| {
        format!(
            "reading {} (create it with `cargo xtask api --bless`)",
            listed.display()
        )
    })?;
    let want: Vec<&str> = committed
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    let added: Vec<&String> = items
        .iter()
        .filter(|i| !want.contains(&i.as_str()))
        .collect();
    let removed: Vec<&&str> = want
        .iter()
        .filter(|w| !items.iter().any(|i| i == *w))
        .collect();
    if added.is_empty() && removed.is_empty() {
        eprintln!(
            "api: the library's {} public items are those in {LIST}",
            items.len()
        );
        return Ok(());
    }
    for a in &added {
        eprintln!("api: new public item not in {LIST}: {a}");
    }
    for r in &removed {
        eprintln!("api: {LIST} lists an item the library no longer has: {r}");
    }
    bail!("the library's public API changed: review it, then `cargo xtask api --bless`")
}

/// Build the root crate's docs and read the index of every item rustdoc
/// writes (`all.html`), sorted.
fn documented_items(root: &Path, mut cargo: Command) -> Result<Vec<String>> {
    let status = cargo
        .args(["doc", "--package", "neural-style", "--no-deps", "--quiet"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .status()?;
    if !status.success() {
        bail!("cargo doc --package neural-style failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let index = target.join("doc/neural_style/all.html");
    let html =
        std::fs::read_to_string(&index).with_context(|| format!("reading {}", index.display()))?;
    let items = parse_index(&html);
    if items.is_empty() {
        bail!(
            "{}: no items found (has rustdoc's page changed?)",
            index.display()
        );
    }
    Ok(items)
}

/// The item paths of rustdoc's `all.html`: the text of each
/// `<li><a href="…">path</a></li>` whose link is a page (the sidebar's
/// section links, `href="#structs"`, are not items).
fn parse_index(html: &str) -> Vec<String> {
    let mut items: Vec<String> = html
        .split("<li><a href=\"")
        .skip(1)
        .filter(|rest| !rest.starts_with('#'))
        .filter_map(|rest| {
            let text = rest.split_once("\">")?.1;
            let (name, after) = text.split_once("</a>")?;
            after.starts_with("</li>").then(|| name.to_string())
        })
        .collect();
    items.sort();
    items.dedup();
    items
}

#[cfg(test)]
mod tests {
    use super::parse_index;

    #[test]
    fn reads_rustdocs_index() {
        let html = r##"<li><a href="#structs">Structs</a></li><h3 id="structs">Structs</h3><ul class="all-items"><li><a href="struct.Painter.html">Painter</a></li><li><a href="backends/struct.Selection.html">backends::Selection</a></li></ul><a href="x">not an item</a>"##;
        assert_eq!(parse_index(html), ["Painter", "backends::Selection"]);
    }
}
