//! The module layering of ARCHITECTURE.md, enforced: every top-level module of the
//! daemon belongs to one layer, and a module may name (`crate::…`, or `super::…` from
//! a top-level file) only modules of lower layers. A new module must be given a layer
//! here, and an import that climbs fails this test with the file and line.

#![expect(
    clippy::unwrap_used,
    reason = "test code outside #[test] fns: an unreadable source tree must fail loudly"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bottom to top. `lib` is the crate root (its items, such as `Gateway`).
const LAYERS: &[(&str, &[&str])] = &[
    ("vocabulary", &["error", "endpoint", "caller", "lifecycle"]),
    ("metrics", &["metrics"]),
    ("logging", &["log_writer"]),
    ("telemetry", &["record"]),
    ("transport", &["client", "tls"]),
    ("state", &["state"]),
    ("export", &["export"]),
    ("relay", &["relay"]),
    ("upstream", &["upstream"]),
    ("services", &["auth", "cache", "catalog", "plugins"]),
    ("snapshot", &["snapshot"]),
    ("pipeline", &["pipeline"]),
    ("reload", &["reload"]),
    ("admin", &["admin"]),
    ("server", &["server"]),
    ("gateway", &["lib"]),
    ("cli", &["cli", "main"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// The top-level module a source file belongs to (`src/upstream/send.rs` → `upstream`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// Whether `file` is a top-level module file (its `super` is the crate root).
fn is_top_level(src: &Path, file: &Path) -> bool {
    let rel = file.strip_prefix(src).unwrap();
    let depth = rel.components().count();
    depth == 1 || (depth == 2 && rel.ends_with("mod.rs"))
}

/// The crate-level names a line of code refers to: `crate::x`, `crate::{x, y::z}`,
/// and `super::x` when `super` is the crate root. Names that are not modules are items
/// of the root (`lib`). Comments are skipped.
fn references(line: &str, super_is_root: bool, modules: &[String]) -> Vec<String> {
    let code = line.split("//").next().unwrap_or_default();
    let mut found = Vec::new();
    let mut prefixes = vec!["crate::"];
    if super_is_root {
        prefixes.push("super::");
    }
    for prefix in prefixes {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue; // `my_crate::`, `super::super::`…
            }
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .collect(),
                None => vec![rest],
            };
            for name in names {
                let head: String = name
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if head.is_empty() || head == "self" {
                    continue;
                }
                if modules.contains(&head) {
                    found.push(head);
                } else {
                    found.push("lib".to_owned());
                }
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every climbing import in `src`, as `file:line: module (layer) → module (layer)`.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let modules: Vec<String> = files
        .iter()
        .map(|f| module_of(src, f))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut problems = Vec::new();
    for m in &modules {
        if layer_of(m).is_none() {
            problems.push(format!("module `{m}` has no layer in tests/layers.rs"));
        }
    }
    for file in &files {
        let from = module_of(src, file);
        let Some(from_layer) = layer_of(&from) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        let super_is_root = is_top_level(src, file);
        for (n, line) in text.lines().enumerate() {
            for to in references(line, super_is_root, &modules) {
                if to == from {
                    continue;
                }
                let to_layer = layer_of(&to).unwrap_or(usize::MAX);
                if to_layer >= from_layer {
                    problems.push(format!(
                        "{}:{}: `{from}` ({}) imports `{to}` ({})",
                        file.display(),
                        n + 1,
                        LAYERS[from_layer].0,
                        LAYERS.get(to_layer).map_or("no layer", |l| l.0),
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn no_module_imports_from_its_own_or_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems = violations(&src);
    assert!(
        problems.is_empty(),
        "layering broken (see ARCHITECTURE.md):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_catches_a_lower_layer_importing_a_higher_one() {
    let dir = std::env::temp_dir().join(format!("switchyard-layers-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("upstream")).unwrap();
    let files = BTreeMap::from([
        (
            "lib.rs",
            "pub mod error;\npub mod upstream;\npub mod snapshot;\n",
        ),
        (
            "error.rs",
            "// crate::snapshot in a comment does not count\n",
        ),
        ("snapshot.rs", "use crate::upstream::Upstreams;\n"),
        (
            "upstream/mod.rs",
            "use crate::{error::GatewayError, snapshot::Snapshot};\n",
        ),
    ]);
    for (name, text) in &files {
        std::fs::write(src.join(name), text).unwrap();
    }
    let problems = violations(&src);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("`upstream` (upstream) imports `snapshot` (snapshot)"),
        "{problems:?}"
    );
}
