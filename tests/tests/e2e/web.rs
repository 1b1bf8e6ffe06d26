//! The web client (`clients/web`) in a real browser: builds it with the SDK, serves it
//! from the api (`CHAT_WEB_DIR`, with development tokens on), and runs its browser suite
//! (`test/browser.test.mjs`: playwright-core driving Debian's chromium) against this
//! stack. Screenshots land in `clients/web/screenshots/` (not committed).

use std::{path::PathBuf, time::Duration};

use chat_e2e::{Stack, StackOptions};
use tokio::process::Command;

/// The longest the build plus the browser suite may take.
const SUITE_TIMEOUT: Duration = Duration::from_secs(180);

fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../clients/web")
}

/// Runs a command in the web client's directory, failing the test with its output.
async fn run(what: &str, command: &mut Command) -> String {
    let output = command
        .current_dir(web_dir())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|error| panic!("cannot run {what} (is Node.js 20+ installed?): {error}"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{what} failed:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_web_client_works_in_a_real_browser() {
    let dir = web_dir();
    assert!(
        dir.join("node_modules/.bin/vite").exists(),
        "{}/node_modules is missing: run scripts/install-deps.sh (it runs npm ci there)",
        dir.display()
    );
    let chromium = std::env::var("CHAT_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(PathBuf::from(&chromium).exists(), "{chromium} is missing: run scripts/install-deps.sh (Debian chromium)");
    // A build of its own, so a developer's clients/web/dist is left alone.
    let dist = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-dist");
    let suite = async {
        run(
            "building the SDK",
            Command::new("node").args([
                "../typescript/node_modules/typescript/bin/tsc",
                "-p",
                "../typescript/tsconfig.json",
            ]),
        )
        .await;
        run("type-checking the web client", Command::new("node").args(["node_modules/typescript/bin/tsc", "--noEmit"]))
            .await;
        let out = dist.to_string_lossy().into_owned();
        run(
            "building the web client",
            Command::new("node").args([
                "node_modules/vite/bin/vite.js",
                "build",
                "--outDir",
                &out,
                "--emptyOutDir",
                "--logLevel",
                "warn",
            ]),
        )
        .await;
        let web = api::web::WebArgs { web_dir: Some(dist.clone()), dev_tokens: true };
        let stack = Stack::start_with(StackOptions { web: Some(web), ..StackOptions::default() }).await;
        let output = run(
            "the browser suite",
            Command::new("node")
                .args(["--test", "--test-reporter=spec", "test/browser.test.mjs"])
                .env("CHAT_WEB_URL", &stack.api_url)
                .env("CHAT_WEB_WS_URL", &stack.ws_url)
                .env("CHAT_WEB_CHROMIUM", &chromium)
                .env("CHAT_WEB_SCREENSHOTS", dir.join("screenshots")),
        )
        .await;
        drop(stack);
        output
    };
    let output = tokio::time::timeout(SUITE_TIMEOUT, suite)
        .await
        .unwrap_or_else(|_| panic!("the web client's build and browser suite did not finish within {SUITE_TIMEOUT:?}"));
    // Shown with `--no-capture`.
    println!("{output}");
    assert!(
        output.lines().any(|line| line.trim_end().ends_with("pass 3")),
        "the browser suite did not pass:\n{output}"
    );
}
