//! `facepay vault`: the card vault as its own process, for deployments that
//! keep card data on separate machines, and its custodians' tools.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use facepay_vault::channel::{
    BODY_BYTES_MAX, ChannelError, ChannelKey, HEADER_NONCE, HEADER_TIMESTAMP, ReplayGuard,
    SealedRequest,
};
use facepay_vault::{KeyPart, LocalVault, RemoteVault};

use facepay_config::Vault as VaultConfig;
use facepay_server::root::{connector, open_vault, open_vault_store};

/// The longest nonce header accepted (12 bytes in hex).
const NONCE_TEXT_MAX: usize = 24;

#[derive(clap::Subcommand)]
pub enum VaultCommand {
    /// Run the card vault as its own process. Only requests sealed with the
    /// channel secret are answered. Without two key parts it starts locked
    /// and waits for the custodians (`facepay vault unlock`).
    Serve {
        #[arg(long, env = "FACEPAY_VAULT_ADDRESS", default_value = "127.0.0.1:8090")]
        address: SocketAddr,
        /// The secret shared with the core (made on first use).
        #[arg(long, env = "FACEPAY_VAULT_CHANNEL_SECRET_FILE")]
        channel_secret: PathBuf,
        /// The vault's configuration: its `[vault]` section (embedded: the
        /// vault's own store and custodians' parts) and the `[connector]`
        /// it pays through.
        #[command(flatten)]
        config: crate::config::ConfigArgs,
    },
    /// Make the two custodians' key parts, one file each (never overwritten).
    Init {
        #[arg(long = "part", num_args = 1, required = true)]
        parts: Vec<PathBuf>,
    },
    /// Give one custodian's key part to a running vault.
    Unlock {
        #[arg(
            long,
            env = "FACEPAY_VAULT_URL",
            default_value = "http://127.0.0.1:8090"
        )]
        url: String,
        #[arg(long)]
        part: PathBuf,
        /// The channel secret shared with the vault.
        #[arg(
            long,
            env = "FACEPAY_VAULT_CHANNEL_SECRET_FILE",
            default_value = ".facepay/data/vault/channel.secret"
        )]
        channel_secret: PathBuf,
    },
}

pub fn run(command: VaultCommand) -> anyhow::Result<()> {
    match command {
        VaultCommand::Serve {
            address,
            channel_secret,
            config,
        } => {
            let config = config.load()?;
            tokio::runtime::Runtime::new()?.block_on(serve(address, &channel_secret, &config))
        }
        VaultCommand::Init { parts } => {
            anyhow::ensure!(parts.len() == 2, "give two --part files, one per custodian");
            for path in &parts {
                KeyPart::create_file(path)?;
                println!("key part written to {} (mode 0600)", path.display());
            }
            println!("give each file to its own custodian, and keep no other copy together");
            Ok(())
        }
        VaultCommand::Unlock {
            url,
            part,
            channel_secret,
        } => tokio::runtime::Runtime::new()?.block_on(async {
            let vault = RemoteVault::new(&url, ChannelKey::read_file(&channel_secret)?);
            let unlocked = vault.give_part(&KeyPart::read_file(&part)?).await?;
            if unlocked {
                println!("the card vault is unlocked");
            } else {
                println!("key part taken; the vault waits for the other custodian's");
            }
            Ok(())
        }),
    }
}

struct Served {
    vault: Arc<LocalVault>,
    key: ChannelKey,
    guard: ReplayGuard,
}

async fn serve(
    address: SocketAddr,
    channel_secret: &Path,
    config: &facepay_config::Config,
) -> anyhow::Result<()> {
    let VaultConfig::Embedded(embedded) = &config.vault else {
        anyhow::bail!(
            "vault.mode: the vault process serves its own vault; use mode = \"embedded\""
        );
    };
    let key = ChannelKey::open_or_create_file(channel_secret)?;
    let store = open_vault_store(embedded).await?;
    let vault = open_vault(embedded, store, connector(config)?).await?;
    let state = Arc::new(Served {
        vault,
        key,
        guard: ReplayGuard::default(),
    });
    let router = Router::new()
        .route("/healthz", get(health))
        .route("/vault/v1/{op}", post(answer))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind(address).await?;
    // Listening for the stop signals before saying it listens.
    let stop = facepay_server::stop_requested();
    println!(
        "card vault listening on http://{} ({})",
        listener.local_addr()?,
        if state.vault.is_unlocked() {
            "unlocked"
        } else {
            "locked: waiting for the custodians' key parts"
        }
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await?;
    Ok(())
}

async fn health(State(state): State<Arc<Served>>) -> Response {
    axum::Json(serde_json::json!({
        "status": "ok",
        "unlocked": state.vault.is_unlocked(),
    }))
    .into_response()
}

async fn answer(
    State(state): State<Arc<Served>>,
    UrlPath(op): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let timestamp_ms = header_text(HEADER_TIMESTAMP).and_then(|t| t.parse::<i64>().ok());
    let nonce = header_text(HEADER_NONCE).filter(|n| n.len() <= NONCE_TEXT_MAX);
    let (Some(timestamp_ms), Some(nonce)) = (timestamp_ms, nonce) else {
        return refuse(ChannelError::Forged);
    };
    let request = SealedRequest {
        timestamp_ms,
        nonce: nonce.to_owned(),
        body: body.to_vec(),
    };
    match facepay_vault::serve::answer(&state.vault, &state.key, &state.guard, &op, &request).await
    {
        Ok(sealed) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            sealed,
        )
            .into_response(),
        Err(e) => refuse(e),
    }
}

fn refuse(e: ChannelError) -> Response {
    tracing::warn!(error = %e, "card vault request refused");
    let status = match e {
        ChannelError::Busy => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::UNAUTHORIZED,
    };
    (
        status,
        axum::Json(serde_json::json!({
            "error": { "code": e.code(), "message": e.to_string() }
        })),
    )
        .into_response()
}
