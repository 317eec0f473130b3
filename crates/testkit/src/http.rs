//! A tiny blocking HTTP/1.1 GET client, enough for tests to probe containers by IP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Sends `GET url` with `Connection: close` and returns the status code and body.
///
/// Only `http://host[:port][/path]` URLs are supported (an IPv6 host goes in brackets). The
/// whole exchange, connect included, must finish within `timeout`. Bodies delimited by
/// `Content-Length`, chunked encoding or connection close are all understood.
pub fn http_get(url: &str, timeout: Duration) -> Result<(u16, String), String> {
    get(url, timeout).map_err(|e| format!("GET {url}: {e}"))
}

/// The parts of an `http://` URL a request needs.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or("unclosed [ in IPv6 host")?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(p.strip_prefix(':').ok_or("junk after IPv6 host")?),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    let port = match port {
        None => 80,
        Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
    };
    Ok(Target {
        host: host.to_string(),
        port,
        path,
    })
}

fn remaining(deadline: Instant) -> Result<Duration, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err("timed out".into())
    } else {
        Ok(left)
    }
}

fn get(url: &str, timeout: Duration) -> Result<(u16, String), String> {
    let deadline = Instant::now() + timeout;
    let target = parse_url(url)?;
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| format!("resolve {}: {e}", target.host))?
        .collect();

    let mut last_err = format!("{} resolved to no address", target.host);
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, remaining(deadline)?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = format!("connect {addr}: {e}"),
        }
    }
    let mut stream = stream.ok_or(last_err)?;

    let host_header = match (target.host.contains(':'), target.port) {
        (true, 80) => format!("[{}]", target.host),
        (true, port) => format!("[{}]:{port}", target.host),
        (false, 80) => target.host.clone(),
        (false, port) => format!("{}:{port}", target.host),
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: berth-testkit\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path
    );
    stream
        .set_write_timeout(Some(remaining(deadline)?))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;

    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(done) = try_parse(&buf, false)? {
            return Ok(done);
        }
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("timed out reading the response".into());
            }
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    try_parse(&buf, true)?.ok_or_else(|| "connection closed before a complete response".into())
}

/// Parses a response from `buf`; `Ok(None)` while more bytes are needed. With `eof`, a body
/// without length runs to the end of `buf`.
fn try_parse(buf: &[u8], eof: bool) -> Result<Option<(u16, String)>, String> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let body = &buf[head_end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(format!("bad status line {status_line:?}"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| format!("bad status line {status_line:?}"))?;

    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad content-length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }

    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    // Statuses that never carry a body (RFC 9110 §6.4.1).
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Some((status, String::new())));
    }
    if chunked {
        return match decode_chunked(body)? {
            Some(decoded) => Ok(Some((status, text(&decoded)))),
            None if eof => Err("connection closed inside a chunked body".into()),
            None => Ok(None),
        };
    }
    match content_length {
        Some(len) if body.len() >= len => Ok(Some((status, text(&body[..len])))),
        Some(_) if eof => Err("connection closed before the whole body arrived".into()),
        Some(_) => Ok(None),
        None if eof => Ok(Some((status, text(body)))),
        None => Ok(None),
    }
}

/// Decodes a chunked body; `Ok(None)` while incomplete.
fn decode_chunked(mut data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_line = String::from_utf8_lossy(&data[..line_end]);
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            // Trailers, if any, end with an empty line; we need not wait for them.
            return Ok(Some(out));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    #[test]
    fn parses_urls() {
        let t = |host: &str, port, path: &str| {
            Ok(Target {
                host: host.into(),
                port,
                path: path.into(),
            })
        };
        let cases: Vec<(&str, Result<Target, ()>)> = vec![
            (
                "http://10.0.0.2:8080/healthz",
                t("10.0.0.2", 8080, "/healthz"),
            ),
            ("http://example", t("example", 80, "/")),
            ("http://example/", t("example", 80, "/")),
            ("http://example?x=1", t("example", 80, "/?x=1")),
            ("http://h:1/a/b?c=d", t("h", 1, "/a/b?c=d")),
            ("http://[::1]:8080/x", t("::1", 8080, "/x")),
            ("http://[fe80::1]", t("fe80::1", 80, "/")),
            ("https://example/", Err(())),
            ("example/", Err(())),
            ("http://:80/", Err(())),
            ("http://h:port/", Err(())),
            ("http://h:70000/", Err(())),
            ("http://[::1/", Err(())),
            ("http://[::1]x/", Err(())),
        ];
        for (url, want) in cases {
            assert_eq!(parse_url(url).map_err(|_| ()), want, "url {url}");
        }
    }

    #[test]
    fn parses_responses() {
        // (raw bytes, at EOF, expected status and body)
        type Case = (&'static str, bool, Option<(u16, &'static str)>);
        let cases: &[Case] = &[
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                false,
                Some((200, "ok")),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
                false,
                Some((200, "ok")),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok",
                false,
                None,
            ),
            (
                "HTTP/1.1 500 Internal\r\ncontent-length: 7\r\n",
                false,
                None,
            ),
            ("HTTP/1.0 404 Not Found\r\n\r\nnope", false, None),
            (
                "HTTP/1.0 404 Not Found\r\n\r\nnope",
                true,
                Some((404, "nope")),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3;x=y\r\n!!!\r\n0\r\n\r\n",
                false,
                Some((200, "ok!!!")),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n",
                false,
                None,
            ),
            ("HTTP/1.1 204 No Content\r\n\r\n", false, Some((204, ""))),
        ];
        for (raw, eof, want) in cases {
            let got = try_parse(raw.as_bytes(), *eof).unwrap();
            let got = got.as_ref().map(|(s, b)| (*s, b.as_str()));
            assert_eq!(got, *want, "raw {raw:?}");
        }
        for bad in [
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 abc OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(try_parse(bad.as_bytes(), true).is_err(), "raw {bad:?}");
        }
    }

    /// Serves one connection with `response` after reading the request head; returns the URL.
    fn serve_once(response: &'static str) -> (String, thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/probe?x=1", listener.local_addr().unwrap());
        let handle = thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            conn.write_all(response.as_bytes()).unwrap();
            String::from_utf8(head).unwrap()
        });
        (url, handle)
    }

    #[test]
    fn gets_from_a_local_server() {
        let (url, server) = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        let got = http_get(&url, Duration::from_secs(5)).unwrap();
        assert_eq!(got, (200, "hello".to_string()));
        let head = server.join().unwrap();
        assert!(head.starts_with("GET /probe?x=1 HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
        assert!(head.contains("\r\nHost: 127.0.0.1:"), "{head}");
    }

    #[test]
    fn reads_until_close_without_length() {
        let (url, server) = serve_once("HTTP/1.0 503 Service Unavailable\r\n\r\nbusy");
        // The server thread drops the connection after writing, which ends the body.
        let got = http_get(&url, Duration::from_secs(5)).unwrap();
        assert_eq!(got, (503, "busy".to_string()));
        server.join().unwrap();
    }

    #[test]
    fn times_out_on_a_silent_server() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        // The kernel completes the handshake; nobody ever answers.
        let err = http_get(&url, Duration::from_millis(200)).unwrap_err();
        assert!(err.contains("timed out"), "{err}");
        drop(listener);
    }

    #[test]
    fn reports_refused_connections() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let err =
            http_get(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(2)).unwrap_err();
        assert!(err.contains("connect"), "{err}");
    }
}
