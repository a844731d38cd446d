//! The AES-128 modes Common Encryption and HLS use, over RustCrypto's `aes` (AES-NI when the CPU has it):
//! CTR for 'cenc', CBC with a crypt:skip block pattern for 'cbcs', and plain CBC for whole segments.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecrypt, BlockEncrypt, BlockEncryptMut, InnerIvInit, KeyInit};
use aes::Aes128;

pub const BLOCK: usize = 16;

/// An AES-128-CTR keystream (128-bit big-endian counter); `apply_keystream` encrypts and decrypts.
pub type Ctr = ctr::Ctr128BE<Aes128>;

/// An expanded AES-128 key.
#[derive(Clone)]
pub struct Key {
    aes: Aes128,
}

impl Key {
    pub fn new(raw: &[u8; 16]) -> Self {
        Self {
            aes: Aes128::new(raw.into()),
        }
    }

    /// The CTR keystream from counter block `iv`. In 'cenc' the protected ranges of a sample's subsamples are
    /// one continuous stream: apply it to each in turn.
    pub fn ctr(&self, iv: &[u8; 16]) -> Ctr {
        Ctr::from_core(ctr::CtrCore::inner_iv_init(self.aes.clone(), iv.into()))
    }

    /// 'cbcs' pattern encryption of one protected range: CBC chained from `iv` over the encrypted blocks only,
    /// `crypt` blocks encrypted then `skip` left clear, repeating; a pattern of 0:0 encrypts every whole block.
    /// A trailing partial block stays clear.
    pub fn cbc_pattern_encrypt(&self, iv: &[u8; 16], data: &mut [u8], crypt: usize, skip: usize) {
        let whole = data.len() / BLOCK * BLOCK;
        if skip == 0 {
            // every whole block, chained: one pass of the CBC mode (no per-block dispatch)
            let cbc = cbc::Encryptor::<Aes128>::inner_iv_init(self.aes.clone(), iv.into());
            // NoPadding over a whole number of blocks cannot fail
            let _ = cbc.encrypt_padded_mut::<NoPadding>(&mut data[..whole], whole);
            return;
        }
        let mut chain = *iv;
        for_each_crypt_block(data, crypt, skip, |block| {
            xor(block, &chain);
            self.aes.encrypt_block(block.into());
            chain.copy_from_slice(block);
        });
    }

    /// The inverse of [`Key::cbc_pattern_encrypt`].
    pub fn cbc_pattern_decrypt(&self, iv: &[u8; 16], data: &mut [u8], crypt: usize, skip: usize) {
        let mut chain = *iv;
        for_each_crypt_block(data, crypt, skip, |block| {
            let mut next = [0u8; BLOCK];
            next.copy_from_slice(block);
            self.aes.decrypt_block(block.into());
            xor(block, &chain);
            chain = next;
        });
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)") // never print key material
    }
}

fn xor(block: &mut [u8], with: &[u8; 16]) {
    for (a, b) in block.iter_mut().zip(with) {
        *a ^= b;
    }
}

fn for_each_crypt_block(data: &mut [u8], crypt: usize, skip: usize, mut f: impl FnMut(&mut [u8])) {
    let whole = data.len() / BLOCK * BLOCK;
    let (crypt, skip) = if crypt == 0 && skip == 0 {
        (1, 0)
    } else {
        (crypt, skip)
    };
    let mut blocks = data[..whole].chunks_exact_mut(BLOCK);
    loop {
        for _ in 0..crypt {
            match blocks.next() {
                Some(block) => f(block),
                None => return,
            }
        }
        for _ in 0..skip {
            if blocks.next().is_none() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use aes::cipher::StreamCipher;

    const KEY: [u8; 16] = *b"0123456789abcdef";
    const IV: [u8; 16] = *b"fedcba9876543210";

    #[test]
    fn ctr_matches_the_nist_vector() {
        // NIST SP 800-38A F.5.1 (CTR-AES128.Encrypt), first block.
        let key = Key::new(&[
            0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf,
            0x4f, 0x3c,
        ]);
        let iv = [
            0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd,
            0xfe, 0xff,
        ];
        let mut block = [
            0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96, 0xe9, 0x3d, 0x7e, 0x11, 0x73, 0x93,
            0x17, 0x2a,
        ];
        key.ctr(&iv).apply_keystream(&mut block);
        assert_eq!(
            block,
            [
                0x87, 0x4d, 0x61, 0x91, 0xb6, 0x20, 0xe3, 0x26, 0x1b, 0xef, 0x68, 0x64, 0x99, 0x0d,
                0xb6, 0xce
            ]
        );
    }

    #[test]
    fn ctr_parts_are_one_stream() {
        let key = Key::new(&KEY);
        let mut whole = [7u8; 40];
        key.ctr(&IV).apply_keystream(&mut whole);
        let mut split = [7u8; 40];
        let (a, b) = split.split_at_mut(16);
        let mut stream = key.ctr(&IV);
        stream.apply_keystream(a);
        stream.apply_keystream(b);
        assert_eq!(whole, split);
    }

    #[test]
    fn pattern_touches_only_crypt_blocks_and_round_trips() {
        let key = Key::new(&KEY);
        let clear: Vec<u8> = (0..(16 * 23 + 5)).map(|i| i as u8).collect();
        let mut data = clear.clone();
        key.cbc_pattern_encrypt(&IV, &mut data, 1, 9);
        for (i, (a, b)) in clear.chunks(16).zip(data.chunks(16)).enumerate() {
            let encrypted = a.len() == 16 && i % 10 == 0;
            assert_eq!(a != b, encrypted, "block {i}");
        }
        key.cbc_pattern_decrypt(&IV, &mut data, 1, 9);
        assert_eq!(data, clear);
    }

    #[test]
    fn full_cbc_leaves_the_partial_tail() {
        let key = Key::new(&KEY);
        let clear = [9u8; 37];
        let mut data = clear;
        key.cbc_pattern_encrypt(&IV, &mut data, 0, 0);
        assert!(data[..16] != clear[..16] && data[16..32] != clear[16..32]);
        assert_eq!(data[32..], clear[32..]);
        key.cbc_pattern_decrypt(&IV, &mut data, 0, 0);
        assert_eq!(data, clear);
    }
}
