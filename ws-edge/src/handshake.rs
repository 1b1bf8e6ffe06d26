//! The WebSocket opening handshake (RFC 6455 §4.2) over HTTP/1.1, and the socket
//! underneath it. The edge writes frames to the TCP socket itself (see [`outbox`]), so
//! after the `101` it takes the socket back from hyper instead of keeping hyper's
//! upgraded stream.
//!
//! [`outbox`]: crate::outbox

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// An upgrade request that passed the handshake's checks.
pub struct Accepted {
    accept_key: HeaderValue,
    upgrade: hyper::upgrade::OnUpgrade,
}

/// Why a request is not a WebSocket upgrade the edge accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not `GET`.
    #[error("a WebSocket upgrade is a GET request")]
    NotGet,
    /// `Connection: upgrade` and `Upgrade: websocket` are missing.
    #[error("this endpoint only accepts WebSocket upgrades (Connection: upgrade, Upgrade: websocket)")]
    NotAnUpgrade,
    /// `Sec-WebSocket-Version` is not 13.
    #[error("unsupported Sec-WebSocket-Version; this server speaks 13")]
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` is missing.
    #[error("Sec-WebSocket-Key is missing")]
    MissingKey,
    /// The HTTP connection cannot be upgraded.
    #[error("this connection cannot be upgraded")]
    NotUpgradable,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let status = match self {
            Refused::NotGet => StatusCode::METHOD_NOT_ALLOWED,
            Refused::UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            Refused::NotAnUpgrade => StatusCode::UPGRADE_REQUIRED,
            Refused::MissingKey | Refused::NotUpgradable => StatusCode::BAD_REQUEST,
        };
        let mut response = (status, self.to_string()).into_response();
        if status == StatusCode::UPGRADE_REQUIRED {
            response.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            response.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        response
    }
}

/// Checks that `parts` is a WebSocket upgrade and takes the means to complete it.
pub fn check(parts: &mut Parts) -> Result<Accepted, Refused> {
    if parts.method != Method::GET {
        return Err(Refused::NotGet);
    }
    let headers = &parts.headers;
    if !has_token(headers, header::CONNECTION, "upgrade") || !has_token(headers, header::UPGRADE, "websocket") {
        return Err(Refused::NotAnUpgrade);
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
        return Err(Refused::UnsupportedVersion);
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY).ok_or(Refused::MissingKey)?;
    let accept_key = HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| Refused::MissingKey)?;
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>().ok_or(Refused::NotUpgradable)?;
    Ok(Accepted { accept_key, upgrade })
}

impl Accepted {
    /// The `101 Switching Protocols` answer, and the socket once hyper has sent it,
    /// with any bytes the client sent after its request (already read by hyper).
    pub fn complete(self) -> (Response, impl Future<Output = Option<(TcpStream, Bytes)>>) {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, self.accept_key);
        let socket = async move {
            let upgraded = match self.upgrade.await {
                Ok(upgraded) => upgraded,
                Err(error) => {
                    tracing::debug!(%error, "the upgrade did not complete");
                    return None;
                }
            };
            match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(parts) => Some((parts.io.into_inner(), parts.read_buf)),
                Err(_) => {
                    tracing::error!("an upgraded connection is not a TCP socket; closing it");
                    None
                }
            }
        };
        (response, socket)
    }
}

/// True when the comma-separated header contains `token`, in any case.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|part| part.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(build: impl FnOnce(axum::http::request::Builder) -> axum::http::request::Builder) -> Parts {
        let request = build(Request::builder().uri("/ws")).body(()).unwrap_or_else(|error| panic!("{error}"));
        request.into_parts().0
    }

    fn upgrade_headers(builder: axum::http::request::Builder) -> axum::http::request::Builder {
        with_version(builder, "13")
    }

    fn with_version(builder: axum::http::request::Builder, version: &str) -> axum::http::request::Builder {
        builder
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", version)
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let mut post = parts(|b| upgrade_headers(b.method("POST")));
        assert_eq!(check(&mut post).err(), Some(Refused::NotGet));
        let mut plain = parts(|b| b.header("connection", "keep-alive"));
        assert_eq!(check(&mut plain).err(), Some(Refused::NotAnUpgrade));
        let mut old = parts(|b| with_version(b, "8"));
        assert_eq!(check(&mut old).err(), Some(Refused::UnsupportedVersion));
        let mut no_key = parts(upgrade_headers);
        no_key.headers.remove(header::SEC_WEBSOCKET_KEY);
        assert_eq!(check(&mut no_key).err(), Some(Refused::MissingKey));
        // Everything right, but the request did not come through a server that can
        // upgrade it (hyper adds the extension).
        assert_eq!(check(&mut parts(upgrade_headers)).err(), Some(Refused::NotUpgradable));
    }

    #[test]
    fn the_version_refusal_says_which_version_is_spoken() {
        let response = Refused::UnsupportedVersion.into_response();
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(response.headers().get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()), Some(&b"13"[..]));
    }
}
