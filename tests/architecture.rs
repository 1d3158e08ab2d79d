//! The layering, kept by a test (see ARCHITECTURE.md): only the adapters (`src/http/`, which
//! holds the native routes and `http/compat/`, the state they share, and the server that
//! wires them) may know about HTTP. The domain and everything under it never import axum,
//! tower, the HTTP layer or the app state; and no source file grows past 400 lines.

use std::path::{Path, PathBuf};

/// The adapter layer, relative to `src/`: the only places that may use axum and the state.
const ADAPTERS: [&str; 4] = ["http/", "state.rs", "server.rs", "lib.rs"];

/// What a file below the adapters must never name.
const FORBIDDEN: [&str; 6] = [
    "axum",
    "tower",
    "crate::http",
    "crate::state",
    "AppState",
    "IntoResponse",
];

const MAX_LINES: usize = 400;

fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack: Vec<PathBuf> = vec![root.clone()];
    let mut files = Vec::new();
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            files.push((relative, std::fs::read_to_string(&path).unwrap()));
        }
    }
    assert!(files.len() > 20, "the source tree was not found");
    files
}

/// The code of a file without its comments (a comment may name anything) and without its
/// unit tests (a test may stand up an HTTP server to talk to).
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or(text);
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `word` stands in `code` as a whole path segment, not inside another identifier.
fn names(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + word.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

#[test]
fn nothing_below_the_http_adapters_imports_axum_the_http_layer_or_the_app_state() {
    let mut offences = Vec::new();
    for (path, text) in sources() {
        if ADAPTERS.iter().any(|a| path.starts_with(a)) {
            continue;
        }
        let code = code(&text);
        for word in FORBIDDEN {
            if names(&code, word) {
                offences.push(format!("src/{path} names `{word}`"));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "the domain must not know about HTTP (see ARCHITECTURE.md):\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_domain_check_would_catch_an_import_of_axum() {
    let offending = "use axum::Json;\nfn f() -> crate::http::error::AppError {}";
    assert!(names(&code(offending), "axum"));
    assert!(names(&code(offending), "crate::http"));
    assert!(!names(&code("// axum in a comment is fine"), "axum"));
    assert!(!names(&code("let axum_like = 1;"), "axum"));
}

#[test]
fn no_source_file_is_longer_than_400_lines() {
    let long: Vec<String> = sources()
        .into_iter()
        .filter(|(_, text)| text.lines().count() > MAX_LINES)
        .map(|(path, text)| format!("src/{path}: {} lines", text.lines().count()))
        .collect();
    assert!(long.is_empty(), "split these files:\n{}", long.join("\n"));
}
