//! A persister given a bad policy file (`CHAT_POLICY_FILE`) does not start: it exits at
//! once with an error that names the file and every bad line, before it connects to
//! anything, so a typo never runs with a policy other than the one written.

use std::{process::Command, time::Duration};

#[test]
fn a_bad_policy_file_stops_the_persister_with_its_lines() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("policy.toml");
    let text = "[direct]\nstudent = [\"teacher\"]\n\n[groups]\ncreat = [\"teacher\"]\n";
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    // No server listens on port 1: a start that got past the policy would fail there
    // instead, with another message.
    let output = Command::new(env!("CARGO_BIN_EXE_persister"))
        .args(["--nats-url", "nats://127.0.0.1:1", "--policy-file"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let log = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the persister started with a bad policy:\n{log}");
    assert!(log.contains("policy file") && log.contains(&path.display().to_string()), "{log}");
    assert!(log.contains("line 5: unknown field `creat`, expected `create`"), "{log}");
    assert!(started.elapsed() < Duration::from_secs(10), "it stops at once, not after a connect timeout");
}
