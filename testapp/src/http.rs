//! Minimal HTTP/1.1 request parsing and response writing on top of std I/O.

use std::fmt;
use std::io::{self, BufRead, Read, Write};

/// Longest request line or header line we accept, in bytes.
const MAX_LINE: usize = 8 * 1024;
/// Most header lines we accept in one request.
const MAX_HEADERS: usize = 100;
/// Largest request body we read (and discard).
const MAX_BODY: u64 = 1024 * 1024;

/// HTTP protocol version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// The three parts of a request line, e.g. `GET /slow?ms=5 HTTP/1.1`.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestLine {
    pub method: String,
    pub target: String,
    pub version: Version,
}

/// A parsed request; its body, if any, has been read and dropped.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The request target as sent (path and query), used for logging.
    pub target: String,
    /// The percent-decoded path without the query.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub version: Version,
    pub headers: Vec<(String, String)>,
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum ParseError {
    /// The connection failed, timed out or closed mid-request: nothing to answer.
    Io(io::Error),
    /// A line, the header count or the body exceeded our limits.
    TooLarge(&'static str),
    /// The bytes are not an HTTP/1.x request we understand.
    Malformed(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Io(e) => write!(f, "i/o error: {e}"),
            ParseError::TooLarge(what) => write!(f, "{what} too large"),
            ParseError::Malformed(what) => write!(f, "malformed request: {what}"),
        }
    }
}

impl From<io::Error> for ParseError {
    fn from(e: io::Error) -> Self {
        ParseError::Io(e)
    }
}

/// Parses `METHOD SP TARGET SP HTTP/1.x`.
pub fn parse_request_line(line: &str) -> Result<RequestLine, ParseError> {
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::Malformed("request line needs three parts"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ParseError::Malformed("bad method"));
    }
    if target.is_empty() {
        return Err(ParseError::Malformed("empty target"));
    }
    let version = match version {
        "HTTP/1.1" => Version::Http11,
        "HTTP/1.0" => Version::Http10,
        _ => return Err(ParseError::Malformed("unsupported HTTP version")),
    };
    Ok(RequestLine {
        method: method.to_string(),
        target: target.to_string(),
        version,
    })
}

/// Splits a request target into its decoded path and query pairs.
///
/// Accepts the absolute form (`http://host/path`) that proxies send, as HTTP/1.1 requires.
pub fn split_target(target: &str) -> (String, Vec<(String, String)>) {
    let target = target.split('#').next().unwrap_or_default();
    let target = match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, parse_query(q)),
        None => (target, Vec::new()),
    };
    let path = percent_decode(path, false);
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    (path, query)
}

/// Parses `a=1&b=two&flag` into decoded pairs; a key without `=` gets an empty value.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as space when `plus_is_space`); invalid escapes stay as is.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl Request {
    /// Value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client wants the connection kept open after the response.
    pub fn keep_alive(&self) -> bool {
        let has_token = |token: &str| {
            self.headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("connection"))
                .flat_map(|(_, v)| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        match self.version {
            Version::Http11 => !has_token("close"),
            Version::Http10 => has_token("keep-alive"),
        }
    }
}

/// Reads one line ending in LF (CR stripped); `None` on EOF before any byte.
fn read_line<R: BufRead>(r: &mut R) -> Result<Option<String>, ParseError> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        if buf.len() > MAX_LINE {
            return Err(ParseError::TooLarge("line"));
        }
        return Err(ParseError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| ParseError::Malformed("line is not UTF-8"))
}

/// Reads one request from `r`; `Ok(None)` when the peer closed the connection between requests.
pub fn read_request<R: BufRead>(r: &mut R) -> Result<Option<Request>, ParseError> {
    // RFC 9112 §2.2: ignore at least one empty line before the request line.
    let mut line = String::new();
    for _ in 0..4 {
        match read_line(r)? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue,
            Some(l) => {
                line = l;
                break;
            }
        }
    }
    if line.is_empty() {
        return Err(ParseError::Malformed("no request line"));
    }
    let RequestLine {
        method,
        target,
        version,
    } = parse_request_line(&line)?;

    let mut headers = Vec::new();
    loop {
        let Some(line) = read_line(r)? else {
            return Err(ParseError::Io(io::ErrorKind::UnexpectedEof.into()));
        };
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(ParseError::TooLarge("header section"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ParseError::Malformed("header without colon"));
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(ParseError::Malformed("bad header name"));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }

    let (path, query) = split_target(&target);
    let request = Request {
        method,
        target,
        path,
        query,
        version,
        headers,
    };

    if request.header("transfer-encoding").is_some() {
        return Err(ParseError::Malformed("transfer-encoding is not supported"));
    }
    if let Some(len) = request.header("content-length") {
        let len: u64 = len
            .parse()
            .map_err(|_| ParseError::Malformed("bad content-length"))?;
        if len > MAX_BODY {
            return Err(ParseError::TooLarge("body"));
        }
        let copied = io::copy(&mut r.by_ref().take(len), &mut io::sink())?;
        if copied != len {
            return Err(ParseError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
    }
    Ok(Some(request))
}

/// A complete response; the body is always sent with a `Content-Length`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }

    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            content_type: "application/json",
            body: body.into().into_bytes(),
        }
    }
}

/// Standard reason phrase for the statuses this app sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        413 => "Content Too Large",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

/// Writes `resp` in one go, announcing whether the connection stays open.
pub fn write_response<W: Write>(w: &mut W, resp: &Response, keep_alive: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    )
    .into_bytes();
    out.extend_from_slice(&resp.body);
    w.write_all(&out)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn request_lines() {
        let ok = |m: &str, t: &str, v| {
            Some(RequestLine {
                method: m.into(),
                target: t.into(),
                version: v,
            })
        };
        let cases: &[(&str, Option<RequestLine>)] = &[
            ("GET / HTTP/1.1", ok("GET", "/", Version::Http11)),
            (
                "POST /admin/crash HTTP/1.0",
                ok("POST", "/admin/crash", Version::Http10),
            ),
            (
                "GET /slow?ms=5 HTTP/1.1",
                ok("GET", "/slow?ms=5", Version::Http11),
            ),
            ("GET / HTTP/2.0", None),
            ("GET /", None),
            ("GET  / HTTP/1.1", None),
            ("GET / HTTP/1.1 extra", None),
            ("get / HTTP/1.1", None),
            ("", None),
            ("GET / http/1.1", None),
        ];
        for (line, want) in cases {
            let got = parse_request_line(line).ok();
            assert_eq!(&got, want, "line {line:?}");
        }
    }

    #[test]
    fn targets() {
        // (target, decoded path, query pairs)
        type Case = (
            &'static str,
            &'static str,
            &'static [(&'static str, &'static str)],
        );
        let cases: &[Case] = &[
            ("/", "/", &[]),
            ("", "/", &[]),
            ("/healthz", "/healthz", &[]),
            ("/slow?ms=250", "/slow", &[("ms", "250")]),
            (
                "/admin/burn?millicores=500&seconds=2",
                "/admin/burn",
                &[("millicores", "500"), ("seconds", "2")],
            ),
            (
                "/a%20b?x=%41+b&flag&=v",
                "/a b",
                &[("x", "A b"), ("flag", ""), ("", "v")],
            ),
            ("/p?&&k=v&", "/p", &[("k", "v")]),
            ("/p?k=a=b", "/p", &[("k", "a=b")]),
            ("/p#frag", "/p", &[]),
            ("http://example:8080/env?x=1", "/env", &[("x", "1")]),
            ("http://example", "/", &[]),
            ("/bad%zzescape%", "/bad%zzescape%", &[]),
            ("/plus+stays", "/plus+stays", &[]),
        ];
        for (target, path, query) in cases {
            let (p, q) = split_target(target);
            assert_eq!(&p, path, "target {target:?}");
            assert_eq!(q, pairs(query), "target {target:?}");
        }
    }

    #[test]
    fn percent_decoding() {
        let cases = [
            ("abc", true, "abc"),
            ("%41%62", true, "Ab"),
            ("%4", true, "%4"),
            ("%", true, "%"),
            ("%%41", true, "%A"),
            ("a+b", true, "a b"),
            ("a+b", false, "a+b"),
            ("%e2%9c%93", true, "✓"),
        ];
        for (input, plus, want) in cases {
            assert_eq!(percent_decode(input, plus), want, "input {input:?}");
        }
    }

    fn read(raw: &str) -> Result<Option<Request>, ParseError> {
        read_request(&mut io::Cursor::new(raw.as_bytes().to_vec()))
    }

    #[test]
    fn reads_requests() {
        struct Case {
            raw: &'static str,
            method: &'static str,
            path: &'static str,
            keep_alive: bool,
        }
        let cases = [
            Case {
                raw: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                method: "GET",
                path: "/healthz",
                keep_alive: true,
            },
            Case {
                raw: "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
                method: "GET",
                path: "/",
                keep_alive: false,
            },
            Case {
                raw: "GET / HTTP/1.1\r\nconnection: Upgrade, CLOSE\r\n\r\n",
                method: "GET",
                path: "/",
                keep_alive: false,
            },
            Case {
                raw: "GET / HTTP/1.0\r\n\r\n",
                method: "GET",
                path: "/",
                keep_alive: false,
            },
            Case {
                raw: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                method: "GET",
                path: "/",
                keep_alive: true,
            },
            Case {
                raw: "\r\nPOST /admin/burn?seconds=1 HTTP/1.1\nContent-Length: 3\n\nabc",
                method: "POST",
                path: "/admin/burn",
                keep_alive: true,
            },
        ];
        for c in cases {
            let req = read(c.raw).unwrap().unwrap();
            assert_eq!(req.method, c.method, "raw {:?}", c.raw);
            assert_eq!(req.path, c.path, "raw {:?}", c.raw);
            assert_eq!(req.keep_alive(), c.keep_alive, "raw {:?}", c.raw);
        }
    }

    #[test]
    fn rejects_bad_requests() {
        let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_LINE));
        let many_headers = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        type Check = fn(&ParseError) -> bool;
        let cases: Vec<(&str, Check)> = vec![
            ("BREW /pot HTCPCP/1.0\r\n\r\n", |e| {
                matches!(e, ParseError::Malformed(_))
            }),
            ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", |e| {
                matches!(e, ParseError::Malformed(_))
            }),
            ("GET / HTTP/1.1\r\nBad Name: v\r\n\r\n", |e| {
                matches!(e, ParseError::Malformed(_))
            }),
            ("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", |e| {
                matches!(e, ParseError::Malformed(_))
            }),
            ("GET / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", |e| {
                matches!(e, ParseError::TooLarge(_))
            }),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                |e| matches!(e, ParseError::Malformed(_)),
            ),
            ("GET / HTTP/1.1\r\nHost: x\r\n", |e| {
                matches!(e, ParseError::Io(_))
            }),
            ("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", |e| {
                matches!(e, ParseError::Io(_))
            }),
            (&long_line, |e| matches!(e, ParseError::TooLarge(_))),
            (&many_headers, |e| matches!(e, ParseError::TooLarge(_))),
        ];
        for (raw, check) in cases {
            let err = read(raw).expect_err(raw);
            assert!(check(&err), "raw {raw:?} gave {err:?}");
        }
    }

    #[test]
    fn reads_pipelined_requests_and_eof() {
        let raw = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        let mut cur = io::Cursor::new(raw.as_bytes().to_vec());
        assert_eq!(read_request(&mut cur).unwrap().unwrap().path, "/a");
        assert_eq!(read_request(&mut cur).unwrap().unwrap().path, "/b");
        assert!(read_request(&mut cur).unwrap().is_none());
    }

    #[test]
    fn writes_responses() {
        let mut out = Vec::new();
        write_response(&mut out, &Response::text(200, "ok"), false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        );
        let mut out = Vec::new();
        write_response(&mut out, &Response::json(404, "{}"), true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("Connection: keep-alive\r\n"), "{text}");
    }
}
