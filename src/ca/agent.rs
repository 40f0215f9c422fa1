//! A minimal SSH agent client (draft-miller-ssh-agent): list the agent's keys and ask it
//! to sign, over the Unix socket named by `SSH_AUTH_SOCK`.
//!
//! Only these two requests are needed, so the protocol is spoken here directly (a few
//! dozen lines, blocking I/O: signing already runs on a blocking thread inside the
//! issuing transaction) instead of pulling in a whole SSH stack. The private key never
//! enters this process. An agent that asks for a touch or a PIN holds up every write
//! while it waits: use one that signs without interaction, or keep `request_timeout` in
//! mind.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use signature::Signer;
use ssh_key::encoding::{Decode, Encode};
use ssh_key::public::KeyData;
use ssh_key::{HashAlg, Signature};

const FAILURE: u8 = 5;
const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_REQUEST: u8 = 13;
const SIGN_RESPONSE: u8 = 14;

/// Largest agent answer accepted (many keys with long comments fit).
const MAX_MESSAGE: usize = 256 * 1024;

/// How long one agent exchange may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why the agent could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// There is no agent to talk to.
    #[error("SSH_AUTH_SOCK is not set: start an ssh-agent and ssh-add the CA key")]
    NoSocket,
    /// The socket could not be reached or the exchange broke off.
    #[error("cannot talk to the SSH agent at {path}")]
    Io {
        /// The agent's socket.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The agent answered SSH_AGENT_FAILURE (e.g. the key was removed, or a confirmation
    /// was declined).
    #[error("the SSH agent at {path} refused to sign")]
    Refused {
        /// The agent's socket.
        path: PathBuf,
    },
    /// The answer was not what the protocol says.
    #[error("the SSH agent at {path} sent a malformed answer: {message}")]
    Protocol {
        /// The agent's socket.
        path: PathBuf,
        /// What was wrong with the answer.
        message: String,
    },
    /// The agent is there but does not hold the CA key.
    #[error("the SSH agent at {path} does not hold the CA key {fingerprint}: add it with ssh-add")]
    KeyMissing {
        /// The agent's socket.
        path: PathBuf,
        /// The CA key's fingerprint.
        fingerprint: String,
    },
}

/// Signs with the CA key held by an SSH agent.
#[derive(Debug, Clone)]
pub struct AgentSigner {
    socket: PathBuf,
    key: KeyData,
}

impl AgentSigner {
    /// Connects to the agent at `socket` and checks that it holds `key`.
    pub fn connect(socket: &Path, key: KeyData) -> Result<Self, AgentError> {
        let signer = AgentSigner {
            socket: socket.to_owned(),
            key,
        };
        if signer.identities()?.contains(&signer.key) {
            Ok(signer)
        } else {
            Err(AgentError::KeyMissing {
                path: signer.socket.clone(),
                fingerprint: signer.key.fingerprint(HashAlg::Sha256).to_string(),
            })
        }
    }

    /// The socket named by `SSH_AUTH_SOCK`.
    pub fn socket_from_env() -> Result<PathBuf, AgentError> {
        std::env::var_os("SSH_AUTH_SOCK")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .ok_or(AgentError::NoSocket)
    }

    /// The public keys the agent holds (undecodable ones, e.g. unknown types, skipped).
    fn identities(&self) -> Result<Vec<KeyData>, AgentError> {
        let answer = self.exchange(&[REQUEST_IDENTITIES])?;
        let mut r = self.expect(&answer, IDENTITIES_ANSWER)?;
        let count = self.u32(&mut r)?;
        let mut keys = Vec::new();
        for _ in 0..count {
            let blob = self.string(&mut r)?;
            let _comment = self.string(&mut r)?;
            if let Ok(key) = KeyData::decode(&mut &blob[..]) {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    /// Asks the agent to sign `data` with the CA key.
    fn sign_data(&self, data: &[u8]) -> Result<Signature, AgentError> {
        let blob = self.key.encode_vec().map_err(|e| self.malformed(e))?;
        let mut msg = vec![SIGN_REQUEST];
        blob.encode(&mut msg).map_err(|e| self.malformed(e))?;
        data.encode(&mut msg).map_err(|e| self.malformed(e))?;
        msg.extend_from_slice(&0u32.to_be_bytes());
        let answer = self.exchange(&msg)?;
        let mut r = self.expect(&answer, SIGN_RESPONSE)?;
        let sig = self.string(&mut r)?;
        let sig = Signature::decode(&mut &sig[..]).map_err(|e| self.malformed(e))?;
        if sig.algorithm() != self.key.algorithm() {
            return Err(self.malformed("signature of another algorithm"));
        }
        Ok(sig)
    }

    /// Sends one message and reads one answer (both length-prefixed).
    fn exchange(&self, msg: &[u8]) -> Result<Vec<u8>, AgentError> {
        let io = |source| AgentError::Io {
            path: self.socket.clone(),
            source,
        };
        let mut s = UnixStream::connect(&self.socket).map_err(io)?;
        s.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
        s.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
        let len = u32::try_from(msg.len()).map_err(|_| self.malformed("request too long"))?;
        s.write_all(&len.to_be_bytes()).map_err(io)?;
        s.write_all(msg).map_err(io)?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len).map_err(io)?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_MESSAGE {
            return Err(self.malformed(format!("answer of {len} bytes")));
        }
        let mut answer = vec![0u8; len];
        s.read_exact(&mut answer).map_err(io)?;
        Ok(answer)
    }

    /// The body of `answer` if its type is `want`.
    fn expect<'a>(&self, answer: &'a [u8], want: u8) -> Result<&'a [u8], AgentError> {
        match answer.split_first() {
            Some((&t, body)) if t == want => Ok(body),
            Some((&FAILURE, _)) => Err(AgentError::Refused {
                path: self.socket.clone(),
            }),
            Some((t, _)) => Err(self.malformed(format!("unexpected message type {t}"))),
            None => Err(self.malformed("empty answer")),
        }
    }

    fn u32(&self, r: &mut &[u8]) -> Result<u32, AgentError> {
        let (head, rest) = r
            .split_first_chunk::<4>()
            .ok_or_else(|| self.malformed("truncated"))?;
        *r = rest;
        Ok(u32::from_be_bytes(*head))
    }

    fn string<'a>(&self, r: &mut &'a [u8]) -> Result<&'a [u8], AgentError> {
        let len = self.u32(r)? as usize;
        if len > r.len() {
            return Err(self.malformed("truncated"));
        }
        let (s, rest) = r.split_at(len);
        *r = rest;
        Ok(s)
    }

    fn malformed(&self, e: impl std::fmt::Display) -> AgentError {
        AgentError::Protocol {
            path: self.socket.clone(),
            message: e.to_string(),
        }
    }
}

impl Signer<Signature> for AgentSigner {
    fn try_sign(&self, msg: &[u8]) -> signature::Result<Signature> {
        self.sign_data(msg).map_err(|e| {
            tracing::error!(error = %e, "agent signing failed");
            signature::Error::from_source(e)
        })
    }
}

impl From<&AgentSigner> for KeyData {
    fn from(signer: &AgentSigner) -> KeyData {
        signer.key.clone()
    }
}
