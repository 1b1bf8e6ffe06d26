//! Server frames as bytes on the socket (RFC 6455 §5.2). A server's frames are not
//! masked, so a text frame is a 2-, 4- or 10-byte header followed by the text
//! unchanged: the edge writes an event's bytes, as its publisher serialised them, to
//! every socket behind a header computed from the length alone.

/// The header of one unfragmented text frame.
#[derive(Debug, Clone, Copy)]
pub struct TextHeader {
    bytes: [u8; 10],
    len: u8,
}

/// FIN set, opcode 1 (text).
const FIN_TEXT: u8 = 0x81;

impl TextHeader {
    /// The header for a text of `payload_len` bytes.
    pub fn new(payload_len: usize) -> TextHeader {
        let mut bytes = [0u8; 10];
        bytes[0] = FIN_TEXT;
        let len = if payload_len <= 125 {
            bytes[1] = payload_len as u8;
            2
        } else if let Ok(short) = u16::try_from(payload_len) {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
            10
        };
        TextHeader { bytes, len }
    }

    /// The header's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::protocol::frame::{Frame, coding::Data, coding::OpCode};

    use super::*;

    /// tungstenite's own encoder is the reference: the same text must give the same bytes.
    #[test]
    fn text_frames_match_tungstenite_at_every_length_boundary() {
        for len in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let text = "x".repeat(len);
            let mut expected = Vec::new();
            Frame::message(text.clone(), OpCode::Data(Data::Text), true)
                .format(&mut expected)
                .unwrap_or_else(|error| panic!("tungstenite cannot format {len} bytes: {error}"));
            let mut ours = TextHeader::new(len).as_bytes().to_vec();
            ours.extend_from_slice(text.as_bytes());
            assert_eq!(ours, expected, "a text of {len} bytes");
        }
    }
}
