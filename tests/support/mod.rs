//! Test support shared by the integration tests (`mod support;`).
//!
//! Each test binary uses a different part of it.
#![allow(dead_code)]

pub mod idp;
