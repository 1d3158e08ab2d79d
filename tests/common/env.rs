//! The environment variables Warren reads, for the checks of the deployment files
//! (docker-compose.yml, the Dockerfile, the Helm chart) against the code.

use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory;

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A file of the repository, by its path from the root.
pub fn read(name: &str) -> String {
    let path = Path::new(ROOT).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The `env` names of a command's arguments and its subcommands'.
pub fn clap_env(command: &clap::Command, out: &mut BTreeSet<String>) {
    for arg in command.get_arguments() {
        if let Some(name) = arg.get_env() {
            out.insert(name.to_string_lossy().into_owned());
        }
    }
    for sub in command.get_subcommands() {
        clap_env(sub, out);
    }
}

/// The names in `var("NAME")` / `var_os("NAME")` calls of a source text.
fn env_reads_in(text: &str, out: &mut BTreeSet<String>) {
    for call in ["var(\"", "var_os(\""] {
        for (i, _) in text.match_indices(call) {
            let rest = &text[i + call.len()..];
            if let Some(end) = rest.find('"') {
                out.insert(rest[..end].to_owned());
            }
        }
    }
    if text.contains("from_default_env") {
        // tracing-subscriber's EnvFilter reads RUST_LOG.
        out.insert("RUST_LOG".to_owned());
    }
}

/// The variables the code reads directly, outside clap.
pub fn read_by_the_code() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack = vec![Path::new(ROOT).join("src")];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else {
            env_reads_in(&std::fs::read_to_string(&path).unwrap(), &mut names);
        }
    }
    names
}

/// Every environment variable Warren reads: the clap definitions' `env`, and the variables
/// the code reads directly.
pub fn warren_reads() -> BTreeSet<String> {
    let mut names = read_by_the_code();
    clap_env(&warren::cli::Cli::command(), &mut names);
    names
}

/// The `warren serve` command of the clap definitions.
pub fn serve_command() -> clap::Command {
    warren::cli::Cli::command()
        .find_subcommand("serve")
        .expect("a serve subcommand")
        .clone()
}
