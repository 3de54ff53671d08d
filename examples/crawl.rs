//! # crawl — fetch URLs with a concurrency limit, using a job pool
//!
//! Shows [`JobPool::map`](taskthread::jobs::JobPool::map) inside a thread: a `Crawler` maps a
//! fetch over its URLs with at most `--limit` requests in flight, attaches the pool's
//! results stream, and reports each URL as its result arrives — a status and a size, or a
//! clear error (a malformed URL, a scheme this example cannot fetch, a refused connection),
//! without stopping the others. Jobs return a typed error (`FetchError`) that names the URL.
//!
//! With no URLs it starts a small local site of its own (a `LocalSite` thread serving a
//! handful of pages with hyper, one of them slow, one missing) and crawls it, plus a few
//! URLs that fail on purpose. Give URLs to fetch those instead (plain `http://` only: the
//! example has no TLS).
//!
//! Run it with:
//!
//! ```text
//! cargo run --example crawl
//! cargo run --example crawl -- --limit 1
//! cargo run --example crawl -- http://127.0.0.1:8000/ http://localhost:8080/health
//! ```

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use taskthread::jobs::{JobOutcome, JobPool, JobResult};
use taskthread::prelude::*;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

#[derive(Debug, Parser)]
struct Args {
    /// The most requests in flight at once.
    #[arg(long, default_value_t = 3)]
    limit: usize,
    /// The URLs to fetch; none crawls the embedded local site.
    urls: Vec<String>,
}

// ---- the crawler ------------------------------------------------------------------------

/// A fetched page.
#[derive(Debug)]
struct Page {
    url: String,
    status: StatusCode,
    bytes: usize,
    took: Duration,
}

/// Why a URL could not be fetched.
#[derive(Debug)]
struct FetchError {
    url: String,
    reason: String,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.url, self.reason)
    }
}

impl std::error::Error for FetchError {}

/// An error and its sources, `outer: inner: ...`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

async fn fetch(
    client: Client<HttpConnector, Empty<Bytes>>,
    url: String,
) -> Result<Page, FetchError> {
    let fail = |reason: String| FetchError {
        url: url.clone(),
        reason,
    };
    let uri: Uri = url
        .parse()
        .map_err(|e| fail(format!("not a valid URL ({e})")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(fail(format!(
                "cannot fetch `{other}` URLs (plain http only)"
            )));
        }
        None => return Err(fail("not an absolute URL (say http://...)".to_owned())),
    }
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(10), client.get(uri))
        .await
        .map_err(|_| fail("no answer within 10 s".to_owned()))?
        .map_err(|e| fail(format!("request failed: {}", chain(&e))))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| fail(format!("reading the body failed ({e})")))?;
    Ok(Page {
        url: url.clone(),
        status,
        bytes: body.to_bytes().len(),
        took: started.elapsed(),
    })
}

/// Fetches its URLs through a job pool and reports each as it comes.
struct Crawler {
    urls: Vec<String>,
    limit: usize,
    site: Option<TcpListener>,
    pool: Option<JobPool<Page, FetchError>>,
    reported: usize,
    failed: usize,
}

#[taskthread]
impl Crawler {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        if let Some(listener) = self.site.take() {
            ctx.spawn(LocalSite {
                listener: Some(listener),
            });
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        let (pool, results) = JobPool::new(self.limit);
        pool.map(
            move |url| fetch(client.clone(), url),
            self.urls.clone(),
            self.limit,
            Some("crawl"),
        )?;
        pool.close();
        ctx.attach(results);
        self.pool = Some(pool);
        println!(
            "fetching {} URLs, at most {} at once",
            self.urls.len(),
            self.limit
        );
        Ok(())
    }

    #[stream]
    async fn fetched(
        &mut self,
        ctx: &mut Ctx<Self>,
        result: JobResult<Page, FetchError>,
    ) -> Result<()> {
        self.reported += 1;
        match result.outcome {
            JobOutcome::Ok(page) => println!(
                "{:>3} {:<45} {:>7} bytes in {:>4} ms",
                page.status.as_u16(),
                page.url,
                page.bytes,
                page.took.as_millis()
            ),
            JobOutcome::Err(e) => {
                self.failed += 1;
                println!("ERR {e}");
            }
            JobOutcome::Panicked(message) => {
                self.failed += 1;
                println!("ERR {} panicked: {message}", result.id);
            }
            JobOutcome::Cancelled => {
                self.failed += 1;
                println!("ERR {} cancelled", result.id);
            }
        }
        if self.reported == self.urls.len() {
            println!(
                "done: {} fetched, {} failed",
                self.reported - self.failed,
                self.failed
            );
            ctx.stop();
        }
        Ok(())
    }
}

// ---- the embedded site ------------------------------------------------------------------

/// Serves a few pages on a local port: each connection is a task the thread owns.
struct LocalSite {
    listener: Option<TcpListener>,
}

/// A connection that has been served (or failed).
struct Served(Result<(), hyper::Error>);

#[taskthread]
impl LocalSite {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        if let Some(listener) = self.listener.take() {
            ctx.attach(TcpListenerStream::new(listener));
        }
        Ok(())
    }

    #[stream]
    async fn accepted(
        &mut self,
        ctx: &mut Ctx<Self>,
        conn: std::io::Result<tokio::net::TcpStream>,
    ) -> Result<()> {
        let conn = conn?;
        let serve = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(conn), hyper::service::service_fn(page));
        ctx.spawn_task(async move { Served(serve.await) });
        Ok(())
    }

    #[stream]
    async fn served(&mut self, _ctx: &mut Ctx<Self>, served: Served) -> Result<()> {
        if let Err(e) = served.0 {
            tracing::debug!("connection ended: {e}");
        }
        Ok(())
    }
}

async fn page(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match request.uri().path() {
        "/" => (
            StatusCode::OK,
            "<a href=/about>about</a> <a href=/big>big</a>".to_owned(),
        ),
        "/about" => (
            StatusCode::OK,
            "a local site for the crawl example".to_owned(),
        ),
        "/big" => (StatusCode::OK, "taskthread ".repeat(10_000)),
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            (StatusCode::OK, "worth the wait".to_owned())
        }
        _ => (StatusCode::NOT_FOUND, "no such page".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    Ok(response)
}

fn local_urls(site: SocketAddr) -> Vec<String> {
    let mut urls: Vec<String> = ["/", "/about", "/big", "/slow", "/missing"]
        .iter()
        .map(|path| format!("http://{site}{path}"))
        .collect();
    // Failures on purpose: each is reported, and the crawl goes on.
    urls.push("not a url at all".to_owned());
    urls.push("https://example.com/".to_owned());
    urls.push("http://127.0.0.1:1/refused".to_owned());
    urls
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.limit == 0 {
        return Err(Error::msg("--limit must be at least 1"));
    }
    let (urls, site) = if args.urls.is_empty() {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        println!("serving a local site on http://{addr}/");
        (local_urls(addr), Some(listener))
    } else {
        (args.urls, None)
    };
    let root = taskthread::spawn(Crawler {
        urls,
        limit: args.limit,
        site,
        pool: None,
        reported: 0,
        failed: 0,
    });
    root.join().await.into_result()
}
