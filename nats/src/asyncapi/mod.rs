//! AsyncAPI 3.0 documents built from the Rust types, so that they cannot drift from
//! what the code sends and accepts.
//!
//! Every payload schema is the `schemars` schema of the type that is serialised or
//! parsed; a message of one variant of a tagged enum gets that enum's schema narrowed
//! to the variant (see [`Builder::variant`]). The shared definitions land under
//! `components.schemas`, which is where the schemas' `$ref`s point.
//!
//! Layout: this module is the builder both documents use; [`bus`] is the document of
//! the NATS subjects (checked into `docs/asyncapi-nats.json`). The WebSocket document
//! is the edge's (`ws-edge/src/asyncapi.rs`), since the client frames are its types.

pub mod bus;

use schemars::{
    JsonSchema, Schema, SchemaGenerator,
    generate::{Contract, SchemaSettings},
};
use serde_json::{Map, Value, json};

/// The AsyncAPI version both documents are written in.
pub const ASYNCAPI_VERSION: &str = "3.0.0";

/// Where the schemas' `$ref`s point, as a JSON pointer and as a `$ref` prefix.
const SCHEMAS_POINTER: &str = "/components/schemas";
const SCHEMAS_REF: &str = "#/components/schemas/";

/// Which side of serde a payload's schema describes: what is written (every field the
/// writer always writes is required) or what is accepted (fields with a default may be
/// left out). A document uses both: the edge writes frames and accepts commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The payload as this code serialises it.
    Written,
    /// The payload as this code deserialises it.
    Accepted,
}

/// What the described application does on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It publishes (AsyncAPI `send`).
    Send,
    /// It subscribes (AsyncAPI `receive`).
    Receive,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Send => "send",
            Action::Receive => "receive",
        }
    }
}

/// One message of a document: its wire name, what it is for, and its payload schema.
#[derive(Debug, Clone)]
pub struct MessageSpec {
    /// The key under `components.messages`, unique in the document.
    pub id: String,
    /// The wire name (the frame's or payload's `type`, or the subject's last tokens).
    pub name: String,
    /// One line on what it is for.
    pub summary: String,
    /// Its payload's schema.
    pub payload: Value,
}

/// A request/reply: where the answer goes and which messages it may be.
#[derive(Debug, Clone)]
pub struct ReplySpec {
    /// The id of the reply's channel.
    pub channel: String,
    /// Where the request names the reply's address (a runtime expression such as
    /// `$message.payload#/reply`); `None` for the transport's own reply subject.
    pub location: Option<String>,
    /// The ids of the reply's messages, as keys of that channel's messages.
    pub messages: Vec<String>,
}

/// Builds one AsyncAPI 3.0 document.
pub struct Builder {
    root: Map<String, Value>,
    servers: Map<String, Value>,
    channels: Map<String, Value>,
    operations: Map<String, Value>,
    messages: Map<String, Value>,
    written: SchemaGenerator,
    accepted: SchemaGenerator,
}

impl Builder {
    /// A document with this `info` (title, version, description).
    pub fn new(title: &str, version: &str, description: &str) -> Builder {
        let mut root = Map::new();
        root.insert("asyncapi".into(), ASYNCAPI_VERSION.into());
        root.insert("info".into(), json!({"title": title, "version": version, "description": description}));
        root.insert("defaultContentType".into(), "application/json".into());
        Builder {
            root,
            servers: Map::new(),
            channels: Map::new(),
            operations: Map::new(),
            messages: Map::new(),
            written: generator(Contract::Serialize),
            accepted: generator(Contract::Deserialize),
        }
    }

    /// Adds a server (an AsyncAPI Server Object).
    pub fn server(&mut self, id: &str, server: Value) {
        self.servers.insert(id.into(), server);
    }

    /// The schema of `T`: a `$ref` into `components.schemas` for named types.
    pub fn schema<T: JsonSchema>(&mut self, side: Side) -> Value {
        let schema = self.generator(side).subschema_for::<T>().to_value();
        self.transformed(side, schema)
    }

    /// The schema of `T`, a tagged enum (or a type that flattens one, or an enum whose
    /// untagged variants are such types), narrowed to the variant whose `tag` is
    /// `name`. `None` when no variant has that name, which the documents' tests catch.
    pub fn variant<T: JsonSchema>(&mut self, side: Side, tag: &str, name: &str) -> Option<Value> {
        let schema = self.schema::<T>(side);
        let definitions = self.generator(side).definitions().clone();
        let narrowed = narrow(&schema, &definitions, tag, name)?;
        Some(self.transformed(side, narrowed))
    }

    /// The wire names of `T`'s variants as serde spells them (the schema follows
    /// serde's attributes), through its untagged variants into the tagged types they
    /// hold.
    pub fn variant_names<T: JsonSchema>(&mut self, side: Side, tag: &str) -> Vec<String> {
        let schema = self.schema::<T>(side);
        variant_names(&schema, self.generator(side).definitions(), tag)
    }

    /// The schema of `T` with its property `property` (a tagged enum) narrowed to the
    /// variant whose `tag` is `name`: a command envelope holding one command.
    pub fn variant_in<T: JsonSchema, E: JsonSchema>(
        &mut self,
        side: Side,
        property: &str,
        tag: &str,
        name: &str,
    ) -> Option<Value> {
        let outer = self.schema::<T>(side);
        let inner = self.variant::<E>(side, tag, name)?;
        let definitions = self.generator(side).definitions().clone();
        let mut outer = resolve(&outer, &definitions)?.clone();
        let slot = outer.get_mut("properties")?.get_mut(property)?;
        *slot = inner;
        Some(self.transformed(side, outer))
    }

    /// Adds a message under `components.messages`.
    pub fn message(&mut self, message: MessageSpec) {
        let MessageSpec { id, name, summary, payload } = message;
        self.messages.insert(id, json!({"name": name, "title": name, "summary": summary, "payload": payload}));
    }

    /// Adds a channel: its address (`None` for one only known at run time, such as a
    /// reply inbox), what it is, its address parameters and the ids of its messages.
    pub fn channel(
        &mut self,
        id: &str,
        address: Option<&str>,
        description: &str,
        parameters: &[(&str, &str)],
        messages: &[&str],
    ) {
        let mut channel = Map::new();
        channel.insert("address".into(), address.map_or(Value::Null, Value::from));
        channel.insert("description".into(), description.into());
        let messages: Map<String, Value> = messages
            .iter()
            .map(|id| ((*id).to_owned(), json!({"$ref": format!("#/components/messages/{id}")})))
            .collect();
        channel.insert("messages".into(), messages.into());
        if !parameters.is_empty() {
            let parameters: Map<String, Value> = parameters
                .iter()
                .map(|(name, description)| ((*name).to_owned(), json!({"description": description})))
                .collect();
            channel.insert("parameters".into(), parameters.into());
        }
        self.channels.insert(id.into(), channel.into());
    }

    /// Adds extra fields (bindings, `x-` extensions) to a channel added before.
    pub fn extend_channel(&mut self, id: &str, fields: Map<String, Value>) {
        if let Some(Value::Object(channel)) = self.channels.get_mut(id) {
            channel.extend(fields);
        }
    }

    /// Adds an operation on `channel` with some of its messages, and its reply.
    pub fn operation(
        &mut self,
        id: &str,
        action: Action,
        channel: &str,
        summary: &str,
        messages: &[&str],
        reply: Option<ReplySpec>,
    ) {
        let refs = |channel: &str, messages: &mut dyn Iterator<Item = &str>| -> Vec<Value> {
            messages.map(|message| json!({"$ref": format!("#/channels/{channel}/messages/{message}")})).collect()
        };
        let mut operation = Map::new();
        operation.insert("action".into(), action.as_str().into());
        operation.insert("channel".into(), json!({"$ref": format!("#/channels/{channel}")}));
        operation.insert("summary".into(), summary.into());
        operation.insert("messages".into(), refs(channel, &mut messages.iter().copied()).into());
        if let Some(reply) = reply {
            let messages = refs(&reply.channel, &mut reply.messages.iter().map(String::as_str));
            let mut object = Map::new();
            if let Some(location) = reply.location {
                object.insert("address".into(), json!({"location": location}));
            }
            object.insert("channel".into(), json!({"$ref": format!("#/channels/{}", reply.channel)}));
            object.insert("messages".into(), messages.into());
            operation.insert("reply".into(), object.into());
        }
        self.operations.insert(id.into(), operation.into());
    }

    /// The document. The definitions of both sides share `components.schemas`; a type
    /// whose written and accepted schemas differ keeps its written one, and is named
    /// in the second value so that a test can insist there is none.
    pub fn finish(mut self) -> (Value, Vec<String>) {
        let mut schemas = self.written.take_definitions(true);
        let mut conflicts = Vec::new();
        for (name, accepted) in self.accepted.take_definitions(true) {
            match schemas.get(&name) {
                Some(written) if *written != accepted => conflicts.push(name),
                Some(_) => {}
                None => {
                    schemas.insert(name, accepted);
                }
            }
        }
        let mut root = self.root;
        if !self.servers.is_empty() {
            root.insert("servers".into(), self.servers.into());
        }
        root.insert("channels".into(), self.channels.into());
        root.insert("operations".into(), self.operations.into());
        root.insert("components".into(), json!({"messages": self.messages, "schemas": schemas}));
        let mut document = Value::Object(root);
        sort_keys(&mut document);
        (document, conflicts)
    }

    /// `schema` as the generator's definitions read once taken: with its draft-07
    /// rewrites applied (narrowed schemas are copies of definitions taken raw).
    fn transformed(&mut self, side: Side, mut schema: Value) -> Value {
        if let Ok(target) = <&mut Schema>::try_from(&mut schema) {
            for transform in self.generator(side).transforms_mut() {
                transform.transform(target);
            }
        }
        schema
    }

    fn generator(&mut self, side: Side) -> &mut SchemaGenerator {
        match side {
            Side::Written => &mut self.written,
            Side::Accepted => &mut self.accepted,
        }
    }
}

/// Sorts every object's keys, so that the document reads the same whether or not
/// serde_json keeps insertion order (a feature another crate of a build may turn on).
fn sort_keys(value: &mut Value) {
    match value {
        Value::Object(object) => {
            object.sort_keys();
            object.values_mut().for_each(sort_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

/// A draft-07 generator (the AsyncAPI schema format is a superset of JSON Schema
/// draft 07) whose definitions go under `components.schemas`, without `$schema`.
fn generator(contract: Contract) -> SchemaGenerator {
    SchemaSettings::draft07()
        .with(|settings| {
            settings.definitions_path = SCHEMAS_POINTER.into();
            settings.meta_schema = None;
            settings.contract = contract;
        })
        .into_generator()
}

/// The definition a `$ref` names, or the schema itself when it is none.
fn resolve<'a>(schema: &'a Value, definitions: &'a Map<String, Value>) -> Option<&'a Value> {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => definitions.get(reference.strip_prefix(SCHEMAS_REF)?),
        None => Some(schema),
    }
}

/// The wire name a schema's `tag` property pins (`const`, or an `enum` of one).
pub fn tag_of<'a>(schema: &'a Value, tag: &str) -> Option<&'a str> {
    let property = schema.get("properties")?.get(tag)?;
    if let Some(name) = property.get("const").and_then(Value::as_str) {
        return Some(name);
    }
    match property.get("enum").and_then(Value::as_array).map(Vec::as_slice) {
        Some([only]) => only.as_str(),
        _ => None,
    }
}

/// Every wire name a tagged schema's variants pin, in order, through `$ref`s and the
/// `oneOf`s of untagged variants.
pub fn variant_names(schema: &Value, definitions: &Map<String, Value>, tag: &str) -> Vec<String> {
    // The tag is looked for before the `$ref` is followed: a newtype variant is its
    // struct's `$ref` beside the tag.
    if let Some(name) = tag_of(schema, tag) {
        return vec![name.to_owned()];
    }
    let Some(schema) = resolve(schema, definitions) else { return Vec::new() };
    if let Some(name) = tag_of(schema, tag) {
        return vec![name.to_owned()];
    }
    match union_of(schema) {
        Some((_, variants)) => variants.iter().flat_map(|variant| variant_names(variant, definitions, tag)).collect(),
        None => Vec::new(),
    }
}

/// The variants of a union schema and the keyword holding them: `oneOf` for a tagged
/// enum, `anyOf` for one with untagged variants.
fn union_of(schema: &Value) -> Option<(&'static str, &Vec<Value>)> {
    ["oneOf", "anyOf"].into_iter().find_map(|key| Some((key, schema.get(key)?.as_array()?)))
}

/// `schema` narrowed to the variant whose `tag` is `name`: the one matching entry of
/// its `oneOf` or `anyOf` (itself narrowed, for an untagged variant that holds a tagged type),
/// beside the schema's own properties when it has some (a struct that flattens a
/// tagged enum).
fn narrow(schema: &Value, definitions: &Map<String, Value>, tag: &str, name: &str) -> Option<Value> {
    if tag_of(schema, tag) == Some(name) {
        return Some(schema.clone());
    }
    let schema = resolve(schema, definitions)?;
    if tag_of(schema, tag) == Some(name) {
        return Some(schema.clone());
    }
    let (keyword, variants) = union_of(schema)?;
    let chosen = variants.iter().find_map(|variant| narrow(variant, definitions, tag, name))?;
    let mut narrowed = schema.as_object()?.clone();
    narrowed.remove(keyword);
    let own_fields = narrowed.keys().any(|key| key != "description" && key != "title");
    if !own_fields {
        // A pure union: the variant stands alone (its own description says what it is).
        return Some(chosen);
    }
    narrowed.insert("oneOf".into(), Value::Array(vec![chosen]));
    Some(narrowed.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(JsonSchema)]
    #[serde(tag = "type")]
    #[allow(dead_code)]
    enum Inner {
        #[serde(rename = "a.one")]
        One { x: u8 },
        #[serde(rename = "a.two")]
        Two { y: String },
    }

    #[derive(JsonSchema)]
    #[allow(dead_code)]
    struct Outer {
        id: String,
        #[serde(flatten)]
        body: Inner,
    }

    #[derive(JsonSchema)]
    #[serde(tag = "type")]
    #[allow(dead_code)]
    enum Frame {
        #[serde(rename = "hello")]
        Hello { n: u8 },
        #[serde(untagged)]
        Event(Outer),
    }

    #[test]
    fn a_variant_is_found_through_refs_flattening_and_untagged_variants() {
        let mut builder = Builder::new("t", "1", "d");
        let hello = builder.variant::<Frame>(Side::Written, "type", "hello").expect("hello");
        assert_eq!(tag_of(&hello, "type"), Some("hello"));
        let two = builder.variant::<Frame>(Side::Written, "type", "a.two").expect("a.two");
        assert!(two["properties"]["id"].is_object(), "the flattening struct's own fields stay: {two}");
        let only = two["oneOf"].as_array().map(Vec::len);
        assert_eq!(only, Some(1), "only the chosen variant: {two}");
        assert_eq!(tag_of(&two["oneOf"][0], "type"), Some("a.two"));
        assert!(builder.variant::<Frame>(Side::Written, "type", "nope").is_none());
        assert_eq!(builder.variant_names::<Frame>(Side::Written, "type"), ["hello", "a.one", "a.two"]);
    }

    /// Wire names are spelled twice on each bus enum, for serde and for strum: they
    /// must agree, variant by variant.
    #[test]
    fn serde_and_strum_agree_on_every_bus_enums_names() {
        use strum::VariantNames;

        use crate::{
            commands::Command,
            events::{EventBody, LiveSignal, UserEvent},
        };

        let mut builder = Builder::new("t", "1", "d");
        assert_eq!(builder.variant_names::<Command>(Side::Written, "type"), Command::VARIANTS);
        assert_eq!(builder.variant_names::<EventBody>(Side::Written, "type"), EventBody::VARIANTS);
        assert_eq!(builder.variant_names::<UserEvent>(Side::Written, "type"), UserEvent::VARIANTS);
        assert_eq!(builder.variant_names::<LiveSignal>(Side::Written, "type"), LiveSignal::VARIANTS);
    }

    /// The unit enums' serde names (`rename_all`) and strum names (`serialize_all`).
    #[test]
    fn serde_and_strum_agree_on_error_codes_and_roles() {
        use strum::VariantArray;

        use crate::model::{ErrorCode, Role};

        for code in ErrorCode::VARIANTS {
            assert_eq!(serde_json::to_value(code).ok(), Some(Value::from(code.as_str())));
        }
        for role in Role::VARIANTS {
            assert_eq!(serde_json::to_value(role).ok(), Some(Value::from(role.as_str())));
        }
    }
}
