//! A blocking WebSocket reader for the node's streams (the agent and gateway streams), with a
//! read timeout so a player can interleave its timed actions with incoming messages.

use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use tungstenite::client::IntoClientRequest as _;
use tungstenite::{Message, WebSocket};

/// Shortest read timeout (a zero timeout would mean "block forever").
const READ_TIMEOUT_MIN: Duration = Duration::from_millis(1);

/// An open stream.
pub struct Stream {
    socket: WebSocket<TcpStream>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Stream")
    }
}

/// What a read gave.
#[derive(Debug)]
pub enum Read {
    /// A JSON message.
    Message(Value),
    /// Nothing within the timeout.
    Idle,
    /// The stream is closed or broken.
    Closed(String),
}

/// Opens `path` at `base` (`http://host:port`) with a bearer token.
pub fn open(base: &str, path: &str, token: &str) -> Result<Stream, String> {
    let address = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base}: only http:// sites are supported"))?
        .trim_end_matches('/')
        .to_string();
    let mut request = format!("ws://{address}{path}")
        .into_client_request()
        .map_err(|error| error.to_string())?;
    let header = format!("Bearer {token}")
        .parse()
        .map_err(|_| "the token is not a valid header value".to_string())?;
    request.headers_mut().insert("Authorization", header);
    let tcp = TcpStream::connect(&address).map_err(|error| format!("{address}: {error}"))?;
    tcp.set_nodelay(true).map_err(|error| error.to_string())?;
    let (socket, _response) =
        tungstenite::client(request, tcp).map_err(|error| format!("{address}{path}: {error}"))?;
    Ok(Stream { socket })
}

/// Pause between attempts to reopen a stream whose site went away.
pub const REOPEN_PAUSE: Duration = Duration::from_millis(100);

/// Reopens a stream after its site went away (killed, restarting): retries every
/// [`REOPEN_PAUSE`] until it opens or `give_up()` says to stop.
pub fn reopen(base: &str, path: &str, token: &str, give_up: &dyn Fn() -> bool) -> Option<Stream> {
    while !give_up() {
        std::thread::sleep(REOPEN_PAUSE);
        if let Ok(stream) = open(base, path, token) {
            return Some(stream);
        }
    }
    None
}

impl Stream {
    /// Waits up to `timeout` for a message.
    pub fn read(&mut self, timeout: Duration) -> Read {
        let timeout = timeout.max(READ_TIMEOUT_MIN);
        if let Err(error) = self.socket.get_mut().set_read_timeout(Some(timeout)) {
            return Read::Closed(error.to_string());
        }
        match self.socket.read() {
            Ok(Message::Text(text)) => match serde_json::from_str(text.as_str()) {
                Ok(value) => Read::Message(value),
                Err(_) => Read::Idle,
            },
            Ok(Message::Close(_)) => Read::Closed("closed by the node".to_string()),
            Ok(_) => Read::Idle,
            Err(tungstenite::Error::Io(error))
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Read::Idle
            }
            Err(error) => Read::Closed(error.to_string()),
        }
    }
}
