//! The arrows the crates enforce, checked where they are declared: the compiler keeps a crate
//! to what its `Cargo.toml` names, so these tests fail on the diff that would name more.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

/// The dependency names of a manifest's `[dependencies]` section (not dev or build ones).
fn dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).expect("the manifest is readable");
    let mut names = Vec::new();
    let mut in_section = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == "[dependencies]";
            continue;
        }
        if in_section && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            names.push(name.to_owned());
        }
    }
    names
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[test]
fn the_core_never_depends_on_the_edge_or_on_http() {
    let core = dependencies(&repo().join("shared/Cargo.toml"));
    assert!(core.iter().any(|d| d == "aws-sdk-dynamodb"), "{core:?}");
    for edge_only in [
        "portcullis-edge",
        "lambda_http",
        "lambda_runtime",
        "aws_lambda_events",
        "hyper",
    ] {
        assert!(
            !core.iter().any(|d| d == edge_only),
            "shared depends on {edge_only}"
        );
    }
}

#[test]
fn no_function_crate_depends_on_another() {
    let functions = repo().join("functions");
    let names: Vec<String> = std::fs::read_dir(&functions)
        .unwrap()
        .map(|e| format!("portcullis-{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    assert!(names.len() >= 11, "{names:?}");
    for entry in std::fs::read_dir(&functions).unwrap() {
        let dir = entry.unwrap().path();
        let deps = dependencies(&dir.join("Cargo.toml"));
        assert!(
            deps.iter().any(|d| d == "portcullis"),
            "{}: {deps:?}",
            dir.display()
        );
        for other in &names {
            assert!(
                !deps.contains(other),
                "{} depends on {other}",
                dir.display()
            );
        }
    }
}

#[test]
fn the_section_reader_sees_what_a_manifest_declares() {
    let dir = std::env::temp_dir().join(format!("portcullis-layers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("Cargo.toml");
    std::fs::write(
        &manifest,
        "[package]\nname = \"x\"\n\n[dependencies]\n# a comment\nlambda_http.workspace = true\nserde = \"1\"\n\n[dev-dependencies]\nportcullis-edge.workspace = true\n",
    )
    .unwrap();
    assert_eq!(dependencies(&manifest), ["lambda_http", "serde"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
