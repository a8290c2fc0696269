//! The protocol of the monitor's attach socket, shared by the monitor and the
//! engine's `attach`.
//!
//! A client connects to the unix stream socket the monitor listens on and sends one
//! request byte: [`WANT_STDIN`] or [`OUTPUT_ONLY`]. The monitor answers a stdin
//! request with a [`Kind::Stdin`] frame carrying, as `SCM_RIGHTS`, a descriptor of the
//! container's input (the terminal's master side, or the write end of its stdin
//! pipe), which the client writes to directly (and resizes, for a terminal); or with
//! [`Kind::NoStdin`] when the container has no input. From the moment it connects,
//! the client gets every chunk of output as a frame, and a last [`Kind::Exit`] frame
//! with the exit code when the container ends; then the monitor closes the socket.
//! A client that does not keep up (its socket buffer is full) is disconnected rather
//! than allowed to hold the container's output back.
//!
//! A frame is a 5-byte header, the kind and the payload's length (big-endian
//! `u32`), then the payload.

/// Request byte: send the container's input descriptor.
pub const WANT_STDIN: u8 = b'i';
/// Request byte: output only.
pub const OUTPUT_ONLY: u8 = b'o';

/// Bytes of a frame header.
pub const HEADER_LEN: usize = 5;

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Output the container wrote to stdout (or its terminal).
    Stdout,
    /// Output the container wrote to stderr.
    Stderr,
    /// The container ended; the payload is its exit code (big-endian `i32`).
    Exit,
    /// The container's input descriptor comes with this (empty) frame.
    Stdin,
    /// The container has no input to give.
    NoStdin,
}

impl Kind {
    /// The byte on the wire.
    pub fn byte(self) -> u8 {
        match self {
            Kind::Stdout => 1,
            Kind::Stderr => 2,
            Kind::Exit => 3,
            Kind::Stdin => 4,
            Kind::NoStdin => 5,
        }
    }

    /// The kind of a wire byte.
    pub fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Stdout,
            2 => Kind::Stderr,
            3 => Kind::Exit,
            4 => Kind::Stdin,
            5 => Kind::NoStdin,
            _ => return None,
        })
    }
}

/// The header of a frame of `kind` with `len` payload bytes.
pub fn header(kind: Kind, len: usize) -> [u8; HEADER_LEN] {
    let len = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [kind.byte(), len[0], len[1], len[2], len[3]]
}

/// Splits complete frames off the front of a byte stream.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Adds bytes read from the socket.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, if one has arrived; an unknown kind is an error
    /// (the stream cannot be followed past it).
    pub fn next_frame(&mut self) -> Result<Option<(Kind, Vec<u8>)>, String> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let kind = Kind::from_byte(self.buf[0])
            .ok_or_else(|| format!("unknown frame kind {}", self.buf[0]))?;
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        let end = HEADER_LEN + len as usize;
        if self.buf.len() < end {
            return Ok(None);
        }
        let payload = self.buf[HEADER_LEN..end].to_vec();
        self.buf.drain(..end);
        Ok(Some((kind, payload)))
    }
}

/// The exit code in an [`Kind::Exit`] payload.
pub fn exit_code(payload: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(payload.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_pieces() {
        let mut wire = Vec::new();
        wire.extend(header(Kind::Stdout, 3));
        wire.extend(b"abc");
        wire.extend(header(Kind::Exit, 4));
        wire.extend((-2i32).to_be_bytes());
        let mut d = Decoder::default();
        for byte in &wire[..7] {
            d.push(&[*byte]);
        }
        assert_eq!(d.next_frame(), Ok(None));
        d.push(&wire[7..]);
        assert_eq!(d.next_frame(), Ok(Some((Kind::Stdout, b"abc".to_vec()))));
        let (kind, payload) = d.next_frame().expect("valid").expect("frame");
        assert_eq!((kind, exit_code(&payload)), (Kind::Exit, Some(-2)));
        assert_eq!(d.next_frame(), Ok(None));
        d.push(&[9, 0, 0, 0, 0]);
        assert!(d.next_frame().is_err());
    }
}
