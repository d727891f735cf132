//! The DATA body both benchmarks decode (native core and component), shared
//! so that their MB/s figures compare like with like.

/// A message body of `size` octets, already dot-stuffed as a client sends it:
/// text lines of 20 to 78 octets, about one line in 16 starting with a dot
/// (sent as two), and the `.` terminator.
pub fn stuffed_body(size: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(size + size / 32 + 8);
    let mut n = 0u32;
    while body.len() < size {
        n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let len = 20 + (n >> 16) as usize % 59;
        if (n >> 8).is_multiple_of(16) {
            body.extend_from_slice(b"..");
        }
        body.extend((0..len).map(|i| b'a' + ((i as u32 + n) % 26) as u8));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b".\r\n");
    body
}
