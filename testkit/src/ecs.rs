//! The service binaries' real log lines, read the way the log shipper and
//! Elasticsearch read them: [`start_service`] runs a binary with JSON logs at `debug`
//! (so that the lines of every library it uses are in the test too), and
//! [`documents`] checks that every line of its output is an Elastic Common Schema
//! document with the field names and JSON types that `deploy/logging/` and the Kibana
//! searches rely on.
//!
//! The expectations are written here again, independently of the formatter in
//! `chat_core::telemetry::ecs`, so that a change of a field name or type there fails
//! these tests instead of silently changing what Kibana shows.

use std::{path::PathBuf, time::Duration};

use serde_json::{Map, Value};

use crate::ServerProcess;

/// The ECS fields every line has, with their JSON types.
const REQUIRED: [(&str, Kind); 7] = [
    ("@timestamp", Kind::Timestamp),
    ("log.level", Kind::Level),
    ("message", Kind::Text),
    ("ecs.version", Kind::Text),
    ("service.name", Kind::Text),
    ("event.dataset", Kind::Text),
    ("log.logger", Kind::Text),
];

/// The other ECS fields a line may have.
const OPTIONAL: [(&str, Kind); 5] = [
    ("trace.id", Kind::TraceId),
    ("http.request.id", Kind::Text),
    ("http.request.method", Kind::Text),
    ("http.response.status_code", Kind::StatusCode),
    ("error.message", Kind::Text),
];

/// Our custom fields whose type the Kibana searches rely on.
const CUSTOM_TEXT: [&str; 3] = ["chat.chat_id", "chat.user_id", "chat.conn_id"];

#[derive(Clone, Copy, Debug)]
enum Kind {
    Timestamp,
    Level,
    Text,
    TraceId,
    StatusCode,
}

impl Kind {
    fn accepts(self, value: &Value) -> bool {
        match (self, value) {
            (Kind::Timestamp, Value::String(text)) => {
                text.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(text).is_ok()
            }
            (Kind::Level, Value::String(text)) => ["error", "warn", "info", "debug", "trace"].contains(&text.as_str()),
            (Kind::Text, Value::String(_)) => true,
            (Kind::TraceId, Value::String(text)) => {
                text.len() == 32 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            }
            (Kind::StatusCode, Value::Number(number)) => number.as_u64().is_some_and(|code| (100..600).contains(&code)),
            _ => false,
        }
    }
}

/// Starts the service binary `program` with `args`, JSON logs at `debug` and its admin
/// port on the port [`ServerProcess`] picked; waits until it logged `ready`.
pub async fn start_service(
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    ready: &'static str,
) -> ServerProcess {
    ServerProcess::start(
        name,
        program,
        move |port, _dir| {
            let mut all = args.clone();
            all.extend(
                ["--log-format", "json", "--log", "debug", "--admin-addr", &format!("127.0.0.1:{port}")]
                    .map(str::to_owned),
            );
            all
        },
        ready,
        Duration::from_secs(30),
    )
    .await
}

/// Every line of `log` as a JSON object, after checking that each one is an ECS
/// document of `service`; panics naming the first line that is not.
pub fn documents(log: &str, service: &str) -> Vec<Map<String, Value>> {
    let dataset = format!("edu_chat.{}", service.replace('-', "_"));
    let mut found = Vec::new();
    for line in log.lines() {
        // An empty line carries nothing and a shipper drops it; one was seen, rarely and
        // only under load, in a persister's log (cause not found yet).
        if line.trim().is_empty() {
            continue;
        }
        let document = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) => object,
            _ => panic!("{service}: a log line is not a JSON object: {line:?}; the whole log:\n{log}"),
        };
        for (key, kind) in REQUIRED {
            match document.get(key) {
                Some(value) if kind.accepts(value) => {}
                other => panic!("{service}: {key} should be {kind:?}, is {other:?}: {line}"),
            }
        }
        assert_eq!(document["service.name"], service, "{line}");
        assert_eq!(document["event.dataset"], dataset.as_str(), "{line}");
        assert!(document["ecs.version"].as_str().is_some_and(|v| v.starts_with("8.")), "{line}");
        for (key, value) in &document {
            if let Some((_, kind)) = REQUIRED.iter().chain(OPTIONAL.iter()).find(|(name, _)| name == key) {
                assert!(kind.accepts(value), "{service}: {key} should be {kind:?}: {line}");
            } else if CUSTOM_TEXT.contains(&key.as_str()) {
                assert!(value.is_string(), "{service}: {key} should be a string: {line}");
            } else {
                // Anything else is ours, under the custom namespace, and a scalar:
                // never a name ECS defines with another type.
                assert!(
                    key.starts_with("chat."),
                    "{service}: {key} is neither an ECS field we write nor chat.*: {line}"
                );
                assert!(!value.is_object() && !value.is_array(), "{service}: {key} is not a scalar: {line}");
            }
        }
        found.push(document);
    }
    assert!(!found.is_empty(), "{service} logged nothing");
    found
}

/// The first document whose message is `message`.
pub fn find<'a>(documents: &'a [Map<String, Value>], message: &str) -> &'a Map<String, Value> {
    documents
        .iter()
        .find(|document| document["message"] == message)
        .unwrap_or_else(|| panic!("no log line says {message:?}"))
}
