//! The source keeps its layers: each module imports only the modules below
//! it (ARCHITECTURE.md has the picture), and only the write path opens a
//! write transaction.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module and what it may use of the crate. Read bottom-up.
const LAYERS: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("storage", &["domain"]),
    ("db", &["domain"]),
    ("config", &["db", "storage", "domain"]),
    ("views", &["db", "storage", "domain"]),
    ("error", &["db", "storage", "domain"]),
    (
        "services",
        &["error", "views", "config", "db", "storage", "domain"],
    ),
    ("app", &["services", "config", "db", "storage", "domain"]),
    ("telemetry", &["config", "domain"]),
    ("auth", &["app", "services", "error", "db", "domain"]),
    // Routes reach the database only through services (and `state.db`).
    (
        "routes",
        &[
            "auth",
            "app",
            "services",
            "error",
            "views",
            "config",
            "storage",
            "domain",
            "telemetry",
        ],
    ),
    (
        "startup",
        &[
            "routes",
            "auth",
            "app",
            "services",
            "error",
            "views",
            "config",
            "db",
            "storage",
            "domain",
            "telemetry",
        ],
    ),
    (
        "cli",
        &["startup", "services", "config", "db", "domain", "telemetry"],
    ),
];

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

/// The top-level module a file belongs to (`src/db/pool.rs` → `db`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

fn sources() -> Vec<(String, PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| {
            (
                module_of(&src, &f),
                f.clone(),
                std::fs::read_to_string(&f).unwrap(),
            )
        })
        .collect()
}

#[test]
fn modules_import_only_downwards() {
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut violations = Vec::new();
    for (module, file, text) in sources() {
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(may_use) = allowed.get(module.as_str()) else {
            violations.push(format!(
                "{}: module `{module}` is not in LAYERS",
                file.display()
            ));
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            // Comments may name any module; code may not.
            if line.trim_start().starts_with("//") {
                continue;
            }
            for (at, _) in line.match_indices("crate::") {
                let used: String = line[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if used.is_empty() || used == module || may_use.contains(&used.as_str()) {
                    continue;
                }
                violations.push(format!(
                    "{}:{}: `{module}` uses `{used}`",
                    file.display(),
                    i + 1
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn only_the_write_path_opens_a_write_transaction() {
    let mut openers = Vec::new();
    for (module, file, text) in sources() {
        if module == "db" {
            continue;
        }
        if text.contains("write_transaction") {
            openers.push(
                file.strip_prefix(concat!(env!("CARGO_MANIFEST_DIR"), "/"))
                    .unwrap()
                    .display()
                    .to_string(),
            );
        }
    }
    assert_eq!(openers, vec!["src/services/write.rs".to_string()]);
}
