//! HTTP calls that keep the response headers (idempotency replays, read stamps).

use std::time::Duration;

use serde_json::Value;

/// A response: status, headers (names lower-case), JSON body (or the text as a string).
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status; 0 when the request got no response (connection refused, timeout).
    pub status: u16,
    /// Response headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body as JSON, or as a JSON string when it is not JSON.
    pub body: Value,
}

impl Answer {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(header, _)| *header == name)
            .map(|(_, value)| value.as_str())
    }

    /// The problem `type`'s last segment (`no-quorum`, `outcome-unknown`, ...), if any.
    pub fn problem(&self) -> Option<&str> {
        self.body["type"].as_str()?.rsplit('/').next()
    }
}

/// `METHOD base+path` with a bearer `token`, extra `headers` and an optional JSON body.
pub fn send(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Answer {
    let mut request = ureq::request(method, &format!("{base}{path}"))
        .set("Authorization", &format!("Bearer {token}"))
        .timeout(Duration::from_secs(30));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = match body {
        Some(body) => request.send_json(body.clone()),
        None => request.call(),
    };
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => {
            return Answer {
                status: 0,
                headers: Vec::new(),
                body: Value::String(error.to_string()),
            };
        }
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|name| {
            let value = response.header(&name)?.to_string();
            Some((name.to_ascii_lowercase(), value))
        })
        .collect();
    let text = response.into_string().unwrap_or_default();
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}
