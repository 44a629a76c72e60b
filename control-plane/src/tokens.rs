//! Bearer tokens and their roles. Secrets are random, shown once, and stored only as SHA-256
//! hashes; every RPC of a service checks the caller's role before the handler runs.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine as _;
use ring::rand::SecureRandom;
use tokio::sync::watch;
use tonic::{Request, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Calls the Management service.
    Operator,
    /// A data plane: calls ConfigSync only.
    Gateway,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Gateway => "gateway",
        }
    }
}

#[derive(Clone, Debug)]
pub struct TokenRecord {
    pub name: String,
    pub role: Role,
    /// Seconds since the Unix epoch.
    pub created: i64,
    hash: [u8; 32],
}

/// Who made a request: put in the request's extensions by [`RequireRole`].
#[derive(Clone, Debug)]
pub struct Caller {
    pub token: String,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("a token named '{0}' exists already")]
    Exists(String),
    #[error("no token named '{0}'")]
    NotFound(String),
    #[error("token name '{0}' is invalid: use 1 to 64 letters, digits, '-', '_' or '.'")]
    InvalidName(String),
    #[error("the token store failed")]
    Storage(#[from] sled::Error),
}

impl From<TokenError> for Status {
    fn from(error: TokenError) -> Self {
        match &error {
            TokenError::Exists(_) => Status::already_exists(error.to_string()),
            TokenError::NotFound(_) => Status::not_found(error.to_string()),
            TokenError::InvalidName(_) => Status::invalid_argument(error.to_string()),
            TokenError::Storage(_) => Status::internal(error.to_string()),
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
}

pub struct Tokens {
    tree: sled::Tree,
    by_hash: ArcSwap<HashMap<[u8; 32], Arc<TokenRecord>>>,
    /// Bumped on every revocation, so open streams re-check their token.
    revocations: watch::Sender<u64>,
}

fn hash(secret: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

impl Tokens {
    pub fn open(db: &sled::Db) -> Result<Self, TokenError> {
        let tree = db.open_tree("tokens")?;
        let tokens = Self { tree, by_hash: ArcSwap::default(), revocations: watch::Sender::new(0) };
        tokens.reload()?;
        Ok(tokens)
    }

    fn reload(&self) -> Result<(), TokenError> {
        let mut map = HashMap::new();
        for item in self.tree.iter() {
            let (_, value) = item?;
            let Ok(stored) = <TokenStored as prost::Message>::decode(value.as_ref()) else { continue };
            let Ok(hash) = <[u8; 32]>::try_from(stored.hash.as_slice()) else { continue };
            let role = if stored.role == 2 { Role::Gateway } else { Role::Operator };
            map.insert(hash, Arc::new(TokenRecord { name: stored.name, role, created: stored.created, hash }));
        }
        self.by_hash.store(Arc::new(map));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.load().is_empty()
    }

    /// The token's record, if the secret is a live token.
    pub fn authenticate(&self, secret: &str) -> Option<Arc<TokenRecord>> {
        let wanted = hash(secret);
        // Hash lookup, then a constant-time comparison of the hashes.
        let map = self.by_hash.load();
        let record = map.get(&wanted)?;
        ring_constant_time_eq(&record.hash, &wanted).then(|| record.clone())
    }

    pub fn is_live(&self, name: &str) -> bool {
        self.by_hash.load().values().any(|r| r.name == name)
    }

    pub fn list(&self) -> Vec<TokenRecord> {
        let mut list: Vec<TokenRecord> = self.by_hash.load().values().map(|r| (**r).clone()).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// Creates a token and returns its secret (the only time it is available).
    pub async fn create(&self, name: &str, role: Role) -> Result<(TokenRecord, String), TokenError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(TokenError::InvalidName(name.to_string()));
        }
        let mut random = [0u8; 32];
        ring::rand::SystemRandom::new().fill(&mut random).expect("the system random generator works");
        let secret = format!("gh_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random));
        let created = gatehouse_shared::unix_now();
        let stored = TokenStored {
            name: name.to_string(),
            role: if role == Role::Gateway { 2 } else { 1 },
            created,
            hash: hash(&secret).to_vec(),
        };
        let inserted = self.tree.compare_and_swap(
            name.as_bytes(),
            None as Option<&[u8]>,
            Some(prost::Message::encode_to_vec(&stored)),
        )?;
        if inserted.is_err() {
            return Err(TokenError::Exists(name.to_string()));
        }
        self.tree.flush_async().await?;
        self.reload()?;
        Ok((TokenRecord { name: name.to_string(), role, created, hash: hash(&secret) }, secret))
    }

    pub async fn revoke(&self, name: &str) -> Result<(), TokenError> {
        if self.tree.remove(name.as_bytes())?.is_none() {
            return Err(TokenError::NotFound(name.to_string()));
        }
        self.tree.flush_async().await?;
        self.reload()?;
        self.revocations.send_modify(|n| *n += 1);
        Ok(())
    }

    pub fn revocations(&self) -> watch::Receiver<u64> {
        self.revocations.subscribe()
    }
}

fn ring_constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the bearer token of every request to a service against the role it needs.
#[derive(Clone)]
pub struct RequireRole {
    tokens: Arc<Tokens>,
    role: Role,
}

impl RequireRole {
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
        let record = self
            .tokens
            .authenticate(secret.trim())
            .ok_or_else(|| Status::unauthenticated("invalid or revoked token"))?;
        if record.role != self.role {
            return Err(Status::permission_denied(format!(
                "token '{}' has the {} role; this service needs the {} role",
                record.name,
                record.role.as_str(),
                self.role.as_str()
            )));
        }
        request.extensions_mut().insert(Caller { token: record.name.clone(), role: record.role });
        Ok(request)
    }
}
