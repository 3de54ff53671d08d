//! The web view (`taskthread::web`) end to end: the page in a real headless browser
//! (Chromium, driven over its DevTools protocol) shows the tree and follows it as a thread
//! is spawned and stopped; `/tree.json`, `/metrics` and `/events` over plain HTTP; the
//! loopback rule, the token, unknown paths and methods; the limit on connections, the idle
//! timeout (a slow request head, an idle keep-alive connection, an `/events` stream that is
//! not read) and an `/events` stream that lasts while it is read.
//!
//! The browser test needs Chromium: Debian's `chromium` package (`.ci/run` installs it), or
//! the binary named by `TASKTHREAD_CHROMIUM`.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use taskthread::prelude::*;
use taskthread::web::{WebEndpoint, WebError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Spawns and stops children on demand.
#[derive(Default)]
struct Site {
    children: Vec<ChildRef<Page>>,
}

struct Spawn;
struct StopLast;

#[taskthread]
impl Site {
    async fn enter(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        self.children
            .push(ctx.spawn_with(Page, ChildOptions::new().name("home")));
        Ok(())
    }

    #[down]
    async fn spawn_one(&mut self, ctx: &mut Ctx<Self>, _s: Spawn) -> Result<()> {
        self.children
            .push(ctx.spawn_with(Page, ChildOptions::new().name("fresh")));
        Ok(())
    }

    #[down]
    async fn stop_last(&mut self, _ctx: &mut Ctx<Self>, _s: StopLast) -> Result<()> {
        if let Some(child) = self.children.pop() {
            child.stop();
        }
        Ok(())
    }
}

/// Counts what it is sent.
#[derive(Default)]
struct Page;

#[taskthread]
impl Page {
    #[down]
    async fn hit(&mut self, _ctx: &mut Ctx<Self>, _n: u64) -> Result<()> {
        Ok(())
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// One plain HTTP/1.0 request: the status code, the headers and the body.
async fn get(addr: SocketAddr, request: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

fn request(path: &str) -> String {
    format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_the_metrics_and_the_events_over_http() {
    let site = taskthread::spawn_with(Site::default(), ChildOptions::new().name("web-http"));
    let web = WebEndpoint::new(loopback())
        .interval(Duration::from_millis(20))
        .bind(&site)
        .await
        .unwrap();
    let addr = web.local_addr();
    let _web = taskthread::spawn(web);
    while site.snapshot().children.is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let (status, head, body) = get(addr, &request("/tree.json")).await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let tree: taskthread::watch::WatchMessage = serde_json::from_str(&body).unwrap();
    let taskthread::watch::WatchMessage::Snapshot(tree) = tree else {
        panic!("a snapshot");
    };
    let paths: Vec<&str> = tree.threads.iter().map(|t| t.path.as_str()).collect();
    assert_eq!(paths, ["web-http", "web-http/home"]);

    let (status, head, body) = get(addr, &request("/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        body.contains("# TYPE taskthread_handled_total counter\n"),
        "{body}"
    );
    assert!(
        body.contains("taskthread_queue_capacity{path=\"web-http/home\",queue=\"down\"} 64\n"),
        "{body}"
    );
    assert!(body.contains("taskthread_threads 2\n"), "{body}");

    // The events: a snapshot, then changes, each one `data:` line of JSON.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(request("/events").as_bytes())
        .await
        .unwrap();
    let mut lines = BufReader::new(stream).lines();
    let mut data = Vec::new();
    let mut head = String::new();
    while data.len() < 2 {
        let line = lines.next_line().await.unwrap().unwrap();
        if let Some(json) = line.strip_prefix("data: ") {
            data.push(json.to_owned());
        } else if data.is_empty() {
            head.push_str(&line);
            head.push('\n');
        }
    }
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(data[0].starts_with(r#"{"kind":"snapshot""#), "{}", data[0]);
    assert!(data[1].starts_with(r#"{"kind":"changes""#), "{}", data[1]);

    let (status, _, page) = get(addr, &request("/")).await;
    assert_eq!(status, 200);
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains(r#"new EventSource("events" + query)"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_their_status() {
    let site = taskthread::spawn_with(Site::default(), ChildOptions::new().name("web-bad"));
    let web = WebEndpoint::new(loopback()).bind(&site).await.unwrap();
    let addr = web.local_addr();
    let _web = taskthread::spawn(web);
    assert_eq!(get(addr, &request("/nothing")).await.0, 404);
    let (status, head, _) = get(addr, "POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n").await;
    assert_eq!(status, 405);
    assert!(head.contains("allow: GET, HEAD"), "{head}");
    let (status, _, body) = get(addr, "HEAD /tree.json HTTP/1.0\r\n\r\n").await;
    assert_eq!((status, body.as_str()), (200, ""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_address_needs_a_token_and_every_request_carries_it() {
    let site = taskthread::spawn_with(Site::default(), ChildOptions::new().name("web-token"));
    let remote: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let refused = WebEndpoint::new(remote).bind(&site).await.unwrap_err();
    assert!(matches!(refused, WebError::NotLoopback(_)));
    assert!(
        refused.to_string().contains("not a loopback address"),
        "{refused}"
    );
    let empty = WebEndpoint::new(remote).allow_remote("").bind(&site).await;
    assert!(matches!(empty, Err(WebError::EmptyToken)));

    let web = WebEndpoint::new(remote)
        .allow_remote("s3cret")
        .bind(&site)
        .await
        .unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], web.local_addr().port()).into();
    let _web = taskthread::spawn(web);
    assert_eq!(get(addr, &request("/tree.json")).await.0, 401);
    assert_eq!(get(addr, &request("/tree.json?token=wrong")).await.0, 401);
    assert_eq!(get(addr, &request("/tree.json?token=s3cre")).await.0, 401);
    assert_eq!(get(addr, &request("/tree.json?token=s3cret")).await.0, 200);
    assert_eq!(get(addr, &request("/?x=1&token=s3cret")).await.0, 200);
    let bearer = "GET /metrics HTTP/1.0\r\nAuthorization: Bearer s3cret\r\n\r\n";
    assert_eq!(get(addr, bearer).await.0, 200);
}

/// A headless Chromium, driven over the DevTools protocol on one page.
struct Browser {
    process: tokio::process::Child,
    page: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn launch() -> Self {
        let binary = std::env::var("TASKTHREAD_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
        let profile = tempfile::tempdir().unwrap();
        let mut process = tokio::process::Command::new(&binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-port=0",
                "about:blank",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `{binary}` ({e}): install Debian's `chromium` package, or set TASKTHREAD_CHROMIUM")
            });
        let mut stderr = BufReader::new(process.stderr.take().unwrap()).lines();
        let port = loop {
            let line = tokio::time::timeout(Duration::from_secs(30), stderr.next_line())
                .await
                .expect("Chromium says where DevTools listen within 30 s")
                .unwrap()
                .expect("Chromium ended before listening");
            if let Some(url) = line.strip_prefix("DevTools listening on ws://127.0.0.1:") {
                break url.split('/').next().unwrap().parse::<u16>().unwrap();
            }
        };
        // Chromium keeps writing to stderr: read it, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        let targets = devtools_targets(port).await;
        let url = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page to drive")
            .to_owned();
        let (page, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self {
            process,
            page,
            next_id: 1,
            _profile: profile,
        }
    }

    /// Sends one DevTools command and returns its result.
    async fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let command = serde_json::json!({ "id": id, "method": method, "params": params });
        self.page
            .send(Message::text(command.to_string()))
            .await
            .unwrap();
        loop {
            let message = self.page.next().await.unwrap().unwrap();
            let Message::Text(text) = message else {
                continue;
            };
            let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    async fn eval(&mut self, expression: &str) -> serde_json::Value {
        let result = self
            .call(
                "Runtime.evaluate",
                serde_json::json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        result["result"]["value"].clone()
    }

    /// Waits until the expression is true in the page (at most 30 s).
    async fn until(&mut self, expression: &str) {
        for _ in 0..300 {
            if self.eval(expression).await == serde_json::Value::Bool(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let html = self.eval("document.body.innerText").await;
        panic!("not true in the page within 30 s: {expression}\n{html}");
    }
}

/// The targets DevTools lists. Its HTTP server wants HTTP/1.1 with a `Host`, and keeps the
/// connection open: the body is read by its length.
async fn devtools_targets(port: u16) -> serde_json::Value {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut stream = BufReader::new(stream);
    let request = format!("GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.process.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_tree_in_a_browser_and_follows_a_spawn_and_a_stop() {
    let site = taskthread::spawn_with(Site::default(), ChildOptions::new().name("web-live"));
    let web = WebEndpoint::new(loopback())
        .interval(Duration::from_millis(50))
        .bind(&site)
        .await
        .unwrap();
    let url = format!("http://{}/", web.local_addr());
    let _web = taskthread::spawn(web);

    let mut browser = Browser::launch().await;
    browser
        .call("Page.navigate", serde_json::json!({ "url": url }))
        .await;
    let row = |path: &str| format!(r#"document.querySelector('tr[data-path="{path}"]')"#);
    browser
        .until(&format!(
            "{} !== null && {} !== null",
            row("web-live"),
            row("web-live/home")
        ))
        .await;
    let state = browser
        .eval(&format!("{}.dataset.state", row("web-live/home")))
        .await;
    assert_eq!(state, "running");
    assert!(
        browser
            .eval("document.getElementById('status').textContent")
            .await
            .as_str()
            .unwrap()
            .contains("2 threads")
    );

    // A thread spawned: its row appears, and the timeline says so.
    site.send(Spawn).await.unwrap();
    browser
        .until(&format!("{} !== null", row("web-live/fresh")))
        .await;
    browser
        .until(r#"document.querySelector('#events li[data-kind="spawned"][data-path="web-live/fresh"]') !== null"#)
        .await;

    // Selecting it shows its details.
    browser
        .eval(&format!("{}.click()", row("web-live/fresh")))
        .await;
    browser
        .until("document.getElementById('details').textContent.includes('Page #')")
        .await;

    // Stopped: its row goes, and the timeline says it exited.
    site.send(StopLast).await.unwrap();
    browser
        .until(&format!("{} === null", row("web-live/fresh")))
        .await;
    browser
        .until(r#"document.querySelector('#events li[data-kind="exited"][data-path="web-live/fresh"]') !== null"#)
        .await;
    assert_eq!(
        browser
            .eval("document.querySelectorAll('#tree tr').length")
            .await,
        2
    );
}

/// Connects with a small receive buffer, so that a client that does not read fills the
/// socket's buffers after a few events.
async fn connect_small(addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Reads what is left until the server closes the connection.
async fn until_closed(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    // A reset (the server had not read all we sent) is a close too.
    let _ = stream.read_to_end(&mut rest).await;
}

#[tokio::test(start_paused = true)]
async fn connections_over_the_limit_are_refused_and_a_closed_one_frees_its_place() {
    let site = taskthread::spawn_with(Site::default(), ChildOptions::new().name("web-cap"));
    let web = WebEndpoint::new(loopback())
        .max_connections(2)
        .bind(&site)
        .await
        .unwrap();
    let addr = web.local_addr();
    let web = taskthread::spawn(web);
    // Two clients hold both places: they opened a connection and are taking their time.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    let (status, head, body) = get(addr, &request("/tree.json")).await;
    assert_eq!(status, 503, "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");
    assert_eq!(body, "too many connections (at most 2): try again later\n");
    // With as many waiting as there are places, the next is closed at once, unanswered.
    let mut waiting = Vec::new();
    for _ in 0..2 {
        waiting.push(TcpStream::connect(addr).await.unwrap());
    }
    // Less than the wait for a place: both are waiting.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut closed = TcpStream::connect(addr).await.unwrap();
    let _ = closed.write_all(request("/tree.json").as_bytes()).await;
    let mut answer = String::new();
    let _ = closed.read_to_string(&mut answer).await;
    assert_eq!(answer, "", "closed without an answer");
    drop(waiting);
    // One closes: the next connection is served.
    drop(held.pop());
    assert_eq!(get(addr, &request("/tree.json")).await.0, 200);
    drop(held);
    web.stop();
    web.join().await.into_result().unwrap();
}

#[tokio::test(start_paused = true)]
async fn limits_past_what_the_clock_and_a_semaphore_count_are_taken_as_their_longest() {
    let site = taskthread::spawn_with(Site::default(), ChildOptions::new().name("web-huge"));
    let web = WebEndpoint::new(loopback())
        .idle_timeout(Duration::MAX)
        .max_connections(usize::MAX)
        .bind(&site)
        .await
        .unwrap();
    let addr = web.local_addr();
    let web = taskthread::spawn(web);
    for _ in 0..2 {
        assert_eq!(get(addr, &request("/tree.json")).await.0, 200);
    }
    web.stop();
    web.join().await.into_result().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_slow_request_head_and_an_idle_keep_alive_connection_are_closed() {
    let site = taskthread::spawn_with(Site::default(), ChildOptions::new().name("web-idle"));
    let web = WebEndpoint::new(loopback())
        .max_connections(2)
        .bind(&site)
        .await
        .unwrap();
    let addr = web.local_addr();
    let web = taskthread::spawn(web);
    // One client begins its request's head and never ends it.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nX: ").await.unwrap();
    // Another asks once on a keep-alive connection, takes its answer, and stays.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /tree.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n0\r\n\r\n") {
        let mut buf = [0; 4096];
        let n = kept.read(&mut buf).await.unwrap();
        assert_ne!(
            n, 0,
            "the keep-alive connection stays open after its answer"
        );
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(get(addr, &request("/tree.json")).await.0, 503);

    tokio::time::sleep(taskthread::web::DEFAULT_IDLE_TIMEOUT + Duration::from_secs(1)).await;
    // Both were closed, and their places are free again: one for a client that holds
    // it, one for a request.
    let _third = TcpStream::connect(addr).await.unwrap();
    assert_eq!(get(addr, &request("/tree.json")).await.0, 200);
    until_closed(&mut slow).await;
    until_closed(&mut kept).await;
    web.stop();
    web.join().await.into_result().unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_events_stream_lasts_while_read_and_is_closed_once_its_client_stops_reading() {
    let site = taskthread::spawn_with(Site::default(), ChildOptions::new().name("web-sse"));
    let idle = Duration::from_secs(5);
    let web = WebEndpoint::new(loopback())
        .interval(Duration::from_millis(10))
        .idle_timeout(idle)
        .max_connections(1)
        .bind(&site)
        .await
        .unwrap();
    let addr = web.local_addr();
    let web = taskthread::spawn(web);

    // Read, a stream goes on long past the idle timeout.
    let mut stream = connect_small(addr).await;
    stream
        .write_all(request("/events").as_bytes())
        .await
        .unwrap();
    let mut lines = BufReader::new(stream).lines();
    assert!(
        lines
            .next_line()
            .await
            .unwrap()
            .unwrap()
            .starts_with("HTTP/1.0 200")
    );
    // It holds its connection's place.
    assert_eq!(get(addr, &request("/tree.json")).await.0, 503);
    let started = tokio::time::Instant::now();
    while started.elapsed() < idle * 4 {
        let line = lines.next_line().await.unwrap();
        assert!(line.is_some(), "the stream goes on while it is read");
    }
    // Not read any more: once the socket's buffers are full (a few megabytes at most) and
    // the client has taken nothing for the idle timeout, the server closes the stream,
    // and its place is free.
    let _stream = lines.into_inner().into_inner();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(get(addr, &request("/tree.json")).await.0, 200);
    web.stop();
    web.join().await.into_result().unwrap();
}
