//! A small client of Berth's REST API for the CLI commands.

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Where the server is and how to authenticate.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Client {
            base: server.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                format!("cannot reach the Berth server at {} (is `berth server` running? set --server or BERTH_SERVER)", self.base)
            } else {
                format!("request to {} failed: {e}", self.base)
            }
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response.text().await.unwrap_or_default();
        let message = error_message(status, &text);
        Err(match retry_after {
            Some(seconds) => format!("{message}; try again in {seconds} s"),
            None => message,
        })
    }

    /// Sends a request with an optional JSON body and decodes the answer; an empty answer
    /// (204) decodes as JSON `null`, so `()` and `Option` fit it.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, String> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.send(request).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("reading the answer of {} failed: {e}", self.base))?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"null"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes).map_err(|e| format!("unexpected answer from the server: {e}"))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, String> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// A POST without a body (actions such as disable or enable).
    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        self.call(Method::POST, path, None::<&()>).await
    }

    pub async fn put<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, String> {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn patch<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, String> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<(), String> {
        self.send(self.request(Method::DELETE, path))
            .await
            .map(|_| ())
    }

    /// A PUT of a streamed body (a volume's restore), its answer ignored.
    pub async fn put_stream(
        &self,
        path: &str,
        content_type: &str,
        body: reqwest::Body,
    ) -> Result<(), String> {
        let request = self
            .request(Method::PUT, path)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.send(request).await.map(|_| ())
    }

    /// A PUT of raw bytes, its JSON answer decoded.
    pub async fn put_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<T, String> {
        let request = self
            .request(Method::PUT, path)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        let response = self.send(request).await?;
        response
            .json()
            .await
            .map_err(|e| format!("unexpected answer from the server: {e}"))
    }

    /// The WebSocket request for `path` (`ws://` for an `http://` server), with the token.
    pub fn websocket(
        &self,
        path: &str,
    ) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, String> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = match self.base.strip_prefix("http://") {
            Some(rest) => format!("ws://{rest}/api/v1{path}"),
            None => {
                return Err(format!(
                    "berth exec talks to http:// servers only for now, not {}",
                    self.base
                ));
            }
        };
        let mut request = url
            .into_client_request()
            .map_err(|e| format!("bad server address {}: {e}", self.base))?;
        if let Some(token) = &self.token {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| "the token is not a valid header value".to_string())?;
            request.headers_mut().insert("authorization", value);
        }
        Ok(request)
    }

    /// A streaming GET (logs).
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response, String> {
        self.send(self.request(Method::GET, path)).await
    }

    /// A POST without a body whose answer is read as a stream (a backup).
    pub async fn post_for_stream(&self, path: &str) -> Result<reqwest::Response, String> {
        self.send(self.request(Method::POST, path)).await
    }
}

/// Turns an error response into one line: the server's code and message.
fn error_message(status: StatusCode, body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    match error {
        Some(error) => {
            let code = error
                .get("code")
                .and_then(|c| c.as_str())
                .unwrap_or("error");
            let message = error.get("message").and_then(|m| m.as_str()).unwrap_or("");
            if status == StatusCode::UNAUTHORIZED
                && code == "unauthorized"
                && !message.contains("berth login")
            {
                format!("{message} ({code}); run `berth login`, or pass --token or set BERTH_TOKEN")
            } else {
                format!("{message} ({code})")
            }
        }
        None => format!("server answered {status}: {}", body.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages() {
        let cases = [
            (
                StatusCode::BAD_REQUEST,
                r#"{"error":{"code":"invalid_spec","message":"template.port: must be between 1 and 65535"}}"#,
                "template.port: must be between 1 and 65535 (invalid_spec)",
            ),
            (
                StatusCode::UNAUTHORIZED,
                r#"{"error":{"code":"unauthorized","message":"bad token"}}"#,
                "bad token (unauthorized); run `berth login`, or pass --token or set BERTH_TOKEN",
            ),
            (
                StatusCode::UNAUTHORIZED,
                r#"{"error":{"code":"unauthorized","message":"log in (berth login)"}}"#,
                "log in (berth login) (unauthorized)",
            ),
            (
                StatusCode::UNAUTHORIZED,
                r#"{"error":{"code":"invalid_credentials","message":"wrong username or password"}}"#,
                "wrong username or password (invalid_credentials)",
            ),
            (
                StatusCode::BAD_GATEWAY,
                "upstream down",
                "server answered 502 Bad Gateway: upstream down",
            ),
        ];
        for (status, body, want) in cases {
            assert_eq!(error_message(status, body), want);
        }
    }
}
