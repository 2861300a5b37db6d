//! Encryption at rest (SPEC §5): every stored secret is sealed with XChaCha20-Poly1305, an AEAD
//! whose 192-bit random nonces are safe to draw at random for any number of values (unlike
//! AES-GCM's 96 bits). The key id is stored beside each value so keys can be rotated: new values
//! use the current key, old ones still open with theirs. (user, server, kind) is bound as
//! associated data, so a value copied to another row, user or kind no longer opens.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Version tag in the associated data: a future format change cannot open old rows by mistake.
const AAD_VERSION: &[u8] = b"tether-seal-v1";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("encryption key setting is invalid: {0}")]
    BadKey(String),
    #[error("a stored value was sealed with key id {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("a stored value does not open: wrong key, moved between records, or tampered with")]
    Tampered,
}

/// What a value is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// `access_token`, `refresh_token`, `client_secret`…
    pub kind: &'a str,
    /// The user id, or empty for per-server records (client registrations).
    pub user: &'a str,
    /// The server name (and, for registrations, the issuer after a `\n`).
    pub server: &'a str,
}

impl Binding<'_> {
    fn bytes(&self) -> Vec<u8> {
        // Length-prefixed parts: ("ab", "c") and ("a", "bc") must differ.
        let mut out = Vec::with_capacity(
            AAD_VERSION.len() + 12 + self.kind.len() + self.user.len() + self.server.len(),
        );
        out.extend_from_slice(AAD_VERSION);
        for part in [self.kind, self.user, self.server] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// A sealed value: the key id and `nonce ‖ ciphertext ‖ tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

/// The configured keys: one current (for sealing), any number of older ones (for opening).
#[derive(Clone)]
pub struct Keyring {
    current: String,
    ciphers: HashMap<String, XChaCha20Poly1305>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.ciphers.keys().collect();
        ids.sort();
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("key_ids", &ids)
            .finish()
    }
}

impl Keyring {
    /// Parses `id:BASE64[,id:BASE64…]` (the first is current) or a bare `BASE64` (id `k1`).
    /// Each key is 32 random bytes, base64-encoded (`openssl rand -base64 32`).
    pub fn parse(setting: &str) -> Result<Self, CryptoError> {
        let mut current = None;
        let mut ciphers = HashMap::new();
        for (i, entry) in setting.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let (id, material) = match entry.split_once(':') {
                Some((id, material)) => (id.trim(), material.trim()),
                None if i == 0 => ("k1", entry),
                None => {
                    return Err(CryptoError::BadKey(format!(
                        "entry {} needs an id: `id:BASE64`",
                        i + 1
                    )));
                }
            };
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(CryptoError::BadKey(format!(
                    "entry {}: key ids are letters, digits, '-' and '_'",
                    i + 1
                )));
            }
            // The decoding error is not quoted: it could echo key material.
            let bytes = STANDARD
                .decode(material)
                .map_err(|_| CryptoError::BadKey(format!("key {id:?} is not valid base64")))?;
            if bytes.len() != KEY_LEN {
                return Err(CryptoError::BadKey(format!(
                    "key {id:?} must be {KEY_LEN} bytes, got {}",
                    bytes.len()
                )));
            }
            let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
                .map_err(|_| CryptoError::BadKey(format!("key {id:?} is unusable")))?;
            if ciphers.insert(id.to_owned(), cipher).is_some() {
                return Err(CryptoError::BadKey(format!("key id {id:?} appears twice")));
            }
            current.get_or_insert_with(|| id.to_owned());
        }
        let current = current.ok_or_else(|| CryptoError::BadKey("no key given".to_owned()))?;
        Ok(Self { current, ciphers })
    }

    /// A new random key, as a setting `parse` accepts (for `--dev`).
    pub fn generate_setting() -> String {
        let key: [u8; KEY_LEN] = rand::random();
        format!("dev:{}", STANDARD.encode(key))
    }

    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    pub fn seal(&self, binding: Binding<'_>, plaintext: &[u8]) -> Result<Sealed, CryptoError> {
        let cipher = self
            .ciphers
            .get(&self.current)
            .ok_or_else(|| CryptoError::UnknownKey(self.current.clone()))?;
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = XNonce::from_slice(&nonce_bytes);
        let aad = binding.bytes();
        let ciphertext = cipher
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Tampered)?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        bytes.extend_from_slice(&nonce_bytes);
        bytes.extend_from_slice(&ciphertext);
        Ok(Sealed {
            key_id: self.current.clone(),
            bytes,
        })
    }

    pub fn open(&self, binding: Binding<'_>, sealed: &Sealed) -> Result<Vec<u8>, CryptoError> {
        let cipher = self
            .ciphers
            .get(&sealed.key_id)
            .ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.bytes.len() < NONCE_LEN {
            return Err(CryptoError::Tampered);
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_LEN);
        let aad = binding.bytes();
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; KEY_LEN])
    }

    fn binding<'a>(user: &'a str) -> Binding<'a> {
        Binding {
            kind: "access_token",
            user,
            server: "github",
        }
    }

    #[test]
    fn values_open_only_with_their_binding() {
        let ring = Keyring::parse(&key(7)).expect("valid");
        let sealed = ring.seal(binding("alice"), b"gho_secret").expect("sealed");
        assert!(!sealed.bytes.windows(10).any(|w| w == b"gho_secret"));
        assert_eq!(
            ring.open(binding("alice"), &sealed).expect("opens"),
            b"gho_secret"
        );
        assert_eq!(
            ring.open(binding("bob"), &sealed),
            Err(CryptoError::Tampered)
        );
        let other_kind = Binding {
            kind: "refresh_token",
            ..binding("alice")
        };
        assert_eq!(ring.open(other_kind, &sealed), Err(CryptoError::Tampered));
        let mut flipped = sealed.clone();
        if let Some(last) = flipped.bytes.last_mut() {
            *last ^= 1;
        }
        assert_eq!(
            ring.open(binding("alice"), &flipped),
            Err(CryptoError::Tampered)
        );
        // Length prefixes keep shifted boundaries apart.
        let shifted = Binding {
            kind: "access_token",
            user: "alicegit",
            server: "hub",
        };
        assert_eq!(ring.open(shifted, &sealed), Err(CryptoError::Tampered));
    }

    #[test]
    fn rotation_seals_with_the_current_key_and_opens_with_old_ones() {
        let old = Keyring::parse(&format!("k1:{}", key(1))).expect("valid");
        let sealed_old = old.seal(binding("u"), b"v1").expect("sealed");
        let rotated = Keyring::parse(&format!("k2:{}, k1:{}", key(2), key(1))).expect("valid");
        assert_eq!(rotated.current_key_id(), "k2");
        assert_eq!(
            rotated.open(binding("u"), &sealed_old).expect("opens"),
            b"v1"
        );
        assert_eq!(
            rotated.seal(binding("u"), b"v2").expect("sealed").key_id,
            "k2"
        );
        let retired = Keyring::parse(&format!("k2:{}", key(2))).expect("valid");
        assert_eq!(
            retired.open(binding("u"), &sealed_old),
            Err(CryptoError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn bad_settings_are_refused_without_echoing_material() {
        for (setting, needle) in [
            ("", "no key"),
            ("not base64!!", "base64"),
            (&STANDARD.encode([1u8; 16]), "32 bytes"),
            (&format!("a:{},a:{}", key(1), key(2)), "twice"),
            (&format!("bad id:{}", key(1)), "key ids"),
        ] {
            let err = Keyring::parse(setting).expect_err(setting).to_string();
            assert!(err.contains(needle), "{setting:?} gave {err}");
            assert!(!err.contains("not base64!!"));
        }
        let generated = Keyring::generate_setting();
        assert!(Keyring::parse(&generated).is_ok());
        assert!(
            !format!("{:?}", Keyring::parse(&generated).expect("valid")).contains(&generated[4..])
        );
    }
}
