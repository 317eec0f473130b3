//! How enum-like domain values are spelled in database columns, for every implementation.
//!
//! The core types do not carry these spellings (only this crate knows storage), so they live
//! here behind one small trait; a value the store does not know is reported, never guessed.

use berth_core::audit::AuditOutcome;
use berth_core::certificate::CertificateSource;
use berth_core::pipeline::{BuildStatus, BuildTrigger};
use berth_core::quota::QuotaRequestStatus;

/// An enum stored as a fixed word.
pub(crate) trait DbEnum: Copy + Sized + 'static {
    /// Every variant, so [`DbEnum::parse`] stays in step with [`DbEnum::as_str`].
    const ALL: &'static [Self];

    fn as_str(self) -> &'static str;

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s)
    }
}

impl DbEnum for QuotaRequestStatus {
    const ALL: &'static [Self] = &[
        QuotaRequestStatus::Pending,
        QuotaRequestStatus::Approved,
        QuotaRequestStatus::Rejected,
    ];

    fn as_str(self) -> &'static str {
        match self {
            QuotaRequestStatus::Pending => "pending",
            QuotaRequestStatus::Approved => "approved",
            QuotaRequestStatus::Rejected => "rejected",
        }
    }
}

impl DbEnum for AuditOutcome {
    const ALL: &'static [Self] = &[
        AuditOutcome::Success,
        AuditOutcome::Denied,
        AuditOutcome::Failed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failed => "failed",
        }
    }
}

// The pipeline's enums carry their stable names in the core (the pipeline crate and the API
// share them), so the columns use those.
impl DbEnum for BuildStatus {
    const ALL: &'static [Self] = &BuildStatus::ALL;

    fn as_str(self) -> &'static str {
        BuildStatus::as_str(self)
    }
}

impl DbEnum for BuildTrigger {
    const ALL: &'static [Self] = &BuildTrigger::ALL;

    fn as_str(self) -> &'static str {
        BuildTrigger::as_str(self)
    }
}

impl DbEnum for CertificateSource {
    const ALL: &'static [Self] = &[CertificateSource::Uploaded, CertificateSource::Acme];

    fn as_str(self) -> &'static str {
        CertificateSource::as_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: DbEnum + PartialEq + std::fmt::Debug>() {
        for &v in T::ALL {
            assert_eq!(T::parse(v.as_str()), Some(v));
        }
        assert_eq!(T::parse("unknown"), None);
    }

    #[test]
    fn every_variant_round_trips() {
        round_trips::<QuotaRequestStatus>();
        round_trips::<AuditOutcome>();
        round_trips::<BuildStatus>();
        round_trips::<BuildTrigger>();
    }
}
