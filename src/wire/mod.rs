//! Checked views of the protocol headers connbal reads.
//!
//! Every view is built by a `parse` function that checks the header's own
//! length fields against the captured bytes; once it returns `Ok`, no
//! accessor can panic or read outside the record. Payload getters return
//! slices tied to the capture buffer, not to the view.
//!
//! Headers are `zerocopy` structs read in place (`ref_from_prefix`), so a
//! short buffer is an error value, never an out-of-bounds read.

pub mod dns;
pub mod ethernet;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

use zerocopy::{FromBytes, Immutable, KnownLayout};

/// Which layer a dissection stopped at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Link,
    Ipv4,
    Ipv6,
    Udp,
    Tcp,
}

/// Why a header could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The captured bytes end before the header does (snap length).
    Truncated {
        layer: Layer,
        required: usize,
        len: usize,
    },
    /// A length or version field contradicts the header itself.
    Malformed { layer: Layer },
}

/// Reads a fixed-size header from the front of `bytes`.
#[inline(always)]
pub(crate) fn header<T>(bytes: &[u8], layer: Layer) -> Result<(&T, &[u8]), WireError>
where
    T: FromBytes + KnownLayout + Immutable + zerocopy::Unaligned,
{
    T::ref_from_prefix(bytes).map_err(|_| WireError::Truncated {
        layer,
        required: std::mem::size_of::<T>(),
        len: bytes.len(),
    })
}
