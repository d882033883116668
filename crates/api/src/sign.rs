//! The request signature, the same for the server that checks it and the
//! clients that make it.
//!
//! ```text
//! X-Signature = hex( HMAC-SHA256( secret,
//!     METHOD "\n" PATH "\n" TIMESTAMP "\n" CHALLENGE "\n" hex(SHA-256(body)) ) )
//! ```
//!
//! `METHOD` is upper case; `PATH` is the request target as sent, query
//! string included (`/v1/upgrades?wait=true`); `TIMESTAMP` is Unix seconds
//! as sent in `X-Timestamp`; `CHALLENGE` is the value from `GET /challenge`
//! as sent in `X-Challenge`; an empty body hashes to
//! `e3b0c442…b855`. Hex is lower case.

use hmac::{KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

pub const TIMESTAMP: &str = "x-timestamp";
pub const CHALLENGE: &str = "x-challenge";
pub const SIGNATURE: &str = "x-signature";

type HmacSha256 = hmac::Hmac<Sha256>;

/// The text that is signed.
pub fn canonical(method: &str, path: &str, timestamp: &str, challenge: &str, body: &[u8]) -> String {
    format!(
        "{}\n{path}\n{timestamp}\n{challenge}\n{}",
        method.to_ascii_uppercase(),
        hex::encode(Sha256::digest(body))
    )
}

fn mac(secret: &[u8], text: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(text.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The `X-Signature` value for a request.
pub fn sign(
    secret: &[u8],
    method: &str,
    path: &str,
    timestamp: &str,
    challenge: &str,
    body: &[u8],
) -> String {
    hex::encode(mac(secret, &canonical(method, path, timestamp, challenge, body)))
}

/// Whether `signature` (hex) is right for the request, compared in
/// constant time: how much of it matched does not show in the timing.
pub fn verify(
    secret: &[u8],
    method: &str,
    path: &str,
    timestamp: &str,
    challenge: &str,
    body: &[u8],
    signature: &str,
) -> bool {
    let expected = mac(secret, &canonical(method, path, timestamp, challenge, body));
    let Ok(given) = hex::decode(signature.trim()) else {
        return false;
    };
    // Lengths are public (always 32 for a real signature); the bytes are not.
    given.len() == expected.len() && bool::from(given.ct_eq(&expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text_is_the_documented_one() {
        assert_eq!(
            canonical("post", "/v1/upgrades?wait=true", "1700000000", "abc", b""),
            "POST\n/v1/upgrades?wait=true\n1700000000\nabc\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hmac_matches_the_rfc_4231_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            hex::encode(mac(b"Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_accepts_the_signature_and_nothing_else() {
        let s = sign(b"secret-secret-16", "POST", "/v1/x", "1", "c", b"{}");
        assert!(verify(b"secret-secret-16", "POST", "/v1/x", "1", "c", b"{}", &s));
        assert!(verify(
            b"secret-secret-16",
            "POST",
            "/v1/x",
            "1",
            "c",
            b"{}",
            &s.to_uppercase()
        ));
        for (m, p, t, c, b) in [
            ("PUT", "/v1/x", "1", "c", &b"{}"[..]),
            ("POST", "/v1/y", "1", "c", b"{}"),
            ("POST", "/v1/x", "2", "c", b"{}"),
            ("POST", "/v1/x", "1", "d", b"{}"),
            ("POST", "/v1/x", "1", "c", b"{ }"),
        ] {
            assert!(!verify(b"secret-secret-16", m, p, t, c, b, &s), "{m} {p} {t} {c}");
        }
        assert!(!verify(
            b"another-secret-16",
            "POST",
            "/v1/x",
            "1",
            "c",
            b"{}",
            &s
        ));
        assert!(!verify(
            b"secret-secret-16",
            "POST",
            "/v1/x",
            "1",
            "c",
            b"{}",
            "zz"
        ));
        assert!(!verify(
            b"secret-secret-16",
            "POST",
            "/v1/x",
            "1",
            "c",
            b"{}",
            &s[..62]
        ));
    }
}
