//! Config loading errors name the file, the line and the field.

use std::path::Path;

use seattle_exporter_toolkit::config::{ConfigError, Spanned, load_yaml, parse_yaml};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sample {
    groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    name: String,
    #[serde(default)]
    min: u32,
    pattern: Option<Spanned<String>>,
}

const FILE: &str = "exporter.yml";

fn err(text: &str) -> ConfigError {
    parse_yaml::<Sample>(Path::new(FILE), text).expect_err("should fail")
}

#[test]
fn valid_file_parses() {
    let s: Sample = parse_yaml(Path::new(FILE), "groups:\n  - name: a\n    min: 2\n").unwrap();
    assert_eq!(s.groups[0].name, "a");
    assert_eq!(s.groups[0].min, 2);
}

#[test]
fn unknown_key_names_file_line_and_field() {
    let e = err("groups:\n  - name: a\n  - name: b\n    mni: 3\n");
    println!("{e}");
    assert_eq!(e.file, Path::new(FILE));
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.message.contains("mni"), "{e}");
    assert_eq!(e.field.as_deref(), Some("groups[1].mni"), "{e}");
    assert!(e.to_string().starts_with("exporter.yml:4:"), "{e}");
}

#[test]
fn wrong_type_names_file_line_and_field() {
    let e = err("groups:\n  - name: a\n    min: lots\n");
    println!("{e}");
    assert_eq!(e.line, Some(3), "{e}");
    assert_eq!(e.field.as_deref(), Some("groups[0].min"), "{e}");
}

#[test]
fn missing_field_names_the_field() {
    let e = err("groups:\n  - min: 1\n");
    println!("{e}");
    assert!(e.message.contains("name"), "{e}");
    assert!(e.line.is_some(), "{e}");
}

#[test]
fn syntax_error_has_a_line() {
    let e = err("groups:\n  - name: [a\n");
    println!("{e}");
    assert!(e.line.is_some(), "{e}");
}

#[test]
fn spanned_value_points_at_its_line_after_parsing() {
    let s: Sample = parse_yaml(
        Path::new(FILE),
        "groups:\n  - name: a\n  - name: b\n    pattern: '(x'\n",
    )
    .unwrap();
    let pattern = s.groups[1].pattern.as_ref().unwrap();
    let e = ConfigError::at(
        Path::new(FILE),
        pattern,
        "groups[1].pattern",
        "unclosed group",
    );
    assert_eq!(e.line, Some(4));
    assert_eq!(
        e.to_string(),
        "exporter.yml:4:14: groups[1].pattern: unclosed group"
    );
}

#[test]
fn load_yaml_names_a_missing_file() {
    let e = load_yaml::<Sample>(Path::new("/nonexistent/dir/x.yml")).unwrap_err();
    assert!(e.to_string().starts_with("/nonexistent/dir/x.yml: "), "{e}");
}

#[test]
fn load_yaml_reads_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.yml");
    std::fs::write(&p, "groups: []\n").unwrap();
    let s: Sample = load_yaml(&p).unwrap();
    assert!(s.groups.is_empty());
    std::fs::write(&p, "groups: {}\nextra: 1\n").unwrap();
    let e = load_yaml::<Sample>(&p).unwrap_err();
    assert!(e.to_string().contains("c.yml:"), "{e}");
}
