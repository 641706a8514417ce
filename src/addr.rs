//! A compact IP address that orders the way the output wants: every IPv4
//! address before every IPv6 one, each family in numeric order.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Addr {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl std::hash::Hash for Addr {
    /// One write per address: the aggregator hashes addresses on every event.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Addr::V4(o) => state.write_u32(u32::from_be_bytes(*o)),
            Addr::V6(o) => state.write_u128(u128::from_be_bytes(*o)),
        }
    }
}

impl Addr {
    /// The zero-padded form of the original tool (`172.016.101.190`), or the
    /// fully expanded lower-case IPv6 form.
    pub fn padded(&self) -> Padded<'_> {
        Padded {
            addr: self,
            port: None,
        }
    }

    /// `padded` followed by `:port`, with IPv6 in brackets. `None` is `?`.
    pub fn padded_with_port(&self, port: Option<u16>) -> Padded<'_> {
        Padded {
            addr: self,
            port: Some(port),
        }
    }

    /// Appends the padded form (and `:port`, `?` for `Some(None)`) to `out`;
    /// the same bytes as [`Addr::padded`], without the formatting machinery.
    pub fn write_padded(&self, out: &mut Vec<u8>, port: Option<Option<u16>>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        match self {
            Addr::V4(o) => {
                for (i, &b) in o.iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    out.extend_from_slice(&[b'0' + b / 100, b'0' + (b / 10) % 10, b'0' + b % 10]);
                }
            }
            Addr::V6(o) => {
                if port.is_some() {
                    out.push(b'[');
                }
                for (i, &b) in o.iter().enumerate() {
                    if i > 0 && i % 2 == 0 {
                        out.push(b':');
                    }
                    let hi = HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
                    let lo = HEX.get(usize::from(b & 15)).copied().unwrap_or(b'0');
                    out.extend_from_slice(&[hi, lo]);
                }
                if port.is_some() {
                    out.push(b']');
                }
            }
        }
        match port {
            None => {}
            Some(None) => out.extend_from_slice(b":?"),
            Some(Some(p)) => {
                out.push(b':');
                push_decimal(out, u64::from(p));
            }
        }
    }

    /// Canonical text form (`172.16.101.190`, `fd00::102:1`).
    pub fn canonical(&self) -> String {
        match self {
            Addr::V4(o) => std::net::Ipv4Addr::from(*o).to_string(),
            Addr::V6(o) => std::net::Ipv6Addr::from(*o).to_string(),
        }
    }
}

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(i..).unwrap_or(&[]));
}

pub struct Padded<'a> {
    addr: &'a Addr,
    port: Option<Option<u16>>,
}

impl fmt::Display for Padded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            Addr::V4([a, b, c, d]) => write!(f, "{a:03}.{b:03}.{c:03}.{d:03}")?,
            Addr::V6(o) => {
                if self.port.is_some() {
                    f.write_str("[")?;
                }
                for (i, pair) in o.chunks_exact(2).enumerate() {
                    if let [hi, lo] = pair {
                        if i > 0 {
                            f.write_str(":")?;
                        }
                        write!(f, "{hi:02x}{lo:02x}")?;
                    }
                }
                if self.port.is_some() {
                    f.write_str("]")?;
                }
            }
        }
        match self.port {
            None => Ok(()),
            Some(None) => f.write_str(":?"),
            Some(Some(p)) => write!(f, ":{p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_is_zero_padded() {
        let a = Addr::V4([172, 16, 101, 190]);
        assert_eq!(a.padded().to_string(), "172.016.101.190");
        assert_eq!(a.padded_with_port(Some(80)).to_string(), "172.016.101.190:80");
        assert_eq!(a.padded_with_port(None).to_string(), "172.016.101.190:?");
        assert_eq!(a.canonical(), "172.16.101.190");
    }

    #[test]
    fn ipv6_is_expanded_and_bracketed_before_a_port() {
        let mut o = [0u8; 16];
        o[0] = 0xfd;
        o[13] = 0x02;
        o[15] = 0x01;
        let a = Addr::V6(o);
        assert_eq!(a.padded().to_string(), "fd00:0000:0000:0000:0000:0000:0002:0001");
        assert_eq!(
            a.padded_with_port(Some(443)).to_string(),
            "[fd00:0000:0000:0000:0000:0000:0002:0001]:443"
        );
        assert_eq!(a.canonical(), "fd00::2:1");
    }

    #[test]
    fn byte_writer_matches_display() {
        let mut o = [0u8; 16];
        o[0] = 0xfd;
        o[15] = 0xab;
        for a in [Addr::V4([1, 22, 203, 0]), Addr::V6(o)] {
            for port in [None, Some(None), Some(Some(0)), Some(Some(65535))] {
                let mut out = Vec::new();
                a.write_padded(&mut out, port);
                let want = match port {
                    None => a.padded().to_string(),
                    Some(p) => a.padded_with_port(p).to_string(),
                };
                assert_eq!(String::from_utf8(out).unwrap(), want);
            }
        }
        for n in [0u64, 7, 10, 99, 100, 65535, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn ipv4_sorts_before_ipv6() {
        let mut v = vec![
            Addr::V6([0; 16]),
            Addr::V4([255, 0, 0, 1]),
            Addr::V4([10, 0, 0, 1]),
        ];
        v.sort();
        assert_eq!(
            v,
            vec![
                Addr::V4([10, 0, 0, 1]),
                Addr::V4([255, 0, 0, 1]),
                Addr::V6([0; 16])
            ]
        );
    }
}
