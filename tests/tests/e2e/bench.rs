//! `chatctl bench` against the real stack: a small load, a short sweep, a few idle
//! connections and a small history chat, each through the same library function the
//! command line uses. The tests assert that nothing is lost and that every figure is
//! there; none asserts a time (that is what the benchmark itself is for).

use chat_e2e::Stack;
use chatctl::{
    commands::bench::{ScenarioFile, ScenarioReport, Settings, Watched, plot, report::Figures, run_scenario},
    progress::Progress,
};
use serde_json::Value;

const SCENARIOS: &str = r#"
    [[scenario]]
    name = "small"
    kind = "load"
    clients = 20
    chats = 2
    senders = 4
    offline_members = 3
    rate = 20
    duration_s = 2

    [[scenario]]
    name = "small-sweep"
    kind = "sweep"
    clients = 10
    chats = 1
    senders = 2
    start_rate = 10
    factor = 2
    max_rate = 20
    step_s = 1
    p99_limit_ms = 60000

    [[scenario]]
    name = "few-idle"
    kind = "idle"
    connections = [10]
    settle_s = 0.5

    [[scenario]]
    name = "short-history"
    kind = "history"
    messages = 300
    requests = 40
    parallel = 4
    limit = 50
"#;

/// Settings for the in-process stack. Every binary runs in this test process, so its
/// own PID stands for the edge (and for the whole stack): the figures are real but mix
/// the clients in, which is why no test looks at their values.
fn settings(stack: &Stack) -> Settings {
    let mongo = stack.servers.mongo_args();
    Settings {
        api_url: stack.api_url.clone(),
        ws_url: stack.ws_url.clone(),
        jwt_secret: chat_core::auth::DEV_SECRET.into(),
        jwt_issuer: Some(chat_core::auth::DEV_ISSUER.into()),
        jwt_audience: chat_core::auth::DEFAULT_AUDIENCE.into(),
        threads: 2,
        connect_concurrency: 8,
        drain: std::time::Duration::from_secs(10),
        watched: vec![Watched { name: "ws-edge".into(), pid: std::process::id() }],
        mongodb_uri: Some(mongo.mongodb_uri),
        mongodb_db: mongo.mongodb_db,
        inject_nats_url: None,
    }
}

fn number(report: &Value, pointer: &str) -> f64 {
    report.pointer(pointer).and_then(Value::as_f64).unwrap_or_else(|| panic!("no number at {pointer} in {report}"))
}

/// The JSON line of a report, with the figures every load step has.
fn check_step(step: &Value) {
    for pointer in ["/latency_ms/p50", "/latency_ms/p90", "/latency_ms/p99", "/latency_ms/p999", "/latency_ms/max"] {
        assert!(number(step, pointer) >= 0.0);
    }
    for pointer in ["/send_lag_ms/p50", "/send_lag_ms/p99", "/send_lag_ms/max", "/deliveries_per_s"] {
        assert!(number(step, pointer) >= 0.0);
    }
    assert_eq!(number(step, "/lost"), 0.0, "deliveries were lost: {step}");
    assert_eq!(number(step, "/received_deliveries"), number(step, "/expected_deliveries"));
    assert_eq!(number(step, "/messages_sent"), number(step, "/messages_scheduled"));
    assert_eq!(number(step, "/errors"), 0.0, "{step}");
    assert_eq!(number(step, "/connections_closed"), 0.0, "{step}");
    assert!(number(step, "/edge_cpu_us_per_delivery") > 0.0);
    assert!(number(step, "/stack_cpu_us_per_delivery") > 0.0);
    assert!(number(step, "/resources/window_s") > 0.0);
    assert_eq!(step["resources"]["processes"][0]["name"], "ws-edge");
    assert!(number(step, "/resources/client/worker_cpu_s") >= 0.0);
    assert!(step["client_saturated"].is_boolean());
}

fn json(report: &ScenarioReport) -> Value {
    let line = serde_json::to_string(report).unwrap_or_else(|e| panic!("{e}"));
    assert!(!line.contains('\n'), "one line per scenario");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_kind_runs_against_the_stack_and_loses_nothing() {
    let stack = Stack::start().await;
    let settings = settings(&stack);
    let file = ScenarioFile::parse(SCENARIOS).unwrap_or_else(|e| panic!("{e}"));
    let mut reports = Vec::new();
    for scenario in &file.scenarios {
        let report = run_scenario(&settings, scenario, &Progress::hidden())
            .await
            .unwrap_or_else(|e| panic!("scenario {}: {e}", scenario.name()));
        // Shown with `--no-capture`: the figures of a run, for a reader, not asserted.
        eprintln!("{}", json(&report));
        reports.push(report);
    }

    let load = json(&reports[0]);
    assert_eq!((load["scenario"].as_str(), load["kind"].as_str()), (Some("small"), Some("load")));
    check_step(&load);
    // 20 msg/s for 2 s, each to a chat of 10 connected members, the sender included;
    // the 3 members of each chat who never connect get push requests, not deliveries.
    assert_eq!(number(&load, "/expected_deliveries"), 400.0);
    assert_eq!(number(&load, "/offline_members"), 3.0);

    let sweep = json(&reports[1]);
    assert_eq!(sweep["kind"], "sweep");
    let steps = sweep["steps"].as_array().cloned().unwrap_or_default();
    assert_eq!(steps.len(), 2, "10 then 20 msg/s: {sweep}");
    steps.iter().for_each(check_step);
    assert_eq!(number(&sweep, "/highest_sustained_rate_msg_s"), 20.0);
    let Figures::Sweep(figures) = &reports[1].figures else { panic!("not a sweep: {sweep}") };
    let svg = std::env::temp_dir().join(format!("chatctl-bench-{}.svg", std::process::id()));
    plot::sweep_svg(&svg, "test sweep", &figures.steps).unwrap_or_else(|e| panic!("{e}"));
    let drawn = std::fs::read_to_string(&svg).unwrap_or_default();
    let _ = std::fs::remove_file(&svg);
    assert!(drawn.contains("<svg") && drawn.contains("p99"), "{drawn}");

    let idle = json(&reports[2]);
    assert_eq!(idle["kind"], "idle");
    assert_eq!(number(&idle, "/points/0/connected"), 10.0);
    assert!(number(&idle, "/points/0/edge_rss_after_bytes") > 0.0);
    assert!(idle["points"][0]["bytes_per_connection"].is_number());

    let history = json(&reports[3]);
    assert_eq!(history["kind"], "history");
    assert_eq!(number(&history, "/errors"), 0.0, "{history}");
    assert_eq!(number(&history, "/requests"), 40.0);
    assert!(number(&history, "/latency_ms/p99") > 0.0);

    let table = chatctl::commands::bench::report::markdown(&reports);
    for heading in ["Send → deliver", "Idle connections", "History pages"] {
        assert!(table.contains(heading), "{table}");
    }
}
