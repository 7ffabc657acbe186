//! The pages people look at: the supervisor wallboard (`/ui/`), the supervisors' quality
//! control page (`/ui/qa`: score finished contacts, open their recordings) and the agent
//! desktop (`/ui/agent`), plain HTML/CSS/JS embedded in the binary (no CDN, no build step).
//!
//! The pages sign in through [`crate::api::session`] and then use the ordinary JSON API and
//! WebSocket streams with the session cookie, so they have exactly the API's roles. Every
//! answer carries a strict Content-Security-Policy: scripts and styles only from this origin,
//! no inline code, no framing.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

/// The Content-Security-Policy of every page and asset.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Name under `/ui/assets/` (pages are served at their own paths).
    pub name: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static str,
}

/// The wallboard page.
pub const WALLBOARD_HTML: &str = include_str!("assets/wallboard.html");
/// The agent desktop page.
pub const AGENT_HTML: &str = include_str!("assets/agent.html");
/// The quality control page.
pub const QA_HTML: &str = include_str!("assets/qa.html");

/// Scripts and styles under `/ui/assets/`.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/style.css"),
    },
    Asset {
        name: "common.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/common.js"),
    },
    Asset {
        name: "wallboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/wallboard.js"),
    },
    Asset {
        name: "agent.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/agent.js"),
    },
    Asset {
        name: "qa.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/qa.js"),
    },
];

/// The asset called `name`.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}

fn respond(content_type: &'static str, body: &'static str, cache: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header((header::CACHE_CONTROL, cache))
        .body(body)
}

async fn wallboard() -> HttpResponse {
    respond("text/html; charset=utf-8", WALLBOARD_HTML, "no-store")
}

async fn agent_desktop() -> HttpResponse {
    respond("text/html; charset=utf-8", AGENT_HTML, "no-store")
}

async fn quality() -> HttpResponse {
    respond("text/html; charset=utf-8", QA_HTML, "no-store")
}

async fn to_wallboard() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}

async fn static_asset(name: web::Path<String>) -> HttpResponse {
    match asset(&name) {
        Some(asset) => respond(asset.content_type, asset.body, "no-cache"),
        None => HttpResponse::NotFound()
            .insert_header(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
            .content_type("text/plain; charset=utf-8")
            .body("no such asset"),
    }
}

/// Registers `/ui`, `/ui/`, `/ui/agent`, `/ui/qa` and `/ui/assets/{name}`.
pub fn register(service: &mut web::ServiceConfig) {
    service
        .route("/ui", web::get().to(to_wallboard))
        .route("/ui/", web::get().to(wallboard))
        .route("/ui/agent", web::get().to(agent_desktop))
        .route("/ui/qa", web::get().to(quality))
        // A scope: its static prefix keeps every other request off the `{name}` pattern.
        .service(web::scope("/ui/assets").route("/{name}", web::get().to(static_asset)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_load_only_embedded_same_origin_assets() {
        for page in [WALLBOARD_HTML, AGENT_HTML, QA_HTML] {
            assert!(!page.contains("http://") && !page.contains("https://"));
            assert!(
                !page.contains("<script>"),
                "no inline scripts under the CSP"
            );
            assert!(!page.contains("style="), "no inline styles under the CSP");
            for reference in page.split("/ui/assets/").skip(1) {
                let name: String = reference
                    .chars()
                    .take_while(|character| *character != '"')
                    .collect();
                assert!(asset(&name).is_some(), "{name} is embedded");
            }
        }
        for asset in ASSETS {
            assert!(
                !asset.body.contains("innerHTML"),
                "{} builds DOM nodes",
                asset.name
            );
        }
    }
}
