//! CRC-32 (the zip checksum) of checkpoint entries, fast natively and in wasm.
//!
//! Natively, crc32fast's carry-less-multiply code runs at about memory speed (≈ 3 % of a model
//! load's instructions). wasm has no carry-less multiply, and crc32fast's table code there took
//! about a fifth of a model load (MobileCLIP-S0, 216 MB, in Node). So wasm builds first shrink
//! the data without changing its CRC:
//!
//! A CRC is the remainder of the message polynomial (times x³²) modulo the CRC polynomial P, so
//! it does not change when a multiple of P is added at any place (for the same length). The
//! sparse multiple `Q = x^(8·3006) + x^(8·2866) + x^(8·2215) + 1` (found by a birthday search over
//! x^(8k) mod P) clears every byte but the last 3006 with three XORs per byte: going front to
//! back, each byte `q[j]` is cleared by adding Q aligned there, which flips the bytes `TAPS` later
//! by the same bits. As a recurrence: `q[j] = data[j] ^ q[j - 140] ^ q[j - 791] ^ q[j - 3006]`,
//! 16 bytes at a time (every tap is at least 16 bytes back). The last 3006 bytes, with what
//! reached them, go through crc32fast. In V8 (Node 20) this is 3 to 4.5 times faster than
//! crc32fast's tables (about 8 % of the S0 load instead of about 21 %); natively crc32fast stays
//! (about 3 times faster than this).

/// How far ahead of a cleared byte each of Q's lower terms lands, in bytes.
const TAPS: [usize; 3] = [140, 791, SPAN];
/// Degree of Q in bytes: the bytes left over.
const SPAN: usize = 3006;
/// Bytes of data reduced per refill of the window (a window plus a block fit in L1).
const BLOCK: usize = 16 << 10;

/// The zip CRC-32 of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    if cfg!(target_arch = "wasm32") { reduced(data) } else { crc32fast::hash(data) }
}

/// CRC-32 through the sparse reduction (any target; the wasm path).
fn reduced(data: &[u8]) -> u32 {
    let n = data.len();
    if n < 2 * SPAN {
        return crc32fast::hash(data);
    }
    // The register starts at !0, which is the same as inverting the first four bytes and
    // starting from 0; with 0, the cleared bytes add nothing.
    let mut head = [0u8; 16];
    head.copy_from_slice(&data[..16]);
    head[..4].iter_mut().for_each(|b| *b ^= 0xff);
    let load = |b: &[u8], at: usize| u128::from_le_bytes(b[at..at + 16].try_into().expect("16 bytes"));
    let cleared = n - SPAN; // bytes [0, cleared) become zero
    let vectors_end = cleared / 16 * 16;
    // window[..SPAN] holds q for the SPAN bytes before `pos`; a block of new q values follows.
    let mut window = vec![0u8; SPAN + BLOCK];
    let mut pos = 0;
    while pos < vectors_end {
        let len = (vectors_end - pos).min(BLOCK);
        for j in (0..len).step_by(16) {
            let x = if pos + j == 0 { u128::from_le_bytes(head) } else { load(data, pos + j) };
            let w = SPAN + j;
            let q = x ^ load(&window, w - TAPS[0]) ^ load(&window, w - TAPS[1]) ^ load(&window, w - TAPS[2]);
            window[w..w + 16].copy_from_slice(&q.to_le_bytes());
        }
        window.copy_within(len..len + SPAN, 0);
        pos += len;
    }
    // The last (< 16) bytes to clear and the bytes left over, one at a time.
    window.truncate(SPAN);
    let mut rest = Vec::with_capacity(SPAN);
    for (j, &byte) in data.iter().enumerate().skip(pos) {
        let w = window.len();
        let v = TAPS.iter().fold(byte, |v, &t| v ^ window[w - t]);
        if j < cleared {
            window.push(v);
        } else {
            window.push(0); // left-over bytes are not cleared: they add nothing further on
            rest.push(v);
        }
    }
    let mut tail = crc32fast::Hasher::new_with_initial(!0); // a register of 0
    tail.update(&rest);
    tail.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Multiplication modulo the CRC-32 polynomial (normal bit order).
    fn mul_mod(mut a: u64, mut b: u64) -> u64 {
        const P: u64 = 0x1_04C1_1DB7;
        let mut r = 0;
        while b != 0 {
            if b & 1 != 0 {
                r ^= a;
            }
            b >>= 1;
            a <<= 1;
            if a >> 32 != 0 {
                a ^= P;
            }
        }
        r
    }

    fn x_pow_mod(bits: usize) -> u64 {
        (0..bits).fold(1, |r, _| mul_mod(r, 2))
    }

    #[test]
    fn q_is_a_multiple_of_the_crc_polynomial() {
        let q = [0, SPAN - TAPS[1], SPAN - TAPS[0], SPAN].iter().fold(0, |acc, &e| acc ^ x_pow_mod(8 * e));
        assert_eq!(q, 0);
        assert!(TAPS.iter().all(|&t| t >= 16), "the 16-byte steps need every tap at least 16 bytes back");
    }

    #[test]
    fn reduced_equals_crc32fast() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let data: Vec<u8> = (0..3 * BLOCK + 2 * SPAN + 100)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let lengths = (0..200).chain((2 * SPAN - 20..2 * SPAN + 40).step_by(3)).chain([
            BLOCK,
            BLOCK + SPAN,
            BLOCK + SPAN + 15,
            BLOCK + SPAN + 16,
            BLOCK + SPAN + 17,
            2 * BLOCK + 2 * SPAN + 1,
            data.len() - 7,
        ]);
        for len in lengths {
            for start in [0, 3] {
                let d = &data[start..start + len];
                assert_eq!(reduced(d), crc32fast::hash(d), "{len} bytes from {start}");
            }
        }
        assert_eq!(reduced(&[0u8; 10_000]), crc32fast::hash(&[0u8; 10_000]));
        assert_eq!(reduced(&[0xffu8; 10_000]), crc32fast::hash(&[0xffu8; 10_000]));
    }
}
