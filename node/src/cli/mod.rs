//! The operators' subcommands of the `callgrid` binary that talk to running nodes.
//!
//! - [`cluster`] — `callgrid cluster status|add|promote|remove|transfer-leader|drain|undrain|
//!   token` over a node's admin API (`--url`, `--token` or `CALLGRID_TOKEN`);
//! - [`local`] — `callgrid cluster local`: a three-city cluster on this machine.
//!
//! Exit codes: 0 done, 1 refused (the node answered with a problem), 2 usage, 3 unreachable.

pub mod cluster;
pub mod local;

use std::time::Duration;

use serde_json::Value;

/// Exit code: the node answered with a problem (401/403/404/409/503 ...).
pub const EXIT_REFUSED: i32 = 1;
/// Exit code: the command line or its inputs are wrong.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: the node did not answer.
pub const EXIT_UNREACHABLE: i32 = 3;
/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a command failed, with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or its inputs are wrong.
    #[error("{0}")]
    Usage(String),
    /// The node answered with an error status.
    #[error("refused ({status}): {detail}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The problem's detail (or the body).
        detail: String,
    },
    /// The node could not be reached.
    #[error("cannot reach {url}: {message}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// Local work failed (files, processes).
    #[error("{0}")]
    Local(String),
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Refused { .. } | CliError::Local(_) => EXIT_REFUSED,
            CliError::Unreachable { .. } => EXIT_UNREACHABLE,
        }
    }
}

/// A node's admin API with a bearer token (never printed).
pub struct AdminClient {
    url: String,
    token: String,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AdminClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// A client for the node at `url` (`http://host:port`).
    pub fn new(url: &str, token: &str) -> Result<Self, CliError> {
        let url = url.trim_end_matches('/').to_string();
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(CliError::Usage(format!(
                "--url must start with http:// or https:// (got `{url}`)"
            )));
        }
        if token.trim().is_empty() {
            return Err(CliError::Usage(
                "a token is required: --token or CALLGRID_TOKEN".to_string(),
            ));
        }
        Ok(Self {
            url,
            token: token.trim().to_string(),
        })
    }

    /// `METHOD path` (under the node's URL) with an optional JSON body: the JSON answer, or
    /// why not.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.url);
        let request = ureq::request(method, &url)
            .timeout(REQUEST_TIMEOUT)
            .set("Authorization", &format!("Bearer {}", self.token));
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let (status, text) = match result {
            Ok(response) => (
                response.status(),
                response.into_string().unwrap_or_default(),
            ),
            Err(ureq::Error::Status(status, response)) => {
                (status, response.into_string().unwrap_or_default())
            }
            Err(ureq::Error::Transport(transport)) => {
                return Err(CliError::Unreachable {
                    url,
                    message: transport.to_string(),
                });
            }
        };
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            let detail = value["detail"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            Err(CliError::Refused { status, detail })
        }
    }
}

/// Prints rows as an aligned table (first row the header).
pub fn print_table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}
