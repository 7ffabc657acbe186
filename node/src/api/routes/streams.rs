//! WebSocket streams for desktops, wallboards and gateways.

use actix_web::{HttpRequest, web};
use serde::Deserialize;
use serde_json::json;

use super::*;

pub(super) async fn open_stream(
    state: &Data,
    request: &HttpRequest,
    payload: web::Payload,
    audience: Audience,
) -> ApiResult {
    let (sender, mut receiver) = mpsc::channel::<String>(STREAM_BUFFER_EVENTS);
    // An agent's desktop may write chat replies on its stream.
    let writer = match &audience {
        Audience::Agent(login) => Some((login.clone(), state.site.clone())),
        _ => None,
    };
    // The handshake first: a plain GET (no upgrade headers) is a 400 and subscribes nothing.
    let (mut response, mut session, stream) = actix_ws::handle(request, payload)
        .map_err(|error| ApiError::BadRequest(format!("websocket handshake: {error}")))?;
    state.site.send(Subscribe { audience, sender }).await??;
    if crate::api::auth::websocket_token(request).is_some() {
        // The client authenticated with the `bearer` subprotocol: accept it.
        response.headers_mut().insert(
            actix_web::http::header::SEC_WEBSOCKET_PROTOCOL,
            actix_web::http::header::HeaderValue::from_static(
                crate::api::auth::WEBSOCKET_TOKEN_PROTOCOL,
            ),
        );
    }
    let mut stream = stream.max_frame_size(WEBSOCKET_FRAME_BYTES_MAX);
    actix_web::rt::spawn(async move {
        loop {
            tokio::select! {
                outgoing = receiver.recv() => {
                    let Some(text) = outgoing else { break };
                    if session.text(text).await.is_err() {
                        break;
                    }
                }
                incoming = stream.recv() => {
                    match incoming {
                        Some(Ok(actix_ws::Message::Ping(bytes))) => {
                            if session.pong(&bytes).await.is_err() {
                                break;
                            }
                        }
                        Some(Ok(actix_ws::Message::Text(text))) => {
                            if let Some((login, site)) = &writer {
                                let answer = desktop_frame(login, site, &text).await;
                                if session.text(answer.to_string()).await.is_err() {
                                    break;
                                }
                            }
                        }
                        Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => break,
                        Some(Ok(_)) => {}
                    }
                }
            }
        }
        let _ = session.close(None).await;
    });
    Ok(response)
}

pub(super) async fn agent_stream(
    state: Data,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> ApiResult {
    let login = path.into_inner();
    super::desktop::agent_path(&state, &request, &login)?;
    open_stream(&state, &request, payload, Audience::Agent(login)).await
}

pub(super) async fn supervisor_stream(
    state: Data,
    request: HttpRequest,
    payload: web::Payload,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Supervisor])?;
    open_stream(&state, &request, payload, Audience::Supervisor).await
}

pub(super) async fn gateway_stream(
    state: Data,
    request: HttpRequest,
    payload: web::Payload,
) -> ApiResult {
    authenticate(&state, &request, &[Role::Gateway])?;
    open_stream(&state, &request, payload, Audience::Gateway).await
}

/// A frame an agent's desktop sent on its stream: `{"type": "chat_message", "contact": id,
/// "text": "..."}`. Answers `{"type": "sent", "contact": id}` or `{"type": "error", ...}`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum DesktopFrame {
    ChatMessage { contact: u64, text: String },
}

async fn desktop_frame(
    login: &str,
    site: &actix::Addr<crate::actors::site::SiteActor>,
    text: &str,
) -> serde_json::Value {
    let frame: DesktopFrame = match serde_json::from_str(text) {
        Ok(frame) => frame,
        Err(error) => {
            return json!({"type": "error", "status": 400, "detail": format!("invalid frame: {error}")});
        }
    };
    let DesktopFrame::ChatMessage { contact, text } = frame;
    let input = match super::desktop::chat_input(login.to_string(), ContactId(contact), text) {
        Ok(input) => input,
        Err(error) => return json!({"type": "error", "status": 400, "detail": error.to_string()}),
    };
    match site.send(input).await {
        Ok(Ok(_)) => json!({"type": "sent", "contact": contact}),
        Ok(Err(error)) => {
            let error = ApiError::from(error);
            json!({"type": "error", "status": actix_web::ResponseError::status_code(&error).as_u16(), "detail": error.to_string()})
        }
        Err(error) => {
            let error = ApiError::from(error);
            json!({"type": "error", "status": 503, "detail": error.to_string()})
        }
    }
}
