//! The REST routes, one file per resource.

pub mod admin;
pub mod chats;
pub mod members;
pub mod messages;
pub mod moderation;
pub mod openapi;
pub mod records;
pub mod reports;
pub mod users;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    handler::Handler,
    http::{HeaderMap, Method, StatusCode, Uri},
    routing::{self, MethodRouter},
};
use chat_nats::model::ErrorCode;
use tower_http::catch_panic::CatchPanicLayer;

use crate::{
    middleware,
    openapi::{DocumentBuilder, Operation, handler::DocumentedHandler, operation},
    state::AppState,
};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the api serves beside its routes in development (nothing by default).
#[derive(Debug, Default)]
pub struct Extras {
    /// The built web client, served at `/`.
    pub web_dir: Option<std::path::PathBuf>,
    /// `POST /api/dev/token`.
    pub dev_tokens: Option<crate::web::dev_token::DevTokens>,
}

/// The API's routes, each declared once with its handler and what its operation says
/// beyond the handler's signature: the router and the OpenAPI document are both built
/// from this list ([`crate::openapi`]).
fn api_routes() -> ApiRoutes {
    use ErrorCode::{Conflict, Forbidden, NotFound, RateLimited, Unavailable};
    ApiRoutes::default()
        .get("/api/openapi.json", openapi::document, operation("openapi", "This document"))
        .post(
            "/api/chats",
            chats::create,
            operation("createChat", "Create a direct chat or a group")
                .ok(StatusCode::OK, "the existing direct chat with that member")
                .ok(StatusCode::CREATED, "created")
                .errors(&[Forbidden, Conflict, RateLimited, Unavailable]),
        )
        .get(
            "/api/chats",
            chats::list,
            operation("listChats", "The caller's chats, most recent activity first").errors(&[Unavailable]),
        )
        .get(
            "/api/chats/{chat_id}",
            chats::get_one,
            operation("getChat", "One chat with its participants").errors(&[NotFound, Unavailable]),
        )
        .patch(
            "/api/chats/{chat_id}",
            chats::rename,
            operation("renameChat", "Rename a group or change its history visibility").errors(&[
                Forbidden,
                NotFound,
                RateLimited,
                Unavailable,
            ]),
        )
        .post(
            "/api/chats/{chat_id}/participants",
            members::add,
            operation("addMembers", "Add members or change their role").errors(&[
                Forbidden,
                NotFound,
                Conflict,
                RateLimited,
                Unavailable,
            ]),
        )
        .delete(
            "/api/chats/{chat_id}/participants/{user_id}",
            members::remove,
            operation("removeMember", "Remove a member, or leave").ok(StatusCode::NO_CONTENT, "removed").errors(&[
                Forbidden,
                NotFound,
                Conflict,
                RateLimited,
                Unavailable,
            ]),
        )
        .patch(
            "/api/chats/{chat_id}/moderation",
            moderation::moderate,
            operation("moderateChat", "Change who may post, slow mode, or freeze the chat").errors(&[
                Forbidden,
                NotFound,
                RateLimited,
                Unavailable,
            ]),
        )
        .put(
            "/api/chats/{chat_id}/participants/{user_id}/mute",
            moderation::mute,
            operation("muteMember", "Mute a member until a time, or unmute them").errors(&[
                Forbidden,
                NotFound,
                RateLimited,
                Unavailable,
            ]),
        )
        .get(
            "/api/chats/{chat_id}/messages",
            messages::history,
            operation("history", "History: newest first, or oldest first after a seq").errors(&[NotFound, Unavailable]),
        )
        .post(
            "/api/chats/{chat_id}/messages",
            messages::send,
            operation("sendMessage", "Send a message; returns it once persisted")
                .ok(StatusCode::OK, "a resend: the original message")
                .ok(StatusCode::CREATED, "stored")
                .errors(&[Forbidden, NotFound, RateLimited, Unavailable]),
        )
        .patch(
            "/api/chats/{chat_id}/messages/{message_id}",
            messages::edit,
            operation("editMessage", "Edit a message (its sender)").errors(&[
                Forbidden,
                NotFound,
                Conflict,
                RateLimited,
                Unavailable,
            ]),
        )
        .delete(
            "/api/chats/{chat_id}/messages/{message_id}",
            messages::remove,
            operation("deleteMessage", "Delete a message; answers with its tombstone").errors(&[
                Forbidden,
                NotFound,
                RateLimited,
                Unavailable,
            ]),
        )
        .post(
            "/api/chats/{chat_id}/read",
            messages::read,
            operation("markRead", "Move the caller's read mark forward")
                .ok(StatusCode::NO_CONTENT, "marked")
                .errors(&[NotFound, RateLimited, Unavailable]),
        )
        .get(
            "/api/users",
            users::search,
            operation("searchUsers", "Find users by name prefix or exact id").errors(&[RateLimited, Unavailable]),
        )
        .get("/api/users/me", users::me, operation("me", "The caller").errors(&[Unavailable]))
        .get(
            "/api/users/presence",
            users::presence,
            operation("presence", "Online status and last seen of up to 200 users").errors(&[Unavailable]),
        )
        .put(
            "/api/admin/users/{user_id}",
            admin::upsert_user,
            operation("upsertUser", "Create or update a user (the platform)").errors(&[Forbidden, Unavailable]),
        )
        .post(
            "/api/chats/{chat_id}/messages/{message_id}/report",
            reports::report,
            operation("reportMessage", "Report a message to the moderators, once per reporter")
                .ok(StatusCode::OK, "the caller's earlier report of it")
                .ok(StatusCode::CREATED, "reported")
                .errors(&[NotFound, Conflict, RateLimited, Unavailable]),
        )
        .get(
            "/api/moderation/reports",
            reports::queue,
            operation("reportQueue", "The review queue: reports in one state, oldest first (moderators)")
                .errors(&[Forbidden, Unavailable]),
        )
        .post(
            "/api/moderation/reports/{report_id}/resolve",
            reports::resolve,
            operation("resolveReport", "Dismiss a report, delete the message or mute the sender (moderators)")
                .errors(&[Forbidden, NotFound, RateLimited, Unavailable]),
        )
        .get(
            "/api/admin/messages/{chat_id}/{message_id}/history",
            records::history,
            operation("messageHistory", "A message's edits and delete with the texts (platform admins)")
                .errors(&[Forbidden, Unavailable]),
        )
        .get(
            "/api/admin/audit",
            records::audit,
            operation("audit", "The audit trail, newest first, per chat or user (platform admins)")
                .errors(&[Forbidden, Unavailable]),
        )
}

/// The OpenAPI document of [`api_routes`].
pub fn document() -> serde_json::Value {
    api_routes().document.finish()
}

/// Every route with its middleware.
pub fn router(state: AppState, allowed_origins: &[String], extras: Extras) -> Result<Router, chat_core::StartupError> {
    let mut routes = api_routes().router;
    if let Some(tokens) = extras.dev_tokens {
        routes = routes.merge(crate::web::dev_token::routes(tokens));
    }
    let routes = match extras.web_dir {
        Some(dir) => {
            let dir = std::sync::Arc::new(dir);
            routes.fallback(move |method: Method, uri: Uri| async move {
                crate::web::static_files::serve(&dir, &method, &uri).await
            })
        }
        None => routes.fallback(fallback),
    };
    let routes = routes
        .with_state(state)
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(crate::security::cors(allowed_origins)?);
    Ok(crate::security::with_headers(routes).layer(axum::middleware::from_fn(middleware::observe)))
}

async fn fallback() -> crate::error::ApiError {
    crate::error::ApiError::not_found()
}

/// The caller's `traceparent`, passed on to the bus.
pub fn traceparent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(chat_nats::headers::TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .filter(|value| value.len() <= 128)
}

/// Checks an id from a path or body before it goes anywhere near a query or subject.
pub fn check_id(id: &str, what: &str) -> Result<(), crate::error::ApiError> {
    if chat_nats::subjects::is_valid_id(id) {
        Ok(())
    } else {
        Err(crate::error::ApiError::invalid(format!("{what} must be 1-64 characters of [A-Za-z0-9_-]")))
    }
}

/// The router and the document, filled by the same declarations.
#[derive(Default)]
struct ApiRoutes {
    router: Router<AppState>,
    document: DocumentBuilder,
}

/// One method per HTTP method, so that a declaration reads like axum's own.
macro_rules! api_method {
    ($name:ident, $method:expr) => {
        fn $name<H, T, M>(self, path: &str, handler: H, operation: Operation) -> Self
        where
            H: Handler<T, AppState> + DocumentedHandler<M>,
            T: 'static,
        {
            self.add::<H, M>($method, path, routing::$name(handler), operation)
        }
    };
}

impl ApiRoutes {
    api_method!(get, Method::GET);
    api_method!(post, Method::POST);
    api_method!(put, Method::PUT);
    api_method!(patch, Method::PATCH);
    api_method!(delete, Method::DELETE);

    fn add<H: DocumentedHandler<M>, M>(
        mut self,
        method: Method,
        path: &str,
        route: MethodRouter<AppState>,
        operation: Operation,
    ) -> Self {
        self.document.add::<H, M>(&method, path, operation);
        // Routes on one path merge into one method router.
        self.router = self.router.route(path, route);
        self
    }
}
