//! minisign's signature check computed with curve25519-dalek's vectorised arithmetic: verifying
//! a registry is mostly Ed25519, and minisign's portable field code takes about twice as long.
//! The verdict must be minisign's for every input, so this is the same equation (cofactorless,
//! `s` below the group order, the key and `R` compared as minisign compares them), and wherever
//! the two libraries could read a key's bytes differently (a point encoding that is not
//! canonical, a global signature of another length) it answers "unsure" and minisign decides.

use std::cell::RefCell;
use std::collections::HashMap;

use blake2::{Blake2b512, Digest as _};
use ct_codecs::{Base64, Decoder};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest as _, Sha512};

/// Whether `sig` (parsed by minisign, prehashed) verifies over `data` with `key`,
/// checking both the signature and the global signature over it and its trusted comment.
/// `None` when the answer must come from minisign itself.
pub(super) fn verify(
    key: &minisign::PublicKey,
    sig: &minisign::SignatureBox,
    data: &[u8],
) -> Option<bool> {
    if !sig.is_prehashed() {
        return None;
    }
    if sig.keynum() != key.keynum() {
        return Some(false);
    }
    let pk = &super::keys::raw_key(key);
    // What minisign parsed, as it writes it back: line 2 is exactly algorithm, key id and
    // signature; line 4 the global signature as it was decoded.
    let text = sig.to_string();
    let mut lines = text.lines().skip(1);
    let bones = decode(lines.next()?)?;
    let global = decode(lines.nth(1)?)?;
    let signature: &[u8; 64] = bones.get(10..74)?.try_into().ok()?;
    let global: &[u8; 64] = global.as_slice().try_into().ok()?;
    let comment = sig.trusted_comment().ok()?;

    let digest = Blake2b512::digest(data);
    let first = ed25519(&digest, pk, signature)?;
    let mut signed_comment = signature.to_vec();
    signed_comment.extend_from_slice(comment.as_bytes());
    let second = ed25519(&signed_comment, pk, global)?;
    Some(first && second)
}

fn decode(line: &str) -> Option<Vec<u8>> {
    Base64::decode_to_vec(line.trim().as_bytes(), None).ok()
}

/// Keys decoded per thread: a registry's signatures come from a few thousand keys, and
/// decoding one (a square root, then the re-encoding below) costs a quarter of a check.
const KEYS_KEPT: usize = 4096;

thread_local! {
    static KEYS: RefCell<HashMap<[u8; 32], Option<EdwardsPoint>>> = RefCell::new(HashMap::new());
}

/// `-A` for the key `pk`, if it is the one canonical encoding of a point: for it both
/// libraries decode the same point. Anything else (y not reduced, the sign bit set on x = 0,
/// no point at all) goes to minisign.
fn negated_key(pk: &[u8; 32]) -> Option<EdwardsPoint> {
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        if let Some(known) = keys.get(pk) {
            return *known;
        }
        let decoded = CompressedEdwardsY(*pk)
            .decompress()
            .filter(|a| a.compress().as_bytes() == pk)
            .map(|a| -a);
        if keys.len() >= KEYS_KEPT {
            keys.clear();
        }
        keys.insert(*pk, decoded);
        decoded
    })
}

/// minisign's `ed25519::verify`, step by step.
fn ed25519(message: &[u8], pk: &[u8; 32], signature: &[u8; 64]) -> Option<bool> {
    let s_bytes: [u8; 32] = signature[32..].try_into().ok()?;
    // `s` must be below the group order (minisign: check_s_lt_l).
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
        return Some(false);
    };
    // minisign refuses the identity (its high bit ignored) and the all-zero key outright.
    let identity = pk[0] == 1 && pk[1..31].iter().all(|&b| b == 0) && pk[31] & 0x7f == 0;
    if identity || pk.iter().all(|&b| b == 0) {
        return Some(false);
    }
    let minus_a = negated_key(pk)?;
    let mut h = Sha512::new();
    h.update(&signature[..32]);
    h.update(pk);
    h.update(message);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    // R' = [k](-A) + [s]B, encoded, against the R the signature carries, byte for byte.
    let r = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &minus_a, &s);
    Some(r.compress().as_bytes() == &signature[..32])
}

#[cfg(test)]
#[path = "fastsig_tests.rs"]
mod tests;
