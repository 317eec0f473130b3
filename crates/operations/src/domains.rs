//! Which domains an app may claim, and the admin's domain reservations.
//!
//! A domain is checked before the write that claims it: the platform's rules (the apps domain,
//! allowed base domains), reservations, other apps' default hosts and other apps' domains. A
//! wildcard (`*.shop.example.com`) is one app's like any domain, and its names are its team's:
//! another team may neither claim a name under it nor claim it over a name it holds. The
//! store's key on (host, path) is the last word when two writes race; both refusals are 409s.
//! Another team's app is named only to callers who may read that team.

use berth_core::routes::{
    AppRoutes, Domain, DomainReservation, HostRefusal, covering_wildcard, default_host,
    is_host_name, normalize_base, reserved_for_other,
};
use berth_core::validate::validate_name;
use berth_store::{DomainOwner, StoreError};
use tokio::sync::OwnedMutexGuard;

use crate::Platform;
use crate::actor::Actor;
use crate::error::{OpError, OpResult};

/// The code of a 409 for a domain that is another app's or another team's.
pub const DOMAIN_TAKEN: &str = "domain_taken";

impl Platform {
    /// Checks that the app `app` of `team` may have `routes`: an internal app has no domain;
    /// every domain passes the platform's rules, is not reserved for another team, is not
    /// another app's default host and is not another app's domain. For a new external app,
    /// its own default host must not be another app's domain either. Its TCP ports are
    /// checked and given host ports ([`Platform::settle_tcp_ports`]; `before`: the app's
    /// ports now, `None` for a new app); hold the returned guard until the write.
    pub async fn check_routes(
        &self,
        actor: &Actor,
        app: &str,
        team: &str,
        routes: &mut AppRoutes,
        before: Option<&AppRoutes>,
    ) -> OpResult<Option<OwnedMutexGuard<()>>> {
        let new_app = before.is_none();
        if routes.internal && !routes.domains.is_empty() {
            return Err(OpError::field(
                "domains",
                "an internal app has no external route: remove its domains or make it external",
            ));
        }
        let policy = &self.domains;
        for domain in &routes.domains {
            policy.check(&domain.host, team).map_err(|refusal| {
                let message = format!("{} {refusal}", domain.host);
                match refusal {
                    HostRefusal::OtherTeamsNamespace { .. } => {
                        OpError::conflict(DOMAIN_TAKEN, format!("domains: {message}"))
                    }
                    HostRefusal::AppsDomain | HostRefusal::NotAllowed { .. } => {
                        OpError::field("domains", message)
                    }
                }
            })?;
        }
        if !routes.domains.is_empty() {
            let reservations = self.store.list_domain_reservations().await?;
            for domain in &routes.domains {
                if let Some(reservation) = reserved_for_other(&domain.host, team, &reservations) {
                    let whose = if actor.can_read(&reservation.team) {
                        format!("team {}", reservation.team)
                    } else {
                        "another team".to_string()
                    };
                    return Err(OpError::conflict(
                        DOMAIN_TAKEN,
                        format!(
                            "domains: {} is reserved for {whose} ({})",
                            domain.host, reservation.domain
                        ),
                    ));
                }
                if let Some((owner, owner_team)) = policy.default_host_owner(&domain.host)
                    && owner != app
                    && domain.path == "/"
                    && let Some(other) = self.store.get_app(owner).await?
                    && other.team == owner_team
                {
                    return Err(taken(actor, &domain.to_string(), &other.name, &other.team));
                }
            }
        }
        let mut hosts: Vec<String> = routes.domains.iter().map(|d| d.host.clone()).collect();
        let own_default =
            (new_app && !routes.internal).then(|| default_host(app, team, &policy.apps_domain));
        hosts.extend(own_default.clone());
        // The wildcards that would stand for the exact names asked for: another team's one
        // keeps them from this team.
        let covering: Vec<(String, String)> = hosts
            .iter()
            .filter_map(|host| covering_wildcard(host).map(|w| (w, host.clone())))
            .collect();
        hosts.extend(covering.iter().map(|(wildcard, _)| wildcard.clone()));
        hosts.sort();
        hosts.dedup();
        for owner in self.store.domain_owners(&hosts).await? {
            if owner.app == app {
                continue;
            }
            let claimed = Domain {
                host: owner.host.clone(),
                path: owner.path.clone(),
            };
            let own_default_taken = own_default.as_deref() == Some(owner.host.as_str());
            if routes.domains.contains(&claimed) || own_default_taken {
                return Err(owner_conflict(actor, &owner));
            }
            if owner.team != team
                && let Some((wildcard, host)) = covering.iter().find(|(w, _)| *w == owner.host)
            {
                return Err(OpError::conflict(
                    DOMAIN_TAKEN,
                    format!(
                        "domains: {host} is under the wildcard {wildcard}, which belongs to {}",
                        whose(actor, &owner.app, &owner.team)
                    ),
                ));
            }
        }
        self.check_wildcards(actor, team, routes).await?;
        let before = before.map_or(&[][..], |r| &r.tcp_ports[..]);
        self.settle_tcp_ports(actor, app, routes, before).await
    }

    /// A wildcard may not stand for a name an app of another team holds: that name would then
    /// be presented this team's certificate at the handshake. (Names claimed later under a
    /// wildcard are refused by [`Platform::check_routes`].) Wildcards are rare: the apps are
    /// read only when the routes have one.
    async fn check_wildcards(&self, actor: &Actor, team: &str, routes: &AppRoutes) -> OpResult<()> {
        let wildcards: Vec<&str> = routes
            .domains
            .iter()
            .filter(|d| d.is_wildcard())
            .map(|d| d.host.as_str())
            .collect();
        if wildcards.is_empty() {
            return Ok(());
        }
        for other in self.store.list_apps().await? {
            if other.team == team {
                continue;
            }
            for domain in &other.routes.domains {
                if let Some(wildcard) = covering_wildcard(&domain.host)
                    && wildcards.contains(&wildcard.as_str())
                {
                    return Err(OpError::conflict(
                        DOMAIN_TAKEN,
                        format!(
                            "domains: {wildcard} would stand for {}, which belongs to {}",
                            domain.host,
                            whose(actor, &other.name, &other.team)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every domain reservation (admins only).
    pub async fn domain_reservations(&self, actor: &Actor) -> OpResult<Vec<DomainReservation>> {
        actor.require_admin()?;
        Ok(self.store.list_domain_reservations().await?)
    }

    /// Reserves `domain` and every name under it for `team` (admins only).
    pub async fn reserve_domain(
        &self,
        actor: &Actor,
        domain: &str,
        team: &str,
    ) -> OpResult<DomainReservation> {
        actor.require_admin()?;
        let domain = normalize_base(domain);
        if !is_host_name(&domain) || !domain.contains('.') {
            return Err(OpError::field(
                "domain",
                format!("{domain:?} is not a host name with at least two labels"),
            ));
        }
        validate_name("team", team)?;
        if self.store.get_team(team).await?.is_none() {
            return Err(OpError::field("team", format!("no team {team}")));
        }
        actor.audit.set_object(format!("domains/{domain}"));
        actor.audit.set_team(team);
        let reservation = DomainReservation {
            domain,
            team: team.to_string(),
            created_by: actor.username().to_string(),
            created_at: self.now(),
        };
        self.store.put_domain_reservation(&reservation).await?;
        Ok(reservation)
    }

    /// Removes a reservation (admins only).
    pub async fn unreserve_domain(&self, actor: &Actor, domain: &str) -> OpResult<()> {
        actor.require_admin()?;
        let domain = normalize_base(domain);
        actor.audit.set_object(format!("domains/{domain}"));
        if self.store.delete_domain_reservation(&domain).await? {
            Ok(())
        } else {
            Err(OpError::not_found(format!("reservation of {domain}")))
        }
    }
}

/// App `owner` of `team` as the actor may see it: named only to readers of its team.
fn whose(actor: &Actor, owner: &str, team: &str) -> String {
    if actor.can_read(team) {
        format!("app {owner} of team {team}")
    } else {
        "an app of another team".to_string()
    }
}

/// The refusal of a domain that app `owner` of `team` holds.
fn taken(actor: &Actor, domain: &str, owner: &str, team: &str) -> OpError {
    OpError::conflict(
        DOMAIN_TAKEN,
        format!("domains: {domain} belongs to {}", whose(actor, owner, team)),
    )
}

fn owner_conflict(actor: &Actor, owner: &DomainOwner) -> OpError {
    let domain = Domain {
        host: owner.host.clone(),
        path: owner.path.clone(),
    };
    taken(actor, &domain.to_string(), &owner.app, &owner.team)
}

/// Whether a store refusal is its key on domains (another app claimed one in between), and
/// not a stale version.
pub(crate) fn is_domain_conflict(error: &StoreError) -> bool {
    matches!(error, StoreError::Conflict(message) if message.starts_with("a domain of app"))
}

/// The refusal of a write that lost a domain to another app's write.
pub(crate) fn lost_race() -> OpError {
    OpError::conflict(
        DOMAIN_TAKEN,
        "domains: a domain of this app was claimed by another app at the same moment",
    )
}
