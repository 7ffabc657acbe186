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
        let base = self.sites.get(site).map(String::as_str).unwrap_or("");
        let request = self
            .agent
            .request(method, &format!("{base}{path}"))
            .set("Authorization", &format!("Bearer {token}"));
        let start_us = wall_us();
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let (status, body) = match result {
            Ok(response) => (response.status(), response_body(response)),
            Err(ureq::Error::Status(status, response)) => (status, response_body(response)),
            Err(error) => (0, Value::String(error.to_string())),
        };
        let end_us = wall_us();
        self.history.record(Request {
            seq: self.history.next_seq(),
            actor: actor.to_string(),
            site,
            class: class.to_string(),
            method: method.to_string(),
            path: path.to_string(),
            start_us,
            end_us,
            status,
            plan: about.plan,
            contact: about.contact,
            body: body.clone(),
        });
        Answer { status, body }
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
