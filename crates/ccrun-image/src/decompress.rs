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

/// Wraps `input` in the decoder its magic bytes call for.
pub fn decoder<'a, R: BufRead + 'a>(mut input: R) -> io::Result<Box<dyn Read + 'a>> {
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
}
