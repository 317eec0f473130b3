//! Connections observed between apps: the host's connection tracking table (conntrack, read
//! from `/proc/net/nf_conntrack`) lists every TCP and UDP flow crossing the host's bridges,
//! including instance-to-instance calls over a team network, which never pass the router.
//! [`parse_conntrack_line`] reads one entry; [`FlowTracker`] maps the flows' addresses to the
//! apps whose instances hold them and keeps, per pair of apps, how many new connections
//! appeared over the last minute, how many are open now and on which ports — the topology's
//! observed edges.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

use crate::Millis;

/// How far back observed connections count.
pub const FLOW_WINDOW_MS: Millis = 60_000;

/// The transport of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Tcp,
    Udp,
}

/// One tracked flow, in the direction it was opened (the original tuple).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub transport: Transport,
    pub source: IpAddr,
    pub source_port: u16,
    pub destination: IpAddr,
    pub destination_port: u16,
    /// Still open: a TCP connection being set up or established (not closing or closed), or
    /// any UDP flow the kernel still tracks.
    pub open: bool,
}

/// One line of `/proc/net/nf_conntrack`, e.g.
/// `ipv4 2 tcp 6 431999 ESTABLISHED src=172.18.0.2 dst=172.18.0.3 sport=40112 dport=8080
/// src=172.18.0.3 dst=172.18.0.2 sport=8080 dport=40112 [ASSURED] mark=0 use=2`.
/// `None` for anything else than a well-formed TCP or UDP entry (other protocols, truncated or
/// garbled lines): the table is read as it is, never trusted to be tidy.
pub fn parse_conntrack_line(line: &str) -> Option<Flow> {
    let mut words = line.split_ascii_whitespace();
    let family = words.next()?;
    if family != "ipv4" && family != "ipv6" {
        return None;
    }
    words.next()?; // the family's number
    let transport = match words.next()? {
        "tcp" => Transport::Tcp,
        "udp" => Transport::Udp,
        _ => return None,
    };
    words.next()?; // the protocol's number
    words.next()?.parse::<u64>().ok()?; // seconds until the entry expires
    let mut open = transport == Transport::Udp;
    let (mut source, mut destination, mut source_port, mut destination_port) =
        (None, None, None, None);
    for word in words {
        match word.split_once('=') {
            None if transport == Transport::Tcp && source.is_none() => {
                // The TCP state comes before the first tuple.
                open = matches!(word, "SYN_SENT" | "SYN_RECV" | "ESTABLISHED");
            }
            None => {}
            // Only the first (original) tuple counts; the reply tuple repeats the keys.
            Some(("src", value)) if source.is_none() => source = Some(value.parse().ok()?),
            Some(("dst", value)) if destination.is_none() => {
                destination = Some(value.parse().ok()?)
            }
            Some(("sport", value)) if source_port.is_none() => {
                source_port = Some(value.parse().ok()?)
            }
            Some(("dport", value)) if destination_port.is_none() => {
                destination_port = Some(value.parse().ok()?);
                break;
            }
            Some(_) => {}
        }
    }
    Some(Flow {
        transport,
        source: source?,
        source_port: source_port?,
        destination: destination?,
        destination_port: destination_port?,
        open,
    })
}

/// Connections from one app's instances to another's.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedEdge {
    pub from: String,
    pub to: String,
    /// New connections per minute over the last minute (or over the time observed, when
    /// shorter).
    pub connections_per_minute: f64,
    /// Connections open at the last reading.
    pub open_connections: u32,
    /// The ports called on the target, e.g. `tcp/8080`.
    pub ports: Vec<String>,
    /// When a connection of this edge was last in the table.
    pub last_seen: Millis,
}

#[derive(Debug, Default)]
struct EdgeLog {
    /// When each new connection was first seen, within the window.
    opened: VecDeque<Millis>,
    open_now: u32,
    ports: BTreeSet<(Transport, u16)>,
    last_seen: Millis,
}

/// What identifies one connection across readings.
type FlowKey = (Transport, IpAddr, u16, IpAddr, u16);

/// The observed connections between apps, reading after reading.
#[derive(Debug, Default)]
pub struct FlowTracker {
    /// The connections between apps in the last reading.
    known: HashMap<FlowKey, (String, String)>,
    edges: BTreeMap<(String, String), EdgeLog>,
    /// When the first reading was taken: connections already there then were opened at
    /// unknown times and are not counted as new.
    since: Option<Millis>,
}

impl FlowTracker {
    /// Takes one reading of the table: `owner` names the app an address belongs to (one of
    /// its instances). A flow counts when both ends are instances of two different apps;
    /// a connection counts as new the first time it is seen (after the first reading).
    pub fn observe<'a>(
        &mut self,
        now: Millis,
        flows: impl IntoIterator<Item = Flow>,
        owner: impl Fn(IpAddr) -> Option<&'a str>,
    ) {
        let first = self.since.is_none();
        self.since.get_or_insert(now);
        for log in self.edges.values_mut() {
            log.open_now = 0;
        }
        let mut seen = HashMap::with_capacity(self.known.len());
        for flow in flows {
            let (Some(from), Some(to)) = (owner(flow.source), owner(flow.destination)) else {
                continue;
            };
            if from == to {
                continue;
            }
            let key = (
                flow.transport,
                flow.source,
                flow.source_port,
                flow.destination,
                flow.destination_port,
            );
            let pair = (from.to_string(), to.to_string());
            let log = self.edges.entry(pair.clone()).or_default();
            let new = self.known.get(&key) != Some(&pair);
            if new && !first {
                log.opened.push_back(now);
            }
            if flow.open {
                log.open_now += 1;
            }
            log.ports.insert((flow.transport, flow.destination_port));
            log.last_seen = now;
            seen.insert(key, pair);
        }
        self.known = seen;
        let horizon = now - FLOW_WINDOW_MS;
        self.edges.retain(|_, log| {
            while log.opened.front().is_some_and(|at| *at <= horizon) {
                log.opened.pop_front();
            }
            log.last_seen > horizon
        });
    }

    /// The edges with a connection in the table within the last minute.
    pub fn edges(&self, now: Millis) -> Vec<ObservedEdge> {
        let since = self.since.unwrap_or(now);
        let span = (now - since).clamp(1, FLOW_WINDOW_MS);
        self.edges
            .iter()
            .filter(|(_, log)| log.last_seen > now - FLOW_WINDOW_MS)
            .map(|((from, to), log)| {
                let counted = log
                    .opened
                    .iter()
                    .filter(|at| **at > now - FLOW_WINDOW_MS)
                    .count();
                ObservedEdge {
                    from: from.clone(),
                    to: to.clone(),
                    connections_per_minute: counted as f64 * 60_000.0 / span as f64,
                    open_connections: log.open_now,
                    ports: log
                        .ports
                        .iter()
                        .map(|(transport, port)| match transport {
                            Transport::Tcp => format!("tcp/{port}"),
                            Transport::Udp => format!("udp/{port}"),
                        })
                        .collect(),
                    last_seen: log.last_seen,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn conntrack_lines_give_the_original_tuple_or_nothing() {
        let tcp = Some(Flow {
            transport: Transport::Tcp,
            source: ip("172.18.0.2"),
            source_port: 40112,
            destination: ip("172.18.0.3"),
            destination_port: 8080,
            open: true,
        });
        let cases: [(&str, Option<Flow>); 12] = [
            (
                "ipv4     2 tcp      6 431999 ESTABLISHED src=172.18.0.2 dst=172.18.0.3 sport=40112 dport=8080 src=172.18.0.3 dst=172.18.0.2 sport=8080 dport=40112 [ASSURED] mark=0 zone=0 use=2",
                tcp,
            ),
            (
                "ipv4     2 tcp      6 119 TIME_WAIT src=172.18.0.2 dst=172.18.0.3 sport=40112 dport=8080 src=172.18.0.3 dst=172.18.0.2 sport=8080 dport=40112 [ASSURED] mark=0 use=2",
                tcp.map(|f| Flow { open: false, ..f }),
            ),
            (
                "ipv4 2 tcp 6 60 SYN_SENT src=172.18.0.2 dst=172.18.0.3 sport=40112 dport=8080 [UNREPLIED] src=172.18.0.3 dst=172.18.0.2 sport=8080 dport=40112 mark=0 use=1",
                tcp,
            ),
            (
                "ipv4 2 udp 17 29 src=10.0.0.5 dst=10.0.0.6 sport=5353 dport=53 [UNREPLIED] src=10.0.0.6 dst=10.0.0.5 sport=53 dport=5353 mark=0 use=1",
                Some(Flow {
                    transport: Transport::Udp,
                    source: ip("10.0.0.5"),
                    source_port: 5353,
                    destination: ip("10.0.0.6"),
                    destination_port: 53,
                    open: true,
                }),
            ),
            (
                "ipv6 10 tcp 6 300 ESTABLISHED src=fd00::2 dst=fd00::3 sport=1000 dport=443 src=fd00::3 dst=fd00::2 sport=443 dport=1000 use=1",
                Some(Flow {
                    transport: Transport::Tcp,
                    source: ip("fd00::2"),
                    source_port: 1000,
                    destination: ip("fd00::3"),
                    destination_port: 443,
                    open: true,
                }),
            ),
            // Other protocols, garbled or truncated lines.
            (
                "ipv4 2 unknown 2 117 src=192.168.112.1 dst=224.0.0.22 [UNREPLIED] src=224.0.0.22 dst=192.168.112.1 mark=0 use=2",
                None,
            ),
            (
                "ipv4 2 icmp 1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=1",
                None,
            ),
            (
                "ipv4 2 tcp 6 60 ESTABLISHED src=172.18.0.2 dst=172.18.0.3 sport=40112",
                None,
            ),
            (
                "ipv4 2 tcp 6 60 ESTABLISHED src=999.1.1.1 dst=172.18.0.3 sport=1 dport=2",
                None,
            ),
            (
                "ipv4 2 tcp 6 60 ESTABLISHED src=1.1.1.1 dst=2.2.2.2 sport=1 dport=70000",
                None,
            ),
            (
                "ipv4 2 tcp 6 soon ESTABLISHED src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2",
                None,
            ),
            ("", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse_conntrack_line(line), want, "{line}");
        }
    }

    fn flow(source: &str, port: u16, destination: &str, open: bool) -> Flow {
        Flow {
            transport: Transport::Tcp,
            source: ip(source),
            source_port: port,
            destination: ip(destination),
            destination_port: 8080,
            open,
        }
    }

    fn owners(address: IpAddr) -> Option<&'static str> {
        match address.to_string().as_str() {
            "10.0.0.1" | "10.0.0.11" => Some("front"),
            "10.0.0.2" => Some("back"),
            "10.0.0.3" => Some("cache"),
            _ => None,
        }
    }

    #[test]
    fn new_connections_between_two_apps_are_counted_over_the_last_minute() {
        let mut tracker = FlowTracker::default();
        // The first reading: what is there already is not counted as new, but shows.
        tracker.observe(0, [flow("10.0.0.1", 1, "10.0.0.2", true)], owners);
        let edges = tracker.edges(0);
        assert_eq!(edges.len(), 1);
        assert_eq!(
            (edges[0].from.as_str(), edges[0].to.as_str()),
            ("front", "back")
        );
        assert_eq!(edges[0].connections_per_minute, 0.0);
        assert_eq!(edges[0].open_connections, 1);
        assert_eq!(edges[0].ports, ["tcp/8080"]);
        // 5 s later: the first one closed (still in the table), two new ones from two
        // instances of front, one of them closed already.
        tracker.observe(
            5_000,
            [
                flow("10.0.0.1", 1, "10.0.0.2", false),
                flow("10.0.0.1", 2, "10.0.0.2", true),
                flow("10.0.0.11", 3, "10.0.0.2", false),
            ],
            owners,
        );
        let edge = &tracker.edges(5_000)[0];
        assert_eq!(edge.open_connections, 1);
        // Two new connections over 5 s observed: 24 a minute.
        assert_eq!(edge.connections_per_minute, 24.0);
        // Seen again: not new.
        tracker.observe(60_000, [flow("10.0.0.1", 2, "10.0.0.2", true)], owners);
        assert_eq!(tracker.edges(60_000)[0].connections_per_minute, 2.0);
        // Past the minute the two new ones fall out; the edge stays while a connection is seen.
        tracker.observe(66_000, [flow("10.0.0.1", 2, "10.0.0.2", true)], owners);
        assert_eq!(tracker.edges(66_000)[0].connections_per_minute, 0.0);
        // Gone from the table for a minute: the edge goes.
        tracker.observe(70_000, [], owners);
        assert_eq!(tracker.edges(70_000).len(), 1, "seen 4 s ago");
        tracker.observe(127_000, [], owners);
        assert!(tracker.edges(127_000).is_empty());
    }

    #[test]
    fn flows_count_only_between_instances_of_two_different_apps() {
        let mut tracker = FlowTracker::default();
        tracker.observe(0, [], owners);
        tracker.observe(
            1_000,
            [
                // Within one app.
                flow("10.0.0.1", 1, "10.0.0.11", true),
                // From or to something that is no instance (the host, the router, outside).
                flow("172.17.0.1", 2, "10.0.0.2", true),
                flow("10.0.0.2", 3, "8.8.8.8", true),
                // Two edges out of back.
                flow("10.0.0.2", 4, "10.0.0.3", true),
                flow("10.0.0.2", 5, "10.0.0.1", false),
            ],
            owners,
        );
        let pairs: Vec<(String, String)> = tracker
            .edges(1_000)
            .into_iter()
            .map(|e| (e.from, e.to))
            .collect();
        assert_eq!(
            pairs,
            [
                ("back".to_string(), "cache".to_string()),
                ("back".to_string(), "front".to_string())
            ]
        );
    }

    #[test]
    fn an_address_taken_over_by_another_app_starts_a_new_connection() {
        let mut tracker = FlowTracker::default();
        tracker.observe(0, [], owners);
        let same = flow("10.0.0.1", 1, "10.0.0.2", true);
        tracker.observe(1_000, [same], owners);
        // The same tuple, but 10.0.0.2 now belongs to cache (back's instance was replaced).
        tracker.observe(2_000, [same], |a| {
            if a == ip("10.0.0.2") {
                Some("cache")
            } else {
                owners(a)
            }
        });
        let edges = tracker.edges(2_000);
        assert_eq!(edges.len(), 2);
        assert!(edges.iter().all(|e| e.connections_per_minute > 0.0));
    }
}
