//! The operations endpoint: `/metrics` (Prometheus text format), `/healthz` (the
//! pipeline is moving) and `/readyz` (probes attached, rules loaded). It runs on a
//! thread of its own so that it can still say "stalled" when the pipeline is stuck.
pub mod metrics;

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;

pub use metrics::Metrics;

/// Binds now (so a taken port fails the start-up), then serves in the background.
pub fn start(address: SocketAddr, metrics: Arc<Metrics>) -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(address).with_context(|| {
        format!(
            "cannot listen on {address} for /metrics, /healthz and /readyz; choose another \
             address with --listen (or server.listen), or \"\" to switch the endpoint off"
        )
    })?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("monitor-server".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    tracing::error!("operations endpoint not started: {err}");
                    return;
                }
            };
            runtime.block_on(serve(listener, metrics));
        })?;
    tracing::info!("operations endpoint on http://{bound} (/metrics, /healthz, /readyz)");
    Ok(bound)
}

async fn serve(listener: std::net::TcpListener, metrics: Arc<Metrics>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!("operations endpoint not started: {err}");
            return;
        }
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(request, metrics.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    metrics: Arc<Metrics>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, content_type: &'static str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(content_type),
        );
        response
    };
    let text = "text/plain; charset=utf-8";
    let verdict = |result: Result<String, String>| match result {
        Ok(message) => reply(StatusCode::OK, text, message + "\n"),
        Err(message) => reply(StatusCode::SERVICE_UNAVAILABLE, text, message + "\n"),
    };
    if request.method() != hyper::Method::GET {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            text,
            "only GET\n".into(),
        ));
    }
    Ok(match request.uri().path() {
        "/metrics" => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        "/healthz" => verdict(metrics.health.live()),
        "/readyz" => verdict(metrics.health.ready()),
        _ => reply(
            StatusCode::NOT_FOUND,
            text,
            "not found: try /metrics, /healthz or /readyz\n".into(),
        ),
    })
}
