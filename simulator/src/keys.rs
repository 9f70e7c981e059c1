//! Public keys in Seattle's forms (SEATTLE.md A.3), deterministic fake node/user keys, and a real
//! RSA key pair with Seattle's textbook signature (A.4) for the update site.
//!
//! Private stand-in for `seattle_protocol::keys` / `signeddata` (not yet landed); to be replaced.

use num_bigint::BigUint;
use rand::{Rng, SeedableRng, rngs::StdRng};
use sha1::{Digest, Sha1};

/// A public key `(e, n)` kept as decimal strings: the simulator only prints and compares them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PubKey {
    pub e: String,
    pub n: String,
}

impl PubKey {
    /// Parses a key string `"e n"` (any whitespace, exactly two decimal tokens).
    pub fn parse(s: &str) -> Option<PubKey> {
        let mut it = s.split_whitespace();
        let (e, n) = (it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        let dec = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        (dec(e) && dec(n)).then(|| PubKey {
            e: e.to_string(),
            n: n.to_string(),
        })
    }

    /// `rsa_publickey_to_string`: `"e n"`.
    pub fn key_string(&self) -> String {
        format!("{} {}", self.e, self.n)
    }

    /// Py2 `str()` of the key dict, the key under which Seattle advertises.
    pub fn advertise_key(&self) -> String {
        format!("{{'e': {}L, 'n': {}L}}", self.e, self.n)
    }

    /// Affix node id: SHA-1 hex of the key string with spaces removed.
    pub fn affix_id(&self) -> String {
        hex::encode(Sha1::digest(format!("{}{}", self.e, self.n).as_bytes()))
    }
}

/// Mixes the world seed with a purpose and an index into one RNG seed.
pub fn sub_seed(seed: u64, purpose: u64, index: u64) -> u64 {
    // SplitMix64 finaliser over the combination: cheap and well spread.
    let mut z = seed
        ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A fake 1024-bit public key (random odd n, e = 65537), the same for the same seed.
pub fn fake_key(seed: u64) -> PubKey {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut bytes = [0u8; 128];
    rng.fill(&mut bytes[..]);
    bytes[0] |= 0x80;
    bytes[127] |= 1;
    PubKey {
        e: "65537".to_string(),
        n: BigUint::from_bytes_be(&bytes).to_str_radix(10),
    }
}

/// A real RSA key pair (the update-site signing key).
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub e: BigUint,
    pub n: BigUint,
    pub d: BigUint,
}

const SMALL_PRIMES: [u32; 24] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
];

fn is_probable_prime(p: &BigUint, rng: &mut StdRng) -> bool {
    for &sp in &SMALL_PRIMES {
        if (p % sp) == BigUint::ZERO {
            return *p == BigUint::from(sp);
        }
    }
    let one = BigUint::from(1u32);
    let p1 = p - &one;
    let s = p1.trailing_zeros().unwrap_or(0);
    let d = &p1 >> s;
    'witness: for _ in 0..24 {
        // A random witness in [2, p-2].
        let a = random_bits(p.bits(), rng) % (&p1 - 2u32) + 2u32;
        let mut x = a.modpow(&d, p);
        if x == one || x == p1 {
            continue;
        }
        for _ in 1..s {
            x = x.modpow(&BigUint::from(2u32), p);
            if x == p1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

fn random_bits(bits: u64, rng: &mut StdRng) -> BigUint {
    let mut bytes = vec![0u8; bits.div_ceil(8) as usize];
    rng.fill(&mut bytes[..]);
    BigUint::from_bytes_be(&bytes) >> (bytes.len() as u64 * 8 - bits)
}

fn gen_prime(bits: u64, rng: &mut StdRng) -> BigUint {
    loop {
        let mut c = random_bits(bits, rng);
        c.set_bit(bits - 1, true);
        c.set_bit(bits - 2, true);
        c.set_bit(0, true);
        if is_probable_prime(&c, rng) {
            return c;
        }
    }
}

/// Modular inverse by the extended Euclidean algorithm on signed big integers.
fn mod_inverse(a: &BigUint, m: &BigUint) -> Option<BigUint> {
    use num_bigint::BigInt;
    let (mut old_r, mut r) = (BigInt::from(a.clone()), BigInt::from(m.clone()));
    let (mut old_s, mut s) = (BigInt::from(1), BigInt::from(0));
    while r != BigInt::from(0) {
        let q = &old_r / &r;
        let nr = &old_r - &q * &r;
        old_r = std::mem::replace(&mut r, nr);
        let ns = &old_s - &q * &s;
        old_s = std::mem::replace(&mut s, ns);
    }
    if old_r != BigInt::from(1) {
        return None;
    }
    let m = BigInt::from(m.clone());
    ((old_s % &m + &m) % &m).to_biguint()
}

impl KeyPair {
    /// Generates a key pair of `bits` bits (e = 65537) from a seed.
    pub fn generate(bits: u64, seed: u64) -> KeyPair {
        let mut rng = StdRng::seed_from_u64(seed);
        let e = BigUint::from(65537u32);
        loop {
            let p = gen_prime(bits / 2, &mut rng);
            let q = gen_prime(bits - bits / 2, &mut rng);
            if p == q {
                continue;
            }
            let phi = (&p - 1u32) * (&q - 1u32);
            if let Some(d) = mod_inverse(&e, &phi) {
                return KeyPair { e, n: p * q, d };
            }
        }
    }

    /// Loads a private key file `"d p q"` plus e = 65537 (rsa.r2py's private key form).
    pub fn from_private_string(text: &str, e: &str) -> Option<KeyPair> {
        let nums: Vec<BigUint> = text
            .split_whitespace()
            .map(|t| t.parse().ok())
            .collect::<Option<_>>()?;
        let [d, p, q] = nums.as_slice() else {
            return None;
        };
        Some(KeyPair {
            e: e.parse().ok()?,
            n: p * q,
            d: d.clone(),
        })
    }

    pub fn public(&self) -> PubKey {
        PubKey {
            e: self.e.to_str_radix(10),
            n: self.n.to_str_radix(10),
        }
    }

    /// Seattle's signature of `text`: " " + one decimal integer per digest chunk.
    pub fn sign(&self, text: &[u8]) -> String {
        let digest = Sha1::digest(text);
        let chunk = ((self.n.bits() - 1) / 8) as usize - 1;
        let mut out = String::new();
        for part in digest.chunks(chunk.max(1)) {
            let mut m = vec![1u8];
            m.extend_from_slice(part);
            let c = BigUint::from_bytes_be(&m).modpow(&self.d, &self.n);
            out.push(' ');
            out.push_str(&c.to_str_radix(10));
        }
        out
    }

    /// Checks a signature made by [`KeyPair::sign`] (used by tests and the self-check).
    pub fn verify(e: &BigUint, n: &BigUint, text: &[u8], sig: &str) -> bool {
        let mut got = Vec::new();
        for tok in sig.split_whitespace() {
            let Ok(c) = tok.parse::<BigUint>() else {
                return false;
            };
            let m = c.modpow(e, n).to_bytes_be();
            match m.split_first() {
                Some((1, rest)) => got.extend_from_slice(rest),
                _ => return false,
            }
        }
        got == Sha1::digest(text).as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_affix_id_and_advertise_form() {
        let k = PubKey::parse("65537 747340318809666290119336386599").unwrap();
        assert_eq!(k.affix_id(), "592341b61c284815f3d0ff7311ed02873889bf4f");
        assert_eq!(
            k.advertise_key(),
            "{'e': 65537L, 'n': 747340318809666290119336386599L}"
        );
        assert!(PubKey::parse("1 2 3").is_none());
        assert!(PubKey::parse("x 2").is_none());
    }

    #[test]
    fn fake_keys_are_deterministic() {
        assert_eq!(fake_key(7), fake_key(7));
        assert_ne!(fake_key(7), fake_key(8));
        assert!(fake_key(7).n.len() >= 308);
    }

    #[test]
    fn sign_then_verify() {
        let kp = KeyPair::generate(512, 1);
        let sig = kp.sign(b"hello");
        assert!(sig.starts_with(' '));
        assert!(KeyPair::verify(&kp.e, &kp.n, b"hello", &sig));
        assert!(!KeyPair::verify(&kp.e, &kp.n, b"hellp", &sig));
    }
}
