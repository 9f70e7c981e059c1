//! Signed data (SEATTLE.md A.4): the `\n!e n!timestamp!expiration!sequence!destination! sig`
//! block appended to signed node-manager requests and to the software-update `metainfo`.
//!
//! The signature is textbook RSA (no padding) over the SHA-1 digest of everything before the
//! last `!`, cut into chunks that each get a 0x01 prefix. Exponents are arbitrary: the update
//! key and several clearinghouse keys have e of thousands of bits, which makes verification
//! cost one full-size `modpow` per chunk.

use num_bigint::BigUint;
use sha1::{Digest, Sha1};

use crate::keys::{PrivateKey, PublicKey};

/// Most signature integers we evaluate. The 20-byte digest needs at most 20 chunks (a 1-byte
/// chunk size is the smallest signable key), so more can only be an attack on our CPU.
pub const MAX_SIGNATURE_CHUNKS: usize = 20;

/// Longest signature block (everything after the data) we look at: two 8192-bit keys' worth of
/// digits plus the short fields.
pub const MAX_BLOCK_LEN: usize = 64 * 1024;

/// Why signed data was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedDataError {
    /// The block is missing or does not have the six fields in the right forms.
    #[error("malformed signed data: {0}")]
    Malformed(&'static str),
    /// The signature does not verify with the embedded key.
    #[error("signature does not verify")]
    BadSignature,
    /// Signed by a key other than the one we trust (Seattle reports this as "not signed
    /// correctly", so it shares the `bad_signature` reason).
    #[error("signed by an untrusted key")]
    UntrustedKey,
    /// The expiration time has passed.
    #[error("signature expired")]
    Expired,
    /// The destination does not name this node.
    #[error("not destined for this node")]
    WrongDestination,
}

impl SignedDataError {
    /// Short, bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            SignedDataError::Malformed(_) => "malformed",
            SignedDataError::BadSignature | SignedDataError::UntrustedKey => "bad_signature",
            SignedDataError::Expired => "expired",
            SignedDataError::WrongDestination => "wrong_destination",
        }
    }
}

/// A `tag:number` sequence id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub tag: String,
    pub number: i64,
}

/// A parsed (not yet verified) signed-data block, borrowing from the input.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedData<'a> {
    /// The data before the block (without the `\n` that precedes `!`).
    pub data: &'a [u8],
    /// Everything the signature covers: the input up to, not including, the last `!`.
    pub signed: &'a [u8],
    pub public_key: PublicKey,
    /// The key exactly as written (compared with trusted keys and node keys textually).
    pub key_text: &'a str,
    pub timestamp: Option<f64>,
    pub timestamp_text: &'a str,
    pub expiration: Option<f64>,
    pub expiration_text: &'a str,
    pub sequence: Option<Sequence>,
    pub destination: Option<&'a str>,
    pub signature: Vec<BigUint>,
}

fn malformed(what: &'static str) -> SignedDataError {
    SignedDataError::Malformed(what)
}

/// Python `float()` of a field, or `None` for the literal `None`.
fn parse_time(text: &str) -> Result<Option<f64>, SignedDataError> {
    if text == "None" {
        return Ok(None);
    }
    let t = text.trim();
    // Rust also reads "inf"/"nan" like Python; a non-finite time is still meaningless here.
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(malformed("time")),
    }
}

fn parse_sequence(text: &str) -> Result<Option<Sequence>, SignedDataError> {
    if text == "None" {
        return Ok(None);
    }
    let (tag, number) = text.split_once(':').ok_or(malformed("sequence"))?;
    let number = number
        .trim()
        .parse::<i64>()
        .map_err(|_| malformed("sequence"))?;
    Ok(Some(Sequence {
        tag: tag.to_string(),
        number,
    }))
}

/// Find and parse the signature block of `input`.
pub fn parse(input: &[u8]) -> Result<SignedData<'_>, SignedDataError> {
    let last = input
        .iter()
        .rposition(|&b| b == b'!')
        .ok_or(malformed("no signature block"))?;
    let signed = input.get(..last).ok_or(malformed("no signature block"))?;
    let sig_text = input.get(last + 1..).unwrap_or_default();
    // Split the signed text from the right into data + five fields.
    let mut fields: [&[u8]; 5] = [&[]; 5];
    let mut rest = signed;
    for slot in fields.iter_mut().rev() {
        let bang = rest
            .iter()
            .rposition(|&b| b == b'!')
            .ok_or(malformed("too few fields"))?;
        *slot = rest.get(bang + 1..).unwrap_or_default();
        rest = rest.get(..bang).unwrap_or_default();
    }
    if input.len() - rest.len() > MAX_BLOCK_LEN {
        return Err(malformed("block too long"));
    }
    // The block starts on its own line; the newline belongs to the block, not the data.
    let data = rest
        .strip_suffix(b"\n")
        .ok_or(malformed("no newline before block"))?;
    let [key_b, ts_b, exp_b, seq_b, dest_b] = fields;
    let key_text = text(key_b)?;
    let public_key = PublicKey::parse(key_text).map_err(|_| malformed("key"))?;
    let timestamp_text = text(ts_b)?;
    let expiration_text = text(exp_b)?;
    let timestamp = parse_time(timestamp_text)?;
    let expiration = parse_time(expiration_text)?;
    let sequence = parse_sequence(text(seq_b)?)?;
    let dest_text = text(dest_b)?;
    let destination = (dest_text != "None").then_some(dest_text);
    let signature = parse_signature(text(sig_text)?)?;
    Ok(SignedData {
        data,
        signed,
        public_key,
        key_text,
        timestamp,
        timestamp_text,
        expiration,
        expiration_text,
        sequence,
        destination,
        signature,
    })
}

fn text(b: &[u8]) -> Result<&str, SignedDataError> {
    std::str::from_utf8(b).map_err(|_| malformed("not text"))
}

fn parse_signature(text: &str) -> Result<Vec<BigUint>, SignedDataError> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    if tokens.is_empty() {
        return Err(malformed("empty signature"));
    }
    if tokens.len() > MAX_SIGNATURE_CHUNKS {
        return Err(malformed("too many signature chunks"));
    }
    tokens
        .iter()
        .map(|t| {
            if !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed("signature"));
            }
            BigUint::parse_bytes(t.as_bytes(), 10).ok_or(malformed("signature"))
        })
        .collect()
}

/// Bytes of digest per signature chunk: `floor((bitlen(n) - 1) / 8) - 1` (0 = key too small).
fn chunk_len(n: &BigUint) -> usize {
    let bits = n.bits().saturating_sub(1) / 8;
    bits.saturating_sub(1) as usize
}

/// Largest modulus we verify with. Real keys stop at 4096 bits; an attacker-made key of tens
/// of thousands of bits would cost seconds of `modpow` per check.
pub const MAX_VERIFY_BITS: u64 = 8192;

/// Does `signature` verify for `signed` under `key`? Textbook RSA over SHA-1 chunks.
///
/// Only the chunk count a real signer produces for this modulus is accepted, so a signer
/// cannot make us run extra `modpow`s with chunks that decode to nothing.
pub fn verify_signature(signed: &[u8], signature: &[BigUint], key: &PublicKey) -> bool {
    let step = chunk_len(&key.n);
    if step == 0 || key.n.bits() > MAX_VERIFY_BITS || key.e.bits() > key.n.bits() {
        return false;
    }
    if signature.len() != 20usize.div_ceil(step) {
        return false;
    }
    let digest = Sha1::digest(signed);
    let mut recovered = Vec::with_capacity(digest.len());
    for c in signature {
        let m = c.modpow(&key.e, &key.n).to_bytes_be();
        match m.split_first() {
            Some((1, rest)) => recovered.extend_from_slice(rest),
            _ => return false,
        }
        if recovered.len() > digest.len() {
            return false;
        }
    }
    recovered.as_slice() == digest.as_slice()
}

impl SignedData<'_> {
    /// The signature verifies with the embedded key.
    pub fn verify(&self) -> Result<(), SignedDataError> {
        if verify_signature(self.signed, &self.signature, &self.public_key) {
            Ok(())
        } else {
            Err(SignedDataError::BadSignature)
        }
    }

    /// The embedded key is `trusted` and the signature verifies (`signeddata_iscorrectlysigned`
    /// with a key argument).
    pub fn verify_with(&self, trusted: &PublicKey) -> Result<(), SignedDataError> {
        if self.public_key != *trusted {
            return Err(SignedDataError::UntrustedKey);
        }
        self.verify()
    }

    /// Expired when an expiration is set and not later than `now` (Unix seconds).
    pub fn check_expiry(&self, now: f64) -> Result<(), SignedDataError> {
        match self.expiration {
            Some(exp) if exp <= now => Err(SignedDataError::Expired),
            _ => Ok(()),
        }
    }

    /// Seconds until expiry (negative once expired), if an expiration is set.
    pub fn seconds_until_expiry(&self, now: f64) -> Option<f64> {
        self.expiration.map(|exp| exp - now)
    }

    /// The node manager's destination rule: `None`, or the node key string is one of the
    /// `:`-separated parts.
    pub fn check_destination(&self, node_key_string: &str) -> Result<(), SignedDataError> {
        match self.destination {
            None => Ok(()),
            Some(d) if d.split(':').any(|part| part == node_key_string) => Ok(()),
            Some(_) => Err(SignedDataError::WrongDestination),
        }
    }
}

/// Python 2 `str(float)`: `%.12g`, plus `.0` when the result looks like an integer.
pub fn py2_float_str(value: f64) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.into();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .into();
    }
    const PRECISION: i32 = 12;
    // `{:e}` rounds exactly like C's printf; its exponent decides fixed vs exponent form.
    let sci = format!("{:.*e}", (PRECISION - 1) as usize, value);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..PRECISION).contains(&exp) {
        let mantissa = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (PRECISION - 1 - exp).max(0) as usize;
        let fixed = strip_zeros(&format!("{value:.decimals$}")).to_string();
        if fixed.contains('.') {
            fixed
        } else {
            format!("{fixed}.0")
        }
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Why signing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("key too small to sign with")]
    KeyTooSmall,
    #[error("private key does not belong to the public key")]
    KeyMismatch,
    #[error("field contains '!' or a newline")]
    BadField,
}

/// Sign `data` like `signeddata_signdata`: append the block and the signature.
///
/// `timestamp` and `expiration` are absolute Unix times (`None` writes `None`); the destination
/// is usually the node's key string.
pub fn sign(
    data: &[u8],
    public: &PublicKey,
    private: &PrivateKey,
    timestamp: Option<f64>,
    expiration: Option<f64>,
    sequence: Option<&Sequence>,
    destination: Option<&str>,
) -> Result<Vec<u8>, SignError> {
    let n = private.modulus();
    if n != public.n {
        return Err(SignError::KeyMismatch);
    }
    let step = chunk_len(&n);
    if step == 0 {
        return Err(SignError::KeyTooSmall);
    }
    let bad = |s: &str| s.contains('!') || s.contains('\n');
    let seq_text = match sequence {
        None => "None".to_string(),
        Some(s) if bad(&s.tag) || s.tag.contains(':') => return Err(SignError::BadField),
        Some(s) => format!("{}:{}", s.tag, s.number),
    };
    let dest_text = match destination {
        None => "None",
        Some(d) if bad(d) => return Err(SignError::BadField),
        Some(d) => d,
    };
    let time_text = |t: Option<f64>| t.map_or_else(|| "None".to_string(), py2_float_str);
    let mut out = Vec::with_capacity(data.len() + 2 * public.to_key_string().len());
    out.extend_from_slice(data);
    out.extend_from_slice(
        format!(
            "\n!{}!{}!{}!{}!{}",
            public.to_key_string(),
            time_text(timestamp),
            time_text(expiration),
            seq_text,
            dest_text
        )
        .as_bytes(),
    );
    let digest = Sha1::digest(&out);
    out.push(b'!');
    for chunk in digest.chunks(step) {
        let mut block = Vec::with_capacity(chunk.len() + 1);
        block.push(1u8);
        block.extend_from_slice(chunk);
        let m = BigUint::from_bytes_be(&block);
        out.push(b' ');
        out.extend_from_slice(m.modpow(&private.d, &n).to_string().as_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn py2_float_matches_python_2_str() {
        // Expected strings are what CPython 2.7 prints for these values.
        let cases: [(f64, &str); 12] = [
            (1795495090.79, "1795495090.79"),
            (1795495090.0, "1795495090.0"),
            (1795498685.7912345, "1795498685.79"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (123456789012.0, "123456789012.0"),
            (1234567890123.0, "1.23456789012e+12"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (1.0 / 3.0, "0.333333333333"),
            (0.0, "0.0"),
        ];
        for (v, want) in cases {
            assert_eq!(py2_float_str(v), want, "{v}");
        }
    }

    #[test]
    fn hostile_signatures_are_rejected_without_panicking() {
        let key = PublicKey::parse("3 3233").unwrap(); // too small to carry a chunk
        assert!(!verify_signature(b"x", &[BigUint::from(1u32)], &key));
        let sd =
            parse(b"x\n!65537 747340318809666290119336386599!None!None!None!None! 1 1 1").unwrap();
        // Right chunk count for a 100-bit key is 2; three "empty" chunks are refused.
        assert_eq!(sd.verify(), Err(SignedDataError::BadSignature));
        // A signature integer larger than n is reduced, not a panic.
        let big = format!(
            "x\n!65537 747340318809666290119336386599!None!None!None!None! {} 5",
            "9".repeat(200)
        );
        assert!(parse(big.as_bytes()).unwrap().verify().is_err());
    }

    #[test]
    fn parse_splits_at_the_last_bang() {
        let input = b"a!b\n!3 3233!None!None!t:4!None! 5 6";
        let sd = parse(input).unwrap();
        assert_eq!(sd.data, b"a!b");
        assert_eq!(sd.timestamp, None);
        assert_eq!(
            sd.sequence,
            Some(Sequence {
                tag: "t".into(),
                number: 4
            })
        );
        assert_eq!(sd.signature, vec![BigUint::from(5u32), BigUint::from(6u32)]);
        assert_eq!(sd.signed.len(), input.len() - " 5 6".len() - 1);
    }

    #[test]
    fn parse_rejects_broken_blocks() {
        for bad in [
            &b""[..],
            b"no block at all",
            b"x\n!3 3233!1!2!None! 5",
            b"x!3 3233!1!2!None!None! 5",
            b"x\n!3!1!2!None!None! 5",
            b"x\n!3 3233!one!2!None!None! 5",
            b"x\n!3 3233!1!2!seq!None! 5",
            b"x\n!3 3233!1!2!None!None!",
            b"x\n!3 3233!1!2!None!None! 5x",
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(
                err.reason(),
                "malformed",
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
