//! Bearer tokens and their roles. Secrets are random, shown once, and stored only as SHA-256
//! hashes; every RPC of a service checks the caller's role before the handler runs.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tonic::{Request, Status};

/// What a token may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Calls the Management service.
    Operator,
    /// A data plane: calls ConfigSync only.
    Gateway,
}

impl Role {
    /// The role's name in listings and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Gateway => "gateway",
        }
    }
}

/// A token as stored: never the secret, only its hash.
#[derive(Clone, Debug)]
pub struct TokenRecord {
    /// Unique among live tokens.
    pub name: String,
    /// What it may call.
    pub role: Role,
    /// Seconds since the Unix epoch.
    pub created: i64,
    /// Gateway tokens: the data-plane names it may connect as (see [`DataPlaneNames`]).
    pub data_plane_names: DataPlaneNames,
    hash: TokenId,
}

/// Which token, exactly: the SHA-256 of its secret. Names can be reused after a revocation;
/// this cannot, so revocation and stream ownership hang on it.
pub type TokenId = [u8; 32];

/// The data-plane names a gateway token may use: one exact name, a prefix ending in `*`, or
/// `*` for any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataPlaneNames(String);

impl DataPlaneNames {
    /// Checks a pattern: at most 128 characters, letters, digits, '-', '_', '.', ':' and a final '*'.
    pub fn parse(pattern: &str) -> Result<Self, TokenError> {
        let body = pattern.strip_suffix('*').unwrap_or(pattern);
        let valid = pattern.len() <= 128
            && !pattern.is_empty()
            && body.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
        if !valid {
            return Err(TokenError::InvalidDataPlaneNames(gatehouse_shared::api::quote(pattern)));
        }
        Ok(Self(pattern.to_string()))
    }

    /// Whether a data plane may call itself `name` with this token.
    pub fn allows(&self, name: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == self.0,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who made a request: put in the request's extensions by [`RequireRole`].
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token's name, for logs and listings.
    pub token: String,
    /// The token itself.
    pub token_id: TokenId,
    /// What the token may call.
    pub role: Role,
    /// The data-plane names the token may connect as.
    pub data_plane_names: DataPlaneNames,
}

/// Why a token cannot be made, revoked or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The name is taken.
    #[error("a token named '{0}' exists already")]
    Exists(String),
    /// No live token has the name.
    #[error("no token named '{0}'")]
    NotFound(String),
    /// The name is not a plain id of at most 64 characters.
    #[error("token name '{0}' is invalid: use 1 to 64 letters, digits, '-', '_' or '.' (not '.' or '..' alone)")]
    InvalidName(String),
    /// The data-plane names pattern is malformed.
    #[error(
        "data-plane names '{0}' are invalid: give one name, a prefix ending in '*' (edge-*), or '*'; letters, digits, '-', '_', '.', ':'"
    )]
    InvalidDataPlaneNames(String),
    /// Data-plane names given for an operator token.
    #[error("data-plane names apply to gateway tokens only")]
    NamesForOperator,
    /// Revoking the last operator token without `force`.
    #[error(
        "'{0}' is the last operator token: without it nobody can manage this control plane until it is restarted (which writes a new DATA_DIR/operator.token); revoke it with force if that is what you want"
    )]
    LastOperator(String),
    /// sled failed.
    #[error("the token store failed")]
    Storage(#[from] sled::Error),
    /// The shared store (etcd) cannot be reached.
    #[error(transparent)]
    Unavailable(crate::store::StoreError),
}

impl From<TokenError> for Status {
    fn from(error: TokenError) -> Self {
        match &error {
            TokenError::Exists(_) => Status::already_exists(error.to_string()),
            TokenError::NotFound(_) => Status::not_found(error.to_string()),
            TokenError::LastOperator(_) => Status::failed_precondition(error.to_string()),
            TokenError::InvalidName(_) | TokenError::InvalidDataPlaneNames(_) | TokenError::NamesForOperator => {
                Status::invalid_argument(error.to_string())
            }
            TokenError::Storage(_) => Status::internal(error.to_string()),
            TokenError::Unavailable(_) => Status::unavailable(error.to_string()),
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct TokenStored {
    #[prost(string, tag = "1")]
    name: String,
    /// 1 operator, 2 gateway.
    #[prost(uint32, tag = "2")]
    role: u32,
    #[prost(int64, tag = "3")]
    created: i64,
    #[prost(bytes = "vec", tag = "4")]
    hash: Vec<u8>,
    /// Gateway tokens: the names they may connect as (empty in stores from before: the token's name).
    #[prost(string, tag = "5")]
    data_plane_names: String,
}

#[cfg(feature = "etcd")]
mod etcd;

/// Where tokens are kept.
enum Storage {
    /// sled's `tokens` tree, by name.
    Sled(sled::Tree),
    /// etcd, under `PREFIX/tokens/NAME`, shared by every control plane on it.
    #[cfg(feature = "etcd")]
    Etcd(Box<crate::store::etcd::Etcd>),
}

/// The live tokens, kept in sled or etcd and looked up by hash.
pub struct Tokens {
    storage: Storage,
    by_hash: ArcSwap<HashMap<TokenId, Arc<TokenRecord>>>,
    /// Bumped on every revocation, so open streams re-check their token.
    revocations: watch::Sender<u64>,
    /// Streams check their token and send under the read side; a revocation takes the write
    /// side before it returns, so nothing is sent on a revoked token's stream afterwards.
    send_gate: std::sync::RwLock<()>,
    /// The store position the live tokens were read at (etcd): an older read never replaces a
    /// newer one, so a token revoked here cannot come back.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    loaded_at: std::sync::Mutex<i64>,
}

fn hash(secret: &str) -> TokenId {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

impl Tokens {
    /// Loads the tokens stored in `db`.
    pub fn open(db: &sled::Db) -> Result<Self, TokenError> {
        let tree = db.open_tree("tokens")?;
        let tokens = Self::with_storage(Storage::Sled(tree.clone()));
        tokens.reload_sled(&tree)?;
        Ok(tokens)
    }

    fn with_storage(storage: Storage) -> Self {
        Self {
            storage,
            by_hash: ArcSwap::default(),
            revocations: watch::Sender::new(0),
            send_gate: std::sync::RwLock::new(()),
            loaded_at: std::sync::Mutex::new(0),
        }
    }

    /// Reads every token again from where they are kept.
    async fn reload(&self) -> Result<(), TokenError> {
        match &self.storage {
            Storage::Sled(tree) => self.reload_sled(tree),
            #[cfg(feature = "etcd")]
            Storage::Etcd(etcd) => self.reload_etcd(etcd).await,
        }
    }

    fn reload_sled(&self, tree: &sled::Tree) -> Result<(), TokenError> {
        let values = tree.iter().values().collect::<Result<Vec<_>, _>>()?;
        self.load(values.iter().map(|v| v.as_ref()));
        Ok(())
    }

    /// Makes the stored records (`values`) the live tokens.
    fn load<'a>(&self, values: impl Iterator<Item = &'a [u8]>) {
        let mut map = HashMap::new();
        for value in values {
            let Ok(stored) = <TokenStored as prost::Message>::decode(value) else { continue };
            let Ok(hash) = <[u8; 32]>::try_from(stored.hash.as_slice()) else { continue };
            // Unknown role codes fail closed: such a token authenticates as nothing.
            let role = match stored.role {
                1 => Role::Operator,
                2 => Role::Gateway,
                other => {
                    tracing::warn!(token = ?stored.name, role = other, "token with an unknown role ignored");
                    continue;
                }
            };
            let pattern = if stored.data_plane_names.is_empty() { &stored.name } else { &stored.data_plane_names };
            let Ok(data_plane_names) = DataPlaneNames::parse(pattern) else { continue };
            map.insert(
                hash,
                Arc::new(TokenRecord { name: stored.name, role, created: stored.created, data_plane_names, hash }),
            );
        }
        self.by_hash.store(Arc::new(map));
    }

    /// Whether any operator token is live.
    pub fn has_operator(&self) -> bool {
        self.by_hash.load().values().any(|r| r.role == Role::Operator)
    }

    /// The token's record, if the secret is a live token. The lookup is by SHA-256 of the
    /// secret, so timing reveals nothing about the secret itself.
    pub fn authenticate(&self, secret: &str) -> Option<Arc<TokenRecord>> {
        self.by_hash.load().get(&hash(secret)).cloned()
    }

    /// The caller a bearer `secret` stands for, if it is live and has `role`: the one check
    /// behind every management and sync call and the console's sign-in.
    pub fn caller(&self, secret: &str, role: Role) -> Result<Caller, Status> {
        let record =
            self.authenticate(secret.trim()).ok_or_else(|| Status::unauthenticated("invalid or revoked token"))?;
        if record.role != role {
            return Err(Status::permission_denied(format!(
                "token '{}' has the {} role; this service needs the {} role",
                record.name,
                record.role.as_str(),
                role.as_str()
            )));
        }
        Ok(Caller {
            token: record.name.clone(),
            token_id: record.hash,
            role: record.role,
            data_plane_names: record.data_plane_names.clone(),
        })
    }

    /// Whether this exact token (not merely one with its name) is still live.
    pub fn is_live(&self, token: &TokenId) -> bool {
        self.by_hash.load().contains_key(token)
    }

    /// Sends `message` with `permit` unless `token` has been revoked; false if it has. Once
    /// [`Self::revoke`] returned, this never sends for the revoked token.
    pub fn send_if_live<T>(&self, token: &TokenId, permit: tokio::sync::mpsc::Permit<'_, T>, message: T) -> bool {
        let _gate = self.send_gate.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !self.is_live(token) {
            return false;
        }
        permit.send(message);
        true
    }

    /// Every live token, in name order.
    pub fn list(&self) -> Vec<TokenRecord> {
        let mut list: Vec<TokenRecord> = self.by_hash.load().values().map(|r| (**r).clone()).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// Creates a token and returns its secret (the only time it is available).
    /// `data_plane_names`: for gateway tokens, the names it may connect as (None: its own name).
    pub async fn create(
        &self,
        name: &str,
        role: Role,
        data_plane_names: Option<&str>,
    ) -> Result<(TokenRecord, String), TokenError> {
        if !crate::store::is_plain_id(name, 64) {
            return Err(TokenError::InvalidName(gatehouse_shared::api::quote(name)));
        }
        if role == Role::Operator && data_plane_names.is_some() {
            return Err(TokenError::NamesForOperator);
        }
        let data_plane_names = DataPlaneNames::parse(data_plane_names.unwrap_or(name))?;
        let secret = crate::random::secret("gh_");
        let created = gatehouse_shared::unix_now();
        let stored = TokenStored {
            name: name.to_string(),
            role: if role == Role::Gateway { 2 } else { 1 },
            created,
            hash: hash(&secret).to_vec(),
            data_plane_names: data_plane_names.as_str().to_string(),
        };
        let value = prost::Message::encode_to_vec(&stored);
        let inserted = match &self.storage {
            Storage::Sled(tree) => {
                let inserted = tree.compare_and_swap(name.as_bytes(), None as Option<&[u8]>, Some(value))?.is_ok();
                tree.flush_async().await?;
                inserted
            }
            #[cfg(feature = "etcd")]
            Storage::Etcd(etcd) => etcd::insert_new(etcd, name, value).await?,
        };
        if !inserted {
            return Err(TokenError::Exists(name.to_string()));
        }
        self.reload().await?;
        Ok((TokenRecord { name: name.to_string(), role, created, data_plane_names, hash: hash(&secret) }, secret))
    }

    /// Revokes a token; the last operator token only with `force`.
    pub async fn revoke(&self, name: &str, force: bool) -> Result<(), TokenError> {
        let operators: Vec<Arc<TokenRecord>> =
            self.by_hash.load().values().filter(|r| r.role == Role::Operator).cloned().collect();
        if !force && operators.len() == 1 && operators[0].name == name {
            return Err(TokenError::LastOperator(name.to_string()));
        }
        let removed = match &self.storage {
            Storage::Sled(tree) => {
                let removed = tree.remove(name.as_bytes())?.is_some();
                tree.flush_async().await?;
                removed
            }
            #[cfg(feature = "etcd")]
            Storage::Etcd(etcd) => etcd::remove(etcd, name).await?,
        };
        if !removed {
            return Err(TokenError::NotFound(name.to_string()));
        }
        self.reload().await?;
        self.revoked();
        Ok(())
    }

    /// After a reload that dropped tokens: waits out any stream that checked its token before
    /// the reload and is sending now, then tells every stream to check again.
    fn revoked(&self) {
        drop(self.send_gate.write().unwrap_or_else(|poisoned| poisoned.into_inner()));
        self.revocations.send_modify(|n| *n += 1);
    }

    /// Changes on every revocation, so open streams re-check their token.
    pub fn revocations(&self) -> watch::Receiver<u64> {
        self.revocations.subscribe()
    }
}

/// Checks the bearer token of every request to a service against the role it needs.
#[derive(Clone)]
pub struct RequireRole {
    tokens: Arc<Tokens>,
    role: Role,
}

impl RequireRole {
    /// An interceptor that lets through only tokens with `role`.
    pub fn new(tokens: Arc<Tokens>, role: Role) -> Self {
        Self { tokens, role }
    }
}

impl tonic::service::Interceptor for RequireRole {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing token: send 'authorization: Bearer <token>'"))?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("the authorization header must be 'Bearer <token>'"))?;
        let caller = self.tokens.caller(secret, self.role)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}
