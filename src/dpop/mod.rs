//! Sender-constrained tokens: DPoP proofs (RFC 9449) and certificate-bound tokens
//! (RFC 8705), checked by [`BearerAuthLayer`](crate::BearerAuthLayer).
//!
//! A token whose `cnf` claim (or introspection answer, RFC 9449 §6.2) names a key
//! thumbprint (`jkt`) is accepted only with `Authorization: DPoP <token>` and exactly one
//! `DPoP` header holding a proof that
//! - is a compact JWS with `typ: dpop+jwt`, an allowed asymmetric `alg` and a public `jwk`
//!   (no private members) in its header, and verifies under that `jwk`;
//! - names the request's method (`htm`) and URI without query (`htu`, normalized; see
//!   [`BearerAuthLayer::dpop_public_url`](crate::BearerAuthLayer::dpop_public_url) behind a
//!   proxy);
//! - was issued (`iat`) within the window, and its `jti` has not been seen within it (a
//!   [`ReplayStore`], in process by default);
//! - carries `ath`, the hash of the access token, and a valid server nonce when nonces are
//!   demanded;
//! - is signed by the key whose RFC 7638 thumbprint is the token's `cnf.jkt`.
//!
//! A bound token sent as `Bearer` is a downgrade and refused. Unbound tokens keep working as
//! bearer tokens unless [`dpop_required`](crate::BearerAuthLayer::dpop_required) is set. A
//! token with `cnf["x5t#S256"]` needs the matching [`ClientCertificate`].
//!
//! Rejections carry a `DPoP algs="…"` challenge next to the `Bearer` one, the codes
//! `invalid_dpop_proof` and `use_dpop_nonce`, and a fresh `DPoP-Nonce` when nonces are on.
//!
//! # Example
//!
//! ```
//! use http::{Request, StatusCode};
//! use portcullis::{BearerAuthLayer, Jwt};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! # use portcullis::__doc_support::{JWKS as jwks, TOKEN as token};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let jwt = Jwt::builder()
//!     .issuer_with_jwks("https://issuer.example.com", jwks)
//!     .audience("https://api.example.com")
//!     .build()?;
//! let service = ServiceBuilder::new()
//!     .layer(BearerAuthLayer::new(jwt).dpop_required(true))
//!     .service(service_fn(|_: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(()))
//!     }));
//!
//! // The documentation token is a plain bearer token: refused where DPoP is required.
//! let request = Request::builder()
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(())?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert!(response.headers()["www-authenticate"].to_str()?.starts_with("DPoP algs=\"RS256 "));
//! # Ok(())
//! # }
//! ```

mod htu;
mod nonce;
mod proof;
mod replay;

pub use replay::{
    DEFAULT_REPLAY_CAPACITY, Freshness, InMemoryReplayStore, ReplayCheck, ReplayKey, ReplayStore,
    ReplayStoreError,
};

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use http::{HeaderName, Request};

use crate::{
    alg::{AlgSet, Algorithm},
    clock::unix_now,
    error::{AuthError, DpopChallenge, ErrorKind},
    mtls::ClientCertificate,
    principal::Principal,
    token::Scheme,
    trace::Recurring,
};
pub(crate) use htu::Origin;
use nonce::Nonces;
use proof::{Expected, Verified, invalid};

/// The `DPoP` request and response header holding the proof or the server nonce.
pub static DPOP: HeaderName = HeaderName::from_static("dpop");
/// The `DPoP-Nonce` response header (RFC 9449 §8).
pub static DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// Default longest age of a proof (`iat`): 2 minutes.
pub const DEFAULT_DPOP_MAX_AGE: Duration = Duration::from_secs(120);
/// Default clock skew tolerated on a proof's `iat`, both ways: 10 seconds.
pub const DEFAULT_DPOP_LEEWAY: Duration = Duration::from_secs(10);
/// The longest `DPoP` header accepted: 8 KiB.
pub const MAX_DPOP_PROOF_LEN: usize = 8 * 1024;
/// How long a server nonce stays current; it is accepted for one period more.
const NONCE_PERIOD_SECS: u64 = 60;
/// `Retry-After` when the replay store cannot answer.
const STORE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The layer's DPoP settings, set through `BearerAuthLayer::dpop_*`.
#[derive(Clone)]
pub(crate) struct DpopConfig {
    pub(crate) required: bool,
    pub(crate) algs: AlgSet,
    algs_text: Arc<str>,
    pub(crate) max_age: Duration,
    pub(crate) leeway: Duration,
    nonces: Option<Nonces>,
    pub(crate) origin: Origin,
    pub(crate) store: Arc<dyn ReplayStore>,
    /// The warning for a failing replay store.
    store_failed: Recurring,
}

impl Default for DpopConfig {
    fn default() -> Self {
        let mut config = Self {
            required: false,
            algs: AlgSet::default(),
            algs_text: Arc::from(""),
            max_age: DEFAULT_DPOP_MAX_AGE,
            leeway: DEFAULT_DPOP_LEEWAY,
            nonces: None,
            origin: Origin::default(),
            store: Arc::new(InMemoryReplayStore::default()),
            store_failed: Recurring::default(),
        };
        config.set_algorithms(Algorithm::ALL);
        config
    }
}

impl fmt::Debug for DpopConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopConfig")
            .field("required", &self.required)
            .field("algs", &self.algs_text)
            .field("max_age", &self.max_age)
            .field("leeway", &self.leeway)
            .field("nonces", &self.nonces.is_some())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// A replay check that needs I/O (a shared store).
pub(crate) type PendingReplay = Pin<Box<dyn Future<Output = Result<(), AuthError>> + Send>>;

/// What the request presented besides its token; the proof already checked against the
/// request, waiting for the token's `cnf`.
#[derive(Debug)]
pub(crate) struct Presented {
    proof: Option<Verified>,
}

impl DpopConfig {
    pub(crate) fn set_algorithms(&mut self, algs: impl IntoIterator<Item = Algorithm>) {
        let algs: Vec<Algorithm> = algs.into_iter().collect();
        self.algs = AlgSet::of(algs.iter().copied());
        let text: Vec<&str> = Algorithm::ALL
            .iter()
            .filter(|a| self.algs.contains(**a))
            .map(|a| a.as_str())
            .collect();
        self.algs_text = text.join(" ").into();
    }

    /// `None`: no nonces; `Some(None)`: nonces demanded but no secret (none is valid).
    pub(crate) fn set_nonces(&mut self, secret: Option<Option<[u8; 32]>>) {
        self.nonces = secret.map(|s| Nonces::new(s, NONCE_PERIOD_SECS));
    }

    /// Checks the DPoP proof of a request that used the `DPoP` scheme, before the token is
    /// authenticated (the proof needs the token only for `ath`). A `Bearer` request has no
    /// proof to check: whether its token may be a bearer token is decided by [`confirm`].
    ///
    /// [`confirm`]: Presented::confirm
    pub(crate) fn prepare<B>(
        &self,
        req: &Request<B>,
        token: &str,
        scheme: Scheme,
    ) -> Result<Presented, AuthError> {
        if scheme == Scheme::Bearer {
            if self.required {
                return Err(AuthError::invalid_token(
                    "this resource requires a DPoP-bound token",
                ));
            }
            return Ok(Presented { proof: None });
        }
        let mut proofs = req.headers().get_all(&DPOP).iter();
        let proof = match (proofs.next(), proofs.next()) {
            (Some(proof), None) => proof,
            (None, _) => return Err(invalid("the request carries no DPoP proof")),
            (Some(_), Some(_)) => {
                return Err(invalid("the request carries more than one DPoP proof"));
            }
        };
        if proof.len() > MAX_DPOP_PROOF_LEN {
            return Err(invalid("the DPoP proof is longer than allowed"));
        }
        let proof = proof
            .to_str()
            .map_err(|_| invalid("the DPoP proof is not visible ASCII"))?;
        let htu = self.origin.target(req.uri(), req.headers())?;
        let verified = proof::verify(
            proof,
            &Expected {
                method: req.method(),
                htu: &htu,
                token,
                algs: self.algs,
                now: unix_now(),
                max_age: self.max_age.as_secs_f64(),
                leeway: self.leeway.as_secs_f64(),
                nonces: self.nonces.as_ref(),
            },
        )?;
        Ok(Presented {
            proof: Some(verified),
        })
    }

    /// Adds the `DPoP` challenge (and a fresh nonce) to a rejection.
    pub(crate) fn decorate(&self, error: AuthError, scheme: Scheme) -> AuthError {
        let on_dpop = self.required
            || scheme == Scheme::Dpop
            || matches!(
                error.kind(),
                ErrorKind::InvalidDpopProof | ErrorKind::UseDpopNonce
            );
        let nonce = self
            .nonces
            .as_ref()
            .map(|n| n.issue(unix_now() as u64).into_boxed_str());
        error.with_dpop_challenge(DpopChallenge {
            algs: Arc::clone(&self.algs_text),
            nonce,
            bearer: !self.required,
            on_dpop,
        })
    }

    /// How long a proof's `jti` must be remembered: as long as its `iat` can pass.
    fn replay_ttl(&self) -> Duration {
        self.max_age + self.leeway * 2
    }
}

impl Presented {
    /// Checks the token's binding (its `cnf`) against what the request presented, then
    /// records the proof. `Ok(Some(_))` when the replay store needs I/O.
    pub(crate) fn confirm<C>(
        self,
        principal: &Principal<C>,
        extensions: &http::Extensions,
        config: &DpopConfig,
    ) -> Result<Option<PendingReplay>, AuthError> {
        let cnf = principal.confirmation();
        if let Some(x5t) = cnf.and_then(|c| c.certificate_thumbprint()) {
            let matches = extensions
                .get::<ClientCertificate>()
                .is_some_and(|cert| cert.matches(x5t));
            if !matches {
                return Err(AuthError::invalid_token(
                    "the token is bound to a client certificate the request does not present",
                ));
            }
        }
        let jkt = cnf.and_then(|c| c.jwk_thumbprint());
        let proof = match (jkt, self.proof) {
            (Some(jkt), Some(proof)) if proof.jkt == jkt => proof,
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "the DPoP proof is signed by another key than the token is bound to",
                ));
            }
            (Some(_), None) => {
                return Err(AuthError::invalid_token(
                    "the token is DPoP-bound and cannot be used as a bearer token",
                ));
            }
            (None, Some(_)) => {
                return Err(AuthError::invalid_token("the token is not DPoP-bound"));
            }
            (None, None) => return Ok(None),
        };
        match config
            .store
            .check_and_insert(proof.replay, config.replay_ttl())
        {
            ReplayCheck::Ready(outcome) => {
                replay_outcome(outcome, &config.store_failed).map(|()| None)
            }
            ReplayCheck::Pending(pending) => {
                let store_failed = config.store_failed.clone();
                Ok(Some(Box::pin(async move {
                    replay_outcome(pending.await, &store_failed)
                })))
            }
        }
    }
}

fn replay_outcome(
    outcome: Result<Freshness, ReplayStoreError>,
    store_failed: &Recurring,
) -> Result<(), AuthError> {
    match outcome {
        Ok(Freshness::First) => Ok(()),
        Ok(Freshness::Replayed) => Err(invalid("the DPoP proof was already used")),
        Err(_error) => {
            store_failed.warn(|_left_out| {
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    target: "portcullis::dpop",
                    error = %_error,
                    left_out = _left_out,
                    "DPoP replay store failed; refusing the request (left_out: refusals \
                     since the last such warning)"
                );
            });
            Err(AuthError::unavailable(
                "the DPoP replay store cannot be used",
                STORE_RETRY_AFTER,
            ))
        }
    }
}
