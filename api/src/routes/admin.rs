//! `/api/admin`: the platform's user service keeps the directory current.

use axum::{Json, extract::State};
use chat_nats::{model::ErrorCode, roles};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::{
    auth::Caller,
    error::ApiError,
    extract::{ApiJson, ApiPath},
    openapi::rules,
    routes::{check_id, users::User},
    state::AppState,
};

/// Known platform roles.
pub const PLATFORM_ROLES: &[&str] = &["student", "teacher", "admin", "service"];

/// `PUT /api/admin/users/{id}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertUser {
    /// Display name.
    #[schemars(with = "rules::DisplayName")]
    pub name: String,
    /// Platform roles.
    #[serde(default)]
    #[schemars(with = "Vec<rules::PlatformRole>")]
    pub roles: Vec<String>,
}

/// Creates or updates a user (platform `admin` or `service` only).
pub async fn upsert_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(user_id): ApiPath<String>,
    ApiJson(request): ApiJson<UpsertUser>,
) -> Result<Json<User>, ApiError> {
    if !(caller.0.has_role(roles::PLATFORM_ADMIN) || caller.0.has_role(roles::SERVICE)) {
        return Err(ApiError::new(ErrorCode::Forbidden, "platform admin or service role required"));
    }
    check_id(&user_id, "user id")?;
    let name = chat_nats::limits::check_display_name(&request.name).map_err(ApiError::invalid)?;
    if let Some(bad) = request.roles.iter().find(|r| !PLATFORM_ROLES.contains(&r.as_str())) {
        return Err(ApiError::invalid(format!("unknown role {bad:?}")));
    }
    let doc = state.inner.store.upsert_user(&user_id, name, &request.roles, chrono::Utc::now()).await?;
    Ok(Json(User { id: doc.id, name: doc.name, roles: doc.roles }))
}
