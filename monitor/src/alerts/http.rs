//! HTTP(S) POST of alert JSON (Falcosidekick style): hyper's HTTP/1 client over a
//! tokio TCP stream, TLS with rustls (ring provider; system roots or a CA file).
use std::{path::Path, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Uri,
    client::conn::http1::SendRequest,
    header::{HeaderName, HeaderValue},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::{
    TlsConnector,
    rustls::{self, RootCertStore, pki_types::ServerName},
};

use super::model::{Alert, Format};

pub struct HttpTransport {
    uri: Uri,
    host: String,
    port: u16,
    authority: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    headers: Vec<(HeaderName, HeaderValue)>,
    batch: usize,
    format: Format,
    timeout: Duration,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl HttpTransport {
    pub fn new(
        url: &str,
        headers: &std::collections::BTreeMap<String, String>,
        batch: usize,
        format: Format,
        ca_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<HttpTransport, String> {
        if !format.is_json() {
            return Err(format!(
                "url `{url}`: HTTP sinks send JSON documents: format json (falco), ocsf, \
                 ocsf-activity or ecs, not text"
            ));
        }
        let uri: Uri = url.parse().map_err(|e| format!("url `{url}`: {e}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("url `{url}`: expected http:// or https://")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("url `{url}`: no host"))?
            .clone();
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            let mut roots = RootCertStore::empty();
            match ca_file {
                Some(path) => {
                    use rustls::pki_types::{CertificateDer, pem::PemObject};
                    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(path)
                        .map_err(|e| format!("CA file {}: {e}", path.display()))?
                        .collect::<Result<_, _>>()
                        .map_err(|e| format!("CA file {}: {e}", path.display()))?;
                    let (added, _) = roots.add_parsable_certificates(certs);
                    if added == 0 {
                        return Err(format!("CA file {}: no certificate", path.display()));
                    }
                }
                None => {
                    let found = rustls_native_certs::load_native_certs();
                    roots.add_parsable_certificates(found.certs);
                }
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
            let name = ServerName::try_from(host.clone())
                .map_err(|e| format!("url `{url}`: host: {e}"))?;
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        let headers = headers
            .iter()
            .map(|(k, v)| {
                Ok((
                    HeaderName::try_from(k.as_str()).map_err(|e| format!("header `{k}`: {e}"))?,
                    HeaderValue::try_from(v.as_str()).map_err(|e| format!("header `{k}`: {e}"))?,
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(HttpTransport {
            uri,
            host,
            port,
            authority: authority.to_string(),
            tls,
            headers,
            batch: batch.max(1),
            format,
            timeout,
            conn: None,
        })
    }

    /// Alerts per request.
    pub fn batch(&self) -> usize {
        self.batch
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connect {}: {e}", self.authority))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS {}: {e}", self.authority))?;
                handshake(stream).await
            }
            None => handshake(tcp).await,
        }
    }

    /// Posts the alerts, each a document of the sink's format: one request per alert
    /// when `batch` is 1, else one request with a JSON array. Succeeds only on a 2xx
    /// answer.
    pub async fn send(&mut self, alerts: &[Arc<Alert>]) -> Result<(), (usize, String)> {
        if self.batch == 1 {
            for (done, alert) in alerts.iter().enumerate() {
                self.post(Bytes::from(alert.render(self.format, false)))
                    .await
                    .map_err(|e| (done, e))?;
            }
            Ok(())
        } else {
            let mut body = String::from("[");
            for (i, alert) in alerts.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(&alert.render(self.format, false));
            }
            body.push(']');
            self.post(Bytes::from(body)).await.map_err(|e| (0, e))
        }
    }

    async fn post(&mut self, body: Bytes) -> Result<(), String> {
        let result = tokio::time::timeout(self.timeout, self.post_inner(body))
            .await
            .unwrap_or_else(|_| Err(format!("{}: timed out", self.uri)));
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn post_inner(&mut self, body: Bytes) -> Result<(), String> {
        let reuse = match &mut self.conn {
            Some(c) => c.ready().await.is_ok(),
            None => false,
        };
        if !reuse {
            self.conn = Some(self.connect().await?);
        }
        let mut req = Request::post(self.uri.clone())
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "monitor")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        for (k, v) in &self.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        let conn = self.conn.as_mut().unwrap();
        let resp = conn
            .send_request(req)
            .await
            .map_err(|e| format!("POST {}: {e}", self.uri))?;
        let status = resp.status();
        // Read the body so the connection can carry the next request.
        let _ = resp.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST {}: {status}", self.uri))
        }
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}
