//! Closed-loop HTTP/1.1 load generator for the serving benchmark (bench/serve/run.sh).
//!
//! `--connections` keep-alive connections each POST a body (the lines of `--bodies`, in
//! turn) and send the next one as soon as the answer is in, whatever its status: a client
//! that retries at once. Unlike `wrk`, it keeps each answer's status with its latency, so
//! it reports the latency of the accepted (2xx) answers apart from the refused ones.
//! Prints one JSON line.
//!
//! `cargo run --release -p serving --example load -- --url http://127.0.0.1:8080/v1/translate --bodies bodies.jsonl`
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Drive an HTTP endpoint with closed-loop keep-alive clients.
#[derive(Parser)]
struct Args {
    /// `http://HOST:PORT/PATH` to POST to.
    #[arg(long)]
    url: String,
    /// File with one request body per line (JSON), sent in turn.
    #[arg(long)]
    bodies: PathBuf,
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 15.0)]
    duration: f64,
    /// Seconds of load before the measurement (answers not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Client threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seconds to wait for one answer before counting a timeout and reconnecting.
    #[arg(long, default_value_t = 90.0)]
    timeout: f64,
}

/// What one connection saw in the measured window.
#[derive(Default)]
struct Seen {
    /// (status, latency in µs) per answer.
    answers: Vec<(u16, u32)>,
    socket_errors: u64,
}

fn parse_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .context("only http:// URLs are supported")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Ok((host.to_string(), path.to_string()))
}

/// Reads one response off `stream` (`buf` keeps bytes read past it); returns its status
/// and whether the server keeps the connection open.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<(u16, bool)> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the response head");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let mut length = None;
    let mut keep_alive = true;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().context("bad content-length")?);
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            keep_alive = false;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("chunked responses are not supported");
        }
    }
    let total = head_end + length.context("response without content-length")?;
    while buf.len() < total {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed inside the body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..total);
    Ok((status, keep_alive))
}

async fn client(
    host: Arc<String>,
    requests: Arc<Vec<Vec<u8>>>,
    first: usize,
    measure_from: Instant,
    stop: Instant,
    timeout: Duration,
) -> Seen {
    let mut seen = Seen::default();
    let mut next = first;
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::new();
    while Instant::now() < stop {
        let mut stream = match conn.take() {
            Some(s) => s,
            None => match TcpStream::connect(host.as_str()).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    buf.clear();
                    s
                }
                Err(_) => {
                    if Instant::now() >= measure_from {
                        seen.socket_errors += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let request = &requests[next % requests.len()];
        next += 1;
        let sent = Instant::now();
        let exchange = async {
            stream.write_all(request).await?;
            read_response(&mut stream, &mut buf).await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok((status, keep_alive))) => {
                if sent >= measure_from && Instant::now() <= stop {
                    let micros = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
                    seen.answers.push((status, micros));
                }
                if keep_alive {
                    conn = Some(stream);
                }
            }
            Ok(Err(_)) | Err(_) => {
                if sent >= measure_from {
                    seen.socket_errors += 1;
                }
            }
        }
    }
    seen
}

/// The `p`-quantile of sorted latencies, in ms (NaN when empty).
fn quantile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn round1(x: f64) -> serde_json::Value {
    if x.is_finite() {
        serde_json::json!((x * 10.0).round() / 10.0)
    } else {
        serde_json::Value::Null
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (host, path) = parse_url(&args.url)?;
    let text = std::fs::read_to_string(&args.bodies)
        .with_context(|| format!("reading {}", args.bodies.display()))?;
    let requests: Vec<Vec<u8>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|body| {
            format!(
                "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        })
        .collect();
    if requests.is_empty() {
        bail!("{} holds no request body", args.bodies.display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let seen: Vec<Seen> = runtime.block_on(async {
        let start = Instant::now();
        let measure_from = start + Duration::from_secs_f64(args.warmup);
        let stop = measure_from + Duration::from_secs_f64(args.duration);
        let host = Arc::new(host);
        let requests = Arc::new(requests);
        let tasks: Vec<_> = (0..args.connections)
            .map(|i| {
                tokio::spawn(client(
                    host.clone(),
                    requests.clone(),
                    i,
                    measure_from,
                    stop,
                    Duration::from_secs_f64(args.timeout),
                ))
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await.unwrap_or_default());
        }
        out
    });
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut all = Vec::new();
    let mut ok = Vec::new();
    let mut socket_errors = 0;
    for s in seen {
        socket_errors += s.socket_errors;
        for (status, micros) in s.answers {
            *by_status.entry(status.to_string()).or_default() += 1;
            all.push(micros);
            if (200..300).contains(&status) {
                ok.push(micros);
            }
        }
    }
    all.sort_unstable();
    ok.sort_unstable();
    let seconds = args.duration;
    println!(
        "{}",
        serde_json::json!({
            "connections": args.connections,
            "seconds": seconds,
            "requests": all.len(),
            "requests_per_s": round1(all.len() as f64 / seconds),
            "ok_per_s": round1(ok.len() as f64 / seconds),
            "p50_ms": round1(quantile_ms(&all, 0.5)),
            "p99_ms": round1(quantile_ms(&all, 0.99)),
            "ok_p50_ms": round1(quantile_ms(&ok, 0.5)),
            "ok_p99_ms": round1(quantile_ms(&ok, 0.99)),
            "non_2xx": all.len() - ok.len(),
            "socket_errors": socket_errors,
            "status": by_status,
        })
    );
    Ok(())
}
