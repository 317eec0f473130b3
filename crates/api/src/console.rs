//! The web console: the static files built from `ui/` (`scripts/build-ui.sh` writes `ui/dist`),
//! served from the binary for every path no other route claims, with client-side routes
//! falling back to `index.html`.
//!
//! Release builds embed `ui/dist` at compile time (rust-embed; `scripts/run.sh` builds the console
//! before Berth). Debug builds read `ui/dist` from disk at run time, so a rebuilt console shows
//! without recompiling Berth. (Not rust-embed's own debug mode: it compares paths against the
//! folder as it was canonicalised at compile time, so a debug build made before the first console
//! build would never find the files.) When the console was not built, `/` answers a page that
//! says how to build it.

use std::borrow::Cow;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

#[cfg(not(debug_assertions))]
#[derive(rust_embed::Embed)]
#[folder = "../../ui/dist/"]
// A checkout without a built console still compiles; it serves the "not built" page.
#[allow_missing = true]
struct Assets;

/// One console file.
struct Asset {
    data: Cow<'static, [u8]>,
    etag: Option<String>,
}

#[cfg(not(debug_assertions))]
fn asset(path: &str) -> Option<Asset> {
    let file = Assets::get(path)?;
    let hash: String = file.metadata.sha256_hash()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(Asset {
        data: file.data,
        etag: Some(format!("\"{hash}\"")),
    })
}

#[cfg(debug_assertions)]
fn asset(path: &str) -> Option<Asset> {
    use std::path::{Component, Path};
    let relative = Path::new(path);
    // Only plain names below ui/dist: no `..`, no absolute paths.
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/dist");
    let data = std::fs::read(dist.join(relative)).ok()?;
    Some(Asset {
        data: Cow::Owned(data),
        etag: None,
    })
}

/// Hashed file names (Vite's `assets/`) never change content: cache them for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `index.html` names the current hashed files: always revalidate it.
const NO_CACHE: &str = "no-cache";

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Berth: console not built</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}
code,pre{background:#f2f2f2;padding:.1rem .3rem;border-radius:4px}</style></head>
<body><h1>The web console was not built</h1>
<p>This Berth binary was compiled without the web console. Build it, then rebuild Berth:</p>
<pre>./scripts/build-ui.sh
cargo build --release -p berth</pre>
<p><code>./scripts/run.sh</code> does both. The REST API is served all the same under
<a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</p></body></html>
"#;

/// The router's fallback: console files, `index.html` for client routes, 404 for the rest.
pub async fn serve(method: Method, uri: Uri, request_headers: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path == "api" || path.starts_with("api/") {
        return ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such API route")
            .into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    if !path.is_empty()
        && let Some(file) = asset(path)
    {
        let cache = if path.starts_with("assets/") {
            IMMUTABLE
        } else {
            NO_CACHE
        };
        return file_response(path, file, cache, &request_headers);
    }
    // A missing file (the last segment has an extension) is a 404, not the app shell: a stale
    // page asking for an old bundle must fail visibly rather than parse HTML as JavaScript.
    let last = path.rsplit('/').next().unwrap_or_default();
    if last.contains('.') {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    match asset("index.html") {
        Some(file) => file_response("index.html", file, NO_CACHE, &request_headers),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, NO_CACHE),
            ],
            NOT_BUILT,
        )
            .into_response(),
    }
}

fn file_response(path: &str, file: Asset, cache: &'static str, request: &HeaderMap) -> Response {
    let unchanged = file.etag.as_deref().is_some_and(|etag| {
        request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|candidate| candidate.trim() == etag))
    });
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        file.data.into_owned().into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Some(value) = file.etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The content type of a console file, by extension (the build makes only these kinds).
fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, e)| e);
    match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::OpenApi;

    #[test]
    fn content_types() {
        let cases = [
            ("index.html", "text/html; charset=utf-8"),
            ("assets/index-abc.js", "text/javascript; charset=utf-8"),
            ("assets/index-abc.css", "text/css; charset=utf-8"),
            ("favicon.svg", "image/svg+xml"),
            ("blob", "application/octet-stream"),
        ];
        for (path, want) in cases {
            assert_eq!(content_type(path), want, "{path}");
        }
    }

    #[tokio::test]
    async fn api_paths_and_missing_files_are_not_the_app_shell() {
        let response = serve(
            Method::GET,
            Uri::from_static("/api/v2/apps"),
            HeaderMap::new(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let response = serve(
            Method::GET,
            Uri::from_static("/assets/gone-123.js"),
            HeaderMap::new(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let response = serve(Method::POST, Uri::from_static("/apps"), HeaderMap::new()).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        // A client route answers the app shell, or the "not built" page without a build.
        let response = serve(
            Method::GET,
            Uri::from_static("/apps/web/revisions"),
            HeaderMap::new(),
        )
        .await;
        let built = asset("index.html").is_some();
        assert_eq!(
            response.status(),
            if built {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            }
        );
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], NO_CACHE);
        // Nothing outside the console's folder is reachable.
        assert!(asset("../openapi.json").is_none());
        assert!(asset("/etc/passwd").is_none());
    }

    /// The console's API types are generated from `ui/openapi.json`: it must be the document
    /// the server serves, so a server change that breaks the console fails the build.
    /// `BERTH_UPDATE_OPENAPI=1 cargo test -p berth-api console` rewrites it; then run
    /// `scripts/build-ui.sh` to see whether the console still compiles.
    #[test]
    fn console_openapi_copy_is_current() {
        let served = format!("{}\n", crate::ApiDoc::openapi().to_pretty_json().unwrap());
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ui/openapi.json");
        if std::env::var_os("BERTH_UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &served).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == served,
            "ui/openapi.json is not the OpenAPI document the server serves: run \
             `BERTH_UPDATE_OPENAPI=1 cargo test -p berth-api console` and then \
             `scripts/build-ui.sh` (the console must still compile against it)"
        );
    }
}
