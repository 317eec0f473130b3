//! Test support for Berth's own test suites (Docker checks, the test app image, per-test
//! namespaces, a tiny HTTP client); it is not shipped.
//!
//! Everything here is synchronous std code that shells out to the `docker` CLI, so any test,
//! async or not, can use it without pulling a runtime — except the in-process registry of the
//! `registry` feature, which runs on the caller's tokio runtime, and the HTTPS client of the
//! `tls` feature.

mod docker;
mod http;
mod image;
mod namespace;
#[cfg(feature = "pebble")]
mod pebble;
#[cfg(feature = "registry")]
mod registry;
#[cfg(feature = "tls")]
mod tls;

pub use docker::{docker_available, require_docker};
pub use http::http_get;
pub use image::{SHELL_IMAGE, TESTAPP_IMAGE, shell_image, testapp_image, workspace_root};
pub use namespace::{NAMESPACE_LABEL, NamespaceGuard, cleanup_namespace, unique_namespace};
#[cfg(feature = "pebble")]
pub use pebble::Pebble;
#[cfg(feature = "registry")]
pub use registry::TestRegistry;
#[cfg(feature = "tls")]
pub use tls::{HttpsAnswer, https_get};
