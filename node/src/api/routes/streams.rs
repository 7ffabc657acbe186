//! WebSocket streams for desktops, wallboards and gateways.

use actix_web::{HttpRequest, web};

use super::*;

pub(super) async fn open_stream(
    state: &Data,
    request: &HttpRequest,
    payload: web::Payload,
    audience: Audience,
) -> ApiResult {
    let (sender, mut receiver) = mpsc::channel::<String>(STREAM_BUFFER_EVENTS);
    state.site.send(Subscribe { audience, sender }).await??;
    let (response, mut session, stream) = actix_ws::handle(request, payload)
        .map_err(|error| ApiError::BadRequest(format!("websocket handshake: {error}")))?;
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
