//! Console sessions: an operator token exchanged for a random session id in an `HttpOnly`,
//! `Secure`, `SameSite=Strict` cookie, with a CSRF token every write must carry, an idle expiry,
//! and a one-shot notice carried across the redirect after a write. Sessions live in this
//! control plane's memory: a restart signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::tokens::{Caller, Tokens};

/// The session cookie's name (data planes strip it from what they forward).
pub const COOKIE: &str = gatehouse_shared::headers::CONSOLE_SESSION_COOKIE;

/// No session outlives this, however busy: a page left open (the gateways page reloads itself)
/// does not keep a session forever.
pub const MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);

/// Most sessions held at once; signing in past it ends the least recently used one.
const MAX_SESSIONS: usize = 1024;

/// What the page after a redirect shows once: a write that went through, and how the fleet
/// took it.
#[derive(Clone, Debug)]
pub struct Notice(pub String);

/// A signed-in operator.
#[derive(Clone, Debug)]
pub struct Session {
    /// The session id (the cookie's value).
    pub id: String,
    /// The token it was opened with, as the gRPC API sees it.
    pub caller: Caller,
    /// What every form posts back in its `csrf` field.
    pub csrf: String,
    opened: Instant,
    last_seen: Instant,
    notice: Option<Notice>,
}

/// The open sessions.
pub struct Sessions {
    open: Mutex<HashMap<String, Session>>,
    idle: Duration,
}

impl Sessions {
    /// Sessions that end after `idle` without a request.
    pub fn new(idle: Duration) -> Self {
        Self { open: Mutex::new(HashMap::new()), idle }
    }

    /// Opens a session for `caller`; returns it with its new id and CSRF token.
    pub fn open(&self, caller: Caller) -> Session {
        let session = Session {
            id: crate::random::secret("cs_"),
            caller,
            csrf: crate::random::secret(""),
            opened: Instant::now(),
            last_seen: Instant::now(),
            notice: None,
        };
        let mut open = self.lock();
        open.retain(|_, s| !self.expired(s));
        if open.len() >= MAX_SESSIONS
            && let Some(oldest) = open.values().min_by_key(|s| s.last_seen).map(|s| s.id.clone())
        {
            open.remove(&oldest);
        }
        open.insert(session.id.clone(), session.clone());
        session
    }

    /// The live session with this id and its notice (taken); `None` if there is none, it sat
    /// idle too long, it is older than [`MAX_AGE`], or its token was revoked since (which ends
    /// it). `used`: a person asked for the page, so the idle clock restarts; a page reloading
    /// itself does not count.
    pub fn touch(&self, id: &str, tokens: &Tokens, used: bool) -> Option<(Session, Option<Notice>)> {
        let mut open = self.lock();
        let session = open.get_mut(id)?;
        if self.expired(session) || !tokens.is_live(&session.caller.token_id) {
            open.remove(id);
            return None;
        }
        if used {
            session.last_seen = Instant::now();
        }
        let notice = session.notice.take();
        Some((session.clone(), notice))
    }

    /// Keeps `notice` for the session's next page.
    pub fn set_notice(&self, id: &str, notice: Notice) {
        if let Some(session) = self.lock().get_mut(id) {
            session.notice = Some(notice);
        }
    }

    /// Ends the session.
    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    fn expired(&self, session: &Session) -> bool {
        session.last_seen.elapsed() >= self.idle || session.opened.elapsed() >= MAX_AGE
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether the posted CSRF token is the session's. Their SHA-256 digests are compared, so the
/// time the comparison takes says nothing about the token.
pub fn csrf_matches(session: &Session, posted: Option<&str>) -> bool {
    use sha2::Digest as _;
    posted
        .is_some_and(|posted| sha2::Sha256::digest(posted.as_bytes()) == sha2::Sha256::digest(session.csrf.as_bytes()))
}

/// The `Set-Cookie` value that carries a new session.
pub fn cookie(session: &Session) -> String {
    format!("{COOKIE}={}; Path=/console; HttpOnly; Secure; SameSite=Strict", session.id)
}

/// The `Set-Cookie` value that clears the session cookie.
pub fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
}

/// The session id in a `Cookie` header, if any.
pub fn id_from_cookies(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}
