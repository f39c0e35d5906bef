//! Bearer tokens with scopes, an audience per service, and a policy for every method.
//!
//! Tokens are HS256 JWTs signed with a secret shared by the platform's token issuer and
//! the services (`OCOP_AUTH_JWT_SECRET`). The `scope` claim is a space-separated list such
//! as `catalog:write order:write`; the `aud` claim names the services the token is for
//! (`ocop-order`, …), so a token minted for one service is refused by the others; a
//! partner's token carries the `partner` scope and its sales channel (`channel`).
//!
//! [`ScopeLayer`] checks every call against the service's [`Policy`], which must name
//! every method: a method the policy does not know is refused (deny by default). Health
//! and reflection are open on every server.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Deserializer, Serialize};

/// Issuer written into and required from every token.
pub const ISSUER: &str = "ocop-market";

/// The audience of each service: a token is accepted only by the services it names.
pub mod audience {
    pub const CATALOG: &str = "ocop-catalog";
    pub const ORDER: &str = "ocop-order";
    pub const PAYMENT: &str = "ocop-payment";
    pub const NOTIFICATION: &str = "ocop-notification";
    /// Every service, for tools and tests that talk to all of them.
    pub const ALL: [&str; 4] = [CATALOG, ORDER, PAYMENT, NOTIFICATION];
}

/// The scope of a partner's token; the token also names the partner's sales channel.
pub const PARTNER_SCOPE: &str = "partner";

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
    /// The services the token is for (a JSON string or array, as RFC 7519 allows).
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// A partner's sales channel (`postmart`, `voso`, …), with the `partner` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

impl Claims {
    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope
            .split_whitespace()
            .any(|granted| granted == scope)
    }

    /// The sales channel of a partner's token (`partner` scope and a channel), if it is one.
    pub fn partner_channel(&self) -> Option<&str> {
        self.channel
            .as_deref()
            .filter(|_| self.has_scope(PARTNER_SCOPE))
    }
}

/// What a token grants, to mint one.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    /// The services it is for (see [`audience`]).
    pub audiences: &'a [&'a str],
    pub subject: &'a str,
    pub scopes: &'a [&'a str],
    /// A partner's sales channel (with the `partner` scope).
    pub channel: Option<&'a str>,
    pub ttl: Duration,
}

/// Mints tokens (tools, tests and the platform's token issuer).
#[derive(Clone)]
pub struct TokenIssuer {
    encoding: Arc<EncodingKey>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenIssuer(<secret>)")
    }
}

impl TokenIssuer {
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            encoding: Arc::new(EncodingKey::from_secret(secret)),
        }
    }

    pub fn mint(&self, grant: &Grant<'_>) -> String {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .saturating_add(grant.ttl)
            .as_secs();
        let claims = Claims {
            sub: grant.subject.to_owned(),
            scope: grant.scopes.join(" "),
            iss: ISSUER.to_owned(),
            aud: grant.audiences.iter().map(|&aud| aud.to_owned()).collect(),
            channel: grant.channel.map(str::to_owned),
            exp,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding cannot fail")
    }
}

/// Verifies the tokens addressed to one service.
#[derive(Clone)]
pub struct TokenVerifier {
    decoding: Arc<DecodingKey>,
    audience: &'static str,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenVerifier({}, <secret>)", self.audience)
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
    #[error("this method is not in the service's access policy")]
    NotInPolicy,
}

impl From<AuthError> for tonic::Status {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::MissingToken(_) | AuthError::InvalidToken(_) => {
                tonic::Status::unauthenticated(err.to_string())
            }
            AuthError::MissingScope(_) | AuthError::NotInPolicy => {
                tonic::Status::permission_denied(err.to_string())
            }
        }
    }
}

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (browsing the catalogue, placing an order).
    Anyone,
    /// Anyone may call, but the handler demands a capability the request carries (an
    /// order's access token) unless the caller's bearer token grants enough instead.
    Capability,
    /// A bearer token granting this scope.
    Scope(&'static str),
}

/// Maps a gRPC method path to what it needs; `None` (a method the policy does not know)
/// refuses the call.
pub type Policy = fn(&str) -> Option<Access>;

/// Health checks and reflection, open on every server whatever its policy.
fn framework_access(method: &str) -> Option<Access> {
    [
        "/grpc.health.v1.Health/",
        "/grpc.reflection.v1.ServerReflection/",
        "/grpc.reflection.v1alpha.ServerReflection/",
    ]
    .iter()
    .any(|prefix| method.starts_with(prefix))
    .then_some(Access::Anyone)
}

impl TokenVerifier {
    /// A verifier for the service named `audience` (see [`audience`]).
    pub fn new(config: &AuthConfig, audience: &'static str) -> Self {
        Self::from_secret(config.jwt_secret.as_bytes(), audience)
    }

    pub fn from_secret(secret: &[u8], audience: &'static str) -> Self {
        Self {
            decoding: Arc::new(DecodingKey::from_secret(secret)),
            audience,
        }
    }

    /// Checks signature, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|err| AuthError::InvalidToken(err.to_string()))
    }

    /// Checks a call to `method` (e.g. `/ocop.catalog.v1.CatalogService/UpsertProduct`)
    /// with `authorization` header value against `policy`.
    pub fn authorize(
        &self,
        policy: Policy,
        method: &str,
        authorization: Option<&str>,
    ) -> Result<Option<Claims>, AuthError> {
        let access = framework_access(method)
            .or_else(|| policy(method))
            .ok_or(AuthError::NotInPolicy)?;
        let token =
            authorization.map(|value| value.strip_prefix("Bearer ").unwrap_or(value).trim());
        let claims = match token {
            Some(token) if !token.is_empty() => Some(self.verify(token)?),
            _ => None,
        };
        if let Access::Scope(scope) = access {
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

/// The claims a handler finds in the request extensions after [`ScopeLayer`] admitted a
/// call with a valid token.
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
    const AUDIENCE: &str = "ocop-test";

    fn policy(method: &str) -> Option<Access> {
        match method.strip_prefix("/x.Svc/")? {
            "Get" => Some(Access::Anyone),
            "Upsert" => Some(Access::Scope("catalog:write")),
            _ => None,
        }
    }

    fn verifier() -> TokenVerifier {
        TokenVerifier::from_secret(SECRET, AUDIENCE)
    }

    fn token(audiences: &[&str], scopes: &[&str]) -> String {
        TokenIssuer::from_secret(SECRET).mint(&Grant {
            audiences,
            subject: "ops",
            scopes,
            channel: None,
            ttl: Duration::from_secs(60),
        })
    }

    #[test]
    fn anonymous_method_needs_no_token() {
        assert_eq!(verifier().authorize(policy, "/x.Svc/Get", None), Ok(None));
    }

    #[test]
    fn a_method_missing_from_the_policy_is_refused_even_with_every_scope() {
        let token = token(&[AUDIENCE], &["catalog:write"]);
        let err = verifier()
            .authorize(policy, "/x.Svc/Forgotten", Some(&format!("Bearer {token}")))
            .unwrap_err();
        assert_eq!(err, AuthError::NotInPolicy);
        assert_eq!(
            tonic::Status::from(err).code(),
            tonic::Code::PermissionDenied
        );
    }

    #[test]
    fn health_and_both_reflection_versions_are_open_on_every_server() {
        for method in [
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert_eq!(verifier().authorize(|_| None, method, None), Ok(None));
        }
    }

    #[test]
    fn protected_method_without_token_is_unauthenticated() {
        let err = verifier()
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
        let token = token(&[AUDIENCE], &["order:read"]);
        let err = verifier()
            .authorize(policy, "/x.Svc/Upsert", Some(&format!("Bearer {token}")))
            .unwrap_err();
        assert_eq!(
            tonic::Status::from(err).code(),
            tonic::Code::PermissionDenied
        );
    }

    #[test]
    fn token_with_the_scope_is_admitted_with_its_claims() {
        let token = token(&["ocop-other", AUDIENCE], &["catalog:write"]);
        let claims = verifier()
            .authorize(policy, "/x.Svc/Upsert", Some(&format!("Bearer {token}")))
            .unwrap()
            .unwrap();
        assert_eq!(claims.sub, "ops");
    }

    #[test]
    fn a_token_for_another_service_is_rejected() {
        let token = token(&["ocop-other"], &["catalog:write"]);
        let err = verifier()
            .authorize(policy, "/x.Svc/Upsert", Some(&format!("Bearer {token}")))
            .unwrap_err();
        assert!(
            matches!(&err, AuthError::InvalidToken(reason) if reason.contains("Audience")),
            "{err:?}"
        );
    }

    #[test]
    fn a_single_string_audience_is_read_as_rfc_7519_allows() {
        let claims = serde_json::json!({
            "sub": "ops", "scope": "catalog:write", "iss": ISSUER, "aud": AUDIENCE,
            "exp": 4_000_000_000_u64,
        });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(verifier().verify(&token).unwrap().aud, vec![AUDIENCE]);
    }

    #[test]
    fn only_a_partner_token_has_a_partner_channel() {
        let issuer = TokenIssuer::from_secret(SECRET);
        let grant = Grant {
            audiences: &[AUDIENCE],
            subject: "partner:postmart",
            scopes: &[PARTNER_SCOPE],
            channel: Some("postmart"),
            ttl: Duration::from_secs(60),
        };
        let partner = verifier().verify(&issuer.mint(&grant)).unwrap();
        assert_eq!(partner.partner_channel(), Some("postmart"));
        let not_partner = verifier()
            .verify(&issuer.mint(&Grant {
                scopes: &["order:read"],
                ..grant
            }))
            .unwrap();
        assert_eq!(not_partner.partner_channel(), None);
    }

    #[test]
    fn token_signed_with_another_secret_is_rejected() {
        let forged = TokenIssuer::from_secret(b"another-secret-another-secret-xx!").mint(&Grant {
            audiences: &[AUDIENCE],
            subject: "ops",
            scopes: &["catalog:write"],
            channel: None,
            ttl: Duration::from_secs(60),
        });
        assert!(matches!(
            verifier().verify(&forged),
            Err(AuthError::InvalidToken(_))
        ));
    }

    #[test]
    fn expired_token_is_rejected() {
        let claims = Claims {
            sub: "ops".into(),
            scope: "catalog:write".into(),
            iss: ISSUER.into(),
            aud: vec![AUDIENCE.into()],
            channel: None,
            exp: 1_000,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(matches!(
            verifier().verify(&token),
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
