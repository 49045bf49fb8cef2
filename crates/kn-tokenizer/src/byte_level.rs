//! GPT-2's reversible byte-to-unicode mapping used by byte-level BPE.
//!
//! Every byte value 0..=255 is assigned a printable Unicode character: the printable Latin-1
//! bytes (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) stand for themselves, and the remaining 68 bytes are
//! mapped, in increasing order, to U+0100, U+0101, ... (so a space becomes `Ġ`, a newline `Ċ`).
//! Vocabulary strings of byte-level BPE models are written in this alphabet.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The symbol for every byte, indexed by byte value.
pub fn byte_to_char_table() -> &'static [char; 256] {
    static TABLE: OnceLock<[char; 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = ['\0'; 256];
        let mut next_extra: u32 = 0;
        for (b, slot) in table.iter_mut().enumerate() {
            let printable = (0x21..=0x7e).contains(&b)
                || (0xa1..=0xac).contains(&b)
                || (0xae..=0xff).contains(&b);
            let code = if printable {
                b as u32
            } else {
                let c = 256 + next_extra;
                next_extra += 1;
                c
            };
            // All codes are below 0x200 and therefore valid scalar values.
            *slot = char::from_u32(code).unwrap_or('\u{fffd}');
        }
        table
    })
}

/// The inverse of [`byte_to_char_table`].
pub fn char_to_byte_map() -> &'static HashMap<char, u8> {
    static MAP: OnceLock<HashMap<char, u8>> = OnceLock::new();
    MAP.get_or_init(|| {
        byte_to_char_table()
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect()
    })
}

/// Maps the UTF-8 bytes of `text` to the byte-level alphabet (e.g. `" São"` -> `"ĠSÃ£o"`).
pub fn byte_level_encode(text: &str) -> String {
    let table = byte_to_char_table();
    text.bytes().map(|b| table[usize::from(b)]).collect()
}

/// Appends the bytes a vocabulary string stands for to `out`.
///
/// As in Hugging Face's `ByteLevel` decoder: if every character of `token` belongs to the
/// byte-level alphabet, the mapped bytes are appended; otherwise (e.g. an added token such as
/// `<｜begin▁of▁sentence｜>`) the token's own UTF-8 bytes are appended unchanged.
pub fn byte_level_decode_into(token: &str, out: &mut Vec<u8>) {
    let map = char_to_byte_map();
    let start = out.len();
    for c in token.chars() {
        match map.get(&c) {
            Some(&b) => out.push(b),
            None => {
                out.truncate(start);
                out.extend_from_slice(token.as_bytes());
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_a_bijection_with_gpt2_landmarks() {
        let table = byte_to_char_table();
        assert_eq!(table[b' ' as usize], 'Ġ');
        assert_eq!(table[b'\n' as usize], 'Ċ');
        assert_eq!(table[b'a' as usize], 'a');
        assert_eq!(table[0], 'Ā');
        assert_eq!(char_to_byte_map().len(), 256);
        for b in 0..=255u8 {
            assert_eq!(char_to_byte_map()[&table[b as usize]], b);
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let s = "São Paulo 😀\n\t";
        let mapped = byte_level_encode(s);
        let mut out = Vec::new();
        byte_level_decode_into(&mapped, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), s);
    }
}
