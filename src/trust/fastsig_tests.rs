//! The fast check against minisign itself: real signatures, every kind of damage, and the
//! points where Ed25519 verifiers are known to disagree (small-order keys, torsion in `R`,
//! encodings that are not canonical, `s` not reduced, keys with a torsion part), and the records'
//! key check against every key minisign accepts forgeries under.

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

/// A scalar and its key `aB`, from `rng`.
fn keypair(rng: &mut StdRng) -> (Scalar, [u8; 32]) {
    let a = Scalar::from_bytes_mod_order(rng.r#gen());
    (a, (ED25519_BASEPOINT_POINT * a).compress().to_bytes())
}

/// Ed25519's challenge `k = H(R || A || M)`, reduced.
fn challenge(r: &[u8; 32], pk: &[u8; 32], msg: &[u8]) -> Scalar {
    Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(r)
            .chain_update(pk)
            .chain_update(msg)
            .finalize()
            .into(),
    )
}

/// `text` with its line `index` (0 to 3) replaced by `line`.
fn with_line(text: &str, index: usize, line: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines[index] = line;
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// The group order, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// Adds `times` L to the 32-byte little-endian `s` (modulo 2^256).
fn add_l(s: &mut [u8], times: u32) {
    for _ in 0..times {
        let mut carry = 0u16;
        for (b, l) in s.iter_mut().zip(L) {
            let v = *b as u16 + l as u16 + carry;
            *b = v as u8;
            carry = v >> 8;
        }
    }
}

/// An Ed25519 signature computed from the equation, so that keys and nonces can be anything.
fn sign_raw(a: Scalar, pk: &[u8; 32], r: Scalar, torsion: EdwardsPoint, msg: &[u8]) -> [u8; 64] {
    let big_r = (ED25519_BASEPOINT_POINT * r + torsion).compress();
    let k = challenge(big_r.as_bytes(), pk, msg);
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
    for round in 0..200 {
        let (a, pk) = keypair(&mut rng);
        let data = format!("record {round}").into_bytes();
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
        let mut bones = decode(text.lines().nth(1).unwrap()).unwrap();
        add_l(&mut bones[42..74], 1);
        assert!(!agree(&pk, &with_line(&text, 1, &b64(&bones)), &data));
    }
    assert_eq!(valid, 200);
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
    // Signatures made with s = 0 and R among the small-order points: under a small-order key
    // some of them satisfy the equation (and minisign accepts them).
    let forged: usize = keys.iter().map(forgeries_under).sum();
    // Whether the fast check answers depends on the key alone: the non-canonical ones defer.
    let zero = sig_text(&[0; 64], "c", &[0; 64]);
    let deferred = keys
        .iter()
        .filter(|pk| both(pk, &zero, b"x").1.is_none())
        .count();
    assert!(forged > 0, "no small-order case was exercised");
    assert!(
        deferred > 0,
        "no non-canonical key was deferred to minisign"
    );
}

#[test]
fn a_global_signature_of_another_length_is_left_to_minisign() {
    let mut rng = StdRng::seed_from_u64(17);
    let (a, pk) = keypair(&mut rng);
    let data = b"x".to_vec();
    let text = minisign_text(a, &pk, EdwardsPoint::default(), &data, &mut rng);
    let mut global = decode(text.lines().nth(3).unwrap()).unwrap();
    global.extend_from_slice(b"trailing");
    let longer = with_line(&text, 3, &b64(&global));
    let sig = minisign::SignatureBox::from_string(&longer).unwrap();
    assert_eq!(verify(&public_key(&pk), &sig, &data), None);
}

/// s = 0 and `R` one of the small-order points, over 64 messages: how many verify under `pk`
/// according to minisign (the fast check, where it answers, must agree).
fn forgeries_under(pk: &[u8; 32]) -> usize {
    (0..64usize)
        .filter(|&attempt| {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&EIGHT_TORSION[attempt % 8].compress().to_bytes());
            let mut global = [0u8; 64];
            global[..32].copy_from_slice(&EIGHT_TORSION[attempt / 8].compress().to_bytes());
            let text = sig_text(&sig, &format!("c{attempt}"), &global);
            agree(pk, &text, format!("forged {attempt}").as_bytes())
        })
        .count()
}

/// The records' key check against every byte string minisign reads as a point of small order:
/// the canonical encodings, the sign bit set on x = 0, and y not reduced (p, p + 1). minisign
/// accepts forgeries under most of them, so the check must not ask for canonical bytes (as
/// the fast check does before decoding) or it would let the non-canonical ones through.
#[test]
fn every_encoding_of_a_small_order_point_is_refused_as_a_key() {
    let mut encodings: Vec<[u8; 32]> = Vec::new();
    for t in EIGHT_TORSION {
        let c = t.compress().to_bytes();
        encodings.push(c);
        let mut flipped = c;
        flipped[31] ^= 0x80;
        encodings.push(flipped);
    }
    // y = p and y = p + 1: the points y = 0 (order 4) and y = 1 (the identity), not reduced.
    for low in [0xed, 0xee] {
        for high in [0x7f, 0xff] {
            let mut y = [0xffu8; 32];
            y[0] = low;
            y[31] = high;
            encodings.push(y);
        }
    }
    let mut forgeable = 0;
    for pk in &encodings {
        forgeable += (forgeries_under(pk) > 0) as usize;
        let b64 = public_key(pk).to_base64();
        let why = crate::model::check_minisign_key(&b64).unwrap_err();
        assert!(why.contains("small order"), "{pk:02x?}: {why}");
    }
    // Among them the identity with y not reduced, which minisign's identity test misses.
    let mut identity = [0xffu8; 32];
    identity[0] = 0xee;
    identity[31] = 0x7f;
    assert!(forgeries_under(&identity) > 0);
    assert!(forgeable >= 8, "only {forgeable} encodings were forgeable");
}

/// Keys with a torsion part (a large point plus one of small order) pass the records' key
/// check. Their holder's signatures verify when the torsion in `R` cancels `k` times the key's,
/// both checks agree on every one (the key is canonical: no deferring), and without the
/// scalar no signature verifies: neither s = 0 with `R` of small order nor the large part's own
/// signature.
#[test]
fn mixed_order_keys_agree_and_only_their_holder_signs() {
    let mut rng = StdRng::seed_from_u64(19);
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..56 {
        let a = Scalar::from_bytes_mod_order(rng.r#gen());
        let large = ED25519_BASEPOINT_POINT * a;
        let pk = (large + EIGHT_TORSION[1 + round % 7]).compress().to_bytes();
        assert_eq!(
            crate::model::check_minisign_key(&public_key(&pk).to_base64()),
            Ok(())
        );
        let data = format!("record {round}").into_bytes();
        for t in EIGHT_TORSION {
            let text = minisign_text(a, &pk, t, &data, &mut rng);
            let (slow, fast) = both(&pk, &text, &data);
            assert_eq!(fast, Some(slow), "key {pk:02x?}\n{text}");
            if slow {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        let own = minisign_text(
            a,
            &large.compress().to_bytes(),
            EdwardsPoint::default(),
            &data,
            &mut rng,
        );
        assert_eq!(both(&pk, &own, &data), (false, Some(false)));
        assert_eq!(forgeries_under(&pk), 0, "key {pk:02x?}");
    }
    assert!(
        accepted > 0 && accepted < refused,
        "{accepted} accepted, {refused} refused"
    );
}

/// `s` not reduced in every way 32 bytes allow (s + jL, the top bits set) and `R` a
/// non-canonical encoding of the point the equation gives: refused by both, without deferring.
#[test]
fn unreduced_s_and_non_canonical_r_are_refused_alike() {
    let mut rng = StdRng::seed_from_u64(23);
    for round in 0..24 {
        let (a, pk) = keypair(&mut rng);
        let data = format!("record {round}").into_bytes();
        let text = minisign_text(a, &pk, EdwardsPoint::default(), &data, &mut rng);
        assert_eq!(both(&pk, &text, &data), (true, Some(true)));
        let with_sig = |bones: &[u8]| with_line(&text, 1, &b64(bones));
        let bones = decode(text.lines().nth(1).unwrap()).unwrap();
        // s + jL while it fits in 32 bytes (s < L < 2^253, so j up to 15 always does).
        for j in 1..=15 {
            let mut b = bones.clone();
            add_l(&mut b[42..74], j);
            assert_eq!(
                both(&pk, &with_sig(&b), &data),
                (false, Some(false)),
                "j={j}"
            );
        }
        for bit in 253..256 {
            let mut b = bones.clone();
            b[42 + bit / 8] |= 1 << (bit % 8);
            assert_eq!(
                both(&pk, &with_sig(&b), &data),
                (false, Some(false)),
                "bit {bit}"
            );
        }
    }
    // Under the order-2 key (y = -1) with s = 0, the equation gives the identity for every
    // even k: `R` written as the identity with y = p + 1 or with the sign bit set never counts.
    let order_two = EIGHT_TORSION[4].compress().to_bytes();
    let mut identity_p1 = [0xffu8; 32];
    identity_p1[0] = 0xee;
    identity_p1[31] = 0x7f;
    let mut identity_signed = [0u8; 32];
    identity_signed[0] = 1;
    identity_signed[31] = 0x80;
    let mut equation_held = 0;
    for r in [identity_p1, identity_signed] {
        for attempt in 0..16 {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&r);
            let text = sig_text(&sig, "c", &sig);
            let data = format!("forged {attempt}").into_bytes();
            assert_eq!(both(&order_two, &text, &data), (false, Some(false)));
            let k = challenge(&r, &order_two, &Blake2b512::digest(&data));
            equation_held += k.as_bytes()[0].is_multiple_of(2) as usize;
        }
    }
    assert!(
        equation_held > 0,
        "the points never matched: the bytes were not tested"
    );
}

/// The key cache answers for the exact bytes asked about: a key and its negation (one bit
/// apart) keep their own verdicts, and once the cache has been emptied for being full every
/// key decodes again to the same verdict.
#[test]
fn the_key_cache_keeps_each_key_apart() {
    let mut rng = StdRng::seed_from_u64(29);
    let (a, pk) = keypair(&mut rng);
    let mut negated = pk;
    negated[31] ^= 0x80;
    let data = b"record".to_vec();
    let text = minisign_text(a, &pk, EdwardsPoint::default(), &data, &mut rng);
    let check = || {
        assert_eq!(both(&pk, &text, &data), (true, Some(true)));
        assert_eq!(both(&negated, &text, &data), (false, Some(false)));
    };
    check();
    check();
    for i in 0..=KEYS_KEPT as u64 {
        let other = (ED25519_BASEPOINT_POINT * Scalar::from(i + 2)).compress();
        assert!(negated_key(other.as_bytes()).is_some());
    }
    KEYS.with(|keys| assert!(keys.borrow().len() <= KEYS_KEPT));
    check();
}

/// Text minisign reads more loosely than cohort's shape check (which refuses all of these
/// before either check runs): bytes after the 74 of line 2, CRLF line ends, blanks around the
/// base64 lines and the trusted comment. The fast check reads what minisign parsed, so both
/// accept each variant of a good signature and refuse each variant of a damaged one.
#[test]
fn loosely_written_signatures_read_alike() {
    let mut rng = StdRng::seed_from_u64(31);
    let (a, pk) = keypair(&mut rng);
    let data = b"record".to_vec();
    let text = minisign_text(a, &pk, EdwardsPoint::default(), &data, &mut rng);
    let lines: Vec<&str> = text.lines().collect();
    let mut long_line = decode(lines[1]).unwrap();
    long_line.extend_from_slice(b"trailing bytes");
    let variants = [
        with_line(&text, 1, &b64(&long_line)),
        text.replace('\n', "\r\n"),
        format!(
            "{}\n  {}\t\n{} \n {}\n",
            lines[0], lines[1], lines[2], lines[3]
        ),
    ];
    for v in &variants {
        assert_eq!(both(&pk, v, &data), (true, Some(true)), "{v:?}");
        assert_eq!(both(&pk, v, b"other"), (false, Some(false)), "{v:?}");
    }
}
