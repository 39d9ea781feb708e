//! Private models: a cube whose image only approved sites can run. The image travels as an age
//! ciphertext under a fresh per-version model key; the key itself travels only sealed (age, to
//! one X25519 recipient): to the owner inside the cube record, so the owner can never lose it,
//! and to each granted dataset owner in a signed access record.

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::asset::Asset;
use super::records::CubeRef;

/// The one scheme this cohort writes and reads: the ciphertext is an age file (to the model
/// key's X25519 recipient) whose plaintext is the image's `docker save` tar stream.
pub const SCHEME: &str = "cohort-private/1";

/// Scheme 1 plus `files` and/or `parameters`: the additional-files tarball and
/// `parameters.yaml` as further age ciphertexts under the same model key (the record then has no
/// public `additional_files` / `parameters_yaml`).
pub const SCHEME_FILES: &str = "cohort-private/2";

/// Largest sealed model key (an age file holding one X25519 identity), hex-encoded.
const MAX_SEALED_KEY_HEX: usize = 4096;

/// The model key sealed to one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedKey {
    pub handle: String,
    /// The age recipient the key was sealed to (the person's key at that commit).
    pub age: String,
    /// The age file holding the model key, hex-encoded (records are text).
    pub sealed: String,
}

/// `[image.private]` of an encrypted cube: where the ciphertext is and the owner's copy of the
/// key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateImage {
    /// [`SCHEME`] or [`SCHEME_FILES`]; a newer scheme is refused, never guessed at.
    pub scheme: String,
    /// The model key's public half (`age1...`): what the ciphertext is encrypted to.
    pub recipient: String,
    /// The ciphertext (`url` or `blob`, `sha256`, `size`).
    pub ciphertext: Asset,
    /// The model key sealed to the owner.
    pub owner_key: SealedKey,
    /// [`SCHEME_FILES`] only: the additional-files tarball encrypted to `recipient` (`url` or
    /// `blob`, `sha256`, `size` of the ciphertext; `unpacked_size` and `files` of the tarball).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Box<Asset>>,
    /// [`SCHEME_FILES`] only: `parameters.yaml` encrypted to `recipient` (`url` or `blob`,
    /// `sha256`, `size` of the ciphertext).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Box<Asset>>,
}

/// Whether an access record shares the key or withdraws the permission to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessAction {
    Grant,
    Revoke,
}

/// `mlcubes/<name>/v<N>/access/<dataset-id>/<n>.toml`: the owner of a private cube version lets
/// one dataset run it (the model key sealed to the dataset's owner), or revokes that. The newest
/// number decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    pub format: u32,
    pub kind: String,
    pub number: u32,
    pub model: CubeRef,
    pub dataset: String,
    pub action: AccessAction,
    pub by: String,
    pub created: String,
    /// The model key sealed to the dataset's owner (grants only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SealedKey>,
}

/// A fresh model key.
pub fn new_model_key() -> age::x25519::Identity {
    age::x25519::Identity::generate()
}

/// Seals `model_key` to `handle`'s age recipient.
pub fn seal_key(
    model_key: &age::x25519::Identity,
    handle: &str,
    recipient: &str,
) -> Result<SealedKey, ModelError> {
    use age::secrecy::ExposeSecret;
    let to: age::x25519::Recipient = recipient
        .parse()
        .map_err(|e| ModelError::Seal(format!("{handle}'s age key `{recipient}`: {e}")))?;
    let secret = model_key.to_string();
    let sealed = age::encrypt(&to, secret.expose_secret().as_bytes())
        .map_err(|e| ModelError::Seal(format!("sealing the model key to {handle}: {e}")))?;
    Ok(SealedKey {
        handle: handle.to_string(),
        age: recipient.to_string(),
        sealed: hex::encode(sealed),
    })
}

/// Opens a sealed model key with `identity`; the key must be the one `recipient` names.
pub fn open_key(
    sealed: &SealedKey,
    identity: &dyn age::Identity,
    recipient: &str,
) -> Result<age::x25519::Identity, ModelError> {
    let bytes = hex::decode(&sealed.sealed)
        .map_err(|_| ModelError::Seal(format!("the key sealed to {} is not hex", sealed.handle)))?;
    let not_recipient =
        || ModelError::NotARecipient(format!("the model key sealed to {}", sealed.handle));
    let decryptor = age::Decryptor::new(&bytes[..]).map_err(|_| not_recipient())?;
    let reader = decryptor
        .decrypt(std::iter::once(identity))
        .map_err(|_| not_recipient())?;
    // An age identity is 74 characters: anything much longer is not a model key.
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(reader, 1024), &mut plain)
        .map_err(|_| not_recipient())?;
    let text = String::from_utf8(plain)
        .map_err(|_| ModelError::Seal("the sealed model key is not text".into()))?;
    let key: age::x25519::Identity = text
        .trim()
        .parse()
        .map_err(|_| ModelError::Seal("the sealed model key is not an age identity".into()))?;
    if key.to_public().to_string() != recipient {
        return Err(ModelError::Seal(format!(
            "the key sealed to {} is not the model key the cube record names",
            sealed.handle
        )));
    }
    Ok(key)
}

/// Checks a sealed key's fields on their own (record validation).
pub fn check_sealed_key(s: &SealedKey) -> Result<(), String> {
    super::ids::check_name("key handle", &s.handle).map_err(|e| e.to_string())?;
    super::validate::check_age_recipient(&s.age)?;
    if s.sealed.is_empty()
        || s.sealed.len() > MAX_SEALED_KEY_HEX
        || !s
            .sealed
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(format!(
            "the key sealed to {} must be lower-case hex, at most {MAX_SEALED_KEY_HEX} digits",
            s.handle
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_for_its_recipient_and_names_the_model_key() {
        let owner = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let key = new_model_key();
        let public = key.to_public().to_string();
        let sealed = seal_key(&key, "mo", &owner.to_public().to_string()).unwrap();
        check_sealed_key(&sealed).unwrap();
        let opened = open_key(&sealed, &owner, &public).unwrap();
        assert_eq!(opened.to_public().to_string(), public);
        assert!(open_key(&sealed, &other, &public).is_err());
        let wrong = new_model_key().to_public().to_string();
        assert!(open_key(&sealed, &owner, &wrong).is_err());
    }
}
