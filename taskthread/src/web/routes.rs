//! Answering the web view's requests: the page, the events, the snapshot, the metrics, and
//! the checks before them (the token, the method).

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::body::{Events, Page};
use super::conn::Connection;
use super::metrics_text;
use crate::watch::Watcher;

/// The page, with its script: one file.
const PAGE: &str = include_str!("page.html");

/// What every connection of a web view shares.
pub(super) struct Site {
    pub(super) watcher: Watcher,
    /// Required on every request, if set.
    pub(super) token: Option<Arc<str>>,
}

/// Serves one connection until the client closes it, or it stays idle for `idle_timeout`.
///
/// hyper's header timeout runs from when the connection begins to wait for a request
/// (as it opens, and after each answer) until the request's head is read whole, so one
/// timeout closes both a client that sends its head too slowly and an idle keep-alive
/// connection; it does not run while an answer (an `/events` stream) is being sent.
pub(super) async fn serve(connection: Connection, site: Arc<Site>, idle_timeout: Duration) {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let response = answer(&site, &request);
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout)
        .serve_connection(TokioIo::new(connection), service)
        .await;
    if let Err(e) = served {
        tracing::debug!("web view: connection ended: {e}");
    }
}

fn answer(site: &Site, request: &Request<Incoming>) -> Response<Page> {
    if !site.authorized(request) {
        return plain(StatusCode::UNAUTHORIZED, "a token is required: ?token=...");
    }
    let head = request.method() == Method::HEAD;
    if request.method() != Method::GET && !head {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET is answered");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let mut response = match request.uri().path() {
        "/" => with_type(Page::whole(PAGE), "text/html; charset=utf-8"),
        "/tree.json" => with_type(
            Page::whole(site.watcher.snapshot().to_json()),
            "application/json",
        ),
        "/metrics" => with_type(
            Page::whole(metrics_text::render(&site.watcher.snapshot())),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        "/events" if head => with_type(Page::whole(""), "text/event-stream"),
        "/events" => {
            let mut response = with_type(
                Page::Events(Events::new(site.watcher.subscribe())),
                "text/event-stream",
            );
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        _ => return plain(StatusCode::NOT_FOUND, "not found"),
    };
    if head {
        *response.body_mut() = Page::whole("");
    }
    response
}

impl Site {
    /// Whether the request carries the token, if one is required.
    fn authorized(&self, request: &Request<Incoming>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let in_query = request.uri().query().is_some_and(|query| {
            query
                .split('&')
                .filter_map(|pair| pair.strip_prefix("token="))
                .any(|given| same(given, token))
        });
        let in_header = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| same(given.trim(), token));
        in_query || in_header
    }
}

/// Compares in time that depends on the lengths only, so the token cannot be guessed one
/// character at a time from how long a refusal takes.
fn same(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

fn with_type(body: Page, content_type: &'static str) -> Response<Page> {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Page> {
    let mut response = with_type(Page::whole(text), "text/plain; charset=utf-8");
    *response.status_mut() = status;
    response
}
