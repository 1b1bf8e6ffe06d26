//! Log lines in the Elastic Common Schema (ECS), for the ELK stack that collects the
//! containers' output (Fluent Bit ships each line unchanged; `deploy/logging/`).
//!
//! One JSON object per line, with dotted field names as the ECS logging libraries write
//! them (Elasticsearch expands `log.level` into `{"log": {"level": ...}}`):
//!
//! - `@timestamp` (RFC 3339, UTC, microseconds), `log.level` (`error` … `trace`),
//!   `message`, `ecs.version`, `log.logger` (the event's target, a module path);
//! - `service.name` (the binary) and `event.dataset` (`edu_chat.<binary>`, with `_` for
//!   `-` so that it can name a data stream);
//! - the fields of the event and of its spans. The few that ECS defines are renamed
//!   ([`ecs_key`]: `trace_id` → `trace.id`, `request_id` → `http.request.id`, …);
//!   every other one, `chat_id`, `user_id` and `conn_id` included, goes under our
//!   custom namespace `chat.` (`chat.chat_id`), as ECS asks of custom fields, so that
//!   none of our names can ever clash with an ECS field of another type.
//!
//! Numbers and booleans stay JSON numbers and booleans; everything else is a string.

use std::{collections::BTreeMap, fmt};

use serde_json::Value;
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    field::RecordFields,
    fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, format::Writer},
    registry::LookupSpan,
};

/// The ECS version whose field names and types the lines follow.
pub const ECS_VERSION: &str = "8.11.0";

/// The namespace of our own fields (ECS "custom fields").
pub const CUSTOM_NAMESPACE: &str = "chat";

/// Where one of our fields goes in ECS. The value matters for `status`, which is an
/// HTTP status code only when it looks like one (presence logs `status = "online"`),
/// so that `http.response.status_code` only ever holds what ECS types it as.
pub fn ecs_key(field: &str, value: &Value) -> String {
    match field {
        "trace_id" => "trace.id".to_owned(),
        "request_id" => "http.request.id".to_owned(),
        "method" => "http.request.method".to_owned(),
        "status" if value.as_u64().is_some_and(|code| (100..600).contains(&code)) => {
            "http.response.status_code".to_owned()
        }
        "error" => "error.message".to_owned(),
        other => format!("{CUSTOM_NAMESPACE}.{other}"),
    }
}

/// The event formatter: one ECS JSON object per line.
#[derive(Debug, Clone)]
pub struct EcsFormat {
    service: &'static str,
    dataset: String,
}

impl EcsFormat {
    /// Lines of the binary `service` (`api`, `ws-edge`, …).
    pub fn new(service: &'static str) -> EcsFormat {
        EcsFormat { service, dataset: format!("edu_chat.{}", service.replace('-', "_")) }
    }
}

/// The span field formatter that goes with [`EcsFormat`]: it stores a span's fields as
/// a JSON object already under their ECS names, which [`EcsFormat`] merges into each
/// event of the span.
#[derive(Debug, Clone, Copy, Default)]
pub struct EcsFields;

impl<'writer> FormatFields<'writer> for EcsFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut collected = Collected::default();
        fields.record(&mut collected);
        let object: serde_json::Map<String, Value> = collected.fields.into_iter().collect();
        write!(writer, "{}", Value::Object(object))
    }
}

impl<S, N> FormatEvent<S, N> for EcsFormat
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        // Span fields first, outermost span first, so that inner spans and then the
        // event itself win when they name the same field.
        let mut fields = BTreeMap::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(stored) = extensions.get::<FormattedFields<N>>() else { continue };
                if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(stored.as_str()) {
                    fields.extend(object);
                }
            }
        }
        let mut collected = Collected::default();
        event.record(&mut collected);
        fields.extend(collected.fields);

        // Events bridged from the `log` crate name their real target in `log.target`.
        let logger = collected.log_target.as_deref().unwrap_or_else(|| event.metadata().target());
        let line = [
            ("@timestamp", Value::from(timestamp)),
            ("log.level", Value::from(event.metadata().level().as_str().to_ascii_lowercase())),
            ("message", Value::from(collected.message.unwrap_or_default())),
            ("ecs.version", Value::from(ECS_VERSION)),
            ("service.name", Value::from(self.service)),
            ("event.dataset", Value::from(self.dataset.as_str())),
            ("log.logger", Value::from(logger)),
        ];
        // Written key by key rather than as one map so that the three fields a reader
        // looks for come first, as the ECS logging libraries order them.
        writer.write_char('{')?;
        for (index, (key, value)) in
            line.iter().map(|(k, v)| (*k, v)).chain(fields.iter().map(|(k, v)| (k.as_str(), v))).enumerate()
        {
            if index > 0 {
                writer.write_char(',')?;
            }
            write!(writer, "{}:{}", Value::from(key), value)?;
        }
        writer.write_str("}\n")
    }
}

/// The fields of one event or span, under their ECS names.
#[derive(Default)]
struct Collected {
    message: Option<String>,
    log_target: Option<String>,
    fields: BTreeMap<String, Value>,
}

impl Collected {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => self.message = Some(value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string())),
            "log.target" => self.log_target = value.as_str().map(str::to_owned),
            // The rest of what the `log` bridge adds (module path, file, line) is
            // where the event was written, not what it says.
            name if name.starts_with("log.") => {}
            name => {
                self.fields.insert(ecs_key(name, &value), value);
            }
        }
    }
}

impl Visit for Collected {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` arrives here too, wrapped so that its Debug is its Display.
        self.put(field, Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::{Map, Value};
    use tracing_subscriber::{fmt::MakeWriter, prelude::*};

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    /// The lines `emit` writes through the ECS layer of `service`, parsed.
    fn lines(service: &'static str, emit: impl FnOnce()) -> Vec<Map<String, Value>> {
        let buffer = Buffer::default();
        let layer = tracing_subscriber::fmt::layer()
            .event_format(EcsFormat::new(service))
            .fmt_fields(EcsFields)
            .with_writer(buffer.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = buffer.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|line| match serde_json::from_str(line) {
                Ok(Value::Object(object)) => object,
                other => panic!("not a JSON object: {line} ({other:?})"),
            })
            .collect()
    }

    #[test]
    fn an_event_becomes_one_ecs_object_with_our_fields_under_chat() {
        let found = lines("ws-edge", || {
            tracing::warn!(
                trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
                chat_id = "c1",
                user_id = %"u1",
                conn_id = "k1",
                partition = 3u32,
                delayed = true,
                "command published"
            );
        });
        assert_eq!(found.len(), 1);
        let line = &found[0];
        let keys: Vec<&str> = line.keys().map(String::as_str).collect();
        assert_eq!(keys[..3], ["@timestamp", "log.level", "message"], "the fields a reader looks for come first");
        assert_eq!(line["log.level"], "warn");
        assert_eq!(line["message"], "command published");
        assert_eq!(line["service.name"], "ws-edge");
        assert_eq!(line["event.dataset"], "edu_chat.ws_edge");
        assert_eq!(line["ecs.version"], ECS_VERSION);
        assert_eq!(line["trace.id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["chat.chat_id"], "c1");
        assert_eq!(line["chat.user_id"], "u1");
        assert_eq!(line["chat.conn_id"], "k1");
        assert_eq!(line["chat.partition"], 3, "numbers stay numbers");
        assert_eq!(line["chat.delayed"], true);
        assert!(line["log.logger"].as_str().is_some_and(|l| l.starts_with("chat_core")), "{line:?}");
        let stamp = line["@timestamp"].as_str().unwrap_or_default();
        assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok() && stamp.ends_with('Z'), "{stamp}");
        for key in ["chat_id", "user_id", "conn_id", "trace_id", "fields", "target", "level"] {
            assert!(!line.contains_key(key), "{key} is not an ECS name: {line:?}");
        }
    }

    #[test]
    fn ecs_fields_keep_their_ecs_types() {
        let found = lines("api", || {
            let error = std::io::Error::other("disk full");
            tracing::info!(request_id = "r1", method = "GET", status = 404u16, "request");
            tracing::error!(error = %error, "internal error");
            tracing::debug!(status = "online", "presence changed");
            tracing::debug!(status = 0u8, "a library's own status");
        });
        assert_eq!(found[0]["http.request.id"], "r1");
        assert_eq!(found[0]["http.request.method"], "GET");
        assert_eq!(found[0]["http.response.status_code"], 404);
        assert_eq!(found[1]["error.message"], "disk full");
        assert_eq!(found[1]["log.level"], "error");
        // A status that is not an HTTP status must not land in a numeric ECS field.
        assert_eq!(found[2]["chat.status"], "online");
        assert!(!found[2].contains_key("http.response.status_code"));
        assert_eq!(found[3]["chat.status"], 0);
    }

    #[test]
    fn span_fields_are_merged_and_the_event_wins() {
        let found = lines("persister", || {
            let outer = tracing::info_span!("partition", partition = 7u32, chat_id = "outer");
            let _outer = outer.enter();
            let inner =
                tracing::info_span!("command", chat_id = "inner", trace_id = "0af7651916cd43dd8448eb211c80319c");
            let _inner = inner.enter();
            tracing::info!(user_id = "u9", "command handled");
        });
        let line = &found[0];
        assert_eq!(line["chat.partition"], 7);
        assert_eq!(line["chat.chat_id"], "inner", "the inner span wins over the outer one");
        assert_eq!(line["trace.id"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(line["chat.user_id"], "u9");
    }

    #[test]
    fn a_message_with_quotes_and_newlines_stays_one_line() {
        let found = lines("notifier", || tracing::info!(detail = "a \"b\"\nc", "line\none"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["message"], "line\none");
        assert_eq!(found[0]["chat.detail"], "a \"b\"\nc");
    }
}
