//! The README's claims about the build are checked against Cargo.toml: the
//! default build's dependencies, counted and named.
#![cfg(not(loom))]

/// The names of the non-optional entries of `[dependencies]`.
fn default_dependencies() -> Vec<String> {
    let manifest = include_str!("../Cargo.toml");
    let section = manifest
        .split("\n[dependencies]\n")
        .nth(1)
        .expect("a [dependencies] section");
    let section = section.split("\n[").next().unwrap();
    section
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .filter(|l| !l.contains("optional = true"))
        .map(|l| l.split('=').next().unwrap().trim().to_string())
        .collect()
}

#[test]
fn the_readme_counts_and_names_the_default_dependencies() {
    let readme = include_str!("../README.md").replace('\n', " ");
    let deps = default_dependencies();
    let words = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve",
    ];
    let count = words.get(deps.len()).expect("a count the README can spell");
    let claim = format!("The default build has {count} small dependencies");
    assert!(readme.contains(&claim), "README should say: {claim}");
    for d in &deps {
        assert!(readme.contains(d.as_str()), "README should name dependency {d}");
    }
}
