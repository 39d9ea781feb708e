//! The fast check against minisign itself: real signatures, every kind of damage, and the
//! points where Ed25519 verifiers are known to disagree (small-order keys, torsion in `R`,
//! encodings that are not canonical, `s` not reduced).

use blake2::Digest as _;
use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha512};

use super::*;

const KEYNUM: [u8; 8] = *b"cohort01";

fn b64(bytes: &[u8]) -> String {
    use ct_codecs::Encoder;
    Base64::encode_to_string(bytes).unwrap()
}

fn public_key(raw: &[u8; 32]) -> minisign::PublicKey {
    minisign::PublicKey::from_bytes(&[&b"Ed"[..], &KEYNUM, raw].concat()).unwrap()
}

fn sig_text(sig: &[u8; 64], comment: &str, global: &[u8]) -> String {
    format!(
        "untrusted comment: test\n{}\ntrusted comment: {comment}\n{}\n",
        b64(&[&b"ED"[..], &KEYNUM, sig].concat()),
        b64(global)
    )
}

/// Both verdicts for one case: minisign's, and the fast check's (which may defer).
fn both(pk: &[u8; 32], text: &str, data: &[u8]) -> (bool, Option<bool>) {
    let Ok(sig) = minisign::SignatureBox::from_string(text) else {
        return (false, Some(false));
    };
    let key = public_key(pk);
    (minisign_says(&key, &sig, data), verify(&key, &sig, data))
}

/// minisign's verdict; it panics on a short global signature, which cohort refuses.
fn minisign_says(key: &minisign::PublicKey, sig: &minisign::SignatureBox, data: &[u8]) -> bool {
    std::panic::catch_unwind(|| {
        minisign::verify(key, sig, std::io::Cursor::new(data), true, false, false).is_ok()
    })
    .unwrap_or(false)
}

fn agree(pk: &[u8; 32], text: &str, data: &[u8]) -> bool {
    let (slow, fast) = both(pk, text, data);
    if let Some(fast) = fast {
        assert_eq!(fast, slow, "key {pk:02x?}\n{text}");
    }
    slow
}

/// An Ed25519 signature computed from the equation, so that keys and nonces can be anything.
fn sign_raw(a: Scalar, pk: &[u8; 32], r: Scalar, torsion: EdwardsPoint, msg: &[u8]) -> [u8; 64] {
    let big_r = (ED25519_BASEPOINT_POINT * r + torsion).compress();
    let k = Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(big_r.as_bytes())
            .chain_update(pk)
            .chain_update(msg)
            .finalize()
            .into(),
    );
    let s = r + k * a;
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(big_r.as_bytes());
    out[32..].copy_from_slice(s.as_bytes());
    out
}

/// A whole minisign signature over `data` under the scalar `a` (its key `pk`), with
/// `torsion` added to both nonces.
fn minisign_text(
    a: Scalar,
    pk: &[u8; 32],
    torsion: EdwardsPoint,
    data: &[u8],
    rng: &mut StdRng,
) -> String {
    let comment = format!("timestamp:{}", rng.r#gen::<u32>());
    let digest = Blake2b512::digest(data);
    let sig = sign_raw(
        a,
        pk,
        Scalar::from_bytes_mod_order(rng.r#gen()),
        torsion,
        &digest,
    );
    let signed = [&sig[..], comment.as_bytes()].concat();
    let global = sign_raw(
        a,
        pk,
        Scalar::from_bytes_mod_order(rng.r#gen()),
        torsion,
        &signed,
    );
    sig_text(&sig, &comment, &global)
}

#[test]
fn real_minisign_signatures_agree_and_damage_is_refused_alike() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut compared = 0;
    for round in 0..40 {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let key = minisign::PublicKey::from_bytes(&kp.pk.to_bytes()).unwrap();
        let data: Vec<u8> = (0..rng.gen_range(0..3000)).map(|_| rng.r#gen()).collect();
        let sig = minisign::sign(
            Some(&kp.pk),
            &kp.sk,
            std::io::Cursor::new(&data),
            Some("tc"),
            None,
        )
        .unwrap();
        let text = sig.to_string();
        let fast = verify(&key, &sig, &data);
        assert_eq!(fast, Some(true), "round {round}");
        assert!(minisign_says(&key, &sig, &data));
        // One flipped bit in the signature, the global signature, the comment or the data.
        for _ in 0..20 {
            let mut t = text.clone().into_bytes();
            let i = rng.gen_range(24..t.len());
            t[i] ^= 1 << rng.gen_range(0..7);
            let Ok(t) = String::from_utf8(t) else {
                continue;
            };
            let Ok(damaged) = minisign::SignatureBox::from_string(&t) else {
                continue;
            };
            let slow = minisign_says(&key, &damaged, &data);
            if let Some(fast) = verify(&key, &damaged, &data) {
                assert_eq!(fast, slow, "{t}");
                compared += 1;
            }
        }
        let mut other = data.clone();
        other.push(0);
        assert_eq!(verify(&key, &sig, &other), Some(false));
    }
    assert!(
        compared > 200,
        "only {compared} damaged signatures were compared"
    );
}

#[test]
fn equation_edge_cases_agree_with_minisign() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut valid = 0;
    let mut mixed_valid = 0;
    for round in 0..200 {
        let a = Scalar::from_bytes_mod_order(rng.r#gen());
        let pk = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
        let data = format!("record {round}").into_bytes();
        // A key with a torsion part (aB + T, canonical, not of small order): the holder of `a`
        // signs; cofactorless checks pass only when k.T vanishes, for both libraries alike.
        let mixed = (ED25519_BASEPOINT_POINT * a + EIGHT_TORSION[1 + round % 7])
            .compress()
            .to_bytes();
        let text = minisign_text(a, &mixed, EdwardsPoint::default(), &data, &mut rng);
        let (slow, fast) = both(&mixed, &text, &data);
        assert_eq!(
            fast,
            Some(slow),
            "a canonical mixed-order key is checked here, not deferred"
        );
        mixed_valid += slow as usize;
        // Plain signatures verify; a torsion part in R (which only cofactored verifiers accept)
        // is refused by both.
        valid += agree(
            &pk,
            &minisign_text(a, &pk, EdwardsPoint::default(), &data, &mut rng),
            &data,
        ) as usize;
        let t = EIGHT_TORSION[1 + round % 7];
        assert!(!agree(
            &pk,
            &minisign_text(a, &pk, t, &data, &mut rng),
            &data
        ));
        // s + L (not reduced) is refused by both.
        let text = minisign_text(a, &pk, EdwardsPoint::default(), &data, &mut rng);
        let sig = minisign::SignatureBox::from_string(&text).unwrap();
        let mut bones = decode(sig.to_string().lines().nth(1).unwrap()).unwrap();
        let s = &mut bones[42..74];
        let mut carry = 0u16;
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        for (b, l) in s.iter_mut().zip(L) {
            let v = *b as u16 + l as u16 + carry;
            *b = v as u8;
            carry = v >> 8;
        }
        let lines: Vec<&str> = text.lines().collect();
        let unreduced = format!(
            "{}\n{}\n{}\n{}\n",
            lines[0],
            b64(&bones),
            lines[2],
            lines[3]
        );
        assert!(!agree(&pk, &unreduced, &data));
    }
    assert_eq!(valid, 200);
    // Both signatures of a file pass only when both k.T vanish (about 1 in 16 to 64 here):
    // some do and most do not, and the two libraries agreed on each.
    assert!(mixed_valid > 0 && mixed_valid < 100, "{mixed_valid} of 200");
}

#[test]
fn unusual_keys_agree_with_minisign() {
    let mut rng = StdRng::seed_from_u64(13);
    let mut keys: Vec<[u8; 32]> = Vec::new();
    // The eight small-order points, canonical and with the sign bit flipped.
    for t in EIGHT_TORSION {
        let c = t.compress().to_bytes();
        keys.push(c);
        let mut flipped = c;
        flipped[31] ^= 0x80;
        keys.push(flipped);
    }
    // The identity and zero in the forms minisign tests for, y not reduced (p + k), random bytes.
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    for k in 0..20u8 {
        let mut y = p;
        y[0] = y[0].wrapping_add(k);
        keys.push(y);
        let mut signed = y;
        signed[31] |= 0x80;
        keys.push(signed);
    }
    let mut id = [0u8; 32];
    id[0] = 1;
    keys.push(id);
    id[31] = 0x80;
    keys.push(id);
    keys.push([0u8; 32]);
    for _ in 0..60 {
        keys.push(rng.r#gen());
    }
    let mut deferred = 0;
    let mut forged = 0;
    for pk in &keys {
        // Signatures made with s = 0 and R among the small-order points: under a small-order
        // key some of them satisfy the equation (and minisign accepts them).
        for attempt in 0..64u32 {
            let data = format!("forged {attempt}").into_bytes();
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&EIGHT_TORSION[attempt as usize % 8].compress().to_bytes());
            let comment = format!("c{attempt}");
            let mut global = [0u8; 64];
            global[..32].copy_from_slice(
                &EIGHT_TORSION[(attempt as usize / 8) % 8]
                    .compress()
                    .to_bytes(),
            );
            let text = sig_text(&sig, &comment, &global);
            let (slow, fast) = both(pk, &text, &data);
            match fast {
                Some(f) => assert_eq!(f, slow, "key {pk:02x?}"),
                None => deferred += 1,
            }
            forged += slow as usize;
        }
    }
    assert!(forged > 0, "no small-order case was exercised");
    assert!(
        deferred > 0,
        "no non-canonical key was deferred to minisign"
    );
}

#[test]
fn a_global_signature_of_another_length_is_left_to_minisign() {
    let mut rng = StdRng::seed_from_u64(17);
    let a = Scalar::from_bytes_mod_order(rng.r#gen());
    let pk = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
    let data = b"x".to_vec();
    let text = minisign_text(a, &pk, EdwardsPoint::default(), &data, &mut rng);
    let lines: Vec<&str> = text.lines().collect();
    let mut global = decode(lines[3]).unwrap();
    global.extend_from_slice(b"trailing");
    let longer = format!(
        "{}\n{}\n{}\n{}\n",
        lines[0],
        lines[1],
        lines[2],
        b64(&global)
    );
    let sig = minisign::SignatureBox::from_string(&longer).unwrap();
    assert_eq!(verify(&public_key(&pk), &sig, &data), None);
}
