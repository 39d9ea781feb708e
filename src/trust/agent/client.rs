//! The commands' side: ask a running agent for a signer, then sign and unwrap age file keys
//! through it. A missing or stale agent is not an error here: callers fall back to unlocking
//! the key themselves.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use age::DecryptError;
use age_core::format::{FileKey, Stanza};

use super::{
    AgentStatus, Request, Response, TrustError, WireStanza, agent_err, read_frame, write_frame,
};
use crate::storage::Home;
use crate::trust::keys::{self, Secret, Signer};

/// How long a command waits for the agent's answer.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A connection point to an agent (each request opens its own connection).
#[derive(Debug, Clone)]
pub struct AgentClient {
    path: PathBuf,
}

impl AgentClient {
    pub fn new(path: impl Into<PathBuf>) -> AgentClient {
        AgentClient { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn call(&self, request: &Request) -> Result<Response, TrustError> {
        let mut stream = UnixStream::connect(&self.path)
            .map_err(|e| agent_err(&self.path, format!("not running ({e})")))?;
        let _ = stream.set_read_timeout(Some(TIMEOUT));
        let _ = stream.set_write_timeout(Some(TIMEOUT));
        write_frame(&mut stream, request).map_err(|e| agent_err(&self.path, e))?;
        match read_frame::<Response>(&mut stream).map_err(|e| agent_err(&self.path, e))? {
            Response::Error { message } => Err(agent_err(&self.path, message)),
            other => Ok(other),
        }
    }

    fn unexpected(&self) -> TrustError {
        agent_err(&self.path, "unexpected answer")
    }

    /// What the agent holds; an error when none answers.
    pub fn status(&self) -> Result<AgentStatus, TrustError> {
        match self.call(&Request::Status)? {
            Response::Status(s) => Ok(s),
            _ => Err(self.unexpected()),
        }
    }

    /// Asks the agent to wipe its keys and exit.
    pub fn stop(&self) -> Result<(), TrustError> {
        match self.call(&Request::Stop)? {
            Response::Stopping => Ok(()),
            _ => Err(self.unexpected()),
        }
    }

    /// A signer for `handle` backed by the agent, when one runs and holds exactly the keys
    /// stored for `handle` (a key replaced since the agent started is not used).
    pub fn signer(&self, home: &Home, handle: &str) -> Result<Option<Signer>, TrustError> {
        let public = keys::public(home, handle)?;
        let Ok(status) = self.status() else {
            return Ok(None);
        };
        let held = status
            .keys
            .iter()
            .any(|k| k.handle == handle && k.minisign == public.minisign && k.age == public.age);
        if !held {
            return Ok(None);
        }
        let pk = minisign::PublicKey::from_base64(&public.minisign)
            .map_err(|e| TrustError::Key(format!("{}: {e}", home.key_dir(handle).display())))?;
        Ok(Some(Signer {
            handle: handle.to_string(),
            public,
            pk,
            secret: Secret::Agent(AgentKey {
                client: self.clone(),
                handle: handle.to_string(),
            }),
        }))
    }
}

/// One key held by the agent, used by reference.
#[derive(Clone)]
pub struct AgentKey {
    client: AgentClient,
    handle: String,
}

impl AgentKey {
    pub(crate) fn sign(
        &self,
        bytes: &[u8],
        trusted: &str,
        untrusted: &str,
    ) -> Result<String, TrustError> {
        let request = Request::Sign {
            handle: self.handle.clone(),
            data: hex::encode(bytes),
            trusted: trusted.to_string(),
            untrusted: untrusted.to_string(),
        };
        match self.client.call(&request)? {
            Response::Signature { text } => Ok(text),
            _ => Err(self.client.unexpected()),
        }
    }
}

impl age::Identity for AgentKey {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    /// One round trip for the whole header.
    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, DecryptError>> {
        let request = Request::Unwrap {
            handle: self.handle.clone(),
            stanzas: stanzas
                .iter()
                .map(|s| WireStanza {
                    tag: s.tag.clone(),
                    args: s.args.clone(),
                    body: hex::encode(&s.body),
                })
                .collect(),
        };
        let failed = |why: String| Some(Err(DecryptError::Io(std::io::Error::other(why))));
        match self.client.call(&request) {
            Ok(Response::FileKey { key: None }) => None,
            Ok(Response::FileKey { key: Some(hex) }) => {
                let mut raw = Box::new([0u8; 16]);
                match hex::decode_to_slice(&hex, &mut raw[..]) {
                    Ok(()) => Some(Ok(FileKey::new(raw))),
                    Err(e) => failed(format!("the agent sent a bad file key: {e}")),
                }
            }
            Ok(_) => failed("unexpected answer from the key agent".into()),
            Err(e) => failed(e.to_string()),
        }
    }
}
