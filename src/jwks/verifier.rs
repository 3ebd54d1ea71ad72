//! Public keys turned into ready verifiers once, when a JWK Set loads.
//!
//! The request path then only runs the signature arithmetic: no key decoding, no component
//! checks, and (with aws-lc-rs) no Montgomery set-up for RSA, which the parsed key keeps.
//!
//! With the `aws-lc-rs` feature each key becomes an aws-lc-rs `ParsedPublicKey` (one per
//! algorithm the key may verify, since aws-lc-rs binds the algorithm to the parsed key).
//! With `rust-crypto` alone it becomes the RustCrypto verifying key of its type. When both
//! features are on, aws-lc-rs verifies, as it does for the rest of the crate.

use sha2::{Digest, Sha256};

use crate::alg::{AlgSet, Algorithm};

/// A public key's decoded members, as the JWK carried them.
pub(crate) enum Material {
    /// RSA modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An uncompressed SEC1 point (`0x04 || x || y`) on the curve of `alg`.
    Ec { alg: Algorithm, point: Vec<u8> },
    /// An Ed25519 public key.
    Ed25519 { x: Vec<u8> },
}

impl Material {
    fn tag(&self) -> u8 {
        match self {
            Self::Rsa { .. } => 1,
            Self::Ec { .. } => 2,
            Self::Ed25519 { .. } => 3,
        }
    }
}

/// A key ready to verify signatures, with an identity that changes with anything that
/// decides what the key accepts.
pub(crate) struct Verifier {
    id: u64,
    #[cfg(feature = "aws-lc-rs")]
    ready: aws::Ready,
    #[cfg(not(feature = "aws-lc-rs"))]
    ready: rust_crypto::Ready,
}

impl Verifier {
    /// Parses `material` into a verifier for the algorithms in `algs`.
    pub(crate) fn new(
        material: &Material,
        kid: Option<&str>,
        algs: AlgSet,
    ) -> Result<Self, &'static str> {
        Ok(Self {
            id: fingerprint(material, kid, algs),
            #[cfg(feature = "aws-lc-rs")]
            ready: aws::Ready::new(material, algs)?,
            #[cfg(not(feature = "aws-lc-rs"))]
            ready: rust_crypto::Ready::new(material)?,
        })
    }

    /// Whether `signature` is a valid `alg` signature of `message` under this key.
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.ready.verify(alg, message, signature)
    }

    /// A digest of the key material, its `kid` and its algorithms. Two keys with the same
    /// identity accept exactly the same tokens, so a token verified by one stays verified
    /// while a key with the same identity is in the issuer's set.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

fn fingerprint(material: &Material, kid: Option<&str>, algs: AlgSet) -> u64 {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(&[material.tag()]);
    field(&algs.bits().to_be_bytes());
    match kid {
        Some(kid) => field(kid.as_bytes()),
        None => field(b"\xff"),
    }
    match material {
        Material::Rsa { n, e } => {
            field(n);
            field(e);
        }
        Material::Ec { alg, point } => {
            field(alg.as_str().as_bytes());
            field(point);
        }
        Material::Ed25519 { x } => field(x),
    }
    let digest = h.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(id)
}

#[cfg(feature = "aws-lc-rs")]
mod aws {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
        RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512,
        RSA_PSS_2048_8192_SHA256, RSA_PSS_2048_8192_SHA384, RSA_PSS_2048_8192_SHA512,
        RsaParameters, RsaPublicKeyComponents,
    };

    use super::Material;
    use crate::alg::{AlgSet, Algorithm};

    /// One parsed key per algorithm the key may verify (at most the six RSA ones).
    pub(super) struct Ready(Box<[(Algorithm, ParsedPublicKey)]>);

    fn rsa_params(alg: Algorithm) -> Option<&'static RsaParameters> {
        Some(match alg {
            Algorithm::RS256 => &RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }

    impl Ready {
        pub(super) fn new(material: &Material, algs: AlgSet) -> Result<Self, &'static str> {
            let keys = match material {
                Material::Rsa { n, e } => {
                    let components = RsaPublicKeyComponents {
                        n: n.as_slice(),
                        e: e.as_slice(),
                    };
                    Algorithm::ALL
                        .into_iter()
                        .filter(|alg| algs.contains(*alg))
                        .filter_map(|alg| rsa_params(alg).map(|p| (alg, p)))
                        .map(|(alg, params)| {
                            components
                                .to_parsed_public_key(params)
                                .map(|key| (alg, key))
                                .map_err(|_| "bad RSA key")
                        })
                        .collect::<Result<Vec<_>, _>>()?
                }
                Material::Ec { alg, point } => {
                    let params = match alg {
                        Algorithm::ES256 => &ECDSA_P256_SHA256_FIXED,
                        Algorithm::ES384 => &ECDSA_P384_SHA384_FIXED,
                        _ => return Err("unsupported curve"),
                    };
                    let key = ParsedPublicKey::new(params, point).map_err(|_| "bad EC key")?;
                    vec![(*alg, key)]
                }
                Material::Ed25519 { x } => {
                    let key = ParsedPublicKey::new(&ED25519, x).map_err(|_| "bad Ed25519 key")?;
                    vec![(Algorithm::EdDSA, key)]
                }
            };
            if keys.is_empty() {
                return Err("no allowed algorithm fits the key");
            }
            Ok(Self(keys.into_boxed_slice()))
        }

        pub(super) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
            self.0
                .iter()
                .find(|(a, _)| *a == alg)
                .is_some_and(|(_, key)| key.verify_sig(message, signature).is_ok())
        }
    }
}

#[cfg(feature = "rust-crypto")]
#[cfg_attr(all(feature = "aws-lc-rs", not(test)), allow(dead_code))]
mod rust_crypto {
    use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPublicKey, traits::SignatureScheme};
    use sha2::{Digest, Sha256, Sha384, Sha512, digest::const_oid::AssociatedOid};
    use signature::Verifier as _;

    use super::Material;
    use crate::alg::Algorithm;

    /// The RustCrypto verifying key of the key's type.
    pub(super) enum Ready {
        Rsa(RsaPublicKey),
        P256(p256::ecdsa::VerifyingKey),
        P384(p384::ecdsa::VerifyingKey),
        Ed25519(ed25519_dalek::VerifyingKey),
    }

    fn rsa<S: SignatureScheme, H: Digest + AssociatedOid>(
        key: &RsaPublicKey,
        scheme: S,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        key.verify(scheme, &H::digest(message), signature).is_ok()
    }

    impl Ready {
        pub(super) fn new(material: &Material) -> Result<Self, &'static str> {
            Ok(match material {
                Material::Rsa { n, e } => Self::Rsa(
                    RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e))
                        .map_err(|_| "bad RSA key")?,
                ),
                Material::Ec {
                    alg: Algorithm::ES256,
                    point,
                } => Self::P256(
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| "bad EC key")?,
                ),
                Material::Ec {
                    alg: Algorithm::ES384,
                    point,
                } => Self::P384(
                    p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| "bad EC key")?,
                ),
                Material::Ec { .. } => return Err("unsupported curve"),
                Material::Ed25519 { x } => {
                    let bytes: &[u8; 32] = x
                        .as_slice()
                        .try_into()
                        .map_err(|_| "Ed25519 key of the wrong length")?;
                    Self::Ed25519(
                        ed25519_dalek::VerifyingKey::from_bytes(bytes)
                            .map_err(|_| "bad Ed25519 key")?,
                    )
                }
            })
        }

        pub(super) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
            use Algorithm::*;
            match (self, alg) {
                (Self::Rsa(k), RS256) => {
                    rsa::<_, Sha256>(k, Pkcs1v15Sign::new::<Sha256>(), message, signature)
                }
                (Self::Rsa(k), RS384) => {
                    rsa::<_, Sha384>(k, Pkcs1v15Sign::new::<Sha384>(), message, signature)
                }
                (Self::Rsa(k), RS512) => {
                    rsa::<_, Sha512>(k, Pkcs1v15Sign::new::<Sha512>(), message, signature)
                }
                (Self::Rsa(k), PS256) => {
                    rsa::<_, Sha256>(k, Pss::new::<Sha256>(), message, signature)
                }
                (Self::Rsa(k), PS384) => {
                    rsa::<_, Sha384>(k, Pss::new::<Sha384>(), message, signature)
                }
                (Self::Rsa(k), PS512) => {
                    rsa::<_, Sha512>(k, Pss::new::<Sha512>(), message, signature)
                }
                (Self::P256(k), ES256) => p256::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|s| k.verify(message, &s).is_ok()),
                (Self::P384(k), ES384) => p384::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|s| k.verify(message, &s).is_ok()),
                (Self::Ed25519(k), EdDSA) => ed25519_dalek::Signature::from_slice(signature)
                    .is_ok_and(|s| k.verify(message, &s).is_ok()),
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use jsonwebtoken::{EncodingKey, jwk::AlgorithmParameters, jwk::Jwk};

    use super::*;

    const MESSAGE: &[u8] = b"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0ZXN0In0";

    /// A key from `tests/keys`, its public material as a JWK carries it, and a signature of
    /// [`MESSAGE`] made with jsonwebtoken.
    fn signed(alg: Algorithm) -> (Material, Vec<u8>) {
        crate::crypto::install_provider();
        let (pem, encoding): (&[u8], fn(&[u8]) -> _) = match alg {
            Algorithm::ES256 => (
                include_bytes!("../../tests/keys/ec-p256.pem"),
                EncodingKey::from_ec_pem,
            ),
            Algorithm::ES384 => (
                include_bytes!("../../tests/keys/ec-p384.pem"),
                EncodingKey::from_ec_pem,
            ),
            Algorithm::EdDSA => (
                include_bytes!("../../tests/keys/ed25519.pem"),
                EncodingKey::from_ed_pem,
            ),
            _ => (
                include_bytes!("../../tests/keys/rsa-a.pem"),
                EncodingKey::from_rsa_pem,
            ),
        };
        let jalg = match alg {
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::RS384 => jsonwebtoken::Algorithm::RS384,
            Algorithm::RS512 => jsonwebtoken::Algorithm::RS512,
            Algorithm::PS256 => jsonwebtoken::Algorithm::PS256,
            Algorithm::PS384 => jsonwebtoken::Algorithm::PS384,
            Algorithm::PS512 => jsonwebtoken::Algorithm::PS512,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::ES384 => jsonwebtoken::Algorithm::ES384,
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        };
        let key = encoding(pem).expect("test key");
        let signature = jsonwebtoken::crypto::sign(MESSAGE, &key, jalg).expect("sign");
        let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
        let jwk = Jwk::from_encoding_key(&key, jalg).expect("public JWK");
        let b = |s: &str| URL_SAFE_NO_PAD.decode(s).expect("base64url");
        let material = match jwk.algorithm {
            AlgorithmParameters::RSA(p) => Material::Rsa {
                n: b(&p.n),
                e: b(&p.e),
            },
            AlgorithmParameters::EllipticCurve(p) => {
                let mut point = vec![0x04];
                point.extend(b(&p.x));
                point.extend(b(&p.y));
                Material::Ec { alg, point }
            }
            AlgorithmParameters::OctetKeyPair(p) => Material::Ed25519 { x: b(&p.x) },
            _ => {
                unreachable!("asymmetric test keys")
            }
        };
        (material, signature)
    }

    /// Runs `check` against every backend compiled into this build, each verifying with keys
    /// parsed once up front and then reused for every check.
    fn each_backend(check: impl Fn(&str, &dyn Fn(Algorithm, &[u8], &[u8]) -> bool, Algorithm)) {
        for alg in Algorithm::ALL {
            let (material, _) = signed(alg);
            #[cfg(feature = "aws-lc-rs")]
            {
                let ready = aws::Ready::new(&material, AlgSet::one(alg)).expect("aws-lc-rs key");
                check("aws-lc-rs", &|a, m, s| ready.verify(a, m, s), alg);
            }
            #[cfg(feature = "rust-crypto")]
            {
                let ready = rust_crypto::Ready::new(&material).expect("RustCrypto key");
                check("rust-crypto", &|a, m, s| ready.verify(a, m, s), alg);
            }
        }
    }

    #[test]
    fn every_backend_verifies_with_keys_parsed_once() {
        each_backend(|backend, verify, alg| {
            let (_, signature) = signed(alg);
            for _ in 0..3 {
                assert!(verify(alg, MESSAGE, &signature), "{backend} {alg}");
            }
            let mut tampered = signature.clone();
            tampered[10] ^= 1;
            assert!(
                !verify(alg, MESSAGE, &tampered),
                "{backend} {alg}: signature byte"
            );
            assert!(
                !verify(alg, b"other message", &signature),
                "{backend} {alg}: message"
            );
            assert!(
                !verify(alg, MESSAGE, &[]),
                "{backend} {alg}: empty signature"
            );
            assert!(
                !verify(alg, MESSAGE, &signature[1..]),
                "{backend} {alg}: short"
            );
        });
    }

    #[test]
    fn a_key_verifies_only_its_own_algorithms() {
        each_backend(|backend, verify, alg| {
            let (_, signature) = signed(alg);
            for other in Algorithm::ALL.into_iter().filter(|a| *a != alg) {
                assert!(
                    !verify(other, MESSAGE, &signature),
                    "{backend}: a {alg} signature checked as {other}"
                );
            }
        });
    }

    #[test]
    fn the_default_verifier_and_its_identity() {
        let (material, signature) = signed(Algorithm::RS256);
        let rsa = AlgSet::of([Algorithm::RS256, Algorithm::PS256]);
        let verifier = Verifier::new(&material, Some("a"), rsa).expect("verifier");
        assert!(verifier.verify(Algorithm::RS256, MESSAGE, &signature));
        let same = Verifier::new(&material, Some("a"), rsa).expect("verifier");
        assert_eq!(verifier.id(), same.id(), "same key, same identity");
        for (kid, algs) in [
            (Some("b"), rsa),
            (None, rsa),
            (Some("a"), AlgSet::one(Algorithm::RS256)),
        ] {
            let other = Verifier::new(&material, kid, algs).expect("verifier");
            assert_ne!(verifier.id(), other.id(), "{kid:?} {algs:?}");
        }
        let (ec, _) = signed(Algorithm::ES256);
        let ec = Verifier::new(&ec, Some("a"), AlgSet::one(Algorithm::ES256)).expect("ec");
        assert_ne!(verifier.id(), ec.id());
    }

    #[test]
    fn malformed_material_is_refused_when_the_set_loads() {
        let bad = [
            Material::Ec {
                alg: Algorithm::ES256,
                point: vec![0x04; 65],
            },
            Material::Ec {
                alg: Algorithm::ES256,
                point: vec![0x04, 1, 2],
            },
            Material::Ed25519 { x: vec![1; 31] },
        ];
        for material in &bad {
            assert!(
                Verifier::new(material, None, AlgSet::of(Algorithm::ALL)).is_err(),
                "tag {}",
                material.tag()
            );
        }
    }
}
