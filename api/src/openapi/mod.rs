//! The OpenAPI 3.1 document, derived from the code that serves the API.
//!
//! [`crate::routes`] declares each route once, with its handler and an [`Operation`]
//! (its id, summary, success statuses and the refusals the handler itself decides);
//! the router and the document are both built from that list. The rest comes from the
//! types: [`handler`] reads the handler's signature (body, query, token, response body),
//! the request and response types derive `schemars::JsonSchema` (the bus types in
//! `chat-nats` already do), [`rules`] spells the input rules as schemas, and the error
//! responses are made from [`ErrorCode`] and [`crate::error::status_of`]. schemars
//! rather than utoipa: the shared types already derive schemars schemas for the
//! AsyncAPI documents, and one derive per type keeps the two documents in step.
//!
//! `docs/openapi.json` is a copy of this document for readers and tools; a test fails
//! when the two differ (`UPDATE_OPENAPI=1 cargo test -p api --lib openapi` rewrites it).

pub mod handler;
pub mod rules;

use axum::http::{Method, StatusCode};
use chat_nats::model::ErrorCode;
use schemars::{JsonSchema, Schema, generate::SchemaSettings};
use serde_json::{Map, Value, json};
use strum::VariantArray;

use crate::error::{ErrorBody, status_of};
use handler::{DocumentedHandler, Generators};

/// What a route declares about itself beyond its handler's signature.
#[derive(Debug, Clone)]
pub struct Operation {
    id: &'static str,
    summary: &'static str,
    successes: Vec<(StatusCode, &'static str)>,
    errors: Vec<ErrorCode>,
}

/// Starts an operation's declaration: its `operationId` and one-line summary.
pub fn operation(id: &'static str, summary: &'static str) -> Operation {
    Operation { id, summary, successes: Vec::new(), errors: Vec::new() }
}

impl Operation {
    /// A success status and what it means (200 "OK" when none is declared).
    pub fn ok(mut self, status: StatusCode, description: &'static str) -> Self {
        self.successes.push((status, description));
        self
    }

    /// Refusals decided by the handler or the persister, beyond those its extractors
    /// imply (400 for input, 413 for a body, 401 for a token) and 500, which every
    /// operation may answer.
    pub fn errors(mut self, codes: &[ErrorCode]) -> Self {
        self.errors.extend_from_slice(codes);
        self
    }
}

/// Collects operations into a document.
pub struct DocumentBuilder {
    generators: Generators,
    paths: Map<String, Value>,
}

impl Default for DocumentBuilder {
    fn default() -> Self {
        let settings = |contract| {
            SchemaSettings::draft2020_12().with(|settings| {
                settings.definitions_path = "/components/schemas".into();
                settings.meta_schema = None;
                settings.contract = contract;
            })
        };
        DocumentBuilder {
            generators: Generators {
                request: settings(schemars::generate::Contract::Deserialize).into_generator(),
                response: settings(schemars::generate::Contract::Serialize).into_generator(),
            },
            paths: Map::new(),
        }
    }
}

impl DocumentBuilder {
    /// Adds the operation `method path`, served by a handler of type `H`.
    pub fn add<H: DocumentedHandler<M>, M>(&mut self, method: &Method, path: &str, operation: Operation) {
        let described = H::describe(&mut self.generators);
        let id = self.generators.request.subschema_for::<rules::Id>();
        let mut parameters: Vec<Value> = path_parameters(path)
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": id }))
            .collect();
        if let Some(query) = described.query {
            parameters.push(query_parameter(query.to_value()));
        }

        let mut responses = Map::new();
        let successes = if operation.successes.is_empty() { vec![(StatusCode::OK, "OK")] } else { operation.successes };
        for (status, description) in successes {
            let mut response = json!({ "description": description });
            if let Some(schema) = &described.response {
                response["content"] = json!({ "application/json": { "schema": schema } });
            }
            responses.insert(status.as_u16().to_string(), response);
        }
        let mut errors = described.errors;
        errors.extend(operation.errors);
        errors.push(ErrorCode::Internal);
        for code in errors {
            let reference = format!("#/components/responses/{}", code.as_str());
            responses.insert(status_of(code).as_u16().to_string(), json!({ "$ref": reference }));
        }

        let mut entry = json!({
            "operationId": operation.id,
            "summary": operation.summary,
            "responses": responses,
        });
        if !parameters.is_empty() {
            entry["parameters"] = Value::Array(parameters);
        }
        if let Some(body) = described.body {
            entry["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": body } } });
        }
        if !described.authenticated {
            entry["security"] = json!([]);
        }
        let item = self.paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        item[method.as_str().to_ascii_lowercase()] = entry;
    }

    /// The document.
    pub fn finish(mut self) -> Value {
        let body = self.generators.response.subschema_for::<ErrorBody>();
        let responses: Map<String, Value> =
            ErrorCode::VARIANTS.iter().map(|code| (code.as_str().to_owned(), error_response(*code, &body))).collect();
        let schemas =
            merged(self.generators.request.take_definitions(true), self.generators.response.take_definitions(true));
        json!({
            "openapi": "3.1.0",
            "info": {
                "title": "edu-chat REST API",
                "version": env!("CARGO_PKG_VERSION"),
                "description": "History and chat management of the edu-chat service. Writes go through the same \
                    pipeline as the WebSocket protocol. Derived from the api's routes and types; the rules a schema \
                    cannot state are listed in docs/api.md.",
            },
            "security": [{ "bearer": [] }],
            "paths": self.paths,
            "components": {
                "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
                "responses": responses,
                "schemas": schemas,
            },
        })
    }
}

/// The `{name}` segments of a route template.
fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

/// A query struct's schema as one exploded object parameter (OpenAPI's `style: form,
/// explode: true` sends its fields as separate query parameters), so that the rules of
/// the struct as a whole hold too: unknown parameters are refused
/// (`deny_unknown_fields`), and history's positions exclude each other (`not`).
fn query_parameter(mut schema: Value) -> Value {
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
        object.remove("title");
        if let Some(Value::Object(properties)) = object.get_mut("properties") {
            for property in properties.values_mut() {
                without_null(property);
            }
        }
    }
    let required = schema["required"].as_array().is_some_and(|list| !list.is_empty());
    let description = schema["description"].clone();
    let mut parameter = json!({
        "name": "query",
        "in": "query",
        "required": required,
        "style": "form",
        "explode": true,
        "schema": schema,
    });
    if !description.is_null() {
        parameter["description"] = description;
    }
    parameter
}

/// An absent query parameter is `None`; `null` cannot be sent, so it leaves the schema.
fn without_null(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else { return };
    if let Some(Value::Array(types)) = object.get_mut("type") {
        types.retain(|t| t != "null");
        if let [single] = types.as_slice() {
            let single = single.clone();
            object.insert("type".into(), single);
        }
    }
    if let Some(Value::Array(branches)) = object.get("anyOf") {
        let rest: Vec<Value> = branches.iter().filter(|b| **b != json!({ "type": "null" })).cloned().collect();
        if let [single] = rest.as_slice()
            && let Some(single) = single.as_object()
        {
            let single = single.clone();
            object.remove("anyOf");
            object.extend(single);
        } else {
            object.insert("anyOf".into(), Value::Array(rest));
        }
    }
}

/// One error code's response: its status, the error body with that code, and the
/// headers that come with it.
fn error_response(code: ErrorCode, body: &Schema) -> Value {
    let mut response = json!({
        "description": error_description(code),
        "content": { "application/json": { "schema": {
            "allOf": [body, { "properties": { "error": { "properties": { "code": { "const": code.as_str() } } } } }],
        } } },
    });
    match code {
        ErrorCode::RateLimited | ErrorCode::Unavailable => {
            response["headers"] = json!({ "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "required": true,
                "schema": { "type": "integer", "minimum": 0 },
            } });
        }
        ErrorCode::Unauthorized => {
            response["headers"] = json!({ "WWW-Authenticate": {
                "description": "The scheme the API expects.",
                "required": true,
                "schema": { "const": "Bearer" },
            } });
        }
        _ => {}
    }
    response
}

/// The code's own documentation, taken from its schema.
fn error_description(code: ErrorCode) -> String {
    let schema = ErrorCode::json_schema(&mut schemars::SchemaGenerator::default()).to_value();
    let described = schema["oneOf"].as_array().and_then(|variants| {
        variants.iter().find(|v| v["const"] == code.as_str()).and_then(|v| v["description"].as_str())
    });
    format!("{}: {}", code.as_str(), described.unwrap_or("refused"))
}

/// The request and response schemas side by side. A type used both ways has one
/// schema when both contracts agree; a type whose two schemas differ would need two
/// names, which no type here does (a unit test builds the document).
fn merged(mut request: Map<String, Value>, response: Map<String, Value>) -> Map<String, Value> {
    for (name, schema) in response {
        match request.get(&name) {
            Some(existing) if *existing != schema => {
                panic!("the schema {name} differs between requests and responses; give one of them another name")
            }
            Some(_) => {}
            None => {
                request.insert(name, schema);
            }
        }
    }
    request
}
