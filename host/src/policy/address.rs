pub fn split(address: &str) -> (&str, Option<&str>) {
    match address.rfind('@') {
        Some(at) => (&address[..at], Some(&address[at + 1..])),
        None => (address, None),
    }
}
