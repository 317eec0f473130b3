//! Parsing of the two byte-range headers the protocol uses: `Content-Range` on chunk uploads
//! (`<start>-<end>`, inclusive) and `Range` on blob downloads (RFC 9110, single range).

/// An inclusive byte range `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Never true: a range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Parses the `Content-Range` of a chunk upload. The spec's form is `^[0-9]+-[0-9]+$`; the
/// RFC form some clients send (`bytes 0-99/*`, `bytes=0-99`) is accepted too.
pub fn parse_content_range(value: &str) -> Option<ByteRange> {
    let v = value.trim();
    let v = v
        .strip_prefix("bytes=")
        .or_else(|| v.strip_prefix("bytes "))
        .unwrap_or(v)
        .trim();
    let v = v.split_once('/').map_or(v, |(range, _total)| range);
    let (start, end) = v.split_once('-')?;
    let start = parse_u64(start)?;
    let end = parse_u64(end)?;
    (start <= end).then_some(ByteRange { start, end })
}

/// What to serve for a `Range` request header on a blob of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// Serve the whole blob with 200 (no header, another unit, or several ranges, which a
    /// server may answer with the full representation).
    Full,
    /// Serve this part with 206.
    Partial(ByteRange),
    /// Answer 416 with `Content-Range: bytes */<size>`.
    Unsatisfiable,
}

/// Interprets a `Range` header against a blob of `size` bytes.
pub fn parse_range(value: Option<&str>, size: u64) -> RangeRequest {
    let Some(value) = value else {
        return RangeRequest::Full;
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Unsatisfiable;
    };
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        // Suffix range: the last `n` bytes.
        match parse_u64(last) {
            Some(n) if n > 0 && size > 0 => ByteRange {
                start: size.saturating_sub(n),
                end: size - 1,
            },
            _ => return RangeRequest::Unsatisfiable,
        }
    } else {
        let Some(start) = parse_u64(first) else {
            return RangeRequest::Unsatisfiable;
        };
        let end = if last.is_empty() {
            u64::MAX
        } else {
            match parse_u64(last) {
                Some(end) if end >= start => end,
                _ => return RangeRequest::Unsatisfiable,
            }
        };
        if start >= size {
            return RangeRequest::Unsatisfiable;
        }
        ByteRange {
            start,
            end: end.min(size - 1),
        }
    };
    RangeRequest::Partial(range)
}

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    #[test]
    fn content_range() {
        let cases: &[(&str, Option<ByteRange>)] = &[
            ("0-99", Some(r(0, 99))),
            ("100-100", Some(r(100, 100))),
            (" 5-9 ", Some(r(5, 9))),
            ("bytes 0-99/*", Some(r(0, 99))),
            ("bytes=0-99", Some(r(0, 99))),
            ("bytes 0-99/100", Some(r(0, 99))),
            ("9-5", None),
            ("-5", None),
            ("5-", None),
            ("a-b", None),
            ("0-1-2", None),
            ("", None),
            ("+1-2", None),
            ("99999999999999999999-1", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_content_range(input), *want, "{input:?}");
        }
        assert_eq!(r(10, 19).len(), 10);
    }

    #[test]
    fn range_header() {
        use RangeRequest::*;
        let cases: &[(Option<&str>, u64, RangeRequest)] = &[
            (None, 10, Full),
            (Some("bytes=0-4"), 10, Partial(r(0, 4))),
            (Some("bytes=5-"), 10, Partial(r(5, 9))),
            (Some("bytes=5-100"), 10, Partial(r(5, 9))),
            (Some("bytes=-3"), 10, Partial(r(7, 9))),
            (Some("bytes=-30"), 10, Partial(r(0, 9))),
            (Some("bytes=9-9"), 10, Partial(r(9, 9))),
            (Some("bytes=10-"), 10, Unsatisfiable),
            (Some("bytes=10-20"), 10, Unsatisfiable),
            (Some("bytes=5-2"), 10, Unsatisfiable),
            (Some("bytes=-0"), 10, Unsatisfiable),
            (Some("bytes=0-0"), 0, Unsatisfiable),
            (Some("bytes=-1"), 0, Unsatisfiable),
            (Some("bytes=x-y"), 10, Unsatisfiable),
            (Some("bytes=7"), 10, Unsatisfiable),
            (Some("bytes=0-1,4-5"), 10, Full),
            (Some("items=0-1"), 10, Full),
        ];
        for (header, size, want) in cases {
            assert_eq!(parse_range(*header, *size), *want, "{header:?} of {size}");
        }
    }
}
