//! The HTTP side of the players: one pooled `ureq` agent for every request of a run, each
//! request recorded in the history with its wall start and end times.

use std::time::Duration;

use serde_json::Value;

use super::clock::wall_us;
use super::history::{HistorySink, Request};

/// How long one request may take before it counts as unanswered (status 0).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections kept per site.
pub const IDLE_CONNECTIONS_PER_SITE: usize = 256;
/// The request header that makes a create idempotent (the node's `Idempotency-Key`).
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";
/// Pause before retrying a create when the answer gave no `Retry-After`.
pub const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Longest pause before retrying a create (a `Retry-After` beyond it is cut to it).
pub const RETRY_PAUSE_MAX: Duration = Duration::from_secs(1);

/// One request to send.
struct Call<'a> {
    actor: &'a str,
    site: usize,
    class: &'a str,
    method: &'a str,
    path: &'a str,
    token: &'a str,
    body: Option<&'a Value>,
    about: About,
    idempotency_key: Option<&'a str>,
}

/// What a request concerns (for the history).
#[derive(Debug, Clone, Copy, Default)]
pub struct About {
    /// Plan index.
    pub plan: Option<usize>,
    /// Node contact id.
    pub contact: Option<u64>,
}

/// The sites' API, recording every call.
#[derive(Debug, Clone)]
pub struct Api {
    agent: ureq::Agent,
    /// Base URLs, scenario site order.
    pub sites: Vec<String>,
    history: HistorySink,
}

/// One answer: status (0 when none came) and JSON body (or the error text as a string).
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status, 0 for no answer.
    pub status: u16,
    /// Body.
    pub body: Value,
}

impl Answer {
    /// A 2xx answer.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl Api {
    /// A client for `sites`.
    pub fn new(sites: Vec<String>, history: HistorySink) -> Api {
        let agent = ureq::AgentBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .max_idle_connections_per_host(IDLE_CONNECTIONS_PER_SITE)
            .max_idle_connections(IDLE_CONNECTIONS_PER_SITE * sites.len().max(1))
            .build();
        Api {
            agent,
            sites,
            history,
        }
    }

    /// `method path` at `site` with `token`, recorded as `actor`'s request of `class`.
    #[allow(clippy::too_many_arguments)]
    pub fn call(
        &self,
        actor: &str,
        site: usize,
        class: &str,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
        about: About,
    ) -> Answer {
        let request = Call {
            actor,
            site,
            class,
            method,
            path,
            token,
            body,
            about,
            idempotency_key: None,
        };
        self.send(&request, 0).0
    }

    /// A create (`POST path` with `body`) carrying `Idempotency-Key: key`, retried with the
    /// same key while the answer says it may not have committed (a 503: outcome-unknown,
    /// no-quorum, unavailable) or no answer came, pausing for the answer's `Retry-After` (at
    /// most [`RETRY_PAUSE_MAX`]), until it is answered otherwise or `stop` says to give up
    /// (`&|| true`: one attempt). Every attempt is recorded with the key and its retry number,
    /// the first as `first_retry`.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &self,
        actor: &str,
        site: usize,
        class: &str,
        path: &str,
        token: &str,
        body: &Value,
        about: About,
        key: &str,
        first_retry: u32,
        stop: &dyn Fn() -> bool,
    ) -> Answer {
        let request = Call {
            actor,
            site,
            class,
            method: "POST",
            path,
            token,
            body: Some(body),
            about,
            idempotency_key: Some(key),
        };
        let mut retry = first_retry;
        loop {
            let (answer, retry_after) = self.send(&request, retry);
            if !(answer.status == 0 || answer.status == 503) || stop() {
                return answer;
            }
            std::thread::sleep(retry_after.unwrap_or(RETRY_PAUSE).min(RETRY_PAUSE_MAX));
            retry += 1;
        }
    }

    /// Sends one request and records it; the answer and its `Retry-After`.
    fn send(&self, call: &Call<'_>, retry: u32) -> (Answer, Option<Duration>) {
        let base = self.sites.get(call.site).map(String::as_str).unwrap_or("");
        let mut request = self
            .agent
            .request(call.method, &format!("{base}{}", call.path))
            .set("Authorization", &format!("Bearer {}", call.token));
        if let Some(key) = call.idempotency_key {
            request = request.set(IDEMPOTENCY_KEY_HEADER, key);
        }
        let start_us = wall_us();
        let result = match call.body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let retry_after = |response: &ureq::Response| {
            response
                .header("Retry-After")
                .and_then(|seconds| seconds.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
        };
        let (status, body, pause) = match result {
            Ok(response) => (response.status(), response_body(response), None),
            Err(ureq::Error::Status(status, response)) => {
                let pause = retry_after(&response);
                (status, response_body(response), pause)
            }
            Err(error) => (0, Value::String(error.to_string()), None),
        };
        let end_us = wall_us();
        self.history.record(Request {
            seq: self.history.next_seq(),
            actor: call.actor.to_string(),
            site: call.site,
            class: call.class.to_string(),
            method: call.method.to_string(),
            path: call.path.to_string(),
            start_us,
            end_us,
            status,
            plan: call.about.plan,
            contact: call.about.contact,
            body: body.clone(),
            idempotency_key: call.idempotency_key.map(str::to_string),
            retry,
        });
        (Answer { status, body }, pause)
    }

    /// The history sink (for players that record something themselves).
    pub fn history(&self) -> &HistorySink {
        &self.history
    }
}

fn response_body(response: ureq::Response) -> Value {
    let text = response.into_string().unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}
