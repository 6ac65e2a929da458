//! C2SP signed checkpoints: tlog-checkpoint bodies signed as C2SP signed notes with Ed25519.
//!
//! A checkpoint body (c2sp.org/tlog-checkpoint) is three lines: the log origin, the tree size in
//! decimal and the base64 root hash. It is signed as a signed note (c2sp.org/signed-note): the
//! body, a blank line, then one line per signature, `— <key name> base64(key id || signature)`.
//! The key id is the first four bytes of SHA-256(name || 0x0A || 0x01 || public key), 0x01 being
//! the Ed25519 signature type. Keys travel as text in the format of Go's
//! `golang.org/x/mod/sumdb/note`: the verifier key `name+hex8(key id)+base64(0x01 || public key)`
//! and the private key `PRIVATE+KEY+name+hex8(key id)+base64(0x01 || seed)`, so Go tools and
//! witnesses read Chronicle's keys and checkpoints as they are.

use std::fmt::Write as _;
use std::io::{ErrorKind, Write as _};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

/// The signed-note signature type byte of Ed25519.
const ED25519_TYPE: u8 = 0x01;
/// Every signature line starts with an em dash (U+2014) and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// The prefix of a private key's text form.
const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";
/// At most this many signature lines are read from a note (the spec asks for at least 16).
const MAX_SIGNATURES: usize = 100;

/// What went wrong reading, signing or checking a checkpoint or a key.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A checkpoint body or signed note that does not follow the format.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// A key name, verifier key or private key text that does not follow the format.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The note carries no signature by the expected key.
    #[error("the checkpoint carries no signature from the expected key")]
    UnknownKey,
    /// The note carries a signature by the expected key, and it does not verify.
    #[error("the checkpoint signature from the expected key does not verify")]
    BadSignature,
    /// The key file could not be read, written or understood; the message names the path.
    #[error("key file: {0}")]
    KeyFile(String),
}

/// A checkpoint body: origin, tree size, root hash (and no extension lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `chronicle.local` or `chronicle.local/workspaces/WS`.
    pub origin: String,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The RFC 9162 root hash of the tree at `size`.
    pub root: [u8; 32],
}

impl Checkpoint {
    /// The note text: `"<origin>\n<size>\n<base64 std root>\n"`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Parses a checkpoint body: exactly the origin, size and root lines. Extension lines after
    /// the root hash are refused: Chronicle never signs any, and a verifier that ignored them
    /// would vouch for text it did not read.
    pub fn parse_body(text: &str) -> Result<Checkpoint, CheckpointError> {
        let malformed = |what: &str| CheckpointError::Malformed(what.to_owned());
        let text = text
            .strip_suffix('\n')
            .ok_or_else(|| malformed("the body does not end with a newline"))?;
        let mut lines = text.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(malformed("the body has fewer than three lines"));
        };
        if origin.is_empty() || origin.chars().any(char::is_control) {
            return Err(malformed(
                "the origin line is empty or holds control characters",
            ));
        }
        let size_is_canonical = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        let size = size
            .parse::<u64>()
            .ok()
            .filter(|_| size_is_canonical)
            .ok_or_else(|| {
                malformed("the tree size is not a decimal number without leading zeros")
            })?;
        let root = STANDARD
            .decode(root)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| malformed("the root hash is not the base64 of 32 bytes"))?;
        if lines.next().is_some() {
            return Err(malformed(
                "the body has lines after the root hash (extension lines are not accepted)",
            ));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// The signer: an Ed25519 key with a key name (Chronicle uses the log origin, default
/// "chronicle.local").
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    key_id: [u8; 4],
}

impl std::fmt::Debug for NoteSigner {
    /// Shows the verifier key, never the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("verifier_key", &self.verifier_key())
            .finish()
    }
}

impl NoteSigner {
    /// A signer for `key` under `name`, which must be non-empty, without whitespace, control
    /// characters or '+'.
    pub fn new(name: &str, key: SigningKey) -> Result<NoteSigner, CheckpointError> {
        check_key_name(name)?;
        let key_id = key_id(name, &key.verifying_key());
        Ok(NoteSigner {
            name: name.to_owned(),
            key,
            key_id,
        })
    }

    /// A signer with a fresh key from the operating system's random source.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid key name (see [`NoteSigner::new`]).
    pub fn generate(name: &str) -> NoteSigner {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        match NoteSigner::new(name, SigningKey::from_bytes(&seed)) {
            Ok(signer) => signer,
            Err(error) => panic!("cannot generate a note signer: {error}"),
        }
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id: SHA-256(name || 0x0A || 0x01 || public key)[..4].
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The note verifier key: "name+hex8(keyid)+base64(0x01 || pubkey)".
    pub fn verifier_key(&self) -> String {
        let public = self.key.verifying_key().to_bytes();
        format!(
            "{}+{}+{}",
            self.name,
            hex(&self.key_id),
            typed_base64(&public)
        )
    }

    /// The private key text, Go-note style: "PRIVATE+KEY+name+hex8+base64(0x01 || 32-byte
    /// seed)".
    pub fn to_private_key_text(&self) -> String {
        let seed = self.key.to_bytes();
        format!(
            "{PRIVATE_KEY_PREFIX}{}+{}+{}",
            self.name,
            hex(&self.key_id),
            typed_base64(&seed)
        )
    }

    /// Reads the text [`NoteSigner::to_private_key_text`] writes (surrounding whitespace is
    /// trimmed); the key id in the text must match the key.
    pub fn from_private_key_text(text: &str) -> Result<NoteSigner, CheckpointError> {
        let rest = text
            .trim()
            .strip_prefix(PRIVATE_KEY_PREFIX)
            .ok_or_else(|| invalid_key("a private key starts with PRIVATE+KEY+"))?;
        let (name, key_id, seed) = split_key_text(rest)?;
        let signer = NoteSigner::new(name, SigningKey::from_bytes(&seed))?;
        if signer.key_id != key_id {
            return Err(invalid_key(
                "the private key's key id does not match the key",
            ));
        }
        Ok(signer)
    }

    /// Signs a checkpoint: body + "\n" + "— name base64(keyid || signature)\n"; the signature
    /// covers exactly the body text. The origin must be a single line without control
    /// characters, or the note will not open.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        self.sign_text(&checkpoint.body())
    }

    /// Signs a note text (which ends with a newline) as a signed note with one signature.
    fn sign_text(&self, text: &str) -> String {
        let signature = self.key.sign(text.as_bytes()).to_bytes();
        let mut blob = Vec::with_capacity(4 + signature.len());
        blob.extend_from_slice(&self.key_id);
        blob.extend_from_slice(&signature);
        format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        )
    }
}

/// A parsed verifier key.
#[derive(Debug, Clone)]
pub struct NoteVerifier {
    /// The key name.
    pub name: String,
    /// The key id, which must match SHA-256(name || 0x0A || 0x01 || public key)[..4].
    pub key_id: [u8; 4],
    /// The Ed25519 public key.
    pub key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses a verifier key "name+hex8(keyid)+base64(0x01 || pubkey)" (surrounding whitespace is
    /// trimmed); the key id must match the name and key.
    pub fn parse(text: &str) -> Result<NoteVerifier, CheckpointError> {
        let (name, claimed_id, public) = split_key_text(text.trim())?;
        check_key_name(name)?;
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| invalid_key("the public key is not a valid Ed25519 point"))?;
        let key_id = key_id(name, &key);
        if key_id != claimed_id {
            return Err(invalid_key(
                "the verifier key's key id does not match the key",
            ));
        }
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id,
            key,
        })
    }
}

/// Opens a signed note: splits body and signature lines at the last "\n\n", finds a signature
/// line by this verifier's name and key id, checks it; returns the parsed checkpoint. Unknown
/// signatures from other keys are ignored; none from this key is UnknownKey; a bad one is
/// BadSignature.
pub fn open_signed_checkpoint(
    note: &str,
    verifier: &NoteVerifier,
) -> Result<Checkpoint, CheckpointError> {
    Checkpoint::parse_body(open_note(note, verifier)?)
}

/// Checks a signed note against one verifier and returns its text (ending with a newline).
fn open_note<'a>(note: &'a str, verifier: &NoteVerifier) -> Result<&'a str, CheckpointError> {
    let malformed = |what: &str| CheckpointError::Malformed(what.to_owned());
    if note.chars().any(|c| c != '\n' && c.is_control()) {
        return Err(malformed("the note holds control characters"));
    }
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| malformed("the note has no blank line before its signatures"))?;
    let (text, signatures) = (&note[..=split], &note[split + 2..]);
    let signatures = signatures
        .strip_suffix('\n')
        .ok_or_else(|| malformed("the note does not end with a newline"))?;
    let lines: Vec<&str> = signatures.split('\n').collect();
    if lines.len() > MAX_SIGNATURES {
        return Err(malformed("the note has too many signatures"));
    }
    let mut verified = false;
    for line in lines {
        let (name, encoded) = line
            .strip_prefix(SIGNATURE_PREFIX)
            .and_then(|rest| rest.split_once(' '))
            .filter(|(name, _)| check_key_name(name).is_ok())
            .ok_or_else(|| malformed("a signature line is not \"— <name> <base64>\""))?;
        let blob = STANDARD
            .decode(encoded)
            .ok()
            .filter(|blob| blob.len() > 4)
            .ok_or_else(|| malformed("a signature is not the base64 of a key id and signature"))?;
        if name != verifier.name || blob[..4] != verifier.key_id {
            continue;
        }
        let signature =
            Signature::from_slice(&blob[4..]).map_err(|_| CheckpointError::BadSignature)?;
        verifier
            .key
            .verify_strict(text.as_bytes(), &signature)
            .map_err(|_| CheckpointError::BadSignature)?;
        verified = true;
    }
    if verified {
        Ok(text)
    } else {
        Err(CheckpointError::UnknownKey)
    }
}

/// Loads the signer from `path`, or creates one (mode 0600, parent folders created) when the file
/// does not exist. Returns (signer, created). A key file holding a key under another name than
/// `name` is refused, so checkpoints are never signed under a name that differs from the origin.
pub fn load_or_create_key_file(
    path: &Path,
    name: &str,
) -> Result<(NoteSigner, bool), CheckpointError> {
    check_key_name(name)?;
    let shown = path.display();
    match std::fs::read_to_string(path) {
        Ok(text) => return load_key_text(path, &text, name).map(|signer| (signer, false)),
        Err(error) if error.kind() == ErrorKind::NotFound => {}
        Err(error) => {
            return Err(CheckpointError::KeyFile(format!(
                "cannot read {shown}: {error}"
            )));
        }
    }
    let signer = NoteSigner::generate(name);
    match write_new_key_file(path, &signer) {
        Ok(()) => Ok((signer, true)),
        // Another process created the file between our read and our write: use its key.
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(|error| {
                CheckpointError::KeyFile(format!("cannot read {shown}: {error}"))
            })?;
            load_key_text(path, &text, name).map(|signer| (signer, false))
        }
        Err(error) => Err(CheckpointError::KeyFile(format!(
            "cannot create {shown}: {error}"
        ))),
    }
}

/// Reads a key file's text and checks it holds a key named `name`.
fn load_key_text(path: &Path, text: &str, name: &str) -> Result<NoteSigner, CheckpointError> {
    let signer = NoteSigner::from_private_key_text(text)
        .map_err(|error| CheckpointError::KeyFile(format!("{}: {error}", path.display())))?;
    if signer.name() != name {
        return Err(CheckpointError::KeyFile(format!(
            "{} holds a key named {:?}, not {name:?}",
            path.display(),
            signer.name()
        )));
    }
    Ok(signer)
}

/// Writes a new key file (never replacing one), readable by its owner only, and makes it durable.
fn write_new_key_file(path: &Path, signer: &NoteSigner) -> std::io::Result<()> {
    let parent = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty());
    if let Some(parent) = parent {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(format!("{}\n", signer.to_private_key_text()).as_bytes())?;
    file.sync_all()?;
    #[cfg(unix)]
    if let Some(parent) = parent {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Refuses key names that are empty or hold whitespace, control characters or '+'.
fn check_key_name(name: &str) -> Result<(), CheckpointError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
    {
        return Err(invalid_key(
            "a key name must be non-empty, without spaces or '+'",
        ));
    }
    Ok(())
}

/// SHA-256(name || 0x0A || 0x01 || public key)[..4].
fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', ED25519_TYPE])
        .chain_update(key.as_bytes())
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Splits "name+hex8+base64(0x01 || 32 bytes)" into its parts.
fn split_key_text(text: &str) -> Result<(&str, [u8; 4], [u8; 32]), CheckpointError> {
    // The name and key id hold no '+'; the base64 key data may.
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(key_id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid_key("a key has the form name+keyid+keydata"));
    };
    let key_id = (key_id.len() == 8 && key_id.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(key_id, 16).ok())
        .flatten()
        .ok_or_else(|| invalid_key("the key id is not 8 hex digits"))?
        .to_be_bytes();
    let data = STANDARD
        .decode(data)
        .map_err(|_| invalid_key("the key data is not base64"))?;
    let key = match data.split_first() {
        Some((&ED25519_TYPE, key)) => key,
        _ => return Err(invalid_key("the key is not an Ed25519 key (type 0x01)")),
    };
    let key = <[u8; 32]>::try_from(key).map_err(|_| invalid_key("the key is not 32 bytes"))?;
    Ok((name, key_id, key))
}

/// base64(0x01 || bytes).
fn typed_base64(bytes: &[u8; 32]) -> String {
    let mut typed = Vec::with_capacity(33);
    typed.push(ED25519_TYPE);
    typed.extend_from_slice(bytes);
    STANDARD.encode(typed)
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

fn invalid_key(what: &str) -> CheckpointError {
    CheckpointError::InvalidKey(what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "chronicle.local";

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: NAME.to_owned(),
            size: 3,
            root: [7; 32],
        }
    }

    fn fixed_signer() -> NoteSigner {
        let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
        NoteSigner::new(NAME, SigningKey::from_bytes(&seed)).unwrap()
    }

    fn verifier(signer: &NoteSigner) -> NoteVerifier {
        NoteVerifier::parse(&signer.verifier_key()).unwrap()
    }

    /// The same note with byte `index` replaced by another ASCII letter.
    fn with_byte_changed(note: &str, index: usize) -> String {
        let mut bytes = note.as_bytes().to_vec();
        bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn body_has_the_exact_format_and_parses_back() {
        let body = checkpoint().body();
        assert_eq!(
            body,
            "chronicle.local\n3\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"
        );
        assert_eq!(Checkpoint::parse_body(&body).unwrap(), checkpoint());
        let empty = Checkpoint {
            origin: "o/x".to_owned(),
            size: 0,
            root: [0; 32],
        };
        assert_eq!(Checkpoint::parse_body(&empty.body()).unwrap(), empty);
        let max = Checkpoint {
            size: u64::MAX,
            ..checkpoint()
        };
        assert_eq!(Checkpoint::parse_body(&max.body()).unwrap(), max);
    }

    #[test]
    fn extension_lines_are_refused() {
        for extension in ["ext one\n", "ext one\next two\n", "\n"] {
            let text = format!("{}{extension}", checkpoint().body());
            match Checkpoint::parse_body(&text) {
                Err(CheckpointError::Malformed(message)) => {
                    assert!(message.contains("extension lines"), "{message}")
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
        // Signed, too: a good signature over a body with an extension line does not open.
        let signer = fixed_signer();
        let note = signer.sign_text(&format!("{}ext one\n", checkpoint().body()));
        assert!(matches!(
            open_signed_checkpoint(&note, &verifier(&signer)),
            Err(CheckpointError::Malformed(_))
        ));
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let root = STANDARD.encode([7u8; 32]);
        let short_root = STANDARD.encode([7u8; 31]);
        let bad = [
            String::new(),
            "chronicle.local\n".to_owned(),
            "chronicle.local\n3\n".to_owned(),
            format!("chronicle.local\n3\n{root}"),
            format!("\n3\n{root}\n"),
            format!("chronicle.local\n01\n{root}\n"),
            format!("chronicle.local\n-1\n{root}\n"),
            format!("chronicle.local\n+1\n{root}\n"),
            format!("chronicle.local\n\n{root}\n"),
            format!("chronicle.local\n 3\n{root}\n"),
            format!("chronicle.local\n18446744073709551616\n{root}\n"),
            format!("chronicle.local\n3\n{short_root}\n"),
            "chronicle.local\n3\nnot base64!\n".to_owned(),
            format!("chronicle.local\n3\n{}\n", root.trim_end_matches('=')),
            format!("chronicle.local\n3\n{root}\n\next\n"),
            format!("chronicle\tlocal\n3\n{root}\n"),
        ];
        for text in bad {
            assert!(
                matches!(
                    Checkpoint::parse_body(&text),
                    Err(CheckpointError::Malformed(_))
                ),
                "{text:?} was accepted"
            );
        }
    }

    #[test]
    fn signed_checkpoint_opens() {
        let signer = NoteSigner::generate(NAME);
        let note = signer.sign(&checkpoint());
        assert_eq!(
            open_signed_checkpoint(&note, &verifier(&signer)).unwrap(),
            checkpoint()
        );

        let (body, signatures) = note.split_once("\n\n").unwrap();
        assert_eq!(note.matches("\n\n").count(), 1);
        assert_eq!(format!("{body}\n"), checkpoint().body());
        assert!(signatures.starts_with("\u{2014} chronicle.local "));
        assert!(signatures.ends_with('\n'));
        assert_eq!(signatures.lines().count(), 1);
    }

    #[test]
    fn changed_body_fails() {
        let signer = fixed_signer();
        let verifier = verifier(&signer);
        let note = signer.sign(&checkpoint());
        let body_len = checkpoint().body().len();
        for index in 0..body_len - 1 {
            let changed = with_byte_changed(&note, index);
            assert!(
                matches!(
                    open_signed_checkpoint(&changed, &verifier),
                    Err(CheckpointError::BadSignature)
                ),
                "byte {index} changed: {changed:?}"
            );
        }
        // The body's last newline is half of the blank line: without it the note has none.
        let changed = with_byte_changed(&note, body_len - 1);
        assert!(matches!(
            open_signed_checkpoint(&changed, &verifier),
            Err(CheckpointError::Malformed(_))
        ));
    }

    #[test]
    fn changed_signature_fails() {
        let signer = fixed_signer();
        let verifier = verifier(&signer);
        let note = signer.sign(&checkpoint());
        let (head, encoded) = note.trim_end().rsplit_once(' ').unwrap();
        let blob = STANDARD.decode(encoded).unwrap();
        assert_eq!(blob.len(), 68);
        for index in 0..blob.len() {
            let mut changed = blob.clone();
            changed[index] ^= 0x01;
            let changed = format!("{head} {}\n", STANDARD.encode(changed));
            let result = open_signed_checkpoint(&changed, &verifier);
            if index < 4 {
                assert!(
                    matches!(result, Err(CheckpointError::UnknownKey)),
                    "byte {index}"
                );
            } else {
                assert!(
                    matches!(result, Err(CheckpointError::BadSignature)),
                    "byte {index}"
                );
            }
        }
        // A signature of the wrong length under the right key id.
        let truncated = format!("{head} {}\n", STANDARD.encode(&blob[..67]));
        assert!(matches!(
            open_signed_checkpoint(&truncated, &verifier),
            Err(CheckpointError::BadSignature)
        ));
    }

    #[test]
    fn another_key_is_unknown() {
        let note = fixed_signer().sign(&checkpoint());
        let same_name = NoteSigner::generate(NAME);
        let other_name = NoteSigner::new("other.example", fixed_signer().key.clone()).unwrap();
        for other in [same_name, other_name] {
            assert!(matches!(
                open_signed_checkpoint(&note, &verifier(&other)),
                Err(CheckpointError::UnknownKey)
            ));
        }
    }

    #[test]
    fn extra_signature_from_another_key_is_ignored() {
        let signer = fixed_signer();
        let witness = NoteSigner::generate("witness.example/w1");
        let note = signer.sign(&checkpoint());
        let witnessed = witness.sign(&checkpoint());
        let witness_line = witnessed.rsplit_once("\n\n").unwrap().1;
        let (body, own_line) = note.rsplit_once("\n\n").unwrap();
        for both in [
            format!("{note}{witness_line}"),
            format!("{body}\n\n{witness_line}{own_line}"),
        ] {
            assert_eq!(
                open_signed_checkpoint(&both, &verifier(&signer)).unwrap(),
                checkpoint()
            );
            assert_eq!(
                open_signed_checkpoint(&both, &verifier(&witness)).unwrap(),
                checkpoint()
            );
        }
        // A bad signature by the expected key still fails the note, whatever else it carries.
        let other = Checkpoint {
            size: 4,
            ..checkpoint()
        };
        let other_line = signer
            .sign(&other)
            .rsplit_once("\n\n")
            .unwrap()
            .1
            .to_owned();
        let mixed = format!("{body}\n\n{witness_line}{other_line}");
        assert!(matches!(
            open_signed_checkpoint(&mixed, &verifier(&signer)),
            Err(CheckpointError::BadSignature)
        ));
    }

    #[test]
    fn malformed_notes_are_refused() {
        let signer = fixed_signer();
        let verifier = verifier(&signer);
        let note = signer.sign(&checkpoint());
        let (body, line) = note.rsplit_once("\n\n").unwrap();
        let bad = [
            checkpoint().body(),
            note.trim_end().to_owned(),
            format!("{body}\n\n{}", line.replace('\u{2014}', "-")),
            format!("{body}\n\n{}", line.replace(' ', "  ")),
            format!("{body}\n\n{}", line.replace('=', "")),
            format!("{body}\n\n\u{2014} {NAME} AAAA\n"),
            format!("{body}\n\n{line}\n"),
            format!("{body}\r\n\n{line}"),
            format!("{body}\n\n{}", line.repeat(MAX_SIGNATURES + 1)),
        ];
        for note in bad {
            assert!(
                matches!(
                    open_signed_checkpoint(&note, &verifier),
                    Err(CheckpointError::Malformed(_))
                ),
                "{note:?} was accepted"
            );
        }
        // Well signed, but the text is not a checkpoint.
        let text = signer.sign_text("hello\n");
        assert_eq!(open_note(&text, &verifier).unwrap(), "hello\n");
        assert!(matches!(
            open_signed_checkpoint(&text, &verifier),
            Err(CheckpointError::Malformed(_))
        ));
    }

    #[test]
    fn key_id_is_the_spec_hash() {
        let signer = NoteSigner::generate("example.com/log");
        let mut input = b"example.com/log\n\x01".to_vec();
        input.extend_from_slice(signer.key.verifying_key().as_bytes());
        let digest = Sha256::digest(&input);
        assert_eq!(signer.key_id(), digest[..4]);

        let verifier_key = signer.verifier_key();
        let fields: Vec<&str> = verifier_key.splitn(3, '+').collect();
        assert_eq!(fields.len(), 3);
        assert_eq!(fields[0], "example.com/log");
        let expected: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(fields[1], expected);
        let parsed = NoteVerifier::parse(&verifier_key).unwrap();
        assert_eq!(parsed.name, "example.com/log");
        assert_eq!(parsed.key_id, signer.key_id());
        assert_eq!(parsed.key, signer.key.verifying_key());
    }

    #[test]
    fn known_answer() {
        let signer = fixed_signer();
        let verifier_key = "chronicle.local+65e07d0c+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4";
        let note = "chronicle.local\n3\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\n\
                    \u{2014} chronicle.local ZeB9DKXLJlwJOBXswZcnq5T2FyXtYiO+fS2Fcodb9qdLOr95\
                    a4vVs9Woyk/oAnFczImRIajwanUOZykwwf9XxaZAzwY=\n";
        assert_eq!(signer.verifier_key(), verifier_key);
        assert_eq!(signer.sign(&checkpoint()), note);

        // Checked again with nothing but the spec and ed25519-dalek.
        let (body, line) = note.rsplit_once("\n\n").unwrap();
        let body = format!("{body}\n");
        let encoded = line
            .strip_prefix("\u{2014} chronicle.local ")
            .unwrap()
            .trim_end();
        let blob = STANDARD.decode(encoded).unwrap();
        assert_eq!(blob[..4], signer.key_id());
        let signature = Signature::from_slice(&blob[4..]).unwrap();
        let public = STANDARD
            .decode(verifier_key.splitn(3, '+').nth(2).unwrap())
            .unwrap();
        assert_eq!(public[0], 0x01);
        let public = VerifyingKey::from_bytes(&public[1..].try_into().unwrap()).unwrap();
        public.verify_strict(body.as_bytes(), &signature).unwrap();
    }

    /// The example of Go's golang.org/x/mod/sumdb/note, read and signed here.
    #[test]
    fn agrees_with_go_sumdb_note() {
        let private =
            "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let public = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let text = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        let note = format!(
            "{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFY\
             C2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
        let signer = NoteSigner::from_private_key_text(private).unwrap();
        assert_eq!(signer.to_private_key_text(), private);
        assert_eq!(signer.verifier_key(), public);
        assert_eq!(signer.sign_text(text), note);
        assert_eq!(
            open_note(&note, &NoteVerifier::parse(public).unwrap()).unwrap(),
            text
        );
    }

    #[test]
    fn private_key_text_round_trips() {
        let signer = NoteSigner::generate(NAME);
        let text = signer.to_private_key_text();
        assert!(text.starts_with("PRIVATE+KEY+chronicle.local+"));
        let read = NoteSigner::from_private_key_text(&format!("  {text}\n")).unwrap();
        assert_eq!(read.verifier_key(), signer.verifier_key());
        assert_eq!(read.to_private_key_text(), text);
    }

    #[test]
    fn tampered_keys_are_refused() {
        let signer = fixed_signer();
        let private = signer.to_private_key_text();
        let public = signer.verifier_key();
        let hex_id = hex(&signer.key_id());
        let other_id = if hex_id == "00000000" {
            "00000001"
        } else {
            "00000000"
        };
        let bad_private = [
            private.replace(&hex_id, other_id),
            private.replace("PRIVATE+KEY+", ""),
            private.replace("chronicle.local", "other.example"),
            private.replace("+AQ", "+Ag"),
            format!("{private}+extra"),
            private[..private.len() - 4].to_owned(),
        ];
        for text in bad_private {
            assert!(
                matches!(
                    NoteSigner::from_private_key_text(&text),
                    Err(CheckpointError::InvalidKey(_))
                ),
                "{text:?} was accepted"
            );
        }
        let bad_public = [
            public.replace(&hex_id, other_id),
            public.replace(&hex_id, &hex_id[..7]),
            public.replace("chronicle.local", "chronicle local"),
            public.replace("chronicle.local", ""),
            public.replace("+AQ", "+Ag"),
            private.clone(),
        ];
        for text in bad_public {
            assert!(
                matches!(
                    NoteVerifier::parse(&text),
                    Err(CheckpointError::InvalidKey(_))
                ),
                "{text:?} was accepted"
            );
        }
        for name in ["", "a b", "a+b", "a\u{2003}b", "a\u{1}b"] {
            assert!(
                NoteSigner::new(name, signer.key.clone()).is_err(),
                "{name:?} was accepted"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_created_private_and_loaded_again() {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/nested/signing.key");
        let (created, was_created) = load_or_create_key_file(&path, NAME).unwrap();
        assert!(was_created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (loaded, was_created) = load_or_create_key_file(&path, NAME).unwrap();
        assert!(!was_created);
        assert_eq!(loaded.verifier_key(), created.verifier_key());
        let note = loaded.sign(&checkpoint());
        assert_eq!(
            open_signed_checkpoint(&note, &verifier(&created)).unwrap(),
            checkpoint()
        );
    }

    #[test]
    fn bad_key_files_are_refused_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        std::fs::write(&path, "not a key\n").unwrap();
        let shown = path.display().to_string();
        for name in [NAME, "other.example"] {
            match load_or_create_key_file(&path, name) {
                Err(error @ CheckpointError::KeyFile(_)) => {
                    assert!(error.to_string().contains(&shown), "{error}");
                }
                other => panic!("corrupt key file accepted: {other:?}"),
            }
        }
        std::fs::write(&path, fixed_signer().to_private_key_text()).unwrap();
        match load_or_create_key_file(&path, "other.example") {
            Err(error @ CheckpointError::KeyFile(_)) => {
                assert!(error.to_string().contains(&shown), "{error}");
            }
            other => panic!("key under another name accepted: {other:?}"),
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            fixed_signer().to_private_key_text()
        );
    }
}
