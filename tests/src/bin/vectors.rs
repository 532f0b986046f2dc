//! Checks or rewrites the golden vectors in `tests/vectors/`.
//!
//! `cargo run -p cove-tests --bin cove-vectors` reports whether the files
//! match what the code produces; `-- --write` rewrites them. Rewrite only
//! for a deliberate, documented change of the wire format.

use std::process::ExitCode;

fn main() -> ExitCode {
    let write = std::env::args().any(|a| a == "--write");
    let dir = cove_tests::vectors::dir();
    let mut stale = 0;
    for (name, json) in cove_tests::vectors::build().files() {
        let path = dir.join(name);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == json {
            println!("{name}: up to date");
            continue;
        }
        if write {
            if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, json))
            {
                eprintln!("{name}: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            println!("{name}: written");
        } else {
            println!("{name}: differs from what the code produces");
            stale += 1;
        }
    }
    if stale > 0 {
        eprintln!(
            "{stale} vector file(s) differ; rerun with --write only if the wire format change is deliberate"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
