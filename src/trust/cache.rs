//! A memo of signature checks: which (key, signature bytes, signed bytes) triples verified.
//! It holds only facts that never change, so it can make verification faster but never change
//! a verdict: who may sign what, when, and every trusted-comment check still run each time.

use std::collections::HashSet;
use std::sync::{Mutex, RwLock};

use sha2::{Digest, Sha256 as Hasher};

use crate::model::Sha256;

/// Domain separation for the memo's keys.
const TAG: &[u8] = b"cohort signature memo v1\0";

/// Triples that verified, by digest. Loaded from and saved to a file by the caller.
#[derive(Debug, Default)]
pub struct SigCache {
    known: RwLock<HashSet<[u8; 32]>>,
    added: Mutex<Vec<[u8; 32]>>,
}

impl SigCache {
    /// The memo key of a signature: the raw key with its id, the signature file's bytes and
    /// the signed file's sha256.
    pub fn key(pk: &minisign::PublicKey, sig: &[u8], signed: &Sha256) -> [u8; 32] {
        let mut h = Hasher::new();
        h.update(TAG);
        h.update(pk.to_bytes());
        h.update(Hasher::digest(sig));
        h.update(signed.to_string().as_bytes());
        h.finalize().into()
    }

    /// A memo from the bytes [`SigCache::to_bytes`] wrote (a trailing partial entry is
    /// ignored: an interrupted save loses entries, never invents them).
    pub fn from_bytes(bytes: &[u8]) -> SigCache {
        let known = bytes
            .chunks_exact(32)
            .map(|c| <[u8; 32]>::try_from(c).expect("chunks of 32"))
            .collect();
        SigCache {
            known: RwLock::new(known),
            added: Mutex::new(Vec::new()),
        }
    }

    pub fn contains(&self, key: &[u8; 32]) -> bool {
        self.known.read().map(|k| k.contains(key)).unwrap_or(false)
    }

    pub fn insert(&self, key: [u8; 32]) {
        let fresh = self
            .known
            .write()
            .map(|mut k| k.insert(key))
            .unwrap_or(false);
        if fresh && let Ok(mut a) = self.added.lock() {
            a.push(key);
        }
    }

    /// Entries added since loading, in the file's encoding (to append).
    pub fn added_bytes(&self) -> Vec<u8> {
        self.added.lock().map(|a| a.concat()).unwrap_or_default()
    }

    /// Every entry, in the file's encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.known
            .read()
            .map(|k| k.iter().flatten().copied().collect())
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.known.read().map(|k| k.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Signature checks made while a tree was read, each with the trusted comment it verified: the
/// rule pass that asks again takes the comment as verified then, without parsing the
/// signature again (the same key, signature bytes and signed digest).
#[derive(Debug, Default)]
pub struct Early {
    checked: RwLock<std::collections::HashMap<[u8; 32], super::sign::Comment>>,
}

impl Early {
    pub fn insert(&self, key: [u8; 32], comment: super::sign::Comment) {
        self.checked
            .write()
            .expect("never poisoned")
            .insert(key, comment);
    }
    pub fn contains(&self, key: &[u8; 32]) -> bool {
        self.checked
            .read()
            .expect("never poisoned")
            .contains_key(key)
    }
    /// The trusted comment the check of `key` verified.
    pub fn comment(&self, key: &[u8; 32]) -> Option<super::sign::Comment> {
        self.checked
            .read()
            .expect("never poisoned")
            .get(key)
            .cloned()
    }
    pub fn is_empty(&self) -> bool {
        self.checked.read().expect("never poisoned").is_empty()
    }
}
