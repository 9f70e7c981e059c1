//! RSA keys, key strings and advertise keys (SEATTLE.md A.3).
//!
//! A public key is `(e, n)`; its key string is `"<e> <n>"`. What the node manager announces to
//! the advertise services is not the key string but Python 2's `str()` of the key dict
//! ([`PublicKey::advertise_key`]). Affix node ids are the SHA-1 of the key string with the
//! spaces removed ([`PublicKey::affix_id`]).
//!
//! [`generate_keypair`] makes keys for the simulator (it signs its own metainfo and requests);
//! it is a plain Miller–Rabin prime search, not a hardened key generator.

use std::fmt;
use std::str::FromStr;

use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::{One, Zero};
use rand::RngCore;
use sha1::{Digest, Sha1};

/// Longest key string or key file we parse. A 4096-bit key with a 4096-bit exponent is about
/// 2,470 characters; the cap keeps quadratic decimal parsing of hostile input cheap.
pub const MAX_KEY_TEXT: usize = 16 * 1024;

/// Why a key string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key text longer than {MAX_KEY_TEXT} bytes")]
    TooLong,
    #[error("key text must have exactly {expected} whitespace-separated numbers")]
    WrongTokenCount { expected: usize },
    #[error("key component is not a decimal number")]
    NotDecimal,
    #[error("key component out of range")]
    OutOfRange,
}

impl KeyError {
    /// Short, bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            KeyError::TooLong => "too_large",
            KeyError::WrongTokenCount { .. } | KeyError::NotDecimal => "malformed",
            KeyError::OutOfRange => "invalid_key",
        }
    }
}

/// Parse `expected` decimal tokens separated by any whitespace (what `rsa.r2py` does with
/// `split()`; surrounding whitespace, such as a key file's trailing newline, is ignored).
fn parse_tokens(text: &str, expected: usize) -> Result<Vec<BigUint>, KeyError> {
    if text.len() > MAX_KEY_TEXT {
        return Err(KeyError::TooLong);
    }
    let tokens: Vec<&str> = text.split_whitespace().collect();
    if tokens.len() != expected {
        return Err(KeyError::WrongTokenCount { expected });
    }
    tokens
        .iter()
        .map(|t| {
            // Strict digits: BigUint's own parser would also take `_` separators.
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(KeyError::NotDecimal);
            }
            BigUint::parse_bytes(t.as_bytes(), 10).ok_or(KeyError::NotDecimal)
        })
        .collect()
}

/// An RSA public key `(e, n)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    pub e: BigUint,
    pub n: BigUint,
}

impl PublicKey {
    /// Parse a key string `"e n"` or the contents of a `*.publickey` file.
    ///
    /// Rejects `e = 0` and `n < 2`: no real key has them and modular arithmetic with such a
    /// modulus is meaningless (and would panic in `modpow`).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut v = parse_tokens(text, 2)?;
        let n = v.pop().unwrap_or_default();
        let e = v.pop().unwrap_or_default();
        if e.is_zero() || n < BigUint::from(2u32) {
            return Err(KeyError::OutOfRange);
        }
        Ok(PublicKey { e, n })
    }

    /// The key string `"<e> <n>"` (`rsa_publickey_to_string`).
    pub fn to_key_string(&self) -> String {
        format!("{} {}", self.e, self.n)
    }

    /// Python 2 `str()` of the key dict, the form used as an advertise key:
    /// `{'e': <e>L, 'n': <n>L}`.
    pub fn advertise_key(&self) -> String {
        format!("{{'e': {}L, 'n': {}L}}", self.e, self.n)
    }

    /// Affix node id: SHA-1 hex of the key string with the space removed.
    pub fn affix_id(&self) -> String {
        sha1_hex(format!("{}{}", self.e, self.n).as_bytes())
    }

    /// SHA-1 hex of the key string; a bounded stand-in for a key in `_info` metrics.
    pub fn fingerprint(&self) -> String {
        sha1_hex(self.to_key_string().as_bytes())
    }

    /// Size of the modulus in bits.
    pub fn bits(&self) -> u64 {
        self.n.bits()
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        PublicKey::parse(s)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.e, self.n)
    }
}

/// An RSA private key as `rsa.r2py` stores it: `"<d> <p> <q>"`.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey {
    pub d: BigUint,
    pub p: BigUint,
    pub q: BigUint,
}

// Keep private material out of logs and panics.
impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey { .. }")
    }
}

impl PrivateKey {
    /// Parse a private key string or `*.privatekey` file.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut v = parse_tokens(text, 3)?;
        let q = v.pop().unwrap_or_default();
        let p = v.pop().unwrap_or_default();
        let d = v.pop().unwrap_or_default();
        if d.is_zero() || p < BigUint::from(2u32) || q < BigUint::from(2u32) {
            return Err(KeyError::OutOfRange);
        }
        Ok(PrivateKey { d, p, q })
    }

    /// `"<d> <p> <q>"`.
    pub fn to_key_string(&self) -> String {
        format!("{} {} {}", self.d, self.p, self.q)
    }

    /// The modulus `p·q`.
    pub fn modulus(&self) -> BigUint {
        &self.p * &self.q
    }
}

impl FromStr for PrivateKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        PrivateKey::parse(s)
    }
}

/// Lowercase SHA-1 hex (`sha_hexhash`).
pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// Public exponent choice for [`generate_keypair_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exponent {
    /// e = 65537, what `rsa.r2py` and `generatekeys.py` use.
    F4,
    /// A random odd exponent of a quarter of the modulus size, like `rsa.r2py` makes: the
    /// software-update key and the production state keys have ~1024-bit e for 4096-bit n.
    Random,
    /// A random odd exponent of this many bits (at least 2, below the modulus size).
    RandomBits(u64),
}

/// Why key generation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyGenError {
    #[error("modulus size must be between 64 and 8192 bits")]
    BadSize,
}

/// A fresh key pair with e = 65537, from the thread RNG.
pub fn generate_keypair(bits: u64) -> Result<(PublicKey, PrivateKey), KeyGenError> {
    generate_keypair_with(&mut rand::rng(), bits, Exponent::F4)
}

/// A fresh key pair whose modulus has exactly `bits` bits.
pub fn generate_keypair_with<R: RngCore + ?Sized>(
    rng: &mut R,
    bits: u64,
    exponent: Exponent,
) -> Result<(PublicKey, PrivateKey), KeyGenError> {
    if !(64..=8192).contains(&bits) {
        return Err(KeyGenError::BadSize);
    }
    let one = BigUint::one();
    loop {
        let p = random_prime(rng, bits - bits / 2);
        let q = random_prime(rng, bits / 2);
        if p == q {
            continue;
        }
        let n = &p * &q;
        if n.bits() != bits {
            continue;
        }
        let phi = (&p - &one) * (&q - &one);
        let e = match exponent {
            Exponent::F4 => BigUint::from(65537u32),
            Exponent::Random | Exponent::RandomBits(_) => {
                let e_bits = match exponent {
                    Exponent::RandomBits(b) => b.clamp(2, bits - 1),
                    _ => (bits / 4).max(2),
                };
                let mut e = random_bits(rng, e_bits) | &one;
                // Search upwards for an exponent coprime with phi; half of odd numbers are.
                while !e.gcd(&phi).is_one() {
                    e += 2u32;
                }
                e
            }
        };
        let Some(d) = e.modinv(&phi) else { continue };
        return Ok((PublicKey { e, n }, PrivateKey { d, p, q }));
    }
}

/// A uniformly random number below 2^bits with the top bit set.
fn random_bits<R: RngCore + ?Sized>(rng: &mut R, bits: u64) -> BigUint {
    let nbytes = bits.div_ceil(8) as usize;
    let mut buf = vec![0u8; nbytes];
    rng.fill_bytes(&mut buf);
    let excess = (nbytes as u64 * 8 - bits) as u32;
    if let Some(first) = buf.first_mut() {
        *first &= 0xffu8 >> excess;
        *first |= 0x80u8 >> excess;
    }
    BigUint::from_bytes_be(&buf)
}

const SMALL_PRIMES: [u32; 54] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173, 179, 181, 191, 193,
    197, 199, 211, 223, 227, 229, 233, 239, 241, 251, 257,
];

fn random_prime<R: RngCore + ?Sized>(rng: &mut R, bits: u64) -> BigUint {
    loop {
        // Top two bits set so that p·q has exactly the requested size.
        let mut c = random_bits(rng, bits) | BigUint::one();
        if bits >= 2 {
            c.set_bit(bits - 2, true);
        }
        if is_probable_prime(rng, &c, 40) {
            return c;
        }
    }
}

/// Miller–Rabin with `rounds` random bases, after trial division by small primes.
pub fn is_probable_prime<R: RngCore + ?Sized>(rng: &mut R, n: &BigUint, rounds: u32) -> bool {
    let two = BigUint::from(2u32);
    if *n < two {
        return false;
    }
    if *n == two {
        return true;
    }
    if n.is_even() {
        return false;
    }
    for &sp in &SMALL_PRIMES {
        let sp = BigUint::from(sp);
        if *n == sp {
            return true;
        }
        if (n % &sp).is_zero() {
            return false;
        }
    }
    let one = BigUint::one();
    let n_minus_1 = n - &one;
    let s = n_minus_1.trailing_zeros().unwrap_or(0);
    let d = &n_minus_1 >> s;
    let bits = n.bits();
    'witness: for _ in 0..rounds {
        // A base in [2, n-2]; reducing a random number mod (n-3) is close enough to uniform.
        let a = random_bits(rng, bits + 8) % (n - 3u32) + &two;
        let mut x = a.modpow(&d, n);
        if x == one || x == n_minus_1 {
            continue;
        }
        for _ in 1..s {
            x = x.modpow(&two, n);
            if x == n_minus_1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_bad_token_counts_and_digits() {
        assert!(PublicKey::parse("65537").is_err());
        assert!(PublicKey::parse("1 2 3").is_err());
        assert!(PublicKey::parse("65537 1_000").is_err());
        assert!(PublicKey::parse("65537 -5").is_err());
        assert_eq!(PublicKey::parse("3 0").unwrap_err().reason(), "invalid_key");
        let k = PublicKey::parse("  65537\t3233\n").unwrap();
        assert_eq!(k.to_key_string(), "65537 3233");
    }

    #[test]
    fn generated_keys_round_trip_textbook_rsa() {
        let mut rng = rand::rng();
        for exp in [Exponent::F4, Exponent::Random] {
            let (public, private) = generate_keypair_with(&mut rng, 256, exp).unwrap();
            assert_eq!(public.bits(), 256);
            assert_eq!(private.modulus(), public.n);
            if exp == Exponent::Random {
                // A quarter of the modulus, like rsa.r2py.
                assert!((64..=65).contains(&public.e.bits()), "{}", public.e.bits());
            }
            let m = BigUint::from(0x01_dead_beefu64);
            let c = m.modpow(&private.d, &public.n);
            assert_eq!(c.modpow(&public.e, &public.n), m);
        }
    }

    #[test]
    fn miller_rabin_knows_small_numbers() {
        let mut rng = rand::rng();
        let primes: Vec<u32> = (0..600u32)
            .filter(|&k| is_probable_prime(&mut rng, &BigUint::from(k), 8))
            .collect();
        let naive: Vec<u32> = (0..600u32)
            .filter(|&k| k >= 2 && (2..k).all(|d| k % d != 0))
            .collect();
        assert_eq!(primes, naive);
        // Mersenne primes 2^89-1 and 2^127-1 pass; their product has no small factor, so only
        // the Miller-Rabin rounds can reject it.
        let m89 = (BigUint::one() << 89u32) - 1u32;
        let m127 = (BigUint::one() << 127u32) - 1u32;
        assert!(is_probable_prime(&mut rng, &m89, 16));
        assert!(is_probable_prime(&mut rng, &m127, 16));
        assert!(!is_probable_prime(&mut rng, &(&m89 * &m127), 16));
    }
}
