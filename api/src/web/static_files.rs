//! The built web client, served at `/` from `CHAT_WEB_DIR`. A request path is mapped
//! onto the directory only when every segment is a plain file name (letters, digits,
//! `.`, `-`, `_`, not starting with a dot), so no `..`, no encoded separator and no
//! hidden file can reach outside it; `/api` and everything under it is never served
//! from here, so a file cannot shadow a route.

use std::path::{Path, PathBuf};

use axum::{
    body::Body,
    http::{HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};

/// The page's policy: its own scripts and styles only, REST on its own origin, the
/// WebSocket on any edge (in development it is another port), no framing.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Answers a request outside the API's routes from `dir`.
pub async fn serve(dir: &Path, method: &Method, uri: &Uri) -> Response {
    if is_api(uri.path()) {
        return crate::error::ApiError::not_found().into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let Some(file) = file_for(dir, uri.path()) else { return not_found() };
    match tokio::fs::read(&file).await {
        Ok(bytes) => {
            let mut response =
                if method == Method::HEAD { Response::new(Body::empty()) } else { Response::new(Body::from(bytes)) };
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&file)));
            headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control(uri.path())));
            response
        }
        Err(_) => not_found(),
    }
}

/// True for `/api` and every path below it.
pub fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// The file a path names inside `dir`, `index.html` for `/`; `None` for anything that
/// is not a plain relative file name.
pub fn file_for(dir: &Path, path: &str) -> Option<PathBuf> {
    let relative = path.strip_prefix('/')?;
    let relative = if relative.is_empty() { "index.html" } else { relative };
    let mut file = dir.to_path_buf();
    for segment in relative.split('/') {
        let plain = !segment.is_empty()
            && !segment.starts_with('.')
            && segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !plain {
            return None;
        }
        file.push(segment);
    }
    Some(file)
}

/// The content type of the kinds of file a Vite build writes; anything else is bytes.
pub fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Vite names its assets by content hash, so those may be kept; the page itself is
/// read fresh so that a rebuild shows at once.
fn cache_control(path: &str) -> &'static str {
    if path.starts_with("/assets/") { "public, max-age=31536000, immutable" } else { "no-cache" }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "not found").into_response()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{content_type, file_for, is_api};

    #[test]
    fn only_plain_names_inside_the_directory_are_mapped() {
        let dir = Path::new("/srv/web");
        assert_eq!(file_for(dir, "/"), Some(dir.join("index.html")));
        assert_eq!(file_for(dir, "/assets/app-1a2b.js"), Some(dir.join("assets/app-1a2b.js")));
        for bad in ["/../etc/passwd", "/assets/../../x", "/.env", "//etc/passwd", "/a%2F..%2Fb", "/a\\b", "/assets/"] {
            assert_eq!(file_for(dir, bad), None, "{bad}");
        }
    }

    #[test]
    fn api_paths_are_never_files_and_types_follow_extensions() {
        assert!(is_api("/api") && is_api("/api/chats") && !is_api("/apis.html"));
        assert_eq!(content_type(Path::new("index.html")), "text/html; charset=utf-8");
        assert_eq!(content_type(Path::new("a.js")), "text/javascript; charset=utf-8");
        assert_eq!(content_type(Path::new("secret")), "application/octet-stream");
    }
}
