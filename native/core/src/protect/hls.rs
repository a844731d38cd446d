//! HLS `METHOD=AES-128` (RFC 8216 4.3.2.4 and 5.2): a whole media segment encrypted with AES-128-CBC and PKCS#7
//! padding. Without an `IV` attribute a client uses the segment's media sequence number as a 128-bit big-endian
//! IV, so that is the default here too.

use crate::error::{Error, Result};

use super::bytes16;
use super::cipher::{Key, BLOCK};

/// The IV a client derives from a media sequence number when the playlist gives none.
pub fn sequence_iv(media_sequence: u64) -> [u8; 16] {
    u128::from(media_sequence).to_be_bytes()
}

/// Encrypt a whole segment (the result is 1 to 16 bytes longer: PKCS#7 always pads).
pub fn encrypt(data: &[u8], key: &[u8], iv: &[u8]) -> Result<Vec<u8>> {
    let key = Key::new(&bytes16(key, "an AES-128 key")?);
    let iv = bytes16(iv, "an IV")?;
    let pad = BLOCK - data.len() % BLOCK;
    let mut out = Vec::with_capacity(data.len() + pad);
    out.extend_from_slice(data);
    out.resize(data.len() + pad, pad as u8);
    key.cbc_pattern_encrypt(&iv, &mut out, 0, 0);
    Ok(out)
}

/// Decrypt a whole segment and check and strip its padding.
pub fn decrypt(data: &[u8], key: &[u8], iv: &[u8]) -> Result<Vec<u8>> {
    let key = Key::new(&bytes16(key, "an AES-128 key")?);
    let iv = bytes16(iv, "an IV")?;
    if data.is_empty() || !data.len().is_multiple_of(BLOCK) {
        return Err(Error::InvalidArgument(format!(
            "AES-128 ciphertext must be a positive multiple of 16 bytes, got {}",
            data.len()
        )));
    }
    let mut out = data.to_vec();
    key.cbc_pattern_decrypt(&iv, &mut out, 0, 0);
    let pad = usize::from(out[out.len() - 1]);
    if pad == 0
        || pad > BLOCK
        || !out[out.len() - pad..]
            .iter()
            .all(|b| usize::from(*b) == pad)
    {
        return Err(Error::InvalidArgument(
            "bad PKCS#7 padding (wrong key or IV?)".into(),
        ));
    }
    out.truncate(out.len() - pad);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn nist_cbc_vector_and_padding() {
        // NIST SP 800-38A F.2.1 (CBC-AES128.Encrypt), first block; then a full block of padding.
        let key = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let iv = hex("000102030405060708090a0b0c0d0e0f");
        let out = encrypt(&hex("6bc1bee22e409f96e93d7e117393172a"), &key, &iv).unwrap();
        assert_eq!(out.len(), 32);
        assert_eq!(out[..16], hex("7649abac8119b246cee98e9b12e9197d")[..]);
        assert_eq!(
            decrypt(&out, &key, &iv).unwrap(),
            hex("6bc1bee22e409f96e93d7e117393172a")
        );
    }

    #[test]
    fn round_trips_every_length_around_a_block() {
        let key = [3u8; 16];
        let iv = sequence_iv(7);
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let enc = encrypt(&data, &key, &iv).unwrap();
            assert_eq!(enc.len(), (len / 16 + 1) * 16);
            assert_eq!(decrypt(&enc, &key, &iv).unwrap(), data);
        }
    }

    #[test]
    fn sequence_iv_is_big_endian() {
        let iv = sequence_iv(0x0102);
        assert_eq!(&iv[14..], &[1, 2]);
        assert!(iv[..14].iter().all(|b| *b == 0));
    }

    #[test]
    fn bad_inputs() {
        assert!(encrypt(b"x", &[0; 15], &[0; 16]).is_err());
        assert!(encrypt(b"x", &[0; 16], &[0; 8]).is_err());
        assert!(decrypt(&[0; 15], &[0; 16], &[0; 16]).is_err());
        assert!(decrypt(&[], &[0; 16], &[0; 16]).is_err());
        let enc = encrypt(b"hello", &[1; 16], &[0; 16]).unwrap();
        assert!(
            decrypt(&enc, &[2; 16], &[0; 16]).is_err()
                || decrypt(&enc, &[2; 16], &[0; 16]).unwrap() != b"hello"
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
