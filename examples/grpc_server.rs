//! A tonic service guarded by portcullis: every call needs a valid JWT access token from
//! the issuer, `GetItem` (unary) the scope `read`, `Restock` (server streaming) the scope
//! `write`; any other method is denied.
//!
//! ```text
//! cargo run --example grpc_server --features tonic -- \
//!     --issuer https://login.example.com/ --audience https://api.example.com
//! ```
//!
//! Flags (environment fallbacks in brackets):
//!
//! - `--issuer URL` (`PORTCULLIS_ISSUER`, comma-separated): a trusted issuer, found through
//!   OpenID Connect discovery or RFC 8414; repeat the flag for several. Required.
//! - `--audience AUD` (`PORTCULLIS_AUDIENCE`, comma-separated): an accepted `aud`;
//!   repeatable. Required.
//! - `--addr HOST:PORT` (`PORTCULLIS_ADDR`): where to listen. Default `127.0.0.1:50051`.
//!
//! Then, with a token in `$TOKEN` and grpcurl:
//!
//! ```text
//! grpcurl -plaintext -H "authorization: Bearer $TOKEN" \
//!     -import-path examples/proto -proto inventory.proto \
//!     -d '{"id": "apples"}' 127.0.0.1:50051 inventory.v1.Inventory/GetItem
//! ```
//!
//! The service is generated from `examples/proto/inventory.proto`; the generated code is
//! checked in beside it, so no `protoc` is needed.

use std::{
    collections::HashMap,
    env,
    net::SocketAddr,
    pin::Pin,
    process::ExitCode,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::{Stream, stream};
use portcullis::{
    BearerAuthLayer, Jwt, Principal, ScopePolicy,
    grpc::{self, MethodScopesLayer},
};
use tonic::{
    Request, Response, Status,
    transport::{Server, server::TcpIncoming},
};

#[allow(clippy::all, missing_docs, unreachable_pub)]
mod proto {
    include!("proto/inventory.v1.rs");
}

use proto::{
    GetItemRequest, Item, RestockProgress, RestockRequest,
    inventory_server::{Inventory, InventoryServer},
};

const USAGE: &str = "\
usage: grpc_server --issuer URL [--issuer URL]... --audience AUD [--audience AUD]...
                   [--addr HOST:PORT]

  --issuer URL      trusted issuer, repeatable               [env PORTCULLIS_ISSUER]
  --audience AUD    accepted audience, repeatable            [env PORTCULLIS_AUDIENCE]
  --addr HOST:PORT  listen address, default 127.0.0.1:50051  [env PORTCULLIS_ADDR]";

/// The most units one `Restock` call streams.
const MAX_UNITS: u32 = 100;

struct Args {
    issuers: Vec<String>,
    audiences: Vec<String>,
    addr: SocketAddr,
}

fn parse_args() -> Result<Args, String> {
    let mut issuers = Vec::new();
    let mut audiences = Vec::new();
    let mut addr = None;
    let mut args = env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        // Both `--flag value` and `--flag=value`.
        let mut value = || match inline.clone().or_else(|| args.next()) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(format!("{flag} needs a non-empty value")),
        };
        match flag.as_str() {
            "--issuer" => issuers.push(value()?),
            "--audience" => audiences.push(value()?),
            "--addr" => addr = Some(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    // The environment stands in for a flag that is absent; it takes a comma-separated list.
    if issuers.is_empty() {
        issuers = env_list("PORTCULLIS_ISSUER");
    }
    if audiences.is_empty() {
        audiences = env_list("PORTCULLIS_AUDIENCE");
    }
    let addr = addr
        .or_else(|| env::var("PORTCULLIS_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:50051".to_owned());
    if issuers.is_empty() {
        return Err("at least one --issuer is required".to_owned());
    }
    if audiences.is_empty() {
        return Err("at least one --audience is required".to_owned());
    }
    let addr = addr
        .parse()
        .map_err(|e| format!("--addr {addr:?} is not HOST:PORT: {e}"))?;
    Ok(Args {
        issuers,
        audiences,
        addr,
    })
}

fn env_list(name: &str) -> Vec<String> {
    env::var(name)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An in-memory stock.
#[derive(Clone)]
struct Stock {
    items: Arc<Mutex<HashMap<String, u32>>>,
}

impl Stock {
    fn new() -> Self {
        let items = [("apples", 12), ("pears", 3)]
            .into_iter()
            .map(|(id, quantity)| (id.to_owned(), quantity))
            .collect();
        Self {
            items: Arc::new(Mutex::new(items)),
        }
    }

    fn add(&self, id: &str, units: u32) -> u32 {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let quantity = items.entry(id.to_owned()).or_default();
        *quantity = quantity.saturating_add(units);
        *quantity
    }
}

type RestockStream = Pin<Box<dyn Stream<Item = Result<RestockProgress, Status>> + Send>>;

#[tonic::async_trait]
impl Inventory for Stock {
    async fn get_item(&self, request: Request<GetItemRequest>) -> Result<Response<Item>, Status> {
        // Put there by the BearerAuthLayer; the claims type is the default, RegisteredClaims.
        let principal: Principal = grpc::principal(&request)?;
        let id = request.into_inner().id;
        let quantity = *self
            .items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .ok_or_else(|| Status::not_found("no such item"))?;
        Ok(Response::new(Item {
            name: id.clone(),
            id,
            quantity,
            requested_by: principal.subject().unwrap_or_default().to_owned(),
        }))
    }

    type RestockStream = RestockStream;

    async fn restock(
        &self,
        request: Request<RestockRequest>,
    ) -> Result<Response<Self::RestockStream>, Status> {
        let principal: Principal = grpc::principal(&request)?;
        let requested_by = principal.subject().unwrap_or_default().to_owned();
        let RestockRequest { id, units } = request.into_inner();
        if units > MAX_UNITS {
            return Err(Status::invalid_argument("at most 100 units per call"));
        }
        let stock = self.clone();
        let progress = stream::unfold(0, move |sent| {
            let (stock, id, requested_by) = (stock.clone(), id.clone(), requested_by.clone());
            async move {
                if sent == units {
                    return None;
                }
                if sent > 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let quantity = stock.add(&id, 1);
                let message = RestockProgress {
                    id,
                    quantity,
                    requested_by,
                };
                Some((Ok(message), sent + 1))
            }
        });
        Ok(Response::new(Box::pin(progress)))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = Jwt::builder();
    for issuer in args.issuers {
        builder = builder.issuer(issuer);
    }
    for audience in args.audiences {
        builder = builder.audience(audience);
    }
    let jwt = builder.build()?;
    // Optional warm-up: without it, the first request fetches the keys.
    if let Err(error) = jwt.refresh().await {
        eprintln!(
            "warning: {error}; calls are answered UNAVAILABLE until the issuer can be reached"
        );
    }

    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    println!("listening on http://{}", listener.local_addr()?);

    Server::builder()
        // Rejections as gRPC statuses: UNAUTHENTICATED, PERMISSION_DENIED, UNAVAILABLE.
        .layer(BearerAuthLayer::new(jwt).grpc())
        // Inside the auth layer: which scopes each method needs. Unmapped methods are denied.
        .layer(
            MethodScopesLayer::new()
                .method(
                    "/inventory.v1.Inventory/GetItem",
                    ScopePolicy::all(["read"]),
                )
                .method(
                    "/inventory.v1.Inventory/Restock",
                    ScopePolicy::all(["write"]),
                ),
        )
        .add_service(InventoryServer::new(Stock::new()))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
