//! What is simulator-specific about keys: everything derives from the scenario seed, so the same
//! seed builds the same world. Key forms, generation and signing are `seattle_protocol`'s.

use num_bigint::BigUint;
use rand::{Rng, SeedableRng, rngs::StdRng};
use seattle_protocol::keys::{Exponent, PrivateKey, PublicKey, generate_keypair_with};

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

/// A fake 1024-bit public key (random odd n, e = 65537), the same for the same seed. Nobody
/// signs with node or user keys the simulator makes up, so no prime search is spent on them.
pub fn fake_key(seed: u64) -> PublicKey {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut bytes = [0u8; 128];
    rng.fill(&mut bytes[..]);
    bytes[0] |= 0x80;
    bytes[127] |= 1;
    PublicKey {
        e: BigUint::from(65537u32),
        n: BigUint::from_bytes_be(&bytes),
    }
}

/// A real key pair (the update site's signing key), generated from a seed.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub public: PublicKey,
    pub private: PrivateKey,
}

impl KeyPair {
    /// A `bits`-bit key pair with e = 65537 (`bits` is clamped to what the generator takes).
    pub fn generate(bits: u64, seed: u64) -> KeyPair {
        let mut rng = StdRng::seed_from_u64(seed);
        let (public, private) = generate_keypair_with(&mut rng, bits.clamp(64, 8192), Exponent::F4)
            .expect("the size is clamped to the generator's range");
        KeyPair { public, private }
    }

    /// The public half; `key_string()` on it is the `.publickey` file's text.
    pub fn public(&self) -> Public<'_> {
        Public(&self.public)
    }
}

/// The public half of a [`KeyPair`], for callers that write its key file.
pub struct Public<'a>(&'a PublicKey);

impl std::ops::Deref for Public<'_> {
    type Target = PublicKey;
    fn deref(&self) -> &PublicKey {
        self.0
    }
}

impl Public<'_> {
    /// `"e n"`, what a `.publickey` file holds.
    pub fn key_string(&self) -> String {
        self.0.to_key_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_keys_are_deterministic() {
        assert_eq!(fake_key(7), fake_key(7));
        assert_ne!(fake_key(7), fake_key(8));
        assert!(fake_key(7).n.to_string().len() >= 308);
    }

    #[test]
    fn generated_pairs_are_deterministic_and_match() {
        let a = KeyPair::generate(512, 1);
        assert_eq!(a.public, KeyPair::generate(512, 1).public);
        assert_ne!(a.public, KeyPair::generate(512, 2).public);
        assert_eq!(a.private.modulus(), a.public.n);
        assert_eq!(a.public().key_string(), a.public.to_key_string());
    }
}
