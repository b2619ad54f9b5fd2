//! How bytes sit in the journal's files: *blocks*, each one write of the
//! journal (one group commit), checked by a CRC, and what a file holds
//! when it is read back — whole blocks, a torn tail, or damage.
//!
//! ```text
//! block := magic u32 (LE, "VWJ1") · length u32 (LE) · crc32(length · payload) u32 (LE) · payload
//! ```
//!
//! Pure functions over byte slices: the rules of what a file means are
//! here, tested on their own, and the I/O is elsewhere (`journal.rs`,
//! `recover.rs`).
//!
//! # Torn tail or damage
//!
//! A crash can leave the last write of a file incomplete: a *torn tail*.
//! A bad block is taken for one only if no whole block follows it anywhere
//! in the file (the rest is scanned for the magic of a valid block); then
//! the file is cut back to the last whole block. A bad block with a whole
//! block after it is damage — a flipped byte, a lost sector — and reading
//! fails naming the offset, so that no record before or after it is
//! silently dropped.

/// The first bytes of every block.
pub(crate) const MAGIC: u32 = u32::from_le_bytes(*b"VWJ1");

/// Bytes before a block's payload.
pub(crate) const HEADER: usize = 12;

/// The largest payload a block may have (a write larger than this is
/// refused before it is written; a header claiming more is damage).
pub(crate) const MAX_PAYLOAD: usize = 1 << 30;

fn crc(len: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// `payload` as a block, appended to `out`.
pub(crate) fn encode_block(payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let len = payload.len() as u32;
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc(len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The whole block at `at`, if there is one: its payload's range.
fn block_at(bytes: &[u8], at: usize) -> Option<std::ops::Range<usize>> {
    let header = bytes.get(at..at.checked_add(HEADER)?)?;
    let word = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
    if word(0) != MAGIC {
        return None;
    }
    let len = word(4);
    if len as usize > MAX_PAYLOAD {
        return None;
    }
    let start = at + HEADER;
    let end = start.checked_add(len as usize)?;
    let payload = bytes.get(start..end)?;
    (crc(len, payload) == word(8)).then_some(start..end)
}

/// What a file holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Read {
    /// The payloads of its whole blocks, in order.
    pub(crate) blocks: Vec<std::ops::Range<usize>>,
    /// Where the whole blocks end: the file's good length.
    pub(crate) end: usize,
    /// What follows them.
    pub(crate) tail: Tail,
}

/// What follows a file's whole blocks.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Nothing: the file ends with its last whole block.
    Clean,
    /// An incomplete or bad last write of this many bytes, with no whole
    /// block after it: cut it off.
    Torn(usize),
    /// A bad block at this offset with a whole block after it (at the
    /// second offset): the file is damaged.
    Damaged { at: usize, next_good: usize },
}

/// Reads `bytes` as a sequence of blocks (see the module docs).
pub(crate) fn read(bytes: &[u8]) -> Read {
    let mut blocks = Vec::new();
    let mut at = 0;
    while let Some(r) = block_at(bytes, at) {
        at = r.end;
        blocks.push(r);
    }
    let tail = if at == bytes.len() {
        Tail::Clean
    } else {
        let magic = MAGIC.to_le_bytes();
        let next_good = (at + 1..bytes.len().saturating_sub(HEADER - 1))
            .filter(|&i| bytes[i..i + 4] == magic)
            .find(|&i| block_at(bytes, i).is_some());
        match next_good {
            Some(next_good) => Tail::Damaged { at, next_good },
            None => Tail::Torn(bytes.len() - at),
        }
    };
    Read {
        blocks,
        end: at,
        tail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(payloads: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::new();
        let mut ends = Vec::new();
        for p in payloads {
            encode_block(p, &mut out);
            ends.push(out.len());
        }
        (out, ends)
    }

    #[test]
    fn whole_blocks_read_back() {
        let (bytes, ends) = file(&[b"one", b"", b"three"]);
        let r = read(&bytes);
        assert_eq!(r.tail, Tail::Clean);
        assert_eq!(r.end, bytes.len());
        let got: Vec<&[u8]> = r.blocks.iter().map(|b| &bytes[b.clone()]).collect();
        assert_eq!(got, [&b"one"[..], b"", b"three"]);
        assert_eq!(r.blocks[2].end, ends[2]);
    }

    #[test]
    fn a_file_cut_anywhere_in_its_last_block_is_a_torn_tail() {
        let (bytes, ends) = file(&[b"first", b"second", &[7u8; 100]]);
        for cut in ends[1] + 1..bytes.len() {
            let r = read(&bytes[..cut]);
            assert_eq!(r.blocks.len(), 2, "cut at {cut}");
            assert_eq!(r.end, ends[1]);
            assert_eq!(r.tail, Tail::Torn(cut - ends[1]), "cut at {cut}");
        }
    }

    #[test]
    fn a_flipped_byte_before_a_whole_block_is_damage() {
        let (bytes, ends) = file(&[b"first", b"second record", b"third"]);
        // Every byte of the middle block: header or payload.
        for at in ends[0]..ends[1] {
            let mut b = bytes.clone();
            b[at] ^= 0x40;
            let r = read(&b);
            assert_eq!(r.blocks.len(), 1, "flip at {at}");
            assert_eq!(
                r.tail,
                Tail::Damaged {
                    at: ends[0],
                    next_good: ends[1]
                },
                "flip at {at}"
            );
        }
    }

    #[test]
    fn a_flipped_byte_in_the_last_block_is_a_torn_tail() {
        // Nothing whole follows it: it is the write a crash interrupted.
        let (bytes, ends) = file(&[b"first", b"last"]);
        let mut b = bytes.clone();
        b[ends[0] + HEADER + 1] ^= 1;
        assert_eq!(read(&b).tail, Tail::Torn(bytes.len() - ends[0]));
    }

    #[test]
    fn garbage_and_huge_lengths_never_panic() {
        let mut junk = MAGIC.to_le_bytes().to_vec();
        junk.extend_from_slice(&u32::MAX.to_le_bytes());
        junk.extend_from_slice(&[0; 20]);
        assert_eq!(read(&junk).tail, Tail::Torn(junk.len()));
        assert_eq!(read(&[]).tail, Tail::Clean);
        assert_eq!(read(&[1, 2, 3]).tail, Tail::Torn(3));
    }
}
