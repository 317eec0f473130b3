//! Berth's HTTP router for app traffic: a pure routing table (host name → an app's ready
//! instances) and the data path that proxies requests to them. It reads only the table it is
//! given; the controller builds and swaps it.

pub mod table;

pub use table::{
    Backend, HostConflict, InvalidHost, Route, RoutedApp, RoutingTable, normalize_host,
};
