//! Incremental UTF-8 decoding of a byte stream that arrives in arbitrary chunks.
//!
//! A terminal stream is cut wherever the transport cut it, often inside a multibyte character.
//! Decoding each chunk on its own would turn both halves into U+FFFD; instead the incomplete tail
//! (at most 3 bytes) is kept and completed by the next chunk. The result is exactly
//! `String::from_utf8_lossy` of the whole stream, however it was split.

/// Decoder state for one stream (output and input each have their own).
#[derive(Debug, Default)]
pub(crate) struct Utf8Stream {
    tail: [u8; 4],
    tail_len: usize,
}

const REPLACEMENT: &str = "\u{FFFD}";

/// Length of the character a valid leading byte starts.
fn char_width(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

impl Utf8Stream {
    /// Decodes `input`, handing complete text pieces to `emit` in order.
    pub(crate) fn decode(&mut self, mut input: &[u8], emit: &mut impl FnMut(&str)) {
        if self.tail_len > 0 {
            let need = char_width(self.tail[0]) - self.tail_len;
            let take = need.min(input.len());
            let mut joined = self.tail;
            joined[self.tail_len..self.tail_len + take].copy_from_slice(&input[..take]);
            let joined = &joined[..self.tail_len + take];
            match std::str::from_utf8(joined) {
                Ok(text) => {
                    emit(text);
                    input = &input[take..];
                    self.tail_len = 0;
                }
                Err(e) => match e.error_len() {
                    // Still incomplete: the chunk was shorter than the rest of the character.
                    None => {
                        self.tail[..joined.len()].copy_from_slice(joined);
                        self.tail_len = joined.len();
                        return;
                    }
                    // The kept prefix was a valid start, so the invalid subpart covers all of it
                    // (n >= tail_len); only its remainder is consumed from the new chunk.
                    Some(n) => {
                        emit(REPLACEMENT);
                        input = &input[n.saturating_sub(self.tail_len)..];
                        self.tail_len = 0;
                    }
                },
            }
        }
        // Fast path: a chunk that is valid as a whole (nearly always) is checked by the
        // vectorised validator, much quicker than walking chunks.
        if let Ok(text) = std::str::from_utf8(input) {
            if !text.is_empty() {
                emit(text);
            }
            return;
        }
        let end = input.as_ptr_range().end;
        for chunk in input.utf8_chunks() {
            if !chunk.valid().is_empty() {
                emit(chunk.valid());
            }
            let invalid = chunk.invalid();
            if invalid.is_empty() {
                continue;
            }
            let at_end = invalid.as_ptr_range().end == end;
            let incomplete = std::str::from_utf8(invalid).is_err_and(|e| e.error_len().is_none());
            if at_end && incomplete {
                self.tail[..invalid.len()].copy_from_slice(invalid);
                self.tail_len = invalid.len();
            } else {
                emit(REPLACEMENT);
            }
        }
    }

    /// Ends the stream: a dangling incomplete character becomes one U+FFFD.
    pub(crate) fn finish(&mut self, emit: &mut impl FnMut(&str)) {
        if self.tail_len > 0 {
            self.tail_len = 0;
            emit(REPLACEMENT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_split(chunks: &[&[u8]]) -> Vec<String> {
        let mut stream = Utf8Stream::default();
        let mut pieces = Vec::new();
        for chunk in chunks {
            let mut text = String::new();
            stream.decode(chunk, &mut |s| text.push_str(s));
            pieces.push(text);
        }
        let mut text = String::new();
        stream.finish(&mut |s| text.push_str(s));
        pieces.push(text);
        pieces
    }

    #[test]
    fn multibyte_split_at_every_position_comes_out_whole_in_the_later_chunk() {
        for text in ["é", "€", "😀", "a😀b"] {
            let bytes = text.as_bytes();
            for cut in 1..bytes.len() {
                let pieces = decode_split(&[&bytes[..cut], &bytes[cut..]]);
                assert_eq!(pieces.concat(), text, "{text:?} cut at {cut}");
                assert!(!pieces[0].contains('\u{FFFD}'));
            }
        }
        // One byte per chunk: the emoji appears only once its last byte arrived.
        let pieces = decode_split(&[b"\xf0", b"\x9f", b"\x98", b"\x80"]);
        assert_eq!(pieces, vec!["", "", "", "😀", ""]);
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        assert_eq!(decode_split(&[b"a\xffb"]).concat(), "a\u{FFFD}b");
        assert_eq!(decode_split(&[b"\xe2\x82", b"A"]).concat(), "\u{FFFD}A");
        assert_eq!(decode_split(&[b"\xe2", b"\x82A"]).concat(), "\u{FFFD}A");
        // A dangling tail is flushed at finish, in the final piece.
        let pieces = decode_split(&[b"ok\xf0\x9f"]);
        assert_eq!(pieces, vec!["ok", "\u{FFFD}"]);
    }

    #[test]
    fn any_split_equals_lossy_decoding_of_the_whole_stream() {
        // Deterministic pseudo-random bytes biased towards UTF-8 lead/continuation bytes.
        let mut state = 0x9e3779b97f4a7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: &[u8] =
            b"a\n\x1b\x80\x9f\xbf\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff\xed\xa0\xc0\xf5";
        for _ in 0..2000 {
            let len = (next() % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let mut chunks = Vec::new();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let n = 1 + (next() % 5) as usize;
                let (head, tail) = rest.split_at(n.min(rest.len()));
                chunks.push(head);
                rest = tail;
            }
            assert_eq!(
                decode_split(&chunks).concat(),
                String::from_utf8_lossy(&bytes),
                "bytes {bytes:x?} chunks {chunks:x?}"
            );
        }
    }
}
