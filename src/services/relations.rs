//! A company's related parties (KYB): who owns, directs, represents or
//! signs for it. Every change locks the company's row first, so two
//! concurrent writes cannot both fit under the 100 % ownership bound.

use crate::db::identities as identities_q;
use crate::db::relations::{self as q, RelationChanges, RelationRow};
use crate::db::{self, DbConnection};
use crate::domain::audit::Target;
use crate::domain::identity::IdentityKind;
use crate::domain::ids::{AppId, IdentityId, RelationId};
use crate::domain::relations::{
    NewRelation, Ownership, RelationPatch, RelationRole, RelationTerms,
};
use crate::error::{ApiError, FieldError, Refusal};
use crate::services::write::{Change, Tx};
use crate::views::RelationView;

fn company_not_found() -> ApiError {
    ApiError::refused(Refusal::IdentityNotFound, "No identity with this id.")
}

fn relation_not_found() -> ApiError {
    ApiError::refused(Refusal::RelationNotFound, "No relation with this id.")
}

fn must_be_company(kind: IdentityKind) -> Result<(), ApiError> {
    match kind {
        IdentityKind::Company => Ok(()),
        IdentityKind::Person => Err(ApiError::refused(
            Refusal::IdentityMustBeOfTypeCompany,
            "Only a company has related parties.",
        )),
    }
}

/// Locks the company's row (PostgreSQL; SQLite's writers are serial) so
/// that its relations do not change under this write.
fn lock_company(tx: &mut Tx<'_, '_>, app_id: &AppId, id: &IdentityId) -> Result<(), ApiError> {
    let company =
        identities_q::find_live_for_update(tx.read(), app_id, id)?.ok_or_else(company_not_found)?;
    must_be_company(company.identity_type)
}

fn check_person(conn: &mut DbConnection, app_id: &AppId, id: &IdentityId) -> Result<(), ApiError> {
    let person = identities_q::find_live(conn, app_id, id)?.ok_or_else(|| {
        ApiError::refused(
            Refusal::RelatedPersonNotFound,
            "No live identity of this app has the personId.",
        )
    })?;
    if person.identity_type != IdentityKind::Person {
        return Err(ApiError::refused(
            Refusal::RelatedPersonMustBeOfTypePerson,
            "A related party must be a person.",
        ));
    }
    Ok(())
}

/// The company's beneficial owners must not own more than all of it.
fn check_ownership_bound(
    conn: &mut DbConnection,
    app_id: &AppId,
    company_id: &IdentityId,
    changed: Option<&RelationId>,
    terms: &RelationTerms,
) -> Result<(), ApiError> {
    let others = q::of_companies(conn, app_id, &[company_id])?
        .into_iter()
        .filter(|row| Some(&row.id) != changed)
        .filter(|row| row.role == RelationRole::BeneficialOwner)
        .filter_map(|row| row.ownership.and_then(Ownership::from_hundredths));
    let shares: Vec<Ownership> = others.chain(terms.owned()).collect();
    if Ownership::total(shares.iter().copied()).is_none() {
        let sum: f64 = shares.iter().map(|s| s.percent()).sum();
        return Err(ApiError::Validation(vec![FieldError::new(
            "ownershipPercent",
            format!("the company's beneficial owners would own {sum:.2} % together; at most 100 %"),
        )]));
    }
    Ok(())
}

/// Notes the change on the company (its answer's `relations` changed) and
/// the relation and person for the audit record.
fn note(tx: &mut Tx<'_, '_>, app_id: &AppId, row: &RelationRow) {
    tx.record(Change::IdentityUpdated {
        app_id: app_id.clone(),
        identity_id: row.company_id.clone(),
        fields: vec!["relations"],
    });
    tx.note_targets(vec![
        Target {
            kind: "relation".into(),
            id: row.id.as_str().to_owned(),
        },
        Target {
            kind: "identity".into(),
            id: row.person_id.as_str().to_owned(),
        },
    ]);
}

pub fn create(
    tx: &mut Tx<'_, '_>,
    app_id: &AppId,
    company_id: &IdentityId,
    input: NewRelation,
) -> Result<RelationView, ApiError> {
    lock_company(tx, app_id, company_id)?;
    check_person(tx.read(), app_id, &input.person_id)?;
    check_ownership_bound(tx.read(), app_id, company_id, None, &input.terms)?;
    let now = db::now();
    let row = RelationRow {
        id: RelationId::new(),
        app_id: app_id.clone(),
        company_id: company_id.clone(),
        person_id: input.person_id,
        role: input.terms.role,
        ownership: input.terms.ownership.map(Ownership::hundredths),
        title: input.terms.title,
        created_at: now,
        updated_at: now,
    };
    q::insert(tx.conn(), &row)?;
    note(tx, app_id, &row);
    Ok(RelationView::new(row))
}

pub fn patch(
    tx: &mut Tx<'_, '_>,
    app_id: &AppId,
    company_id: &IdentityId,
    id: &RelationId,
    patch: RelationPatch,
) -> Result<RelationView, ApiError> {
    lock_company(tx, app_id, company_id)?;
    let current = q::find(tx.read(), app_id, company_id, id)?.ok_or_else(relation_not_found)?;
    let terms = RelationTerms::new(
        patch.role.unwrap_or(current.role),
        patch
            .ownership
            .unwrap_or_else(|| current.ownership.and_then(Ownership::from_hundredths)),
        patch.title.unwrap_or_else(|| current.title.clone()),
    )
    .map_err(|(field, message)| ApiError::invalid(field, message))?;
    check_ownership_bound(tx.read(), app_id, company_id, Some(id), &terms)?;
    let changes = RelationChanges {
        role: terms.role,
        ownership: terms.ownership.map(Ownership::hundredths),
        title: terms.title,
        updated_at: db::now(),
    };
    q::update(tx.conn(), id, &changes)?;
    let row = RelationRow {
        role: changes.role,
        ownership: changes.ownership,
        title: changes.title,
        updated_at: changes.updated_at,
        ..current
    };
    note(tx, app_id, &row);
    Ok(RelationView::new(row))
}

pub fn delete(
    tx: &mut Tx<'_, '_>,
    app_id: &AppId,
    company_id: &IdentityId,
    id: &RelationId,
) -> Result<(), ApiError> {
    lock_company(tx, app_id, company_id)?;
    let current = q::find(tx.read(), app_id, company_id, id)?.ok_or_else(relation_not_found)?;
    q::delete(tx.conn(), id)?;
    note(tx, app_id, &current);
    Ok(())
}

/// Refuses to delete a person who is still a company's related party: the
/// company's KYB would silently lose them.
pub fn refuse_if_related(
    conn: &mut DbConnection,
    app_id: &AppId,
    person_id: &IdentityId,
) -> Result<(), ApiError> {
    if q::of_person(conn, app_id, person_id)?.is_empty() {
        return Ok(());
    }
    Err(ApiError::refused(
        Refusal::RelatedPartyInUse,
        "This person is a related party of companies; remove those relations first.",
    ))
}

/// An identity leaves (deleted company, erased identity): its relations as
/// a company and as a person are deleted, and each company that lost a
/// related party is noted as changed.
pub fn remove_all_of(tx: &mut Tx<'_, '_>, app_id: &AppId, id: &IdentityId) -> Result<(), ApiError> {
    q::delete_of_company(tx.conn(), app_id, id)?;
    for company in q::delete_of_person(tx.conn(), app_id, id)? {
        tx.record(Change::IdentityUpdated {
            app_id: app_id.clone(),
            identity_id: company,
            fields: vec!["relations"],
        });
    }
    Ok(())
}

/// `GET /identities/:id/relations/:relationId`.
pub fn get(
    conn: &mut DbConnection,
    app_id: &AppId,
    company_id: &IdentityId,
    id: &RelationId,
) -> Result<RelationView, ApiError> {
    identities_q::find_live(conn, app_id, company_id)?.ok_or_else(company_not_found)?;
    let row = q::find(conn, app_id, company_id, id)?.ok_or_else(relation_not_found)?;
    Ok(RelationView::new(row))
}

/// `GET /identities/:id/relations`: a live company's relations, in the
/// order they were added.
pub fn list(
    conn: &mut DbConnection,
    app_id: &AppId,
    company_id: &IdentityId,
) -> Result<Vec<RelationView>, ApiError> {
    let company =
        identities_q::find_live(conn, app_id, company_id)?.ok_or_else(company_not_found)?;
    must_be_company(company.identity_type)?;
    Ok(q::of_companies(conn, app_id, &[company_id])?
        .into_iter()
        .map(RelationView::new)
        .collect())
}
