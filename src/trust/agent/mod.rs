//! The key agent: a process that unlocks the user's keys once, keeps them only in its memory
//! and signs (minisign) and unwraps age file keys on request over a Unix socket that only the
//! same user may use, so a passphrase-protected key costs one key derivation per session
//! instead of one per command. No secret key ever crosses the socket.
//!
//! The protocol is one request and one response per connection, each a 4-byte big-endian
//! length followed by that many bytes of JSON.

mod client;
mod server;

use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::TrustError;

pub use client::{AgentClient, AgentKey};
pub use server::{Listening, bind, check_peer, check_private_dir, serve};

/// Largest frame either side accepts: records and sealed payload headers are far smaller.
const MAX_FRAME: u32 = 16 << 20;

/// A request to the agent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub(crate) enum Request {
    Status,
    /// Sign `data` (hex) with `handle`'s minisign key under the given comments.
    Sign {
        handle: String,
        data: String,
        trusted: String,
        untrusted: String,
    },
    /// Unwrap the file key of an age header with `handle`'s age identity.
    Unwrap {
        handle: String,
        stanzas: Vec<WireStanza>,
    },
    Stop,
}

/// An age recipient stanza, its body hex-encoded.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireStanza {
    pub tag: String,
    pub args: Vec<String>,
    pub body: String,
}

/// The agent's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub(crate) enum Response {
    Status(AgentStatus),
    Signature {
        text: String,
    },
    /// The file key (hex), or none when no stanza is for this identity.
    FileKey {
        key: Option<String>,
    },
    Stopping,
    Error {
        message: String,
    },
}

/// What a running agent holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub pid: u32,
    /// Seconds until the agent wipes its keys and exits; none when it has no time limit.
    pub expires_in: Option<u64>,
    pub keys: Vec<HeldKey>,
}

/// The public half of a key the agent holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldKey {
    pub handle: String,
    pub key_id: String,
    pub minisign: String,
    pub age: String,
}

fn agent_err(path: &Path, why: impl std::fmt::Display) -> TrustError {
    TrustError::Agent {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

pub(crate) fn write_frame<T: Serialize>(w: &mut impl Write, value: &T) -> std::io::Result<()> {
    let body = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|l| *l <= MAX_FRAME)
        .ok_or_else(|| std::io::Error::other("message too large"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(&body)?;
    w.flush()
}

pub(crate) fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "message of {len} bytes is larger than {MAX_FRAME}"
        )));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)?;
    serde_json::from_slice(&body).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests;
