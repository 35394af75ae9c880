//! The built-in web UI: its three assets (`dashboards/web/`) are compiled into the binary and
//! served under `/ui/`, so the UI works air-gapped: no CDN, no external fonts, no request to any
//! host but this server (the Content-Security-Policy below makes the browser enforce that).
//! Everything a page shows comes from the same scoped API as any other client's.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The single page.
const INDEX_HTML: &str = include_str!("../../dashboards/web/index.html");
/// Its script: routing, API calls, rendering.
const APP_JS: &str = include_str!("../../dashboards/web/app.js");
/// Its styles.
const APP_CSS: &str = include_str!("../../dashboards/web/app.css");

/// Only this origin, for scripts, styles, API calls and images; `blob:` images are the charts
/// the page fetched (with its token) and shows; no frames, no plugins, no inline script.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
                   connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The assets change with the binary: always revalidate.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The UI's routes: `/` and `/ui` redirect to `/ui/`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route(
            "/ui/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
}
