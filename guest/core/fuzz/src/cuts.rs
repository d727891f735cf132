//! Deterministic splits of one input into the pieces a host would feed.
//! The split is derived from the input itself, so a failing input replays
//! exactly; empty pieces are included on purpose (a read of 0 bytes must
//! change nothing).

/// FNV-1a: a seed for [`pieces`] that depends on every input byte.
pub fn seed_of(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Splits `input` into pieces of 0 to `max_piece` bytes, chosen by a
/// xorshift generator started from `seed`.
pub fn pieces(input: &[u8], seed: u64, max_piece: usize) -> Vec<&[u8]> {
    let mut state = seed | 1;
    let mut rest = input;
    let mut out = Vec::new();
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % (max_piece as u64 + 1)) as usize;
        let (piece, tail) = rest.split_at(len.min(rest.len()));
        out.push(piece);
        rest = tail;
    }
    out
}

/// One byte per call: the split at which every action's position in the
/// input is exact.
pub fn bytes(input: &[u8]) -> Vec<&[u8]> {
    input.chunks(1).collect()
}

/// Cuts `pieces` (consecutive parts of one input) further at each of the
/// input positions `at`, which are in increasing order.
pub fn cut_at<'a>(pieces: Vec<&'a [u8]>, at: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    for piece in pieces {
        let (mut rest, mut rest_start) = (piece, start);
        for &cut in at {
            if rest_start < cut && cut < rest_start + rest.len() {
                let (head, tail) = rest.split_at(cut - rest_start);
                out.push(head);
                (rest, rest_start) = (tail, cut);
            }
        }
        out.push(rest);
        start += piece.len();
    }
    out
}
