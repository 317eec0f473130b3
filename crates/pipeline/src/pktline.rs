//! Git's pkt-line framing and the parts of the smart-HTTP push protocol Berth reads: the ref
//! updates a `git push` asks for, and side-band progress messages written back to the pusher.
//!
//! A pkt-line is four hex digits giving the length (including themselves) and the payload;
//! `0000` is a flush, `0001` a delimiter and `0002` a response end (protocol v2).

/// The all-zero object id git uses for "no object" (a created or deleted ref).
const ZERO_ID: &str = "0000000000000000000000000000000000000000";

/// One framed unit of a pkt-line stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// `0000`.
    Flush,
    /// `0001` (protocol v2).
    Delimiter,
    /// `0002` (protocol v2).
    ResponseEnd,
    Data(&'a [u8]),
}

/// Why bytes are not a pkt-line stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PktLineError {
    #[error("bad pkt-line length {0:?}")]
    BadLength(String),
}

/// The largest pkt-line git accepts: 65520 bytes including the 4-byte length.
pub const MAX_PACKET: usize = 65520;

/// Frames `payload` as one pkt-line.
///
/// # Panics
/// When `payload` does not fit one packet (longer than `MAX_PACKET - 4`).
pub fn encode(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() + 4 <= MAX_PACKET, "pkt-line payload too long");
    let mut out = format!("{:04x}", payload.len() + 4).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The flush packet.
pub const FLUSH: &[u8] = b"0000";

/// Reads the packet at the start of `bytes`: `Ok(None)` when `bytes` holds only part of one,
/// otherwise the packet and how many bytes it took.
pub fn decode(bytes: &[u8]) -> Result<Option<(Packet<'_>, usize)>, PktLineError> {
    let Some(head) = bytes.get(..4) else {
        return Ok(None);
    };
    let text = std::str::from_utf8(head)
        .ok()
        .filter(|t| t.bytes().all(|b| b.is_ascii_hexdigit()));
    let Some(length) = text.and_then(|t| usize::from_str_radix(t, 16).ok()) else {
        return Err(PktLineError::BadLength(
            String::from_utf8_lossy(head).into_owned(),
        ));
    };
    let packet = match length {
        0 => Packet::Flush,
        1 => Packet::Delimiter,
        2 => Packet::ResponseEnd,
        3 => return Err(PktLineError::BadLength(format!("{length:04x}"))),
        _ => match bytes.get(4..length) {
            Some(payload) => Packet::Data(payload),
            None => return Ok(None),
        },
    };
    Ok(Some((packet, length.max(4))))
}

/// One ref a push asks to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    /// The full ref name (`refs/heads/main`).
    pub name: String,
}

impl RefUpdate {
    /// Whether the push deletes the ref.
    pub fn is_delete(&self) -> bool {
        self.new == ZERO_ID
    }
}

/// What a push request starts with: the ref updates and the client's capabilities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushCommands {
    pub updates: Vec<RefUpdate>,
    pub capabilities: Vec<String>,
}

impl PushCommands {
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| c == name)
    }

    /// The side band messages can be written to: `Some(max payload)` when the client asked
    /// for one. Like the output of git's own hooks, messages are sent even when the client
    /// asked for `quiet` (which git does whenever its stderr is not a terminal).
    pub fn progress_band(&self) -> Option<usize> {
        if self.has_capability("side-band-64k") {
            Some(MAX_PACKET - 5)
        } else if self.has_capability("side-band") {
            Some(1000 - 5)
        } else {
            None
        }
    }
}

/// Parses the command list at the start of a `git-receive-pack` request body: `Ok(None)` while
/// `bytes` does not yet hold all of it (up to its flush). `shallow` lines are skipped; a signed
/// push's certificate is not read (its commands are repeated in the certificate only).
pub fn parse_push_commands(bytes: &[u8]) -> Result<Option<PushCommands>, PktLineError> {
    let mut commands = PushCommands::default();
    let mut at = 0;
    loop {
        let Some((packet, used)) = decode(&bytes[at..])? else {
            return Ok(None);
        };
        at += used;
        let payload = match packet {
            Packet::Flush => return Ok(Some(commands)),
            Packet::Delimiter | Packet::ResponseEnd => continue,
            Packet::Data(payload) => payload,
        };
        let (line, capabilities) = match payload.iter().position(|&b| b == 0) {
            Some(nul) => (&payload[..nul], Some(&payload[nul + 1..])),
            None => (payload, None),
        };
        if let Some(capabilities) = capabilities {
            commands.capabilities = String::from_utf8_lossy(capabilities)
                .split_ascii_whitespace()
                .map(str::to_owned)
                .collect();
        }
        let line = String::from_utf8_lossy(line);
        let mut words = line.trim_end_matches('\n').split(' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some(old), Some(new), Some(name), None)
                if is_object_id(old) && is_object_id(new) && !name.is_empty() =>
            {
                commands.updates.push(RefUpdate {
                    old: old.to_owned(),
                    new: new.to_owned(),
                    name: name.to_owned(),
                });
            }
            // `shallow <id>`, `push-cert…`: nothing Berth acts on.
            _ => {}
        }
    }
}

fn is_object_id(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Frames `text` as side-band progress (band 2: the client prints it as `remote: …`), split
/// into packets of at most `max_payload` bytes.
pub fn progress(text: &str, max_payload: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(max_payload.max(1)) {
        let mut payload = Vec::with_capacity(chunk.len() + 1);
        payload.push(2);
        payload.extend_from_slice(chunk);
        out.extend(encode(&payload));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: char) -> String {
        std::iter::repeat_n(c, 40).collect()
    }

    #[test]
    fn packets_decode_or_wait_for_more() {
        let cases: [(&[u8], Result<Option<(Packet<'_>, usize)>, PktLineError>); 8] = [
            (b"", Ok(None)),
            (b"00", Ok(None)),
            (b"0000", Ok(Some((Packet::Flush, 4)))),
            (b"0001rest", Ok(Some((Packet::Delimiter, 4)))),
            (b"0002", Ok(Some((Packet::ResponseEnd, 4)))),
            (b"0009hello!", Ok(Some((Packet::Data(b"hello"), 9)))),
            (b"0009hel", Ok(None)),
            (b"zz09hello", Err(PktLineError::BadLength("zz09".into()))),
        ];
        for (bytes, want) in cases {
            assert_eq!(decode(bytes), want, "{:?}", String::from_utf8_lossy(bytes));
        }
        assert!(decode(b"0003").is_err());
    }

    #[test]
    fn encode_round_trips() {
        for payload in [&b""[..], b"a", b"# service=git-receive-pack\n"] {
            let framed = encode(payload);
            assert_eq!(
                decode(&framed).unwrap(),
                Some((Packet::Data(payload), framed.len()))
            );
        }
    }

    #[test]
    fn push_commands_are_read_up_to_the_flush() {
        let (a, b, zero) = (id('a'), id('b'), id('0'));
        let first =
            format!("{zero} {a} refs/heads/main\0report-status side-band-64k agent=git/2.39");
        let second = format!("{a} {zero} refs/heads/old\n");
        let mut body = encode(first.as_bytes());
        body.extend(encode(second.as_bytes()));
        body.extend_from_slice(FLUSH);
        body.extend_from_slice(b"PACK....");
        let parsed = parse_push_commands(&body).unwrap().unwrap();
        assert_eq!(
            parsed.updates,
            vec![
                RefUpdate {
                    old: zero.clone(),
                    new: a.clone(),
                    name: "refs/heads/main".into()
                },
                RefUpdate {
                    old: a.clone(),
                    new: zero.clone(),
                    name: "refs/heads/old".into()
                },
            ]
        );
        assert!(parsed.updates[1].is_delete() && !parsed.updates[0].is_delete());
        assert_eq!(parsed.progress_band(), Some(MAX_PACKET - 5));
        // Cut anywhere before the flush: not yet complete.
        let flush_end = body.len() - b"PACK....".len();
        for cut in 0..flush_end {
            assert_eq!(
                parse_push_commands(&body[..cut]).unwrap(),
                None,
                "cut {cut}"
            );
        }
        // The probe git sends before a large push is a bare flush.
        assert_eq!(
            parse_push_commands(FLUSH).unwrap(),
            Some(PushCommands::default())
        );
        // Shallow lines and junk are skipped.
        let mut shallow = encode(format!("shallow {b}").as_bytes());
        shallow.extend(encode(
            format!("{a} {b} refs/heads/x\0report-status").as_bytes(),
        ));
        shallow.extend_from_slice(FLUSH);
        let parsed = parse_push_commands(&shallow).unwrap().unwrap();
        assert_eq!(parsed.updates.len(), 1);
        assert_eq!(parsed.progress_band(), None);
    }

    #[test]
    fn progress_band_follows_the_capabilities() {
        let cases: [(&[&str], Option<usize>); 5] = [
            (&["report-status"], None),
            (&["side-band"], Some(995)),
            (&["side-band-64k", "side-band"], Some(65515)),
            (&["side-band-64k", "quiet"], Some(65515)),
            (&[], None),
        ];
        for (capabilities, want) in cases {
            let commands = PushCommands {
                updates: vec![],
                capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
            };
            assert_eq!(commands.progress_band(), want, "{capabilities:?}");
        }
    }

    #[test]
    fn progress_is_split_into_band_two_packets() {
        let framed = progress("abcdefg", 3);
        let mut at = 0;
        let mut texts = Vec::new();
        while let Some((Packet::Data(payload), used)) = decode(&framed[at..]).unwrap() {
            assert_eq!(payload[0], 2);
            texts.push(String::from_utf8_lossy(&payload[1..]).into_owned());
            at += used;
        }
        assert_eq!(texts, ["abc", "def", "g"]);
        assert_eq!(at, framed.len());
    }
}
