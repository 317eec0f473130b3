//! Teams (departments): the owners of apps, images, templates and quotas.

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::quota::Quota;

/// A department.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    /// Unique, immutable; the first segment of the team's registry repositories.
    pub name: String,
    /// Free text shown in the console; may be empty.
    pub display_name: String,
    pub quota: Quota,
    pub created_at: Millis,
    pub updated_at: Millis,
}
