//! Selection of jsonwebtoken's crypto backend.

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "portcullis needs a crypto backend: enable the `aws-lc-rs` or the `rust-crypto` feature"
);

/// Installs the backend chosen by the crate features as jsonwebtoken's process default.
///
/// jsonwebtoken cannot choose on its own when both of its backends are compiled in (two
/// crates in one build may each enable one) and would panic at the first signature check;
/// installing one explicitly avoids that. A provider installed earlier by the application
/// is kept.
pub(crate) fn install_provider() {
    #[cfg(feature = "aws-lc-rs")]
    let provider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
    // An error only means a provider is already installed, which is what we want.
    let _ = provider.install_default();
}
