//! The router's access log: one JSON object per sampled request, handed to a bounded channel so
//! the request path never waits on a disk; [`write_access_log`] drains it into any writer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use http::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

/// The access log's setting: which requests are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessLog {
    /// One request in this many is written (1: every request; 0 counts as 1).
    pub sample_one_in: u32,
}

/// Where the lines go and which requests make one; shared by the data path.
#[derive(Debug, Default)]
pub(crate) struct AccessLogState {
    sink: Option<mpsc::Sender<String>>,
    /// `0` when the log is off, else one request in this many.
    sample_one_in: AtomicU32,
    /// Requests seen while the log is on, for sampling.
    seen: AtomicU64,
    /// Lines dropped because the channel was full (or its reader gone).
    dropped: AtomicU64,
}

impl AccessLogState {
    pub(crate) fn new(sink: Option<mpsc::Sender<String>>) -> AccessLogState {
        AccessLogState {
            sink,
            ..AccessLogState::default()
        }
    }

    pub(crate) fn set(&self, log: Option<AccessLog>) {
        let one_in = log.map_or(0, |log| log.sample_one_in.max(1));
        self.sample_one_in.store(one_in, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> Option<AccessLog> {
        match self.sample_one_in.load(Ordering::Relaxed) {
            0 => None,
            sample_one_in => Some(AccessLog { sample_one_in }),
        }
    }

    /// Whether this request gets a line: one atomic load while the log is off.
    pub(crate) fn sample(&self) -> bool {
        let one_in = self.sample_one_in.load(Ordering::Relaxed);
        if one_in == 0 || self.sink.is_none() {
            return false;
        }
        self.seen
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(u64::from(one_in))
    }

    pub(crate) fn write(&self, entry: &Entry, duration: Duration) {
        let Some(sink) = &self.sink else { return };
        if sink.try_send(entry.to_json(duration).to_string()).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// What a sampled request's line says, gathered while it is served.
#[derive(Debug)]
pub(crate) struct Entry {
    pub time: SystemTime,
    pub client: SocketAddr,
    pub method: Method,
    pub host: String,
    pub path: String,
    pub status: u16,
    pub bytes_out: u64,
    /// (team, app) when the host routes to one.
    pub app: Option<(String, String)>,
    pub instance: Option<String>,
    pub upstream_error: Option<String>,
}

impl Entry {
    fn to_json(&self, duration: Duration) -> Value {
        let (team, app) = match &self.app {
            Some((team, app)) => (Some(team.as_str()), Some(app.as_str())),
            None => (None, None),
        };
        json!({
            "time": humantime::format_rfc3339_millis(self.time).to_string(),
            "client": self.client.to_string(),
            "method": self.method.as_str(),
            "host": self.host,
            "path": self.path,
            "status": self.status,
            // Microsecond precision is plenty and keeps the number short.
            "duration_ms": (duration.as_micros() as f64) / 1000.0,
            "bytes_out": self.bytes_out,
            "team": team,
            "app": app,
            "instance": self.instance,
            "upstream_error": self.upstream_error,
        })
    }
}

/// Writes every line the router sends on `lines` to `out`, one a line, until the router (every
/// sender) is gone. Lines are buffered and flushed whenever none is waiting.
pub async fn write_access_log(
    mut lines: mpsc::Receiver<String>,
    out: impl AsyncWrite + Unpin,
) -> std::io::Result<()> {
    let mut out = BufWriter::new(out);
    while let Some(line) = lines.recv().await {
        out.write_all(line.as_bytes()).await?;
        out.write_all(b"\n").await?;
        while let Ok(line) = lines.try_recv() {
            out.write_all(line.as_bytes()).await?;
            out.write_all(b"\n").await?;
        }
        out.flush().await?;
    }
    out.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            client: "192.0.2.7:4711".parse().unwrap(),
            method: Method::POST,
            host: "web.shop.example".into(),
            path: "/a?q=\"x\"\n\u{7}".into(),
            status: 502,
            bytes_out: 42,
            app: Some(("shop".into(), "web".into())),
            instance: Some("web-1".into()),
            upstream_error: Some("cannot connect: refused".into()),
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_every_field() {
        let line = entry().to_json(Duration::from_micros(12_345)).to_string();
        assert!(!line.contains('\n'), "one line: {line}");
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(value["client"], "192.0.2.7:4711");
        assert_eq!(value["method"], "POST");
        assert_eq!(value["path"], "/a?q=\"x\"\n\u{7}");
        assert_eq!(value["status"], 502);
        assert_eq!(value["duration_ms"], 12.345);
        assert_eq!(value["bytes_out"], 42);
        assert_eq!(
            (&value["team"], &value["app"]),
            (&json!("shop"), &json!("web"))
        );
        assert_eq!(value["instance"], "web-1");
        assert_eq!(value["upstream_error"], "cannot connect: refused");
        let unrouted = Entry {
            app: None,
            instance: None,
            upstream_error: None,
            ..entry()
        };
        let value = unrouted.to_json(Duration::ZERO);
        assert!(value["app"].is_null() && value["instance"].is_null());
    }

    #[test]
    fn sampling_takes_one_request_in_n() {
        let (tx, _rx) = mpsc::channel(1);
        let state = AccessLogState::new(Some(tx));
        // (setting, requests, sampled)
        let cases = [
            (None, 10, 0),
            (Some(1), 10, 10),
            (Some(0), 5, 5),
            (Some(4), 12, 3),
            (Some(1000), 10, 1),
        ];
        for (one_in, requests, want) in cases {
            state.set(one_in.map(|sample_one_in| AccessLog { sample_one_in }));
            state.seen.store(0, Ordering::Relaxed);
            let sampled = (0..requests).filter(|_| state.sample()).count();
            assert_eq!(sampled, want, "{one_in:?}");
        }
        assert!(!AccessLogState::new(None).sample(), "no sink, no line");
    }

    #[tokio::test]
    async fn a_full_channel_drops_lines_and_the_writer_writes_the_rest() {
        let (tx, rx) = mpsc::channel(2);
        let state = AccessLogState::new(Some(tx));
        for _ in 0..3 {
            state.write(&entry(), Duration::from_millis(1));
        }
        assert_eq!(state.dropped(), 1);
        drop(state);
        let mut out = Vec::new();
        write_access_log(rx, &mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2);
        for line in text.lines() {
            serde_json::from_str::<Value>(line).unwrap();
        }
    }
}
