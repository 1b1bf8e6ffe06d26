//! What a handler's signature says about its operation: the extractors it takes name
//! the request body, the query, whether a token is needed and which refusals follow
//! from them; its return type names the response body. So a route's document changes
//! when its handler does, and cannot describe a body the handler no longer reads.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use chat_nats::model::ErrorCode;
use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::{
    auth::Caller,
    error::ApiError,
    extract::{ApiJson, ApiPath, ApiQuery},
};

/// Generators for the two directions: requests are described as they are read
/// (`Contract::Deserialize`: a field with a default is optional), responses as they are
/// written (every serialised field is present).
pub struct Generators {
    /// For request bodies and queries.
    pub request: SchemaGenerator,
    /// For response bodies.
    pub response: SchemaGenerator,
}

/// What the extractors and the return type of one handler contribute.
#[derive(Default)]
pub struct Described {
    /// The JSON body's schema (a `$ref`).
    pub body: Option<Schema>,
    /// The query's object schema, inline.
    pub query: Option<Schema>,
    /// The handler needs a bearer token.
    pub authenticated: bool,
    /// Refusals its extractors can answer.
    pub errors: Vec<ErrorCode>,
    /// The success body's schema; `None` for a bodyless answer (204).
    pub response: Option<Schema>,
}

/// An extractor's part of the operation.
pub trait OperationInput {
    /// Adds what this extractor reads and may refuse.
    fn describe(_described: &mut Described, _generators: &mut Generators) {}
}

impl<S> OperationInput for State<S> {}

impl OperationInput for HeaderMap {}

impl OperationInput for Caller {
    fn describe(described: &mut Described, _: &mut Generators) {
        described.authenticated = true;
        described.errors.push(ErrorCode::Unauthorized);
    }
}

impl<T: JsonSchema> OperationInput for ApiJson<T> {
    fn describe(described: &mut Described, generators: &mut Generators) {
        described.body = Some(generators.request.subschema_for::<T>());
        described.errors.extend([ErrorCode::Invalid, ErrorCode::TooLarge]);
    }
}

impl<T: JsonSchema> OperationInput for ApiQuery<T> {
    fn describe(described: &mut Described, generators: &mut Generators) {
        described.query = Some(T::json_schema(&mut generators.request));
        described.errors.push(ErrorCode::Invalid);
    }
}

/// Path parameters are described from the route's template: every one is an id.
impl<T> OperationInput for ApiPath<T> {
    fn describe(described: &mut Described, _: &mut Generators) {
        described.errors.push(ErrorCode::Invalid);
    }
}

/// A return type's part of the operation: the schema of its success body.
pub trait OperationOutput {
    /// `None` when the success answer has no body.
    fn response(_generators: &mut Generators) -> Option<Schema> {
        None
    }
}

impl<T: JsonSchema> OperationOutput for Json<T> {
    fn response(generators: &mut Generators) -> Option<Schema> {
        Some(generators.response.subschema_for::<T>())
    }
}

/// A status chosen at run time (200 or 201) with a body; the route declares which.
impl<T: JsonSchema> OperationOutput for (StatusCode, Json<T>) {
    fn response(generators: &mut Generators) -> Option<Schema> {
        Json::<T>::response(generators)
    }
}

/// A bodyless answer (204).
impl OperationOutput for StatusCode {}

impl<T: OperationOutput> OperationOutput for Result<T, ApiError> {
    fn response(generators: &mut Generators) -> Option<Schema> {
        T::response(generators)
    }
}

/// A handler whose operation can be described; `M` is the tuple of its argument types,
/// which keeps the impls for different arities apart.
pub trait DocumentedHandler<M> {
    /// Describes the operation from the handler's signature.
    fn describe(generators: &mut Generators) -> Described;
}

macro_rules! documented_handler {
    ($($arg:ident),*) => {
        impl<F, Fut, $($arg,)*> DocumentedHandler<($($arg,)*)> for F
        where
            F: FnOnce($($arg),*) -> Fut,
            Fut: Future,
            Fut::Output: OperationOutput,
            $($arg: OperationInput,)*
        {
            fn describe(generators: &mut Generators) -> Described {
                let mut described = Described::default();
                $($arg::describe(&mut described, generators);)*
                described.response = <Fut::Output as OperationOutput>::response(generators);
                described
            }
        }
    };
}

documented_handler!();
documented_handler!(A1);
documented_handler!(A1, A2);
documented_handler!(A1, A2, A3);
documented_handler!(A1, A2, A3, A4);
documented_handler!(A1, A2, A3, A4, A5);
documented_handler!(A1, A2, A3, A4, A5, A6);
