//! Bearer tokens with scopes.
//!
//! Tokens are HS256 JWTs signed with a secret shared by the platform's token issuer and
//! the services (`OCOP_AUTH_JWT_SECRET`); the `scope` claim is a space-separated list
//! such as `catalog:write order:write`. [`ScopeLayer`] checks every call against the
//! service's policy, which maps a gRPC method to the scope it needs (or none, for
//! anonymous methods like health and public browse).

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Issuer written into and required from every token.
pub const ISSUER: &str = "ocop-market";

/// Token settings.
#[derive(Clone, clap::Args)]
pub struct AuthConfig {
    /// HS256 secret shared with the token issuer (at least 32 bytes; environment only).
    #[arg(long = "auth-jwt-secret", env = "OCOP_AUTH_JWT_SECRET", hide_env_values = true,
          value_parser = parse_secret)]
    pub jwt_secret: String,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("jwt_secret", &"<redacted>")
            .finish()
    }
}

fn parse_secret(raw: &str) -> Result<String, String> {
    if raw.len() < 32 {
        Err(format!(
            "must be at least 32 bytes long, got {} bytes",
            raw.len()
        ))
    } else {
        Ok(raw.to_owned())
    }
}

/// The claims of an ocop-market token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Who: an operator's login or a partner's id (e.g. `partner:postmart`).
    pub sub: String,
    /// Space-separated scopes.
    pub scope: String,
    pub iss: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

impl Claims {
    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope
            .split_whitespace()
            .any(|granted| granted == scope)
    }
}

/// Verifies tokens (and mints them, for tools and tests).
#[derive(Clone)]
pub struct TokenVerifier {
    decoding: Arc<DecodingKey>,
    encoding: Arc<EncodingKey>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenVerifier(<secret>)")
    }
}

/// Why a call was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("this call needs a bearer token with scope `{0}`")]
    MissingToken(&'static str),
    #[error("the bearer token is invalid: {0}")]
    InvalidToken(String),
    #[error("the token does not grant scope `{0}`")]
    MissingScope(&'static str),
}

impl From<AuthError> for tonic::Status {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::MissingToken(_) | AuthError::InvalidToken(_) => {
                tonic::Status::unauthenticated(err.to_string())
            }
            AuthError::MissingScope(_) => tonic::Status::permission_denied(err.to_string()),
        }
    }
}

impl TokenVerifier {
    pub fn new(config: &AuthConfig) -> Self {
        Self::from_secret(config.jwt_secret.as_bytes())
    }

    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            decoding: Arc::new(DecodingKey::from_secret(secret)),
            encoding: Arc::new(EncodingKey::from_secret(secret)),
        }
    }

    /// Checks signature, issuer and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|err| AuthError::InvalidToken(err.to_string()))
    }

    /// Mints a token for `subject` with `scopes`, valid for `ttl`.
    pub fn mint(&self, subject: &str, scopes: &[&str], ttl: Duration) -> String {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .saturating_add(ttl)
            .as_secs();
        let claims = Claims {
            sub: subject.to_owned(),
            scope: scopes.join(" "),
            iss: ISSUER.to_owned(),
            exp,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding cannot fail")
    }

    /// Checks a call to `method` (e.g. `/ocop.catalog.v1.CatalogService/UpsertProduct`)
    /// with `authorization` header value against `policy`.
    pub fn authorize(
        &self,
        policy: Policy,
        method: &str,
        authorization: Option<&str>,
    ) -> Result<Option<Claims>, AuthError> {
        let required = policy(method);
        let token =
            authorization.map(|value| value.strip_prefix("Bearer ").unwrap_or(value).trim());
        let claims = match token {
            Some(token) if !token.is_empty() => Some(self.verify(token)?),
            _ => None,
        };
        if let Some(scope) = required {
            match &claims {
                None => return Err(AuthError::MissingToken(scope)),
                Some(claims) if !claims.has_scope(scope) => {
                    return Err(AuthError::MissingScope(scope));
                }
                Some(_) => {}
            }
        }
        Ok(claims)
    }
}

/// Maps a gRPC method path to the scope it requires; `None` means anonymous.
pub type Policy = fn(&str) -> Option<&'static str>;

/// The scope a handler may find in the request extensions after [`ScopeLayer`] admitted
/// a call with a valid token.
pub fn caller(extensions: &tonic::Extensions) -> Option<&Claims> {
    extensions.get::<Claims>()
}

/// Tower layer enforcing a [`Policy`] on every call of a server.
#[derive(Clone, Debug)]
pub struct ScopeLayer {
    verifier: TokenVerifier,
    policy: Policy,
}

impl ScopeLayer {
    pub fn new(verifier: TokenVerifier, policy: Policy) -> Self {
        Self { verifier, policy }
    }
}

impl<S> tower::Layer<S> for ScopeLayer {
    type Service = ScopeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ScopeService {
            inner,
            verifier: self.verifier.clone(),
            policy: self.policy,
        }
    }
}

/// See [`ScopeLayer`].
#[derive(Clone, Debug)]
pub struct ScopeService<S> {
    inner: S,
    verifier: TokenVerifier,
    policy: Policy,
}

impl<S, B, RB> tower::Service<http::Request<B>> for ScopeService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Send,
    S::Future: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        match self
            .verifier
            .authorize(self.policy, request.uri().path(), authorization)
        {
            Ok(claims) => {
                if let Some(claims) = claims {
                    request.extensions_mut().insert(claims);
                }
                Box::pin(self.inner.call(request))
            }
            Err(err) => {
                tracing::info!(method = request.uri().path(), reason = %err, "call refused");
                let response = tonic::Status::from(err).into_http::<RB>();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

    fn policy(method: &str) -> Option<&'static str> {
        method.ends_with("/Upsert").then_some("catalog:write")
    }

    #[test]
    fn anonymous_method_needs_no_token() {
        let verifier = TokenVerifier::from_secret(SECRET);
        assert_eq!(verifier.authorize(policy, "/x.Svc/Get", None), Ok(None));
    }

    #[test]
    fn protected_method_without_token_is_unauthenticated() {
        let verifier = TokenVerifier::from_secret(SECRET);
        let err = verifier
            .authorize(policy, "/x.Svc/Upsert", None)
            .unwrap_err();
        assert_eq!(err, AuthError::MissingToken("catalog:write"));
        assert_eq!(
            tonic::Status::from(err).code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn token_without_the_scope_is_permission_denied() {
        let verifier = TokenVerifier::from_secret(SECRET);
        let token = verifier.mint("partner:postmart", &["order:read"], Duration::from_secs(60));
        let err = verifier
            .authorize(policy, "/x.Svc/Upsert", Some(&format!("Bearer {token}")))
            .unwrap_err();
        assert_eq!(
            tonic::Status::from(err).code(),
            tonic::Code::PermissionDenied
        );
    }

    #[test]
    fn token_with_the_scope_is_admitted_with_its_claims() {
        let verifier = TokenVerifier::from_secret(SECRET);
        let token = verifier.mint("ops", &["catalog:write"], Duration::from_secs(60));
        let claims = verifier
            .authorize(policy, "/x.Svc/Upsert", Some(&format!("Bearer {token}")))
            .unwrap()
            .unwrap();
        assert_eq!(claims.sub, "ops");
    }

    #[test]
    fn token_signed_with_another_secret_is_rejected() {
        let forger = TokenVerifier::from_secret(b"another-secret-another-secret-xx!");
        let token = forger.mint("ops", &["catalog:write"], Duration::from_secs(60));
        let verifier = TokenVerifier::from_secret(SECRET);
        assert!(matches!(
            verifier.verify(&token),
            Err(AuthError::InvalidToken(_))
        ));
    }

    #[test]
    fn expired_token_is_rejected() {
        let verifier = TokenVerifier::from_secret(SECRET);
        let claims = Claims {
            sub: "ops".into(),
            scope: "catalog:write".into(),
            iss: ISSUER.into(),
            exp: 1_000,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(matches!(
            verifier.verify(&token),
            Err(AuthError::InvalidToken(_))
        ));
    }

    #[test]
    fn short_secret_is_a_startup_error() {
        assert!(
            parse_secret("short")
                .unwrap_err()
                .contains("at least 32 bytes")
        );
    }
}
