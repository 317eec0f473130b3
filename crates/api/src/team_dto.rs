//! Wire types of teams, members, quotas, quota requests and deployment templates (see
//! docs/ACCOUNTS-API.md), with their conversions from domain types.

use berth_core::Millis;
use berth_core::accounts::{Membership, TeamRole, User};
use berth_core::deploy_template::{DeploymentTemplate, ParamKind, TemplateParam};
use berth_core::quota::{Quota, QuotaRequest, QuotaResource, Usage};
use berth_core::team::Team;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

/// The team shown for built-in templates.
pub const BUILTIN_TEAM: &str = "builtin";

/// Largest limit the store can hold (a signed 64-bit column).
const MAX_LIMIT: u64 = i64::MAX as u64;

/// A team's limits; an absent (or null) field is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaDto {
    /// CPU in millicores (1000 = one core), summed over every instance of the team's apps.
    #[serde(default)]
    pub cpu_millis: Option<u64>,
    /// Memory in bytes, summed over every instance.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// Instances of all the team's apps together.
    #[serde(default)]
    pub instances: Option<u64>,
    /// Bytes of the team's registry repositories (`team/...`).
    #[serde(default)]
    pub registry_bytes: Option<u64>,
    /// Bytes the team's volumes hold, as measured each minute. Over it, no new volume is made
    /// and no restore accepted.
    #[serde(default)]
    pub volume_bytes: Option<u64>,
}

impl From<&Quota> for QuotaDto {
    fn from(quota: &Quota) -> Self {
        QuotaDto {
            cpu_millis: quota.cpu_millis,
            memory_bytes: quota.memory_bytes,
            instances: quota.instances,
            registry_bytes: quota.registry_bytes,
            volume_bytes: quota.volume_bytes,
        }
    }
}

impl QuotaDto {
    /// The domain quota; a limit too large to store is a 400 naming `<prefix><field>`
    /// (`prefix` is e.g. `quota.` when the quota is nested in the request).
    pub fn to_quota(&self, prefix: &str) -> ApiResult<Quota> {
        let quota = Quota {
            cpu_millis: self.cpu_millis,
            memory_bytes: self.memory_bytes,
            instances: self.instances,
            registry_bytes: self.registry_bytes,
            volume_bytes: self.volume_bytes,
        };
        for resource in QuotaResource::ALL {
            if quota.limit(resource).is_some_and(|limit| limit > MAX_LIMIT) {
                return Err(ApiError::field(
                    format!("{prefix}{}", resource.field()),
                    format!("must be at most {MAX_LIMIT}"),
                ));
            }
        }
        Ok(quota)
    }
}

/// What a team uses now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageDto {
    /// `replicas × cpu_millis` over the team's apps.
    pub cpu_millis: u64,
    /// `replicas × memory_bytes` over the team's apps.
    pub memory_bytes: u64,
    /// Instances the team's apps ask for.
    pub instances: u64,
    /// Bytes of the team's registry repositories.
    pub registry_bytes: u64,
    /// Bytes the team's volumes hold, as last measured.
    #[serde(default)]
    pub volume_bytes: u64,
}

impl From<Usage> for UsageDto {
    fn from(usage: Usage) -> Self {
        UsageDto {
            cpu_millis: usage.cpu_millis,
            memory_bytes: usage.memory_bytes,
            instances: usage.instances,
            registry_bytes: usage.registry_bytes,
            volume_bytes: usage.volume_bytes,
        }
    }
}

/// A team with its limits and what it uses.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TeamDto {
    pub name: String,
    pub display_name: String,
    /// The caller's role in the team (`owner`, `member`, `viewer`); null when not a member.
    pub role: Option<String>,
    pub quota: QuotaDto,
    pub usage: UsageDto,
    /// Unix milliseconds.
    pub created_at: Millis,
}

impl TeamDto {
    pub fn new(team: &Team, role: Option<TeamRole>, usage: Usage) -> Self {
        TeamDto {
            name: team.name.clone(),
            display_name: team.display_name.clone(),
            role: role.map(|r| r.as_str().to_string()),
            quota: QuotaDto::from(&team.quota),
            usage: UsageDto::from(usage),
            created_at: team.created_at,
        }
    }
}

/// One member of a team.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberDto {
    pub username: String,
    pub display_name: String,
    /// `owner`, `member` or `viewer`.
    pub role: String,
}

impl MemberDto {
    pub fn new(user: &User, membership: &Membership) -> Self {
        MemberDto {
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            role: membership.role.as_str().to_string(),
        }
    }
}

/// A new team (admins). The creator does not become a member.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTeamRequest {
    /// Lowercase letters, digits and '-'; the first segment of the team's repositories.
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// The team's limits; default: the server's default team quota. `{}` is unlimited.
    #[serde(default)]
    pub quota: Option<QuotaDto>,
}

/// Changes to a team; absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamChanges {
    /// Owners and admins.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The new limits, replacing all four (an absent limit is unlimited). Admins only.
    #[serde(default)]
    pub quota: Option<QuotaDto>,
}

/// A member's role.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRoleRequest {
    /// `owner`, `member` or `viewer`.
    pub role: String,
}

/// A request for larger limits, and its outcome.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuotaRequestDto {
    pub id: i64,
    pub team: String,
    /// Username of the requester.
    pub requested_by: String,
    /// The limits asked for; absent ones stay as they are.
    pub requested: QuotaDto,
    /// The team's limits now.
    pub current: QuotaDto,
    pub reason: String,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub created_at: Millis,
    /// Username of the admin who decided.
    pub decided_by: Option<String>,
    pub decided_at: Option<Millis>,
    /// The admin's comment.
    pub comment: Option<String>,
}

impl QuotaRequestDto {
    /// The request, shown with the team's `current` quota.
    pub fn new(request: &QuotaRequest, current: &Quota) -> Self {
        QuotaRequestDto {
            id: request.id,
            team: request.team.clone(),
            requested_by: request.requested_by.clone(),
            requested: QuotaDto::from(&request.requested),
            current: QuotaDto::from(current),
            reason: request.reason.clone(),
            status: request.status.as_str().to_string(),
            created_at: request.created_at,
            decided_by: request.decided_by.clone(),
            decided_at: request.decided_at,
            comment: request.comment.clone(),
        }
    }
}

/// Filing a quota request: the new limits wanted (each larger than the current one).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewQuotaRequest {
    #[serde(default)]
    pub cpu_millis: Option<u64>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub instances: Option<u64>,
    #[serde(default)]
    pub registry_bytes: Option<u64>,
    #[serde(default)]
    pub volume_bytes: Option<u64>,
    /// Why the team needs more (1 to 1000 characters).
    #[serde(default)]
    pub reason: String,
}

impl NewQuotaRequest {
    /// The limits asked for.
    pub fn requested(&self) -> QuotaDto {
        QuotaDto {
            cpu_millis: self.cpu_millis,
            memory_bytes: self.memory_bytes,
            instances: self.instances,
            registry_bytes: self.registry_bytes,
            volume_bytes: self.volume_bytes,
        }
    }
}

/// An admin's decision on a quota request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// Optional when approving, required when rejecting.
    #[serde(default)]
    pub comment: Option<String>,
}

/// One parameter of a deployment template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamDto {
    /// Referenced as `${name}` in the body: lowercase letters, digits and '_'.
    pub name: String,
    /// `string`, `integer`, `boolean`, `image`, `name` or `path`.
    pub kind: String,
    #[serde(default)]
    pub description: String,
    /// Used when no value is given; a parameter without a default is required.
    #[serde(default)]
    pub default: Option<Value>,
    /// Lower bound of an `integer` parameter.
    #[serde(default)]
    pub min: Option<i64>,
    /// Upper bound of an `integer` parameter.
    #[serde(default)]
    pub max: Option<i64>,
}

impl From<&TemplateParam> for ParamDto {
    fn from(param: &TemplateParam) -> Self {
        ParamDto {
            name: param.name.clone(),
            kind: param.kind.as_str().to_string(),
            description: param.description.clone(),
            default: param.default.clone(),
            min: param.min,
            max: param.max,
        }
    }
}

impl ParamDto {
    /// The domain parameter; an unknown kind is the error message.
    pub fn to_param(&self) -> Result<TemplateParam, String> {
        let kind = ParamKind::parse(&self.kind)
            .ok_or("must be string, integer, boolean, image, name or path")?;
        Ok(TemplateParam {
            name: self.name.clone(),
            kind,
            description: self.description.clone(),
            default: self.default.clone(),
            min: self.min,
            max: self.max,
        })
    }
}

/// A deployment template: an app-creation request with `${param}` placeholders.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeploymentTemplateDto {
    /// The owning team; `builtin` for the built-in templates.
    pub team: String,
    pub name: String,
    pub description: String,
    pub params: Vec<ParamDto>,
    /// The app-creation request (`AppChanges`) with `"${param}"` placeholders.
    pub body: Value,
    /// Username of the author (`berth` for built-ins).
    pub created_by: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl From<&DeploymentTemplate> for DeploymentTemplateDto {
    fn from(template: &DeploymentTemplate) -> Self {
        DeploymentTemplateDto {
            team: template
                .team
                .clone()
                .unwrap_or_else(|| BUILTIN_TEAM.to_string()),
            name: template.name.clone(),
            description: template.description.clone(),
            params: template.params.iter().map(ParamDto::from).collect(),
            body: template.body.clone(),
            created_by: template.created_by.clone(),
            created_at: template.created_at,
            updated_at: template.updated_at,
        }
    }
}

/// Saving a template (the team and name are in the path).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    #[serde(default)]
    pub description: Option<String>,
    pub params: Vec<ParamDto>,
    /// An app-creation request (`AppChanges`) with `"${param}"` placeholders. A string that is
    /// exactly `"${p}"` takes p's typed value; `${p}` inside a longer string its text;
    /// `$${` is a literal `${`.
    pub body: Value,
}

/// Creating an app from a template.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateAppRequest {
    /// The team that will own the app.
    pub team: String,
    /// Parameter values by name; parameters left out take their defaults.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub values: Map<String, Value>,
    /// Why (recorded on the app's first revision).
    #[serde(default)]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::quota::QuotaRequestStatus;
    use serde_json::json;

    #[test]
    fn quota_limits_must_fit_the_store() {
        let q = |cpu, inst| QuotaDto {
            cpu_millis: cpu,
            instances: inst,
            ..QuotaDto::default()
        };
        // (dto, prefix, Ok(quota) or Err(field))
        let cases = [
            (q(None, None), "quota.", Ok(Quota::unlimited())),
            (
                q(Some(MAX_LIMIT), Some(3)),
                "",
                Ok(Quota {
                    cpu_millis: Some(MAX_LIMIT),
                    instances: Some(3),
                    ..Quota::unlimited()
                }),
            ),
            (
                q(Some(MAX_LIMIT + 1), None),
                "quota.",
                Err("quota.cpu_millis"),
            ),
            (q(None, Some(u64::MAX)), "", Err("instances")),
        ];
        for (dto, prefix, want) in cases {
            let got = dto
                .to_quota(prefix)
                .map_err(|e| e.field.unwrap_or_default());
            assert_eq!(got, want.map_err(String::from), "{dto:?}");
        }
    }

    #[test]
    fn quotas_serialize_unlimited_as_null() {
        let dto = QuotaDto::from(&Quota {
            instances: Some(5),
            ..Quota::unlimited()
        });
        assert_eq!(
            serde_json::to_value(dto).unwrap(),
            json!({"cpu_millis": null, "memory_bytes": null, "instances": 5, "registry_bytes": null, "volume_bytes": null})
        );
        let parsed: QuotaDto = serde_json::from_value(json!({"instances": 5})).unwrap();
        assert_eq!(parsed, dto);
        assert!(serde_json::from_value::<QuotaDto>(json!({"cpu": 1})).is_err());
    }

    #[test]
    fn params_convert_both_ways() {
        let cases = [
            ("string", Ok(ParamKind::String)),
            ("integer", Ok(ParamKind::Integer)),
            ("boolean", Ok(ParamKind::Boolean)),
            ("image", Ok(ParamKind::Image)),
            ("name", Ok(ParamKind::Name)),
            ("path", Ok(ParamKind::Path)),
            ("int", Err(())),
            ("", Err(())),
        ];
        for (kind, want) in cases {
            let dto = ParamDto {
                name: "p".into(),
                kind: kind.into(),
                description: "d".into(),
                default: Some(json!(1)),
                min: Some(0),
                max: None,
            };
            match (dto.to_param(), want) {
                (Ok(param), Ok(kind)) => {
                    assert_eq!(param.kind, kind);
                    assert_eq!(ParamDto::from(&param), dto);
                }
                (Err(_), Err(())) => {}
                (got, want) => panic!("{kind}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn builtin_templates_show_under_the_builtin_team() {
        let template = &berth_core::deploy_template::builtin_templates()[0];
        let dto = DeploymentTemplateDto::from(template);
        assert_eq!(dto.team, BUILTIN_TEAM);
        assert_eq!(dto.params.len(), template.params.len());
    }

    #[test]
    fn quota_requests_show_the_current_quota() {
        let request = QuotaRequest {
            id: 7,
            team: "web".into(),
            requested_by: "ada".into(),
            requested: Quota {
                instances: Some(30),
                ..Quota::unlimited()
            },
            reason: "launch".into(),
            status: QuotaRequestStatus::Pending,
            created_at: 1,
            decided_by: None,
            decided_at: None,
            comment: None,
        };
        let current = berth_core::quota::DEFAULT_TEAM_QUOTA;
        let dto = QuotaRequestDto::new(&request, &current);
        assert_eq!(dto.status, "pending");
        assert_eq!(dto.requested.instances, Some(30));
        assert_eq!(dto.requested.cpu_millis, None);
        assert_eq!(dto.current, QuotaDto::from(&current));
    }
}
