//! Test support shared by the integration tests (`mod support;`).
//!
//! - [`example`]: the built examples run as processes.
//! - [`idp`]: the real OpenID provider fixture (`tests/idp`), started per test.
//! - [`issuer`]: test keys, token minting and an in-process issuer (discovery + JWKS).
//! - [`introspection`]: an in-process RFC 7662 endpoint and the resource server under test.
//! - [`metrics`]: what the debugging metrics recorder holds.
//! - [`pki`]: a CA made for one test, and the TLS certificates it signs.
//! - [`redis`]: a real `redis-server` on a loopback port, stoppable and restartable.
//!
//! Each test binary uses a different part of it.
#![allow(dead_code)]

pub mod dpop;
pub mod example;
pub mod idp;
pub mod introspection;
pub mod issuer;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod pki;
pub mod redis;
