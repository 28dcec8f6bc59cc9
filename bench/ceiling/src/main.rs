//! The HTTP ceiling: actix-web with the same worker count as kyc-api and no
//! database. `GET /ping` answers a fixed small JSON; `POST /echo` parses a JSON
//! body (as kyc-api's create does with `web::Json<Value>`) and answers a fixed
//! small JSON.
use actix_web::{web, App, HttpResponse, HttpServer};

async fn ping() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"data":{"ok":true}}"#)
}

async fn echo(body: web::Json<serde_json::Value>) -> HttpResponse {
    let n = body.as_object().map_or(0, |o| o.len());
    HttpResponse::Ok().json(serde_json::json!({ "data": { "fields": n } }))
}

fn main() -> std::io::Result<()> {
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:18099".into());
    let workers: usize = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or(0);
    actix_web::rt::System::new().block_on(async move {
        let mut server = HttpServer::new(|| {
            App::new()
                .route("/ping", web::get().to(ping))
                .route("/echo", web::post().to(echo))
        })
        .bind(&bind)?;
        if workers > 0 {
            server = server.workers(workers);
        }
        server.run().await
    })
}
