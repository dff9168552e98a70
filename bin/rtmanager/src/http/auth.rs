//! Bearer-token authentication of the two REST surfaces.
//!
//! Guarantees:
//! - Tokens are compared in constant time with respect to the presented
//!   token: the work done depends only on the configured token's length,
//!   never on where the first differing byte is or on the presented
//!   token's length.
//! - The presented token is compared against **both** configured tokens
//!   on every request, so timing does not reveal which one (if any) it
//!   matched.
//! - GM surface: only the GM token; the admin token gets 403 `forbidden`.
//!   Admin surface: only the admin token; the GM token gets 403
//!   `forbidden`. Anything else is 401 `unauthorized`. This follows the
//!   domain's definition of `forbidden` ("a valid token for another
//!   surface").

use std::hint::black_box;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web;
use rtm_domain::ports::Ports;
use rtm_domain::ErrorCode;

use super::error::ApiError;
use super::{AppState, Surface};
use crate::config::Secret;

/// The two configured tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub gm: Secret,
    pub admin: Secret,
}

impl From<&crate::config::HttpConfig> for Tokens {
    fn from(http: &crate::config::HttpConfig) -> Self {
        Self {
            gm: http.gm_token.clone(),
            admin: http.admin_token.clone(),
        }
    }
}

/// Who presented a valid token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Gm,
    Admin,
}

/// Byte-wise equality whose running time depends only on `expected.len()`.
pub fn constant_time_eq(presented: &[u8], expected: &[u8]) -> bool {
    // Length difference folded in without branching on it; then every
    // byte of `expected` is visited, reading 0 past the presented end.
    let mut diff: u8 = u8::from(presented.len() != expected.len());
    for (i, &e) in expected.iter().enumerate() {
        let p = presented.get(i).copied().unwrap_or(0);
        diff |= black_box(p ^ e);
    }
    black_box(diff) == 0
}

impl Tokens {
    /// Which surface's token `presented` is, if any.
    pub fn identify(&self, presented: &str) -> Option<Caller> {
        let p = presented.as_bytes();
        // Both comparisons always run: no short-circuit.
        let gm = constant_time_eq(p, self.gm.expose().as_bytes());
        let admin = constant_time_eq(p, self.admin.expose().as_bytes());
        match (gm, admin) {
            (true, _) => Some(Caller::Gm),
            (false, true) => Some(Caller::Admin),
            (false, false) => None,
        }
    }

    /// Authorizes an `Authorization` header value for `surface`.
    pub fn authorize(&self, header: Option<&str>, surface: Caller) -> Result<(), ApiError> {
        let Some(token) = header.and_then(bearer) else {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "missing bearer token (Authorization: Bearer <token>)",
            ));
        };
        match self.identify(token) {
            Some(caller) if caller == surface => Ok(()),
            Some(_) => Err(ApiError::new(
                ErrorCode::Forbidden,
                "this token is not valid on this surface",
            )),
            None => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "invalid bearer token",
            )),
        }
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 7235).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Middleware of a surface's authenticated scope: rejects the request
/// before any extractor or handler runs.
pub async fn require_token<P: Ports, S: Surface>(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<AppState<P>>>() {
        Some(state) => {
            let value = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            state.tokens.authorize(value, S::CALLER)
        }
        None => {
            tracing::error!("AppState is not registered as app data; refusing the request");
            Err(ApiError::new(
                ErrorCode::Internal,
                super::error::INTERNAL_MESSAGE,
            ))
        }
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(e) => Ok(req.error_response(e).map_into_right_body()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            gm: Secret::new("gm-token-0123456789"),
            admin: Secret::new("admin-token-0123456789"),
        }
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abd", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
        assert!(constant_time_eq(b"", b""));
        // A prefix padded with NULs must not match either.
        assert!(!constant_time_eq(b"ab\0", b"ab"));
        assert!(!constant_time_eq(b"ab", b"ab\0"));
    }

    #[test]
    fn bearer_scheme() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }

    #[test]
    fn surfaces_accept_only_their_token() {
        let t = tokens();
        let gm = Some("Bearer gm-token-0123456789");
        let admin = Some("Bearer admin-token-0123456789");
        assert!(t.authorize(gm, Caller::Gm).is_ok());
        assert!(t.authorize(admin, Caller::Admin).is_ok());
        let code = |h, s| t.authorize(h, s).expect_err("refused").code();
        assert_eq!(code(gm, Caller::Admin), ErrorCode::Forbidden);
        assert_eq!(code(admin, Caller::Gm), ErrorCode::Forbidden);
        assert_eq!(code(None, Caller::Gm), ErrorCode::Unauthorized);
        assert_eq!(
            code(Some("Bearer gm-token-012345678"), Caller::Gm),
            ErrorCode::Unauthorized
        );
        assert_eq!(
            code(Some("gm-token-0123456789"), Caller::Gm),
            ErrorCode::Unauthorized
        );
    }
}
