//! The `ip` field type's encoding: IPv4 and IPv6 addresses kept as the 32 hex digits of their
//! 16-byte IPv6 form (IPv4 mapped into `::ffff:0:0/96`, as Lucene's `InetAddressPoint` does),
//! so that keyword order is address order and a CIDR block is one keyword range.

use std::net::{IpAddr, Ipv6Addr};

/// Bits of an IPv6 address; a CIDR prefix longer than this (or than 32 for IPv4) is refused.
const IPV6_BITS: u32 = 128;
/// Bits of an IPv4 address.
const IPV4_BITS: u32 = 32;

/// Parses an address in either family (`192.168.0.1`, `::1`, `::ffff:10.0.0.1`).
pub fn parse(text: &str) -> Option<IpAddr> {
    text.trim().parse().ok()
}

fn to_bits(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn encode_bits(bits: u128) -> String {
    format!("{bits:032x}")
}

/// The indexed form of an address.
pub fn encode(address: IpAddr) -> String {
    encode_bits(to_bits(address))
}

/// The address an indexed form stands for, as Elasticsearch prints it (IPv4-mapped addresses
/// as plain IPv4). `None` if `encoded` is not an indexed form.
pub fn decode(encoded: &str) -> Option<String> {
    if encoded.len() != 32 {
        return None;
    }
    let address = Ipv6Addr::from(u128::from_str_radix(encoded, 16).ok()?);
    Some(match address.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => address.to_string(),
    })
}

/// The indexed form of the address after `encoded`, or `None` after the last address (or for
/// something that is not an indexed form).
pub fn next_up(encoded: &str) -> Option<String> {
    if encoded.len() != 32 {
        return None;
    }
    let bits = u128::from_str_radix(encoded, 16).ok()?;
    bits.checked_add(1).map(encode_bits)
}

/// The first and last indexed forms inside a CIDR block (`10.0.0.0/8`, `2001:db8::/32`).
/// `None` when `text` is not `address/prefix` with a prefix that fits the family.
pub fn cidr_bounds(text: &str) -> Option<(String, String)> {
    let (address, prefix) = text.trim().split_once('/')?;
    let address = parse(address)?;
    let prefix: u32 = prefix.parse().ok()?;
    let prefix = match address {
        IpAddr::V4(_) if prefix <= IPV4_BITS => prefix + (IPV6_BITS - IPV4_BITS),
        IpAddr::V6(_) if prefix <= IPV6_BITS => prefix,
        _ => return None,
    };
    let host_mask = u128::MAX.checked_shr(prefix).unwrap_or(0);
    let bits = to_bits(address);
    Some((
        encode_bits(bits & !host_mask),
        encode_bits(bits | host_mask),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_and_sort_in_address_order() {
        for text in ["192.168.0.1", "::1", "2001:db8::ff00:42:8329", "0.0.0.0"] {
            let encoded = encode(parse(text).unwrap());
            assert_eq!(decode(&encoded).unwrap(), text);
        }
        let order = ["::1", "1.2.3.4", "9.0.0.0", "10.0.0.0", "2001:db8::1"];
        let encoded: Vec<String> = order.iter().map(|a| encode(parse(a).unwrap())).collect();
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(encoded, sorted);
        assert_eq!(decode("xyz"), None);
    }

    #[test]
    fn cidr_blocks_become_inclusive_bounds() {
        let (lo, hi) = cidr_bounds("192.168.0.0/16").unwrap();
        assert_eq!(decode(&lo).unwrap(), "192.168.0.0");
        assert_eq!(decode(&hi).unwrap(), "192.168.255.255");
        let (lo, hi) = cidr_bounds("2001:db8::/32").unwrap();
        assert_eq!(decode(&lo).unwrap(), "2001:db8::");
        assert_eq!(
            decode(&hi).unwrap(),
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        let (lo, hi) = cidr_bounds("10.1.2.3/32").unwrap();
        assert_eq!(lo, hi);
        let (lo, hi) = cidr_bounds("::/0").unwrap();
        assert_eq!(
            (lo.as_str(), hi.as_str()),
            ("0".repeat(32).as_str(), "f".repeat(32).as_str())
        );
        assert_eq!(cidr_bounds("10.0.0.0/33"), None);
        let (_, hi) = cidr_bounds("10.0.0.0/25").unwrap();
        assert_eq!(decode(&next_up(&hi).unwrap()).unwrap(), "10.0.0.128");
        let (_, hi) = cidr_bounds("0.0.0.0/0").unwrap();
        assert_eq!(decode(&next_up(&hi).unwrap()).unwrap(), "::1:0:0:0");
        assert_eq!(next_up(&"f".repeat(32)), None);
        assert_eq!(cidr_bounds("10.0.0.0"), None);
        assert_eq!(cidr_bounds("nope/8"), None);
    }
}
