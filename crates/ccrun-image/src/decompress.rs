//! Layer decompression, chosen by the stream's magic bytes (media types lie).

use std::io::{self, BufRead, Read};

/// The compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (`application/vnd.oci.image.layer.v1.tar+gzip`, Docker's default).
    Gzip,
    /// zstd (`…tar+zstd`).
    Zstd,
    /// An uncompressed tar.
    None,
}

/// Looks at the first bytes of `input` without consuming them.
pub fn detect<R: BufRead>(input: &mut R) -> io::Result<Compression> {
    let head = input.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    })
}

/// Compressions seen in the wild that we do not decompress, by their magic bytes:
/// read as a tar, they would fail with a confusing header error.
fn unsupported(head: &[u8]) -> Option<&'static str> {
    // bzip2: "BZh", the block size digit, then the first block's magic (pi in BCD).
    let bzip2_block = [0x31, 0x41, 0x59, 0x26, 0x53, 0x59];
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some("xz")
    } else if head.starts_with(b"BZh")
        && head.get(3).is_some_and(u8::is_ascii_digit)
        && head.get(4..10) == Some(&bzip2_block[..])
    {
        Some("bzip2")
    } else {
        None
    }
}

/// Wraps `input` in the decoder its magic bytes call for.
pub fn decoder<'a, R: BufRead + 'a>(mut input: R) -> io::Result<Box<dyn Read + 'a>> {
    if let Some(name) = unsupported(input.fill_buf()?) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "compressed with {name}; only gzip, zstd and uncompressed layers are supported"
            ),
        ));
    }
    Ok(match detect(&mut input)? {
        // Multi-member: some tools write gzip streams in several members.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        Compression::None => Box::new(input),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn round_trips() {
        let data = b"hello layer".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let zs = zstd::stream::encode_all(&data[..], 1).expect("zstd");
        for input in [gz, zs, data.clone()] {
            let mut out = Vec::new();
            decoder(&input[..])
                .expect("decoder")
                .read_to_end(&mut out)
                .expect("read");
            assert_eq!(out, data);
        }
    }

    #[test]
    fn names_compressions_it_does_not_read() {
        // `printf 'hello\n' | bzip2`
        let bzip2: &[u8] = &[
            0x42, 0x5a, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26, 0x53, 0x59, 0xc1, 0xc0, 0x80, 0xe2,
            0x00, 0x00, 0x01, 0x41, 0x00, 0x00, 0x10, 0x02, 0x44, 0xa0, 0x00, 0x30, 0xcd, 0x00,
            0xc3, 0x46, 0x29, 0x97, 0x17, 0x72, 0x45, 0x38, 0x50, 0x90, 0xc1, 0xc0, 0x80, 0xe2,
        ];
        let xz: &[u8] = &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04, 0xe6, 0xd6];
        for (input, name) in [(bzip2, "bzip2"), (xz, "xz")] {
            let err = decoder(input).err().expect("refused");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(
                err.to_string()
                    .starts_with(&format!("compressed with {name};")),
                "{err}"
            );
        }
        // An uncompressed tar whose first name merely starts like bzip2's magic.
        let tar = b"BZh9 is a file name\0\0\0".repeat(20);
        let mut out = Vec::new();
        decoder(&tar[..])
            .expect("decoder")
            .read_to_end(&mut out)
            .expect("read");
        assert_eq!(out, tar);
    }
}
