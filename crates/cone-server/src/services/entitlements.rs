//! What people may request and what they hold: the catalog as each user sees it, one entitlement, its holders.

use std::collections::HashMap;
use std::sync::Arc;

use cone_api::{Entitlement, EntitlementPage, Facet, Facets, GroupRoute};
use cone_core::catalog::{Viewer, words_match};

use super::{Page, time};
use crate::config::Access;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{EntitlementRow, UserRow};

/// What a user holds: their active grants `(app id, entitlement id, end)` and what they hold through groups
/// `(app id, entitlement id, group name)`. Both are cached reads, so building a listing costs no query per row.
pub(super) struct Holdings {
    grants: Vec<(String, String, i64)>,
    groups: Vec<(String, String, String)>,
}

impl Holdings {
    pub(super) async fn of(s: &AppState, u: &UserRow) -> anyhow::Result<Holdings> {
        Ok(Holdings { grants: s.db.active_grants(u.id, s.now()).await?, groups: s.db.held_through_groups(u.id).await? })
    }

    fn granted_until(&self, app_id: &str, id: &str) -> Option<i64> {
        self.grants.iter().find(|(a, e, _)| a == app_id && e == id).map(|(_, _, t)| *t)
    }

    pub(super) fn groups(&self, app_id: &str, id: &str) -> Vec<String> {
        self.groups.iter().filter(|(a, e, _)| a == app_id && e == id).map(|(_, _, g)| g.clone()).collect()
    }

    fn holds(&self, app_id: &str, id: &str) -> bool {
        self.granted_until(app_id, id).is_some() || self.groups.iter().any(|(a, e, _)| a == app_id && e == id)
    }
}

/// The entitlement as the caller sees it: its policy's limits and form, the end of the caller's active grant and
/// the groups through which they hold it.
fn to_api(access: &Access, row: &EntitlementRow, held: &Holdings) -> Entitlement {
    let policy = access.policy_for(&row.target());
    Entitlement {
        app_id: row.app_id.clone(),
        id: row.id.clone(),
        kind: row.kind.clone(),
        alias: row.alias.clone(),
        display_name: row.name().to_string(),
        resource_name: resource_name(row).to_string(),
        account_id: row.account_id.clone(),
        role_name: row.permission_set_name.clone(),
        max_duration_secs: policy.max_duration,
        form: policy.form.clone(),
        granted_until: held.granted_until(&row.app_id, &row.id).map(time),
        held_through_groups: held.groups(&row.app_id, &row.id),
        emergency_access: policy.emergency_steps.is_some(),
        requestable: true,
        through_groups: Vec::new(),
    }
}

fn resource_name(row: &EntitlementRow) -> &str {
    if row.is_idc_group() { "Identity Center" } else { &row.account_name }
}

/// What a search looks in: the fields [`Entitlement::matches`] reads, taken from the row.
fn search_fields(row: &EntitlementRow) -> [&str; 5] {
    [&row.alias, row.name(), resource_name(row), &row.account_id, &row.permission_set_name]
}

/// One entry of a user's catalog, before it is made into what the API shows.
struct Listed<'r> {
    row: &'r EntitlementRow,
    requestable: bool,
    through_groups: &'r [GroupRoute],
}

/// The user's catalog: what their access profiles offer (everything when none are configured), what they hold (by
/// grant or through a group), so that access outliving a catalog change can still be checked and given back, and
/// what a group they may request gives. Made into API entitlements by [`Catalog::api`], only as needed: a catalog
/// of thousands is searched and paged first.
struct Catalog {
    rows: Arc<Vec<EntitlementRow>>,
    access: Arc<Access>,
    held: Holdings,
    routes: HashMap<(String, String), Vec<GroupRoute>>,
    groups: Vec<String>,
}

impl Catalog {
    async fn of(s: &AppState, u: &UserRow) -> anyhow::Result<Catalog> {
        let held = Holdings::of(s, u).await?;
        let access = s.access();
        let groups = catalog_groups(s, &access, u).await?;
        let routes = routes(s, &access, u, &groups).await?;
        Ok(Catalog { rows: s.db.entitlements().await?, access, held, routes, groups })
    }

    fn listed<'r>(&'r self, u: &UserRow) -> impl Iterator<Item = Listed<'r>> {
        self.rows.iter().filter_map(move |r| {
            let requestable = offers(&self.access, u, &self.groups, r);
            // Most catalogs have no group routes: no key is built for them.
            let through_groups = match self.routes.is_empty() {
                true => &[][..],
                false => self.routes.get(&(r.app_id.clone(), r.id.clone())).map_or(&[][..], Vec::as_slice),
            };
            // A membership held by hand is Identity Center's business, not a listing entry; one Cone granted is.
            let holds = match r.is_group() {
                true => self.held.granted_until(&r.app_id, &r.id).is_some(),
                false => self.held.holds(&r.app_id, &r.id),
            };
            (requestable || holds || !through_groups.is_empty()).then_some(Listed {
                row: r,
                requestable,
                through_groups,
            })
        })
    }

    fn api(&self, listed: Listed<'_>) -> Entitlement {
        let Listed { row, requestable, through_groups } = listed;
        Entitlement { requestable, through_groups: through_groups.to_vec(), ..to_api(&self.access, row, &self.held) }
    }
}

/// What the user holds now: by an active grant, or through a group.
pub async fn held_by(s: &AppState, u: &UserRow) -> anyhow::Result<Vec<Entitlement>> {
    let catalog = Catalog::of(s, u).await?;
    let holds = |l: &Listed<'_>| catalog.held.holds(&l.row.app_id, &l.row.id);
    Ok(catalog.listed(u).filter(holds).map(|l| catalog.api(l)).collect())
}

/// Whether the policy of entitlement `id` has emergency steps.
pub async fn emergency_access(s: &AppState, app_id: &str, id: &str) -> anyhow::Result<bool> {
    let row = s.db.entitlement(app_id, id).await?;
    Ok(row.is_some_and(|r| s.access().policy_for(&r.target()).emergency_steps.is_some()))
}

/// The group memberships the user may request, by the permission set each gives: (app id, entitlement id).
async fn routes(
    s: &AppState,
    access: &Access,
    u: &UserRow,
    groups: &[String],
) -> anyhow::Result<HashMap<(String, String), Vec<GroupRoute>>> {
    let mut routes: HashMap<_, Vec<GroupRoute>> = HashMap::new();
    for (app_id, permission_set, membership) in s.db.group_routes().await?.iter() {
        let Some(g) = s.db.entitlement(app_id, membership).await? else { continue };
        if offers(access, u, groups, &g) {
            let route = GroupRoute { app_id: g.app_id, id: g.id, alias: g.alias, display_name: g.group_name };
            routes.entry((app_id.clone(), permission_set.clone())).or_default().push(route);
        }
    }
    Ok(routes)
}

/// What a search of the catalog keeps: every word of `words` (see [`Entitlement::matches`]), one account (its id,
/// or its name ignoring case), one kind. Absent parts keep everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Search<'a> {
    pub words: Option<&'a str>,
    pub account: Option<&'a str>,
    pub kind: Option<&'a str>,
}

impl Search<'_> {
    fn account_matches(&self, r: &EntitlementRow) -> bool {
        self.account.is_none_or(|a| a == r.account_id || a.eq_ignore_ascii_case(resource_name(r)))
    }

    fn kind_matches(&self, r: &EntitlementRow) -> bool {
        self.kind.is_none_or(|k| k == r.kind)
    }
}

/// The longest search, in characters: words enough to name any entitlement.
const MAX_WORDS: usize = 200;

/// A page of the user's catalog as `search` keeps it, with the facets when asked for: by account among the
/// entitlements every other part keeps, and by kind likewise.
pub async fn page(s: &AppState, u: &UserRow, search: Search<'_>, page: Page, facets: bool) -> Result<EntitlementPage> {
    if search.words.is_some_and(|w| w.chars().count() > MAX_WORDS) {
        return Err(Error::invalid(format!("The search is longer than {MAX_WORDS} characters; use fewer words.")));
    }
    let catalog = Catalog::of(s, u).await?;
    let words = |l: &Listed<'_>| search.words.is_none_or(|w| words_match(w, &search_fields(l.row)));
    let mut found: Vec<Listed<'_>> = catalog.listed(u).filter(words).collect();
    let facets = facets.then(|| Facets {
        accounts: count(found.iter().filter(|l| search.kind_matches(l.row)), |r| (&r.account_id, resource_name(r))),
        kinds: count(found.iter().filter(|l| search.account_matches(l.row)), |r| {
            (&r.kind, cone_api::kind_words(&r.kind))
        }),
    });
    found.retain(|l| search.account_matches(l.row) && search.kind_matches(l.row));
    let start = usize::try_from(page.offset).unwrap_or(usize::MAX).min(found.len());
    let end = start.saturating_add(usize::try_from(page.size).unwrap_or(1)).min(found.len());
    let next_page_token = (end < found.len()).then(|| end.to_string());
    let entitlements = found.drain(start..end).map(|l| catalog.api(l)).collect();
    Ok(EntitlementPage { entitlements, next_page_token, facets })
}

/// How many of `listed` each `(value, label)` of `key` has, most first, then by label.
fn count<'r>(
    listed: impl Iterator<Item = &'r Listed<'r>>,
    key: impl Fn(&'r EntitlementRow) -> (&'r str, &'r str),
) -> Vec<Facet> {
    let mut counts: HashMap<(&str, &str), usize> = HashMap::new();
    for l in listed {
        *counts.entry(key(l.row)).or_default() += 1;
    }
    let mut facets: Vec<Facet> = counts
        .into_iter()
        .map(|((value, label), count)| Facet { value: value.to_string(), label: label.to_string(), count })
        .collect();
    facets.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.label.cmp(&b.label)));
    facets
}

/// Every entitlement of the catalog, as stored (the administrators' Apps page).
pub async fn all(s: &AppState) -> anyhow::Result<Arc<Vec<EntitlementRow>>> {
    s.db.entitlements().await
}

/// The user's groups when access profiles need them; without profiles the catalog is everything, for everyone.
async fn catalog_groups(s: &AppState, access: &Access, u: &UserRow) -> anyhow::Result<Vec<String>> {
    if access.catalog.profiles.is_empty() { Ok(Vec::new()) } else { s.db.user_groups(u.id).await }
}

fn offers(access: &Access, u: &UserRow, groups: &[String], row: &EntitlementRow) -> bool {
    let viewer = Viewer { name: &u.username, groups };
    access.catalog.offers(&viewer, &row.target())
}

/// The entitlement if the user's catalog offers it. One outside it is reported as not found, in the same words
/// whether it exists or not, so that a catalog does not reveal the entitlements kept from someone.
pub(super) async fn offered(s: &AppState, u: &UserRow, app_id: &str, id: &str) -> Result<EntitlementRow> {
    let access = s.access();
    let groups = catalog_groups(s, &access, u).await?;
    s.db.entitlement(app_id, id)
        .await?
        .filter(|r| offers(&access, u, &groups, r))
        .ok_or_else(|| not_offered(app_id, id))
}

fn not_offered(app_id: &str, id: &str) -> Error {
    Error::NotFound(format!(
        "No entitlement \"{id}\" in app \"{app_id}\" that you can request; it may have been removed or be outside your access profiles. Run `cone search` to see what you can request."
    ))
}

pub(super) async fn load(s: &AppState, app_id: &str, id: &str) -> Result<EntitlementRow> {
    s.db.entitlement(app_id, id).await?.ok_or_else(|| {
        Error::NotFound(format!("No entitlement \"{id}\" in app \"{app_id}\"; it may have been removed. Run `cone aws setup` to refresh your profiles."))
    })
}

/// One entitlement as the caller sees it, with the group memberships they may request that would give it. A
/// permission set outside their catalog is shown (not requestable) when such a membership exists.
pub async fn entitlement_for(s: &AppState, u: &UserRow, app_id: &str, id: &str) -> Result<Entitlement> {
    let held = Holdings::of(s, u).await?;
    let access = s.access();
    let groups = catalog_groups(s, &access, u).await?;
    let row = s.db.entitlement(app_id, id).await?.ok_or_else(|| not_offered(app_id, id))?;
    let mut e = to_api(&access, &row, &held);
    e.requestable = offers(&access, u, &groups, &row);
    // Only a permission set is given by a group; a membership's request needs no reading of the routes.
    if !row.is_group() {
        let key = (app_id.to_string(), id.to_string());
        e.through_groups = routes(s, &access, u, &groups).await?.remove(&key).unwrap_or_default();
    }
    if !e.requestable && e.through_groups.is_empty() && !held.holds(app_id, id) {
        return Err(not_offered(app_id, id));
    }
    Ok(e)
}

/// A page of the people who hold an entitlement.
pub async fn holders(s: &AppState, app_id: &str, id: &str, page: Page) -> Result<cone_api::HolderPage> {
    let row = load(s, app_id, id).await?;
    let (rows, next_page_token) =
        page.cut(s.db.holders(&row.app_id, &row.id, s.now(), page.offset, page.limit()).await?);
    let holders = rows
        .into_iter()
        .map(|h| cone_api::Holder {
            username: h.username,
            display_name: h.display_name,
            source: h.source,
            task_id: h.task_id,
            expires_at: h.expires_at.map(time),
            group: h.group_name,
        })
        .collect();
    Ok(cone_api::HolderPage { holders, next_page_token })
}

/// Refuses a request for an entitlement the requester holds through a group: the assignment exists in AWS already,
/// and a grant would add a redundant one.
pub(super) fn refuse_if_held_through_group(groups: &[String]) -> Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    Err(Error::HeldThroughGroup(format!(
        "You hold this entitlement through the Identity Center {}, so no request is needed; use it directly. \
         That group's access is managed in IAM Identity Center, not through Cone.",
        group_names(groups)
    )))
}

/// Groups for people: `group "Admins"`, `groups "Admins", "Ops"`.
pub fn group_names(groups: &[String]) -> String {
    let names = groups.iter().map(|g| format!("\"{g}\"")).collect::<Vec<_>>().join(", ");
    format!("{} {names}", if groups.len() == 1 { "group" } else { "groups" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_for_access_held_through_a_group_names_the_group() {
        assert!(refuse_if_held_through_group(&[]).is_ok());
        let e = refuse_if_held_through_group(&["Admins".into()]).unwrap_err();
        let (status, code) = e.status_and_code();
        assert_eq!((status, code), (axum::http::StatusCode::CONFLICT, cone_api::codes::HELD_THROUGH_GROUP));
        let message = e.to_string();
        assert!(message.contains("group \"Admins\", so no request is needed"), "{message}");
        assert!(message.contains("managed in IAM Identity Center"), "{message}");
        assert_eq!(group_names(&["A".into(), "B".into()]), "groups \"A\", \"B\"");
    }
}
