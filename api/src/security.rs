//! Browser-facing protection of the REST API: a CORS allowlist (tokens travel in the
//! `Authorization` header, never in cookies, so credentials are not allowed and CSRF
//! does not apply) and response headers that keep browsers from sniffing, framing or
//! caching API answers.

use axum::{
    Router,
    http::{HeaderName, HeaderValue, Method, header},
};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    set_header::SetResponseHeaderLayer,
};

/// The CORS layer for the configured origins (none: no browser origin may call).
pub fn cors(allowed_origins: &[String]) -> Result<CorsLayer, chat_core::StartupError> {
    let origins = allowed_origins
        .iter()
        .filter(|o| !o.is_empty())
        .map(|o| {
            HeaderValue::from_str(o)
                .map_err(|_| chat_core::StartupError::Config(format!("CHAT_ALLOWED_ORIGINS: bad origin {o:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("traceparent"),
        ])
        .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
        .max_age(std::time::Duration::from_secs(600)))
}

/// Adds the security headers to every response. The web client's files (`web`) bring
/// their own content security policy and caching, which are kept.
pub fn with_headers(router: Router) -> Router {
    let fixed: [(HeaderName, &'static str); 6] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"),
        (header::CACHE_CONTROL, "no-store"),
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
    ];
    fixed.into_iter().fold(router, |router, (name, value)| {
        let value = HeaderValue::from_static(value);
        let own = name == header::CONTENT_SECURITY_POLICY || name == header::CACHE_CONTROL;
        router.layer(if own {
            SetResponseHeaderLayer::if_not_present(name, value)
        } else {
            SetResponseHeaderLayer::overriding(name, value)
        })
    })
}
