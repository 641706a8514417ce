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

    /// Appends the padded form (and `:port`, `?` for `Some(None)`) to
    /// `text`: the same bytes as [`Addr::padded`], without the formatting
    /// machinery, built on the stack and written out in one copy.
    pub fn padded_into(&self, text: &mut Short, port: Option<Option<u16>>) {
        match self {
            Addr::V4(o) => {
                // `ddd.` four times, the last dot dropped.
                let mut t = [b'.'; 16];
                for (group, &b) in t.chunks_exact_mut(4).zip(o) {
                    if let ([d0, d1, d2, _], Some(&[a, b, c])) = (group, DECIMAL3.get(usize::from(b))) {
                        (*d0, *d1, *d2) = (a, b, c);
                    }
                }
                text.push(t.get(..15).unwrap_or_default());
            }
            Addr::V6(o) => {
                if port.is_some() {
                    text.push(b"[");
                }
                // `xxxx:` eight times, the last colon dropped.
                let mut t = [b':'; 40];
                for (group, pair) in t.chunks_exact_mut(5).zip(o.chunks_exact(2)) {
                    if let ([h0, h1, h2, h3, _], &[a, b]) = (group, pair)
                        && let (Some(&[x0, x1]), Some(&[x2, x3])) =
                            (HEX2.get(usize::from(a)), HEX2.get(usize::from(b)))
                    {
                        (*h0, *h1, *h2, *h3) = (x0, x1, x2, x3);
                    }
                }
                text.push(t.get(..39).unwrap_or_default());
                if port.is_some() {
                    text.push(b"]");
                }
            }
        }
        match port {
            None => {}
            Some(None) => text.push(b":?"),
            Some(Some(p)) => {
                text.push(b":");
                text.push_decimal(u64::from(p));
            }
        }
    }

    /// A key that orders as addresses do (every IPv4 address before every
    /// IPv6 one, each family in numeric order), compared as integers.
    #[inline]
    pub fn order_key(&self) -> (bool, u128) {
        match self {
            Addr::V4(o) => (false, u128::from(u32::from_be_bytes(*o))),
            Addr::V6(o) => (true, u128::from_be_bytes(*o)),
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

/// Every byte in three decimal digits (`007`). (Built at compile time:
/// an index out of range would fail the build, not a run.)
#[allow(clippy::indexing_slicing)]
static DECIMAL3: [[u8; 3]; 256] = {
    let mut t = [[0u8; 3]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [
            b'0' + (i / 100) as u8,
            b'0' + (i / 10 % 10) as u8,
            b'0' + (i % 10) as u8,
        ];
        i += 1;
    }
    t
};

/// Every byte in two lower-case hex digits (built at compile time).
#[allow(clippy::indexing_slicing)]
static HEX2: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 15]];
        i += 1;
    }
    t
};

/// A short text built on the stack: room for a client's address and a
/// tab (at most 40 bytes), an address with its port (at most 47) and two
/// 64-bit numbers (20 digits each) with their separators, one output line
/// but its name.
pub struct Short {
    bytes: [u8; SHORT_LEN],
    len: usize,
}

const SHORT_LEN: usize = 160;

/// A [`Short`] this long or shorter is appended by one copy of this many
/// bytes, whose length the compiler knows (a few vector moves, where a
/// copy of a length known only at run time is a call).
const SHORT_COPY: usize = 64;

impl Default for Short {
    fn default() -> Self {
        Short {
            bytes: [0; SHORT_LEN],
            len: 0,
        }
    }
}

impl Short {
    /// Appends `b`. Callers write at most [`SHORT_LEN`] bytes in all (see
    /// the type); past that, bytes would be dropped, and debug builds stop.
    #[inline]
    pub fn push(&mut self, b: &[u8]) {
        debug_assert!(self.len + b.len() <= SHORT_LEN, "Short overflows");
        if let Some(to) = self.bytes.get_mut(self.len..self.len + b.len()) {
            to.copy_from_slice(b);
            self.len += b.len();
        }
    }

    /// Appends `n` in decimal, its digits written in place (counted
    /// first), a single digit without a loop.
    #[inline]
    pub fn push_decimal(&mut self, mut n: u64) {
        if n < 10 {
            self.push(&[b'0' + n as u8]);
            return;
        }
        let count = n.ilog10() as usize + 1;
        debug_assert!(self.len + count <= SHORT_LEN, "Short overflows");
        if let Some(to) = self.bytes.get_mut(self.len..self.len + count) {
            for d in to.iter_mut().rev() {
                *d = b'0' + (n % 10) as u8;
                n /= 10;
            }
            self.len += count;
        }
    }

    /// Drops all but the first `len` bytes.
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends the text to `buf`: a short one by a copy of
    /// [`SHORT_COPY`] bytes, the bytes past its end then cut off again.
    #[inline]
    pub fn append_to(&self, buf: &mut Vec<u8>) {
        let at = buf.len();
        match self.bytes.first_chunk::<SHORT_COPY>() {
            Some(head) if self.len <= SHORT_COPY => {
                buf.extend_from_slice(head);
                buf.truncate(at + self.len);
            }
            _ => buf.extend_from_slice(self.as_bytes()),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }
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
                let mut out = Short::default();
                a.padded_into(&mut out, port);
                let want = match port {
                    None => a.padded().to_string(),
                    Some(p) => a.padded_with_port(p).to_string(),
                };
                assert_eq!(String::from_utf8(out.as_bytes().to_vec()).unwrap(), want);
            }
        }
        for n in [
            0u64,
            7,
            9,
            10,
            99,
            100,
            65535,
            9_999_999_999_999_999_999,
            10_000_000_000_000_000_000,
            u64::MAX,
        ] {
            let mut out = Short::default();
            out.push_decimal(n);
            assert_eq!(String::from_utf8(out.as_bytes().to_vec()).unwrap(), n.to_string());
        }
    }

    #[test]
    fn appended_text_is_cut_at_its_end() {
        // Short texts take the fixed-length copy, and the bytes it copies
        // past the text's end must not stay in the buffer; longer ones the
        // plain copy. Each is appended after what the buffer holds.
        for len in [0, 1, SHORT_COPY - 1, SHORT_COPY, SHORT_COPY + 1, SHORT_LEN] {
            let mut t = Short::default();
            for i in 0..len {
                t.push(&[b'a' + (i % 26) as u8]);
            }
            let mut buf = b"before|".to_vec();
            t.append_to(&mut buf);
            buf.extend_from_slice(b"|after");
            let want: Vec<u8> = b"before|"
                .iter()
                .copied()
                .chain((0..len).map(|i| b'a' + (i % 26) as u8))
                .chain(b"|after".iter().copied())
                .collect();
            assert_eq!(buf, want, "{len} bytes");
            // Cut back, the text appends only what is left.
            t.truncate(len / 2);
            let mut buf = Vec::new();
            t.append_to(&mut buf);
            assert_eq!(buf.len(), len / 2);
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

    #[test]
    fn order_key_orders_as_addresses_do() {
        let addrs = [
            Addr::V4([0, 0, 0, 0]),
            Addr::V4([10, 0, 0, 1]),
            Addr::V4([10, 0, 1, 0]),
            Addr::V4([255, 255, 255, 255]),
            Addr::V6([0; 16]),
            Addr::V6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255]),
            Addr::V6([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            Addr::V6([0xff; 16]),
        ];
        for a in &addrs {
            for b in &addrs {
                assert_eq!(a.cmp(b), a.order_key().cmp(&b.order_key()), "{a:?} against {b:?}");
            }
        }
    }

    #[test]
    fn short_text_holds_the_longest_line_part() {
        let mut t = Short::default();
        Addr::V6([0xff; 16]).padded_into(&mut t, None);
        t.push(b"\t");
        Addr::V6([0xff; 16]).padded_into(&mut t, Some(Some(65535)));
        t.push(b"\t");
        t.push_decimal(u64::MAX);
        t.push(b"\t");
        t.push_decimal(u64::MAX);
        t.push(b"\t");
        let want = format!(
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\t[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535\t{}\t{}\t",
            u64::MAX,
            u64::MAX
        );
        assert_eq!(t.as_bytes(), want.as_bytes());
        let mut v = Short::default();
        Addr::V4([1, 20, 255, 0]).padded_into(&mut v, Some(None));
        assert_eq!(v.as_bytes(), b"001.020.255.000:?");
    }
}
