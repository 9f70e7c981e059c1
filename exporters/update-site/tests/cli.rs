//! The binary's `--config.check` and `--version`.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_seattle_updatesite_exporter");

#[test]
fn config_check_accepts_the_builtin_and_a_good_file() {
    let out = Command::new(BIN).arg("--config.check").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("6 modules"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("u.yml");
    std::fs::write(&f, "modules:\n  site:\n    prober: updatesite\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config.check")
        .arg(format!("--config.file={}", f.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn config_check_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("u.yml");
    std::fs::write(
        &f,
        "modules:\n  site:\n    prober: updatesite\n    updatesite:\n      trusted_key_file: missing.publickey\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config.check")
        .arg(format!("--config.file={}", f.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "{}:5:25: modules.site.updatesite.trusted_key_file:",
        f.display()
    );
    assert!(stderr.contains(&want), "{stderr}");
}

#[test]
fn version() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("seattle_updatesite_exporter"));
}
