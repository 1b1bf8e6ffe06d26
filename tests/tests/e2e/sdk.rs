//! The TypeScript SDK (`clients/typescript`) against the real stack: builds it and its
//! API reference, runs its unit suite, then its test suite with node against this
//! stack and a second edge, and answers the suite's requests to stop and start the
//! first edge (`CONTROL stop-edge` on its stdout, `DONE stop-edge` on its stdin), so
//! that a client really loses its edge mid-stream.

use std::{path::PathBuf, process::Stdio, time::Duration};

use chat_core::auth::{DEFAULT_AUDIENCE, DEV_ISSUER, DEV_SECRET};
use chat_e2e::{Stack, StackOptions};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::Command,
};

/// The longest the whole suite may take.
const SUITE_TIMEOUT: Duration = Duration::from_secs(240);

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../clients/typescript")
}

/// Compiles the SDK and its tests (`tsc`, from the SDK's own node_modules): the
/// package alone first, without Node's types, so that nothing in it needs Node.
async fn build(dir: &PathBuf) {
    assert!(
        dir.join("node_modules/.bin/tsc").exists(),
        "{}/node_modules is missing: run scripts/install-deps.sh (it runs npm ci there)",
        dir.display()
    );
    for (config, extra) in [("tsconfig.json", Some("--noEmit")), ("tsconfig.test.json", None)] {
        let output = Command::new("node")
            .args(["node_modules/typescript/bin/tsc", "-p", config])
            .args(extra)
            .current_dir(dir)
            .output()
            .await
            .unwrap_or_else(|error| panic!("cannot run node (is Node.js 20+ installed?): {error}"));
        assert!(
            output.status.success(),
            "the SDK does not compile ({config}):\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Builds the SDK's API reference (typedoc, as `npm run docs` does) without writing
/// it, failing on any warning (a broken link, an unexported type in a signature).
async fn api_reference(dir: &PathBuf) {
    let output = Command::new("node")
        .args([
            "node_modules/typedoc/bin/typedoc",
            "--emit",
            "none",
            "--disableSources",
            "--treatWarningsAsErrors",
            "src/index.ts",
        ])
        .current_dir(dir)
        .output()
        .await
        .unwrap_or_else(|error| panic!("cannot run node: {error}"));
    assert!(
        output.status.success(),
        "typedoc cannot build the SDK's API reference:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs the SDK's tests that need no server: its merge rules, and its wire types
/// against the edge's AsyncAPI document (`docs/asyncapi-ws.json`).
async fn unit_suite(dir: &PathBuf) {
    let output = Command::new("node")
        .args(["--test", "build-test/test/state.test.js", "build-test/test/protocol.test.js"])
        .current_dir(dir)
        .output()
        .await
        .unwrap_or_else(|error| panic!("cannot run node: {error}"));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the SDK's unit suite failed:\n{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.lines().any(|line| line.trim() == "# pass 9"), "the unit suite did not pass its nine tests:\n{text}");
}

// One test builds once and runs both suites: two would compile into the same directory
// at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_typescript_sdk_passes_its_suites_against_the_stack() {
    let dir = sdk_dir();
    build(&dir).await;
    api_reference(&dir).await;
    unit_suite(&dir).await;
    // A command budget the suite's flooding client can exhaust for 4008 (50 refusals
    // in a row) before it refills, and that the other clients never come near.
    let mut stack = Stack::start_with(StackOptions {
        edge: Some(|config| {
            config.commands_per_s = 2;
            config.commands_burst = 200;
        }),
        ..StackOptions::default()
    })
    .await;
    let second_edge = stack.start_extra_edge().await;
    let mut child = Command::new("node")
        .args(["--test-reporter=spec", "build-test/test/sdk.test.js"])
        .current_dir(&dir)
        .env("CHAT_SDK_WS_URL", &stack.ws_url)
        .env("CHAT_SDK_WS_URL_2", second_edge.ws_url())
        .env("CHAT_SDK_API_URL", &stack.api_url)
        .env("CHAT_SDK_JWT_SECRET", DEV_SECRET)
        .env("CHAT_SDK_JWT_ISSUER", DEV_ISSUER)
        .env("CHAT_SDK_JWT_AUDIENCE", DEFAULT_AUDIENCE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run node: {error}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });
    let mut lines = BufReader::new(stdout).lines();
    let mut output = String::new();
    let run = async {
        while let Ok(Some(line)) = lines.next_line().await {
            output.push_str(&line);
            output.push('\n');
            let Some(action) = line.trim().strip_prefix("CONTROL ") else { continue };
            match action {
                "stop-edge" => stack.stop_edge().await,
                "start-edge" => stack.start_edge().await,
                other => panic!("unknown control request {other:?}\n{output}"),
            }
            let reply = format!("DONE {action}\n");
            stdin.write_all(reply.as_bytes()).await.unwrap_or_else(|error| panic!("writing to node: {error}"));
            stdin.flush().await.unwrap_or_else(|error| panic!("writing to node: {error}"));
        }
        child.wait().await
    };
    let status = tokio::time::timeout(SUITE_TIMEOUT, run).await;
    let errors = match status {
        Ok(_) => errors.await.unwrap_or_default(),
        Err(_) => String::from("(still running)"),
    };
    match status {
        Ok(Ok(status)) => assert!(status.success(), "the SDK suite failed ({status}):\n{output}\nstderr:\n{errors}"),
        Ok(Err(error)) => panic!("waiting for node: {error}\n{output}"),
        Err(_) => panic!("the SDK suite did not finish within {SUITE_TIMEOUT:?}:\n{output}"),
    }
    // Shown with `--no-capture`: which tests ran and how long each took.
    println!("{output}");
    let passed = output.lines().any(|line| line.trim_end().ends_with("pass 7"));
    assert!(passed, "the suite did not pass its seven tests:\n{output}");
}
