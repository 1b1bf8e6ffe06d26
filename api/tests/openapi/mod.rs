//! The derived OpenAPI document against the server that serves it: it is valid OpenAPI
//! 3.1 by a real validator, and for requests on the edge of each rule the document and
//! the server agree. Each refused request here was allowed by the hand-written document
//! this one replaced (schemathesis found most of them); each accepted one is a request a
//! client may send by the document and the server must take.

use std::{path::PathBuf, process::Command};

use jsonschema::Draft;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::{DEV_SECRET, Harness, dev_claims, mint_hs256, token};

/// The document's description of one operation, and the validators it implies.
struct Contract {
    document: Value,
}

impl Contract {
    fn operation(&self, method: &Method, template: &str) -> &Value {
        let operation = &self.document["paths"][template][method.as_str().to_ascii_lowercase()];
        assert!(operation.is_object(), "{method} {template} is not in the document");
        operation
    }

    /// Whether `value` is valid by `schema`, whose `$ref`s point into the document.
    fn valid(&self, schema: &Value, value: &Value) -> bool {
        let mut root = json!({ "components": self.document["components"] });
        if let (Some(root), Some(schema)) = (root.as_object_mut(), schema.as_object()) {
            root.extend(schema.clone());
        }
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .build(&root)
            .unwrap_or_else(|error| panic!("{schema}: {error}"));
        validator.is_valid(value)
    }

    /// Whether the document allows this request: path values, query and body.
    fn allows(&self, method: &Method, template: &str, path: &[&str], query: &Value, body: Option<&Value>) -> bool {
        let operation = self.operation(method, template);
        let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
        let mut path_values = path.iter();
        let mut query_schema = json!({ "type": "object", "properties": {}, "required": [] });
        for parameter in &parameters {
            match parameter["in"].as_str() {
                Some("path") => {
                    let value = path_values.next().unwrap_or_else(|| panic!("{template}: too few path values"));
                    if !self.valid(&parameter["schema"], &json!(value)) {
                        return false;
                    }
                }
                Some("query") if parameter["explode"] == true && parameter["schema"]["type"] == "object" => {
                    query_schema = parameter["schema"].clone();
                }
                Some("query") => {
                    let name = parameter["name"].as_str().unwrap_or_default().to_owned();
                    query_schema["properties"][&name] = parameter["schema"].clone();
                    if parameter["required"] == true
                        && let Some(required) = query_schema["required"].as_array_mut()
                    {
                        required.push(json!(name));
                    }
                }
                _ => {}
            }
        }
        if !self.valid(&query_schema, query) {
            return false;
        }
        match (body, operation.get("requestBody")) {
            (Some(body), Some(request)) => self.valid(&request["content"]["application/json"]["schema"], body),
            (None, None) => true,
            (Some(_), None) => false,
            (None, Some(request)) => request["required"] != true,
        }
    }
}

/// A request on the edge of a rule.
struct Case {
    method: Method,
    template: &'static str,
    path: &'static [&'static str],
    query: Value,
    body: Option<Value>,
}

fn case(
    method: Method,
    template: &'static str,
    path: &'static [&'static str],
    query: Value,
    body: Option<Value>,
) -> Case {
    Case { method, template, path, query, body }
}

/// A case as a failure message names it.
fn shown(case: &Case) -> String {
    format!("{} {} {} {:?}", case.method, path_of(case), case.query, case.body)
}

fn path_of(case: &Case) -> String {
    let mut values = case.path.iter();
    case.template
        .split('/')
        .map(|segment| if segment.starts_with('{') { values.next().copied().unwrap_or(segment) } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

/// Sends a case; the status and the body.
async fn send(h: &Harness, token: &str, case: &Case) -> (StatusCode, Value) {
    let query: Vec<(String, String)> = case
        .query
        .as_object()
        .map(Map::iter)
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.clone(), value.as_str().map_or_else(|| value.to_string(), str::to_owned)))
        .collect();
    let mut request = h.http.request(case.method.clone(), format!("{}{}", h.base, path_of(case))).bearer_auth(token);
    if !query.is_empty() {
        request = request.query(&query);
    }
    if let Some(body) = &case.body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap_or_else(|error| panic!("{}: {error}", path_of(case)));
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn served_document(h: &Harness) -> Value {
    h.http
        .get(format!("{}/api/openapi.json", h.base))
        .send()
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .json()
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_the_derived_one_and_valid_openapi() {
    let h = Harness::start().await;
    let document = served_document(&h).await;
    assert_eq!(document, api::routes::document());
    assert_eq!(document["openapi"], "3.1.0");

    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, document.to_string()).unwrap_or_else(|error| panic!("{error}"));
    // scripts/install-deps.sh installs the validator and names it.
    let validator = std::env::var_os("CHAT_TEST_OPENAPI_SPEC_VALIDATOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("openapi-spec-validator"));
    let output = Command::new(&validator).arg(&file).output().unwrap_or_else(|error| {
        panic!("{}: {error} (scripts/install-deps.sh installs openapi-spec-validator)", validator.display())
    });
    let said = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && said.contains("OK"), "openapi-spec-validator refused the document: {said}");

    // Every write the per-user budgets cover documents 429 with Retry-After.
    for (method, template) in [
        (Method::POST, "/api/chats"),
        (Method::PATCH, "/api/chats/{chat_id}"),
        (Method::POST, "/api/chats/{chat_id}/participants"),
        (Method::DELETE, "/api/chats/{chat_id}/participants/{user_id}"),
        (Method::POST, "/api/chats/{chat_id}/messages"),
        (Method::PATCH, "/api/chats/{chat_id}/messages/{message_id}"),
        (Method::DELETE, "/api/chats/{chat_id}/messages/{message_id}"),
        (Method::POST, "/api/chats/{chat_id}/read"),
    ] {
        let responses = &document["paths"][template][method.as_str().to_ascii_lowercase()]["responses"];
        assert_eq!(responses["429"]["$ref"], "#/components/responses/rate_limited", "{method} {template}");
    }
    assert_eq!(document["components"]["responses"]["rate_limited"]["headers"]["Retry-After"]["required"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_refuses_what_the_server_refuses_and_allows_what_it_takes() {
    let h = Harness::start().await;
    h.seed_group("c1", "u1", &["u2"]).await;
    let contract = Contract { document: served_document(&h).await };
    let member = token("u1");
    let admin = mint_hs256(DEV_SECRET, &dev_claims("platform", "Platform", &["admin"], 600)).unwrap_or_default();

    let chats = "/api/chats";
    let chat = "/api/chats/{chat_id}";
    let history = "/api/chats/{chat_id}/messages";
    let message = "/api/chats/{chat_id}/messages/{message_id}";
    let read = "/api/chats/{chat_id}/read";
    let members = "/api/chats/{chat_id}/participants";
    let c1: &[&str] = &["c1"];
    let no_query = json!({});
    let too_many_ids = vec!["u"; 201].join(",");
    let long_text = "x".repeat(4001);

    let refused = [
        case(Method::GET, chat, &["bad.id"], no_query.clone(), None),
        case(Method::GET, chats, &[], json!({ "limit": 0 }), None),
        case(Method::GET, chats, &[], json!({ "limit": 201 }), None),
        case(Method::GET, chats, &[], json!({ "cursor": "" }), None),
        case(Method::GET, chats, &[], json!({ "limit": 5, "order": "asc" }), None),
        case(Method::GET, "/api/users/presence", &[], json!({ "ids": "u1", "with": "roles" }), None),
        case(Method::GET, history, c1, json!({ "before_seq": 5, "after_seq": 1 }), None),
        case(Method::GET, history, c1, json!({ "cursor": "eyJkIjoiYiIsInMiOjV9", "before_seq": 5 }), None),
        case(Method::GET, history, c1, json!({ "cursor": "eyJkIjoiYiIsInMiOjV9", "after_seq": 5 }), None),
        case(Method::GET, "/api/users", &[], json!({ "q": "a" }), None),
        case(Method::GET, "/api/users", &[], json!({ "q": "  a  " }), None),
        case(Method::GET, "/api/users", &[], json!({ "q": "ab\u{99}" }), None),
        case(Method::GET, "/api/users", &[], json!({ "q": "ab", "limit": 21 }), None),
        case(Method::GET, "/api/users/presence", &[], json!({ "ids": "" }), None),
        case(Method::GET, "/api/users/presence", &[], json!({ "ids": " , ," }), None),
        case(Method::GET, "/api/users/presence", &[], json!({ "ids": "a,b.c" }), None),
        case(Method::GET, "/api/users/presence", &[], json!({ "ids": too_many_ids }), None),
        case(Method::POST, chats, &[], no_query.clone(), Some(json!({ "type": "group", "title": "a\u{7}b" }))),
        case(Method::POST, chats, &[], no_query.clone(), Some(json!({ "type": "group", "title": "two\nlines" }))),
        case(Method::POST, chats, &[], no_query.clone(), Some(json!({ "type": "group", "title": "\u{200B} " }))),
        case(Method::POST, chats, &[], no_query.clone(), Some(json!({ "type": "group", "title": "a\u{202E}b" }))),
        case(Method::POST, chats, &[], no_query.clone(), Some(json!({ "type": "direct", "member_id": "a b" }))),
        case(Method::PATCH, chat, c1, no_query.clone(), Some(json!({}))),
        case(Method::PATCH, chat, c1, no_query.clone(), Some(json!({ "title": null }))),
        case(Method::PATCH, chat, c1, no_query.clone(), Some(json!({ "title": "a\u{0}" }))),
        case(Method::POST, history, c1, no_query.clone(), Some(json!({ "client_msg_id": "k.1", "text": "hi" }))),
        case(Method::POST, history, c1, no_query.clone(), Some(json!({ "client_msg_id": "k1", "text": "\u{2800}" }))),
        case(
            Method::POST,
            history,
            c1,
            no_query.clone(),
            Some(json!({ "client_msg_id": "k1", "text": "a\u{1b}[31m" })),
        ),
        case(Method::POST, history, c1, no_query.clone(), Some(json!({ "client_msg_id": "k1", "text": long_text }))),
        case(Method::PATCH, message, &["c1", "m1"], no_query.clone(), Some(json!({ "text": "a\u{85}" }))),
        case(Method::POST, read, c1, no_query.clone(), Some(json!({ "up_to_seq": 934.5 }))),
        case(Method::POST, read, c1, no_query.clone(), Some(json!({ "up_to_seq": -1 }))),
        case(Method::POST, read, c1, no_query.clone(), Some(json!({ "up_to_seq": "934" }))),
        case(Method::POST, members, c1, no_query.clone(), Some(json!({ "user_ids": [] }))),
        case(Method::POST, members, c1, no_query.clone(), Some(json!({ "user_ids": ["u3"], "role": "boss" }))),
    ];
    for case in &refused {
        let (status, body) = send(&h, &member, case).await;
        let shown = shown(case);
        assert!(
            matches!(status, StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE),
            "{shown}: the server answered {status} {body}"
        );
        assert!(
            !contract.allows(&case.method, case.template, case.path, &case.query, case.body.as_ref()),
            "the document allows {shown}, which the server refuses with {status} {body}"
        );
    }

    // Without a persister a valid write is 503 once it passes every check of the api.
    let taken = [
        case(Method::POST, read, c1, no_query.clone(), Some(json!({ "up_to_seq": 934.0 }))),
        case(Method::POST, read, c1, no_query.clone(), Some(json!({ "up_to_seq": 934 }))),
        case(Method::GET, history, c1, json!({ "before_seq": 5, "limit": 200 }), None),
        case(Method::GET, history, c1, json!({ "after_seq": 0 }), None),
        case(Method::GET, "/api/users", &[], json!({ "q": "  an  ", "limit": 20 }), None),
        case(Method::GET, "/api/users/presence", &[], json!({ "ids": " u1 , ,u2," }), None),
        case(Method::POST, chats, &[], no_query.clone(), Some(json!({ "type": "group", "title": "Физика 9Б" }))),
        case(Method::PATCH, chat, c1, no_query.clone(), Some(json!({ "title": "New", "history_visibility": null }))),
        case(Method::PATCH, chat, c1, no_query.clone(), Some(json!({ "history_visibility": "since_join" }))),
        case(
            Method::POST,
            history,
            c1,
            no_query.clone(),
            Some(json!({ "client_msg_id": "k1", "text": "hi\n\tthere" })),
        ),
        case(Method::POST, members, c1, no_query.clone(), Some(json!({ "user_ids": ["u3"], "role": "admin" }))),
    ];
    for case in &taken {
        let (status, body) = send(&h, &member, case).await;
        let shown = shown(case);
        assert!(
            matches!(status, StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE),
            "{shown}: the server answered {status} {body}"
        );
        assert!(
            contract.allows(&case.method, case.template, case.path, &case.query, case.body.as_ref()),
            "the document refuses {shown}, which the server takes ({status})"
        );
    }

    // The platform's upserts: refused names and roles, and a trimmed name taken.
    let upsert = "/api/admin/users/{user_id}";
    for (body, expected) in [
        (json!({ "name": "Ann\nAdmin" }), StatusCode::BAD_REQUEST),
        (json!({ "name": "Ann\u{2066}B" }), StatusCode::BAD_REQUEST),
        (json!({ "name": "x", "roles": ["root"] }), StatusCode::BAD_REQUEST),
        (json!({ "name": "  Мария Ивановна  ", "roles": ["teacher"] }), StatusCode::OK),
    ] {
        let case = case(Method::PUT, upsert, &["u9"], no_query.clone(), Some(body));
        let (status, answer) = send(&h, &admin, &case).await;
        assert_eq!(status, expected, "{:?}: {answer}", case.body);
        let allowed = contract.allows(&case.method, case.template, case.path, &case.query, case.body.as_ref());
        assert_eq!(allowed, expected == StatusCode::OK, "the document disagrees with {status} for {:?}", case.body);
    }
}
