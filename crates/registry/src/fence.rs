//! Garbage collection's fence across servers: several servers may write one registry (the
//! same metadata and blob storage); what makes a blob referenced on any of them holds the
//! fence shared, a sweep holds it exclusively, as the in-process `gc_lock` does within one
//! server. A registry without a fence has one writer.

use std::io;

use async_trait::async_trait;

/// Shared and exclusive holds of one lock every server of the registry reaches.
#[async_trait]
pub trait GcFence: Send + Sync {
    /// Held while a blob is checked and made referenced (commit, mount, manifest put, `HEAD`).
    async fn shared(&self) -> io::Result<FenceHold>;
    /// Held while a sweep deletes blobs.
    async fn exclusive(&self) -> io::Result<FenceHold>;
}

/// A hold of a [`GcFence`]: released when dropped.
pub struct FenceHold(#[allow(dead_code)] Box<dyn Send + Sync>);

impl FenceHold {
    /// Wraps whatever releases the hold when it is dropped.
    pub fn new(guard: impl Send + Sync + 'static) -> FenceHold {
        FenceHold(Box::new(guard))
    }
}
