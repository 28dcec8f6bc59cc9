//! Queries for identities and their documents. Every function that reads
//! or changes existing rows takes the caller's app id and filters on it in
//! SQL (inserts write the app id of the rows they are given): tenancy is
//! enforced here, not by callers remembering to check.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::sql_types::Bool;

use super::keyset;
use super::schema::{documents, identities, identity_metadata, identity_relations, verifications};
use super::types::StoredTime;
use super::{Cursor, DbConnection, MultiBackend, WriteConn};
use crate::domain::crypto::{DataKey, OpenError};
use crate::domain::document::{DocumentLocation, DocumentSide, DocumentType};
use crate::domain::email_search::{EmailLike, PrefixRange};
use crate::domain::identity::{
    Address, Country, Email, Gender, IdentityData, IdentityKind, Phone, RefId, Tax,
};
use crate::domain::ids::{AppId, DocumentId, IdentityId};
use crate::domain::kyc::RiskRating;
use crate::domain::list_query::{
    like_pattern, Condition, Filter, IdentityFilter, ListQuery, Sort, SortField,
};
use crate::domain::metadata::MetadataChanges;
use crate::domain::pii::{self, PiiField};

/// A parsed `GET /identities` query.
pub type IdentityQuery = ListQuery<IdentityFilter>;

diesel::define_sql_function! {
    /// SQL `lower()`, the same on both backends (ASCII on SQLite).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// A stored identity, as read. Its personal data fields are in
/// [`StoredPii`] (sealed); [`IdentityRow::data`] opens them.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = identities)]
pub struct IdentityRow {
    pub id: IdentityId,
    pub app_id: AppId,
    pub identity_type: IdentityKind,
    pub name: String,
    pub email: Email,
    pub gender: Option<Gender>,
    pub address_city: String,
    pub address_country: Country,
    pub phone_sms: bool,
    pub tax_country: Country,
    pub identity_owner: Option<IdentityId>,
    pub blocked: bool,
    pub identity_confirmed: bool,
    pub risk_rating: Option<RiskRating>,
    #[diesel(deserialize_as = StoredTime)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = StoredTime)]
    pub updated_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
    pub ref_id: Option<RefId>,
    /// The identity's data key, sealed by the server's key ring; `None`
    /// once erased, or for a row written before encryption at rest.
    pub wrapped_key: Option<String>,
    pub erased_at: Option<NaiveDateTime>,
    #[diesel(embed)]
    pub pii: StoredPii,
}

/// An identity's personal data columns as stored: each value sealed under
/// the identity's data key (`domain::pii`), or in the clear for rows
/// written before encryption at rest. `Debug` shows neither.
#[derive(Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = identities, treat_none_as_null = true)]
pub struct StoredPii {
    birthday: Option<String>,
    address_street: String,
    address_state: Option<String>,
    address_postal_code: String,
    phone_number: String,
    tax_id_number: String,
    tax_state: Option<String>,
    tax_formation_region: Option<String>,
}

impl std::fmt::Debug for StoredPii {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoredPii(..)")
    }
}

impl StoredPii {
    /// The data's personal fields, sealed for the identity under `key`.
    pub fn seal(data: &IdentityData, identity: &IdentityId, key: &DataKey) -> Self {
        let seal = |field, value: &str| pii::seal_field(key, identity, field, value);
        let seal_opt = |field, value: &Option<String>| value.as_deref().map(|v| seal(field, v));
        StoredPii {
            birthday: data
                .birthday
                .map(|d| seal(PiiField::Birthday, &d.to_string())),
            address_street: seal(PiiField::AddressStreet, &data.address.street),
            address_state: seal_opt(PiiField::AddressState, &data.address.state),
            address_postal_code: seal(PiiField::AddressPostalCode, &data.address.postal_code),
            phone_number: seal(PiiField::PhoneNumber, &data.phone.number),
            tax_id_number: seal(PiiField::TaxIdNumber, &data.tax.id_number),
            tax_state: seal_opt(PiiField::TaxState, &data.tax.state),
            tax_formation_region: seal_opt(
                PiiField::TaxFormationRegion,
                &data.tax.formation_region,
            ),
        }
    }

    /// Whether every present value is sealed (nothing left in the clear).
    pub fn is_sealed(&self) -> bool {
        [
            self.birthday.as_deref(),
            Some(self.address_street.as_str()),
            self.address_state.as_deref(),
            Some(self.address_postal_code.as_str()),
            Some(self.phone_number.as_str()),
            Some(self.tax_id_number.as_str()),
            self.tax_state.as_deref(),
            self.tax_formation_region.as_deref(),
        ]
        .into_iter()
        .flatten()
        .all(DataKey::is_sealed_text)
    }
}

impl IdentityRow {
    /// The identity's data as the domain holds it, its personal fields
    /// opened with the identity's data key (`None` for a row written
    /// before encryption at rest, whose fields are in the clear).
    pub fn data(&self, key: Option<&DataKey>) -> Result<IdentityData, OpenError> {
        let open = |field, stored: &str| pii::open_field(key, &self.id, field, stored);
        let open_opt =
            |field, stored: &Option<String>| stored.as_deref().map(|s| open(field, s)).transpose();
        let p = &self.pii;
        // Stored as `NaiveDate`'s ISO 8601 text (`%Y-%m-%d`), which its
        // `FromStr` reads without parsing a format string for every row.
        let birthday = open_opt(PiiField::Birthday, &p.birthday)?
            .map(|text| text.parse::<NaiveDate>())
            .transpose()
            .map_err(|_| OpenError::Malformed)?;
        Ok(IdentityData {
            kind: self.identity_type,
            name: self.name.clone(),
            email: self.email.clone(),
            birthday,
            gender: self.gender,
            address: Address {
                street: open(PiiField::AddressStreet, &p.address_street)?,
                city: self.address_city.clone(),
                state: open_opt(PiiField::AddressState, &p.address_state)?,
                postal_code: open(PiiField::AddressPostalCode, &p.address_postal_code)?,
                country: self.address_country,
            },
            phone: Phone {
                number: open(PiiField::PhoneNumber, &p.phone_number)?,
                sms: self.phone_sms,
            },
            tax: Tax {
                country: self.tax_country,
                id_number: open(PiiField::TaxIdNumber, &p.tax_id_number)?,
                state: open_opt(PiiField::TaxState, &p.tax_state)?,
                formation_region: open_opt(PiiField::TaxFormationRegion, &p.tax_formation_region)?,
            },
            identity_owner: self.identity_owner.clone(),
            ref_id: self.ref_id.clone(),
        })
    }

    /// The row `insert` of a `NewIdentity` with these columns writes.
    pub fn created(
        id: IdentityId,
        app_id: AppId,
        columns: &IdentityColumns<'_>,
        wrapped_key: Option<String>,
        at: NaiveDateTime,
    ) -> Self {
        let data = columns.data;
        IdentityRow {
            id,
            app_id,
            identity_type: data.kind,
            name: data.name.clone(),
            email: data.email.clone(),
            gender: data.gender,
            address_city: data.address.city.clone(),
            address_country: data.address.country,
            phone_sms: data.phone.sms,
            tax_country: data.tax.country,
            identity_owner: data.identity_owner.clone(),
            blocked: false,
            identity_confirmed: false,
            risk_rating: None,
            created_at: at,
            updated_at: at,
            deleted_at: None,
            ref_id: data.ref_id.clone(),
            wrapped_key,
            erased_at: None,
            pii: columns.pii.clone(),
        }
    }

    /// This row after `update` with `IdentityChanges` of these columns.
    pub fn with_data(self, columns: &IdentityColumns<'_>, at: NaiveDateTime) -> Self {
        IdentityRow {
            blocked: self.blocked,
            identity_confirmed: self.identity_confirmed,
            risk_rating: self.risk_rating,
            created_at: self.created_at,
            deleted_at: self.deleted_at,
            erased_at: self.erased_at,
            ..Self::created(self.id, self.app_id, columns, self.wrapped_key, at)
        }
    }
}

/// The columns an identity's data is written to, on create and on patch:
/// the data itself (its personal fields sealed) and the email's comparison
/// and search forms.
#[derive(Debug, Insertable, AsChangeset)]
#[diesel(table_name = identities, treat_none_as_null = true)]
pub struct IdentityColumns<'a> {
    #[diesel(skip_insertion, skip_update)]
    data: &'a IdentityData,
    identity_type: IdentityKind,
    name: &'a str,
    email: &'a Email,
    email_normalized: String,
    email_domain: String,
    email_local_reversed: String,
    gender: Option<Gender>,
    address_city: &'a str,
    address_country: Country,
    phone_sms: bool,
    tax_country: Country,
    identity_owner: Option<&'a IdentityId>,
    ref_id: Option<&'a RefId>,
    #[diesel(embed)]
    pii: StoredPii,
}

impl<'a> IdentityColumns<'a> {
    /// The columns of `data` for the identity `id`, its personal fields
    /// sealed under the identity's data key.
    pub fn of(data: &'a IdentityData, id: &IdentityId, key: &DataKey) -> Self {
        let keys = data.email.search_keys();
        IdentityColumns {
            data,
            identity_type: data.kind,
            name: &data.name,
            email: &data.email,
            email_normalized: data.email.normalized(),
            email_domain: keys.domain,
            email_local_reversed: keys.local_reversed,
            gender: data.gender,
            address_city: &data.address.city,
            address_country: data.address.country,
            phone_sms: data.phone.sms,
            tax_country: data.tax.country,
            identity_owner: data.identity_owner.as_ref(),
            ref_id: data.ref_id.as_ref(),
            pii: StoredPii::seal(data, id, key),
        }
    }
}

/// A new identity: not blocked, not confirmed, unrated.
#[derive(Debug, Insertable)]
#[diesel(table_name = identities)]
pub struct NewIdentity<'a> {
    pub id: &'a IdentityId,
    pub app_id: &'a AppId,
    #[diesel(embed)]
    pub data: IdentityColumns<'a>,
    pub wrapped_key: &'a str,
    pub blocked: bool,
    pub identity_confirmed: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// What a PATCH writes: the whole data, and the time.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = identities)]
pub struct IdentityChanges<'a> {
    #[diesel(embed)]
    pub data: IdentityColumns<'a>,
    pub updated_at: NaiveDateTime,
}

/// A stored document or face image, as read.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = documents)]
pub struct DocumentRow {
    pub id: DocumentId,
    pub app_id: AppId,
    pub identity_id: IdentityId,
    pub document_type: DocumentType,
    pub side: DocumentSide,
    pub label: Option<String>,
    pub description: Option<String>,
    pub url: DocumentLocation,
    pub position: i32,
    #[diesel(deserialize_as = StoredTime)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = StoredTime)]
    pub updated_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
    /// The upload the sealed copy was made from (erasure deletes both).
    pub upload_key: Option<String>,
    /// A local sealed copy's own key, sealed under the identity's data key.
    pub object_secret: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = documents)]
pub struct NewDocument<'a> {
    pub id: &'a DocumentId,
    pub app_id: &'a AppId,
    pub identity_id: &'a IdentityId,
    pub document_type: DocumentType,
    pub side: DocumentSide,
    pub label: Option<&'a str>,
    pub description: Option<&'a str>,
    pub url: &'a DocumentLocation,
    pub position: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub upload_key: Option<&'a str>,
    pub object_secret: Option<String>,
}

type BoxedIdentities<'a> = identities::BoxedQuery<'a, MultiBackend>;

fn live<'a>(app_id: &'a AppId) -> BoxedIdentities<'a> {
    identities::table
        .filter(identities::app_id.eq(app_id))
        .filter(identities::deleted_at.is_null())
        .into_boxed()
}

/// The app's live identities, for a query whose own filter names the ids
/// (or search ids) it wants: see [`super::app_is_not_the_way_in`].
fn live_entered_by_ids<'a>(app_id: &'a AppId) -> BoxedIdentities<'a> {
    identities::table
        .filter(super::app_is_not_the_way_in!(identities::app_id, app_id))
        .filter(identities::deleted_at.is_null())
        .into_boxed()
}

pub fn insert(conn: &mut WriteConn<'_>, row: &NewIdentity<'_>) -> QueryResult<()> {
    diesel::insert_into(identities::table)
        .values(row)
        .execute(&mut **conn)
        .map(|_| ())
}

pub fn find_live(
    conn: &mut DbConnection,
    app_id: &AppId,
    id: &IdentityId,
) -> QueryResult<Option<IdentityRow>> {
    super::on_each_backend!(conn, c => identities::table
        .filter(identities::app_id.eq(app_id))
        .filter(identities::deleted_at.is_null())
        .filter(identities::id.eq(id))
        .select(IdentityRow::as_select())
        .first(c)
        .optional())
}

/// Whether each of these live identities is blocked (the rules' view of a
/// company's related persons); ids not live are left out.
pub fn blocked_of(
    conn: &mut DbConnection,
    app_id: &AppId,
    ids: &[&IdentityId],
) -> QueryResult<Vec<(IdentityId, bool)>> {
    live_entered_by_ids(app_id)
        .filter(identities::id.eq_any(ids))
        .select((identities::id, identities::blocked))
        .load(conn)
}

/// Like `find_live`, locking the row until the transaction ends, so that two
/// concurrent patches cannot both start from the same old state. (SQLite
/// write transactions are already exclusive, see `write_transaction`.)
pub fn find_live_for_update(
    conn: &mut DbConnection,
    app_id: &AppId,
    id: &IdentityId,
) -> QueryResult<Option<IdentityRow>> {
    // The same statement built per backend: each needs its own query type.
    macro_rules! query {
        () => {
            identities::table
                .filter(identities::app_id.eq(app_id))
                .filter(identities::deleted_at.is_null())
                .filter(identities::id.eq(id))
                .select(IdentityRow::as_select())
        };
    }
    match conn {
        DbConnection::Postgresql(pg) => query!().for_update().first(pg).optional(),
        DbConnection::Sqlite(sqlite) => query!().first(sqlite).optional(),
    }
}

/// Writes the data of an existing identity of the app (the domain has
/// already applied and validated the change).
pub fn update(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    id: &IdentityId,
    changes: &IdentityChanges<'_>,
) -> QueryResult<()> {
    diesel::update(
        identities::table
            .filter(identities::app_id.eq(app_id))
            .filter(identities::id.eq(id)),
    )
    .set(changes)
    .execute(&mut **conn)
    .map(|_| ())
}

/// What the KYC lifecycle changes on an identity besides its data.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = identities, treat_none_as_null = true)]
pub struct IdentityState {
    pub blocked: bool,
    pub identity_confirmed: bool,
    pub risk_rating: Option<RiskRating>,
    pub updated_at: NaiveDateTime,
}

impl IdentityState {
    /// The row's current state, changed at `at`.
    pub fn of(row: &IdentityRow, at: NaiveDateTime) -> Self {
        IdentityState {
            blocked: row.blocked,
            identity_confirmed: row.identity_confirmed,
            risk_rating: row.risk_rating,
            updated_at: at,
        }
    }
}

pub fn set_state(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    id: &IdentityId,
    state: &IdentityState,
) -> QueryResult<()> {
    diesel::update(
        identities::table
            .filter(identities::app_id.eq(app_id))
            .filter(identities::id.eq(id)),
    )
    .set(state)
    .execute(&mut **conn)
    .map(|_| ())
}

/// Soft-deletes an identity of the app with its documents, and takes its
/// verifications out of `GET /verifications`, all at `at`.
pub fn soft_delete(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    id: &IdentityId,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        identities::table
            .filter(identities::app_id.eq(app_id))
            .filter(identities::id.eq(id)),
    )
    .set((identities::deleted_at.eq(at), identities::updated_at.eq(at)))
    .execute(&mut **conn)?;
    diesel::update(
        documents::table
            .filter(documents::app_id.eq(app_id))
            .filter(documents::identity_id.eq(id))
            .filter(documents::deleted_at.is_null()),
    )
    .set((documents::deleted_at.eq(at), documents::updated_at.eq(at)))
    .execute(&mut **conn)?;
    // Its verifications leave `GET /verifications` with it.
    diesel::update(
        verifications::table
            .filter(verifications::app_id.eq(app_id))
            .filter(verifications::identity_id.eq(id)),
    )
    .set(verifications::identity_deleted_at.eq(at))
    .execute(&mut **conn)
    .map(|_| ())
}

/// True when live companies name this identity as their owner.
pub fn owns_live_companies(
    conn: &mut DbConnection,
    app_id: &AppId,
    id: &IdentityId,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        identities::table
            .filter(identities::app_id.eq(app_id))
            .filter(identities::deleted_at.is_null())
            .filter(identities::identity_owner.eq(id)),
    ))
    .get_result(conn)
}

/// Inserts documents one by one (a multi-row insert does not compile for
/// the combined connection type), all in the write transaction.
pub fn insert_documents(conn: &mut WriteConn<'_>, rows: &[NewDocument<'_>]) -> QueryResult<()> {
    for row in rows {
        diesel::insert_into(documents::table)
            .values(row)
            .execute(&mut **conn)?;
    }
    Ok(())
}

/// Marks the live documents of one identity of the app deleted and returns
/// their ids; `face_images` picks which of the two sets a PATCH replaces.
pub fn soft_delete_documents(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    identity_id: &IdentityId,
    face_images: bool,
    at: NaiveDateTime,
) -> QueryResult<Vec<DocumentId>> {
    let base = documents::table
        .filter(documents::app_id.eq(app_id))
        .filter(documents::identity_id.eq(identity_id))
        .filter(documents::deleted_at.is_null());
    let set = (documents::deleted_at.eq(at), documents::updated_at.eq(at));
    if face_images {
        let matching = base.filter(documents::document_type.eq(DocumentType::FaceImage));
        let ids = matching.select(documents::id).load(&mut **conn)?;
        diesel::update(matching).set(set).execute(&mut **conn)?;
        Ok(ids)
    } else {
        let matching = base.filter(documents::document_type.ne(DocumentType::FaceImage));
        let ids = matching.select(documents::id).load(&mut **conn)?;
        diesel::update(matching).set(set).execute(&mut **conn)?;
        Ok(ids)
    }
}

/// The live documents of many identities of the app in one query, in the
/// order they were sent.
pub fn live_documents_of(
    conn: &mut DbConnection,
    app_id: &AppId,
    identity_ids: &[&IdentityId],
) -> QueryResult<Vec<DocumentRow>> {
    if identity_ids.is_empty() {
        return Ok(Vec::new());
    }
    if let [one] = identity_ids {
        // One identity (get, operations, patch): a fixed statement, straight
        // on the backend and cached; `IN (…)` has a variable number of binds.
        return super::on_each_backend!(conn, c => documents::table
            .filter(documents::app_id.eq(app_id))
            .filter(documents::identity_id.eq(*one))
            .filter(documents::deleted_at.is_null())
            .order(documents::position)
            .select(DocumentRow::as_select())
            .load(c));
    }
    // On each backend's own connection: PostgreSQL then binds the ids as
    // one array (`= ANY($1)`), a fixed statement prepared once instead of
    // `IN` with a bind per id planned again for every chunk of a list.
    super::on_each_backend!(conn, c => documents::table
        .filter(documents::app_id.eq(app_id))
        .filter(documents::identity_id.eq_any(identity_ids))
        .filter(documents::deleted_at.is_null())
        .order((documents::identity_id, documents::position))
        .select(DocumentRow::as_select())
        .load(c))
}

/// The app's live documents of the identities whose ids lie in
/// `ids.start()..=ids.end()`, by identity and position, at most `limit`:
/// one range of `documents_app_identity_idx` instead of a probe per
/// identity (see `services::identities::IdentityParts`). Ids in canonical
/// form order the same as text on both backends (SQLite's byte order;
/// PostgreSQL's collations put digits before letters, and the hyphens sit
/// at the same places in every id).
pub fn live_documents_in_range(
    conn: &mut DbConnection,
    app_id: &AppId,
    ids: std::ops::RangeInclusive<&IdentityId>,
    limit: i64,
) -> QueryResult<Vec<DocumentRow>> {
    let (first, last) = ids.into_inner();
    super::on_each_backend!(conn, c => documents::table
        .filter(documents::app_id.eq(app_id))
        .filter(documents::identity_id.ge(first))
        .filter(documents::identity_id.le(last))
        .filter(documents::deleted_at.is_null())
        .order((documents::identity_id, documents::position))
        .limit(limit)
        .select(DocumentRow::as_select())
        .load(c))
}

pub fn find_live_document(
    conn: &mut DbConnection,
    app_id: &AppId,
    identity_id: &IdentityId,
    document_id: &DocumentId,
) -> QueryResult<Option<DocumentRow>> {
    documents::table
        .filter(documents::app_id.eq(app_id))
        .filter(documents::identity_id.eq(identity_id))
        .filter(documents::id.eq(document_id))
        .filter(documents::deleted_at.is_null())
        .select(DocumentRow::as_select())
        .first(conn)
        .optional()
}

/// Restricts a query to rows whose text `column` starts with `prefix`, as an
/// index range (see `PrefixRange`).
macro_rules! starting_with {
    ($query:expr, $column:expr, $prefix:expr) => {{
        let range = PrefixRange::of($prefix);
        match (range.is_everything(), range.end) {
            (true, _) => $query,
            (false, None) => $query.filter($column.ge(range.start)),
            (false, Some(end)) => $query
                .filter($column.ge(range.start))
                .filter($column.lt(end)),
        }
    }};
}

/// What finds the candidates of the substring filters of one query.
///
/// On PostgreSQL the pg_trgm GIN indexes on `(app_id, email_normalized)`
/// and `(app_id, lower(name))` (btree_gin, migration 26: an app's search
/// reads only its own postings) serve the `LIKE` itself. On SQLite the
/// `identity_search` FTS5 trigram table (migration 22, keyed by
/// `identities.search_id`) proposes candidates, and only when they are few:
/// see [`SubstringIndex::of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubstringIndex {
    /// Every filter is answered without the FTS5 table: PostgreSQL, or a
    /// SQLite query whose substrings are short or common.
    Planner,
    /// SQLite: each substring filter here takes its candidates from the
    /// FTS5 table, and the query is driven from them (not from the app's
    /// listing index).
    Fts5(Vec<FtsQuery>),
    /// A page that stops early (no count), of substrings too common for
    /// their candidates to beat the walk to the page when their matches
    /// are spread through the list: the list is walked for at most `budget`
    /// identities, and when that does not fill the page (the matches are
    /// bunched elsewhere) the page is read as a counted page would read its
    /// matches (`SubstringIndex::of` without a reach: SQLite's candidates
    /// when at most 1/12 of the identities, else the walk; PostgreSQL's
    /// planner without a row limit, which reads the trigram index and
    /// sorts), keeping the page's rows. Either way the page costs at most
    /// about what a counted page does, plus the bounded walk.
    BoundedWalk { budget: i64 },
    /// A stretch of a bounded walk: each substring is tested on an
    /// expression no index serves (`column || ''`), so that PostgreSQL
    /// walks the list in order, as bounded, instead of reading its trigram
    /// index for every match (which costs what a count does).
    Walk,
    /// PostgreSQL, for a page of rare or bunched matches: every match is
    /// found as a count finds them (the trigram index) and the database
    /// sorts them, keeping only the page (a top-N sort). The list order is
    /// given on an expression no index carries (`created_at + interval '0
    /// s'`, the same order), because with a row limit the planner would
    /// otherwise walk the listing index, expecting the matches spread
    /// through it. Nothing but the page's rows reaches the server, however
    /// many matches there are.
    Sorted,
}

/// The FTS5 query that finds the candidates of one substring filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtsQuery {
    column: &'static str,
    substring: String,
    fts_match: String,
}

/// The FTS5 column of a substring filter, and its substring.
fn search_column(filter: &Filter<IdentityFilter>) -> Option<(&'static str, &str)> {
    match (&filter.field, &filter.condition) {
        (IdentityFilter::Name, Condition::Like(v)) => Some(("name", v)),
        (IdentityFilter::Email, Condition::Like(v))
            if EmailLike::parse(v) == EmailLike::Substring =>
        {
            Some(("email_normalized", v))
        }
        _ => None,
    }
}

/// The FTS5 path is taken when a pattern's candidates cost less than the
/// walk of the app's listing index they replace. A candidate costs about
/// `CANDIDATE_COST` index entries of that walk: it is found in the FTS5
/// posting lists, its row fetched by `search_id` and tested, and the
/// candidates sorted for the page, while the walk reads one entry of the
/// covering listing index per identity it passes. Measured: ~2 µs per
/// candidate against ~0.17 µs per identity walked on 46,000 identities, and
/// 20,000 candidates in ~50 ms against a ~300 ms walk on 1,000,000
/// (BENCHMARKS.md, "Performance, second round").
const CANDIDATE_COST: i64 = 12;

/// The most candidates worth taking from the FTS5 table, out of `stored`
/// identities, for a reader that needs `reach` matches in list order
/// (`None`: every match, to count them).
///
/// Counting walks every identity, so the candidates are worth it below
/// `stored / CANDIDATE_COST`. A page without a count stops after `reach`
/// matches: with `c` matches spread through the list, the walk passes about
/// `reach * stored / c` identities, and the candidates cost
/// `CANDIDATE_COST * c`; they are cheaper while `c² < reach * stored /
/// CANDIDATE_COST`. (Matches bunched at the far end of the list make the
/// walk longer than that; it is never longer than the list.)
fn candidates_worth_taking(stored: i64, reach: Option<i64>) -> i64 {
    let to_count = stored / CANDIDATE_COST;
    match reach {
        None => to_count,
        Some(reach) => {
            let balance = (reach as f64) * (stored as f64) / (CANDIDATE_COST as f64);
            (balance.sqrt() as i64).min(to_count)
        }
    }
}

/// How many times the longest walk a page is expected to need (matches
/// spread evenly) the bounded walk of [`SubstringIndex::BoundedWalk`] may
/// go before it gives up. The probe that found the candidates too many
/// stopped counting them there, so the expected walk is at most `reach`
/// of every `stored / candidates probed`; twice that is vanishingly rarely
/// needed when the matches are spread, and bunched matches need far more,
/// which is what the bound is for.
const WALK_BUDGET_FACTOR: i64 = 2;

/// The fewest identities a bounded walk may pass: below that the walk
/// costs less than deciding anything (~0.2 ms).
const MIN_WALK_BUDGET: i64 = 1_000;

/// The first stretch of a bounded walk, and how much longer each next one
/// is (each starts again from the cursor: at most a third more walking
/// than one stretch of the final length).
const FIRST_WALK: i64 = 4_000;
const WALK_GROWTH: i64 = 4;

/// PostgreSQL has no cheap count of a substring's candidates, so its
/// bounded walk expects matches of at least 1 in 75 (`mail7.` is 1 in 50):
/// rarer ones are cheaper to sort from the trigram index anyway.
const PG_WALK_PER_ROW: i64 = 75;
const PG_MIN_WALK_BUDGET: i64 = 10_000;

impl SubstringIndex {
    /// The substring index for `filters` of `app_id`'s identities on
    /// `conn`'s backend, for a reader that needs `reach` matches in list
    /// order (`None`: every match).
    ///
    /// On SQLite, each substring filter of 3 characters or more is looked up
    /// as an FTS5 phrase (the trigram tokenizer matches it anywhere, folding
    /// case at least as widely as `LIKE` does), counting its candidates only
    /// up to the most worth taking ([`candidates_worth_taking`]) for the
    /// app's own identities, which its listing index walks: a probe that
    /// passes at most that many, ~2 µs each. Few enough, and the filter
    /// takes them as its candidates (the `LIKE` beside them still decides);
    /// more, and the walk of the app's listing index is cheaper (bounded,
    /// for a page that stops early: [`SubstringIndex::BoundedWalk`]). The
    /// FTS5 table is shared by every app, so its candidates may be other
    /// apps' identities: a small app's walk is short whatever the others
    /// hold. (FTS5's vocabulary table would give each trigram's document
    /// count, but it reads the whole posting list to count it: 29 ms for
    /// `see` at 1,000,000 identities.)
    pub fn of(
        conn: &mut DbConnection,
        app_id: &AppId,
        filters: &[Filter<IdentityFilter>],
        reach: Option<i64>,
    ) -> QueryResult<Self> {
        if matches!(conn, DbConnection::Postgresql(_)) {
            // Its planner reads the trigram index for a count or a page
            // alike; only the walk of a page that stops early is bounded
            // (a walk its statistics expect to be short may not be).
            let substring = filters.iter().any(|f| search_column(f).is_some());
            return Ok(match reach {
                Some(reach) if substring => SubstringIndex::BoundedWalk {
                    budget: (PG_WALK_PER_ROW * reach).max(PG_MIN_WALK_BUDGET),
                },
                _ => SubstringIndex::Planner,
            });
        }
        let substrings: Vec<_> = filters
            .iter()
            .filter_map(search_column)
            .filter(|(_, substring)| substring.to_lowercase().chars().count() >= 3)
            .collect();
        if substrings.is_empty() {
            return Ok(SubstringIndex::Planner);
        }
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        // The app's identities ever stored, as its triggers count them
        // (migration 26): the scale the candidates compare with.
        let stored = diesel::sql_query(
            "SELECT coalesce((SELECT stored FROM app_identity_counts WHERE app_id = ?), 0) AS n",
        )
        .bind::<diesel::sql_types::Text, _>(app_id.as_str())
        .get_result::<Count>(conn)?
        .n;
        let worth_taking = candidates_worth_taking(stored, reach);
        let mut few = Vec::new();
        let mut common = false;
        for (column, substring) in substrings {
            let fts_match = format!(
                "{column} : \"{}\"",
                substring.to_lowercase().replace('"', "\"\"")
            );
            // Each candidate the probe passes costs ~2 µs (the phrase's
            // trigrams are checked in place), so it stops past the most
            // worth taking.
            let candidates = diesel::sql_query(
                "SELECT count(*) AS n FROM (SELECT rowid FROM identity_search \
                 WHERE identity_search MATCH ? LIMIT ?)",
            )
            .bind::<diesel::sql_types::Text, _>(&fts_match)
            .bind::<diesel::sql_types::BigInt, _>(worth_taking + 1)
            .get_result::<Count>(conn)?
            .n;
            if candidates <= worth_taking {
                few.push(FtsQuery {
                    column,
                    substring: substring.to_string(),
                    fts_match,
                });
            } else {
                common = true;
            }
        }
        Ok(match reach {
            _ if !few.is_empty() => SubstringIndex::Fts5(few),
            Some(reach) if common => SubstringIndex::BoundedWalk {
                // More than `worth_taking` matches: a walk over spread
                // matches finds `reach` of them within this.
                budget: (WALK_BUDGET_FACTOR * reach)
                    .saturating_mul(stored / (worth_taking + 1))
                    .max(MIN_WALK_BUDGET),
            },
            _ => SubstringIndex::Planner,
        })
    }
}

/// Restricts `query` to the identities whose `column` the FTS5 index says
/// may contain `substring`, when the index serves it. A candidate test
/// only: the caller keeps its `LIKE` for the exact answer.
fn fts_candidates<'a>(
    query: BoxedIdentities<'a>,
    index: &SubstringIndex,
    column: &str,
    substring: &str,
) -> BoxedIdentities<'a> {
    let SubstringIndex::Fts5(queries) = index else {
        return query;
    };
    let Some(found) = queries
        .iter()
        .find(|q| q.column == column && q.substring == substring)
    else {
        return query;
    };
    query.filter(
        diesel::dsl::sql::<Bool>(
            "identities.search_id IN (SELECT rowid FROM identity_search WHERE identity_search MATCH ",
        )
        .bind::<diesel::sql_types::Text, _>(found.fts_match.clone())
        .sql(")"),
    )
}

/// The app's live identities that pass `filters`.
fn apply_filters<'a>(
    app_id: &'a AppId,
    filters: &'a [Filter<IdentityFilter>],
    index: &SubstringIndex,
) -> QueryResult<BoxedIdentities<'a>> {
    use Condition::*;
    // Driven from a set of ids (the FTS5 candidates, `filter[id]=in:`, a
    // person's companies) rather than through the app: see
    // `live_entered_by_ids`.
    let by_ids = matches!(index, SubstringIndex::Fts5(_))
        || filters.iter().any(|f| {
            matches!(
                (&f.field, &f.condition),
                (IdentityFilter::Id, In(_)) | (IdentityFilter::RelatedPersonId, _)
            )
        });
    let mut query = if by_ids {
        live_entered_by_ids(app_id)
    } else {
        live(app_id)
    };
    for Filter { field, condition } in filters {
        let unsupported = || keyset::unsupported(*field, condition);
        query = match field {
            IdentityFilter::AppId => match condition {
                Eq(v) => query.filter(identities::app_id.eq(v)),
                _ => return Err(unsupported()),
            },
            IdentityFilter::Blocked => match condition {
                Eq(v) => query.filter(identities::blocked.eq(v == "true")),
                _ => return Err(unsupported()),
            },
            IdentityFilter::Email => match condition {
                Eq(v) => query.filter(identities::email_normalized.eq(Email::normalize(v))),
                Like(v) => match EmailLike::parse(v) {
                    EmailLike::Substring if *index == SubstringIndex::Walk => query.filter(
                        identities::email_normalized
                            .concat("")
                            .like(like_pattern(v))
                            .escape('\\'),
                    ),
                    EmailLike::Substring => fts_candidates(query, index, "email_normalized", v)
                        .filter(
                            identities::email_normalized
                                .like(like_pattern(v))
                                .escape('\\'),
                        ),
                    EmailLike::Anything => query,
                    EmailLike::Nothing => query.filter(diesel::dsl::sql::<Bool>("1 = 0")),
                    EmailLike::Parts {
                        local_reversed_prefix,
                        domain_prefix,
                    } => {
                        let query = starting_with!(query, identities::email_domain, &domain_prefix);
                        starting_with!(
                            query,
                            identities::email_local_reversed,
                            &local_reversed_prefix
                        )
                    }
                },
                _ => return Err(unsupported()),
            },
            IdentityFilter::Id => match condition {
                Eq(v) => query.filter(identities::id.eq(v)),
                In(vs) => query.filter(identities::id.eq_any(vs)),
                _ => return Err(unsupported()),
            },
            IdentityFilter::IdentityOwner => match condition {
                Eq(v) => query.filter(identities::identity_owner.eq(v)),
                In(vs) => query.filter(identities::identity_owner.eq_any(vs)),
                _ => return Err(unsupported()),
            },
            IdentityFilter::RefId => match condition {
                Eq(v) => query.filter(identities::ref_id.eq(v)),
                In(vs) => query.filter(identities::ref_id.eq_any(vs)),
                _ => return Err(unsupported()),
            },
            IdentityFilter::Metadata => match condition {
                // An index lookup (app, key, value) for the ids.
                KeyEq { key, value } => query.filter(
                    identities::id.eq_any(
                        identity_metadata::table
                            .filter(identity_metadata::app_id.eq(app_id))
                            .filter(identity_metadata::meta_key.eq(key))
                            .filter(identity_metadata::meta_value.eq(value))
                            .select(identity_metadata::identity_id),
                    ),
                ),
                _ => return Err(unsupported()),
            },
            IdentityFilter::Name => match condition {
                Eq(v) => query.filter(identities::name.eq(v)),
                Like(v) if *index == SubstringIndex::Walk => query.filter(
                    lower(identities::name.concat(""))
                        .like(like_pattern(v))
                        .escape('\\'),
                ),
                Like(v) => fts_candidates(query, index, "name", v)
                    .filter(lower(identities::name).like(like_pattern(v)).escape('\\')),
                _ => return Err(unsupported()),
            },
            IdentityFilter::RelatedPersonId => match condition {
                // An index lookup (app, person) for the companies' ids.
                Eq(v) => query.filter(
                    identities::id.eq_any(
                        identity_relations::table
                            .filter(identity_relations::app_id.eq(app_id))
                            .filter(identity_relations::person_id.eq(v))
                            .select(identity_relations::company_id),
                    ),
                ),
                _ => return Err(unsupported()),
            },
            IdentityFilter::RiskRating => match condition {
                Eq(v) => query.filter(identities::risk_rating.eq(v)),
                In(vs) => query.filter(identities::risk_rating.eq_any(vs)),
                // An unrated identity is not rated any of the excluded values.
                NotIn(vs) => query.filter(
                    identities::risk_rating
                        .is_null()
                        .or(identities::risk_rating.ne_all(vs)),
                ),
                Like(_) | KeyEq { .. } => return Err(unsupported()),
            },
            IdentityFilter::Type => match condition {
                Eq(v) => query.filter(identities::identity_type.eq(v)),
                _ => return Err(unsupported()),
            },
        };
    }
    Ok(query)
}

/// The matches of `filters` in `sort`'s order.
fn sorted_matches<'a>(
    app_id: &'a AppId,
    filters: &'a [Filter<IdentityFilter>],
    sort: &Sort,
    index: &SubstringIndex,
) -> QueryResult<BoxedIdentities<'a>> {
    let query = apply_filters(app_id, filters, index)?;
    if *index == SubstringIndex::Sorted {
        return Ok(sorted_by_the_database(query, sort));
    }
    Ok(keyset::order_by!(
        query,
        sort,
        identities::created_at,
        identities::updated_at,
        identities::id
    ))
}

/// `query` in `sort`'s order, given on a PostgreSQL expression equal to the
/// sort's column that no index carries: see [`SubstringIndex::Sorted`].
fn sorted_by_the_database<'a>(query: BoxedIdentities<'a>, sort: &Sort) -> BoxedIdentities<'a> {
    let at = diesel::dsl::sql::<diesel::sql_types::Timestamp>(match sort.field {
        SortField::CreatedAt => "(identities.created_at + interval '0 s')",
        SortField::UpdatedAt => "(identities.updated_at + interval '0 s')",
    });
    if sort.descending {
        query.order((at.desc(), identities::id.desc()))
    } else {
        query.order((at.asc(), identities::id.asc()))
    }
}

/// One page of matches and their total. Callers run it in one snapshot
/// (`db::read_snapshot`), so the page agrees with the total.
///
/// A substring (`like:` on a name, or on an email without `@`) is answered
/// on SQLite by one walk over its matches that counts and pages
/// (`page_and_total_in_one_walk`): over the app's listing index, or over
/// the candidates its FTS5 table gives when they are few
/// ([`SubstringIndex::of`]); on PostgreSQL by a count and a short walk, or
/// by one statement that counts and sorts
/// (`page_and_total_of_a_substring_on_postgres`). Everything else is a
/// count, then the page.
pub fn page_and_total(
    conn: &mut DbConnection,
    app_id: &AppId,
    query: &IdentityQuery,
    index: &SubstringIndex,
) -> QueryResult<(Vec<IdentityRow>, i64)> {
    let substring = query.filters.iter().any(|f| match &f.condition {
        Condition::Like(v) => {
            f.field != IdentityFilter::Email || EmailLike::parse(v) == EmailLike::Substring
        }
        _ => false,
    });
    if substring && matches!(conn, DbConnection::Postgresql(_)) {
        page_and_total_of_a_substring_on_postgres(conn, app_id, query)
    } else if substring {
        page_and_total_in_one_walk(conn, app_id, query, index)
    } else {
        page_and_total_by_count(conn, app_id, query, index)
    }
}

/// The total first, then the page's ids, walked from whichever end of the
/// list is nearer, then its rows.
fn page_and_total_by_count(
    conn: &mut DbConnection,
    app_id: &AppId,
    query: &IdentityQuery,
    index: &SubstringIndex,
) -> QueryResult<(Vec<IdentityRow>, i64)> {
    let total = apply_filters(app_id, &query.filters, index)?
        .count()
        .get_result(conn)?;
    // (`all=true` is streamed by `list_after`; unlimited here means all.)
    let limit = query.page.limit().unwrap_or(total);
    let offset = query.page.offset();
    if offset >= total {
        return Ok((Vec::new(), total));
    }
    let len = limit.min(total - offset);
    // Rows after the page, in list order: the offset of the same page when
    // walking the list backwards. OFFSET costs one index entry per row
    // skipped, so the last page of 20,000 matches costs what the first does.
    let from_end = total - offset - len;
    let backwards = from_end < offset;
    let sort = Sort {
        descending: query.sort.descending != backwards,
        ..query.sort
    };
    let key = if total > SORT_IS_CHEAP_BELOW {
        single_email_key(conn, app_id, query, index)?
    } else {
        None
    };
    let mut page = sorted_matches(app_id, &query.filters, &sort, index)?;
    page = match &key {
        Some(EmailKey::Domain(domain)) => page.filter(identities::email_domain.eq(domain)),
        Some(EmailKey::LocalReversed(local)) => {
            page.filter(identities::email_local_reversed.eq(local))
        }
        None => page,
    };
    let mut ids: Vec<IdentityId> = page
        .limit(len)
        .offset(if backwards { from_end } else { offset })
        .select(identities::id)
        .load(conn)?;
    if backwards {
        ids.reverse();
    }
    Ok((rows_in_order(conn, app_id, &ids)?, total))
}

/// Matches a database sorts faster than two more lookups would save.
const SORT_IS_CHEAP_BELOW: i64 = 1_000;

/// One value of an email search key that every match of the query has.
enum EmailKey {
    Domain(String),
    LocalReversed(String),
}

/// For an `@`-pattern whose matches all share one domain (`@mail7.` when
/// only mail7.example.com starts so) or one local part (`john.doe@`): that
/// value. Filtering on it changes nothing in the result, but lets the
/// database walk the key's index in listing order instead of sorting every
/// match. Two single-entry lookups per key (the first and last value in
/// the range). Only for createdAt, the order the indexes carry.
fn single_email_key(
    conn: &mut DbConnection,
    app_id: &AppId,
    query: &IdentityQuery,
    index: &SubstringIndex,
) -> QueryResult<Option<EmailKey>> {
    let Some((local, domain)) = query.filters.iter().find_map(|f| match &f.condition {
        Condition::Like(v) if f.field == IdentityFilter::Email => match EmailLike::parse(v) {
            EmailLike::Parts {
                local_reversed_prefix,
                domain_prefix,
            } => Some((local_reversed_prefix, domain_prefix)),
            _ => None,
        },
        _ => None,
    }) else {
        return Ok(None);
    };
    if query.sort.field != SortField::CreatedAt {
        return Ok(None);
    }
    macro_rules! one_value {
        ($column:expr) => {{
            let matches =
                || apply_filters(app_id, &query.filters, index).map(|q| q.select($column));
            let first: Option<String> = matches()?.order($column.asc()).first(conn).optional()?;
            let last: Option<String> = matches()?.order($column.desc()).first(conn).optional()?;
            first.filter(|f| Some(f) == last.as_ref())
        }};
    }
    // The local part first: "john@gmail.com" has far fewer entries per
    // local part than per domain.
    if !local.is_empty() {
        if let Some(value) = one_value!(identities::email_local_reversed) {
            return Ok(Some(EmailKey::LocalReversed(value)));
        }
    }
    if !domain.is_empty() {
        if let Some(value) = one_value!(identities::email_domain) {
            return Ok(Some(EmailKey::Domain(value)));
        }
    }
    Ok(None)
}

/// The rows of `ids`, in that order.
fn rows_in_order(
    conn: &mut DbConnection,
    app_id: &AppId,
    ids: &[IdentityId],
) -> QueryResult<Vec<IdentityRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = live_entered_by_ids(app_id)
        .filter(identities::id.eq_any(ids))
        .select(IdentityRow::as_select())
        .load(conn)?;
    rows.sort_by_key(|row| ids.iter().position(|id| *id == row.id));
    Ok(rows)
}

/// A counted page of a substring on PostgreSQL, without taking every
/// match's id through libpq (which holds a whole result: a single walk over
/// the ids, as SQLite does it, took ~170 MB for a pattern a million
/// identities match).
///
/// Matches dense at the start of the list fill the page within one stretch
/// of a walk in list order ([`walk_in_stretches`]); they are then counted
/// (the planner reads the trigram index, or the table for a pattern most
/// rows match). Otherwise (rare, bunched, or a deep page) one statement
/// finds every match as the count would, counts them (`count(*) OVER ()`)
/// and sorts them ([`SubstringIndex::Sorted`]), answering only the page's
/// ids and the total: one read of the matches instead of two.
fn page_and_total_of_a_substring_on_postgres(
    conn: &mut DbConnection,
    app_id: &AppId,
    query: &IdentityQuery,
) -> QueryResult<(Vec<IdentityRow>, i64)> {
    let offset = query.page.offset();
    // (`all=true` is streamed by `list_after`; unlimited here means all.)
    let limit = query.page.limit().unwrap_or(i64::MAX);
    if let Some(rows) = walk_in_stretches(conn, app_id, query, None, offset, limit, FIRST_WALK)? {
        return Ok((rows, count(conn, app_id, query, &SubstringIndex::Planner)?));
    }
    let sorted = SubstringIndex::Sorted;
    let page: Vec<(IdentityId, i64)> =
        sorted_matches(app_id, &query.filters, &query.sort, &sorted)?
            .select((
                identities::id,
                diesel::dsl::sql::<diesel::sql_types::BigInt>("count(*) OVER ()"),
            ))
            .offset(offset)
            .limit(limit)
            .load(conn)?;
    let total = match page.first() {
        Some((_, total)) => *total,
        // Past the last match: the window answered no row to tell.
        None => count(conn, app_id, query, &SubstringIndex::Planner)?,
    };
    let ids: Vec<IdentityId> = page.into_iter().map(|(id, _)| id).collect();
    Ok((rows_in_order(conn, app_id, &ids)?, total))
}

/// One page and the total number of matches from a single walk over the
/// matches, for filters that no index range answers (`like:` on a name, or
/// on an email without `@`), on SQLite: over the FTS5 candidates when
/// [`SubstringIndex::of`] takes them (sorted once, read once: half the cost
/// of a count and then a page over them), else over the app's listing
/// index, testing each entry (it carries the lowered email and name).
///
/// The walk reads only ids, in the listing order, so SQLite stays inside
/// the listing index (its planner would pick a narrower index for a bare
/// `COUNT(*)` and then read every row); then the page's rows are fetched
/// by id. It streams: one page of ids in memory.
fn page_and_total_in_one_walk(
    conn: &mut DbConnection,
    app_id: &AppId,
    query: &IdentityQuery,
    index: &SubstringIndex,
) -> QueryResult<(Vec<IdentityRow>, i64)> {
    use diesel::connection::DefaultLoadingMode;
    let offset = usize::try_from(query.page.offset()).unwrap_or(usize::MAX);
    let limit = query
        .page
        .limit()
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(usize::MAX);
    let mut total: i64 = 0;
    let mut page_ids: Vec<IdentityId> = Vec::new();
    {
        let walk =
            sorted_matches(app_id, &query.filters, &query.sort, index)?.select(identities::id);
        for (position, id) in walk
            .load_iter::<IdentityId, DefaultLoadingMode>(conn)?
            .enumerate()
        {
            let id = id?;
            if position >= offset && page_ids.len() < limit {
                page_ids.push(id);
            }
            total += 1;
        }
    }
    Ok((rows_in_order(conn, app_id, &page_ids)?, total))
}

pub fn count(
    conn: &mut DbConnection,
    app_id: &AppId,
    query: &IdentityQuery,
    index: &SubstringIndex,
) -> QueryResult<i64> {
    apply_filters(app_id, &query.filters, index)?
        .count()
        .get_result(conn)
}

/// The next `limit` matches after `after`, in sort order, past the first
/// `skip`. Keyset paging, so every chunk costs the same however deep the
/// walk is (`skip` is for a numbered page read without its total).
pub fn list_after(
    conn: &mut DbConnection,
    app_id: &AppId,
    query: &IdentityQuery,
    index: &SubstringIndex,
    after: Option<&Cursor>,
    skip: i64,
    limit: i64,
) -> QueryResult<Vec<IdentityRow>> {
    let SubstringIndex::BoundedWalk { budget } = index else {
        return matches_between(conn, app_id, query, index, after, None, skip, limit);
    };
    if let Some(walked) = walk_in_stretches(conn, app_id, query, after, skip, limit, *budget)? {
        return Ok(walked);
    }
    // The matches lie beyond the budget: read them as a count would.
    // PostgreSQL sorts them itself and keeps the page's.
    if matches!(conn, DbConnection::Postgresql(_)) {
        let sorted = SubstringIndex::Sorted;
        return matches_between(conn, app_id, query, &sorted, after, None, skip, limit);
    }
    // SQLite takes its candidates when they are few enough for that, and
    // streams the ids in order, keeping the page's.
    let then = SubstringIndex::of(conn, app_id, &query.filters, None)?;
    let every = past(
        sorted_matches(app_id, &query.filters, &query.sort, &then)?,
        query.sort,
        after,
    );
    let skip = usize::try_from(skip).unwrap_or(usize::MAX);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let ids = every
        .select(identities::id)
        .load_iter::<IdentityId, diesel::connection::DefaultLoadingMode>(conn)?
        .skip(skip)
        .take(limit)
        .collect::<QueryResult<Vec<IdentityId>>>()?;
    rows_in_order(conn, app_id, &ids)
}

/// Up to `limit` matches after `after`, past the first `skip`, found by
/// walking the list in order in stretches of growing length up to `budget`
/// identities: a short one finds the page of common, spread matches; only
/// bunched matches need the rest. Each stretch ends at the first identity
/// past it (read from the app's listing index alone). `None` when the
/// page is not filled within the budget: the matches lie beyond it.
#[allow(clippy::too_many_arguments)]
fn walk_in_stretches(
    conn: &mut DbConnection,
    app_id: &AppId,
    query: &IdentityQuery,
    after: Option<&Cursor>,
    skip: i64,
    limit: i64,
    budget: i64,
) -> QueryResult<Option<Vec<IdentityRow>>> {
    let mut stretch = FIRST_WALK.min(budget);
    loop {
        let ahead = past(
            keyset::order_by!(
                live(app_id),
                query.sort,
                identities::created_at,
                identities::updated_at,
                identities::id
            ),
            query.sort,
            after,
        );
        // Only the sort's own column and the id: what the listing index
        // holds, so PostgreSQL reads the index alone.
        let sort_column = match query.sort.field {
            SortField::CreatedAt => ahead.select((identities::created_at, identities::id)),
            SortField::UpdatedAt => ahead.select((identities::updated_at, identities::id)),
        };
        let bound: Option<(NaiveDateTime, IdentityId)> = sort_column
            .offset(stretch)
            .limit(1)
            .first(conn)
            .optional()?;
        let Some((at, id)) = bound else {
            // The rest of the list is within the stretch: walk it all.
            let planner = SubstringIndex::Planner;
            return matches_between(conn, app_id, query, &planner, after, None, skip, limit)
                .map(Some);
        };
        let bound = Cursor {
            at,
            id: id.as_str().to_owned(),
        };
        let walk = SubstringIndex::Walk;
        let walked = matches_between(conn, app_id, query, &walk, after, Some(&bound), skip, limit)?;
        if walked.len() as i64 == limit {
            return Ok(Some(walked));
        }
        if stretch >= budget {
            return Ok(None);
        }
        stretch = (stretch * WALK_GROWTH).min(budget);
    }
}

/// `query` narrowed to the rows after `cursor` in `sort`'s order (all of
/// them without one).
fn past<'a>(
    query: BoxedIdentities<'a>,
    sort: Sort,
    cursor: Option<&Cursor>,
) -> BoxedIdentities<'a> {
    match cursor {
        Some(cursor) => keyset::after_cursor!(
            query,
            sort,
            cursor,
            identities::created_at,
            identities::updated_at,
            identities::id
        ),
        None => query,
    }
}

/// Up to `limit` matches after `after` and before `before` (exclusive
/// both), in sort order, past the first `skip`.
#[allow(clippy::too_many_arguments)]
fn matches_between(
    conn: &mut DbConnection,
    app_id: &AppId,
    query: &IdentityQuery,
    index: &SubstringIndex,
    after: Option<&Cursor>,
    before: Option<&Cursor>,
    skip: i64,
    limit: i64,
) -> QueryResult<Vec<IdentityRow>> {
    let mut q = sorted_matches(app_id, &query.filters, &query.sort, index)?;
    q = past(q, query.sort, after);
    // Before `before` in list order: after it in the reversed order.
    q = past(q, query.sort.reversed(), before);
    if skip > 0 {
        q = q.offset(skip);
    }
    q.limit(limit).select(IdentityRow::as_select()).load(conn)
}

/// The metadata of these identities, `(identity, key, value)` by key.
pub fn metadata_of(
    conn: &mut DbConnection,
    app_id: &AppId,
    identity_ids: &[&IdentityId],
) -> QueryResult<Vec<(IdentityId, String, String)>> {
    if identity_ids.is_empty() {
        return Ok(Vec::new());
    }
    // By the primary key (identity, key); the lookup index starts with
    // `app_id`.
    if let [one] = identity_ids {
        // One identity: a fixed statement, cached (see `live_documents_of`).
        return super::on_each_backend!(conn, c => identity_metadata::table
            .filter(super::app_is_not_the_way_in!(identity_metadata::app_id, app_id))
            .filter(identity_metadata::identity_id.eq(*one))
            .order(identity_metadata::meta_key)
            .select((
                identity_metadata::identity_id,
                identity_metadata::meta_key,
                identity_metadata::meta_value,
            ))
            .load(c));
    }
    // (On each backend's own connection: see `live_documents_of`.)
    super::on_each_backend!(conn, c => identity_metadata::table
        .filter(super::app_is_not_the_way_in!(identity_metadata::app_id, app_id))
        .filter(identity_metadata::identity_id.eq_any(identity_ids))
        .order((identity_metadata::identity_id, identity_metadata::meta_key))
        .select((
            identity_metadata::identity_id,
            identity_metadata::meta_key,
            identity_metadata::meta_value,
        ))
        .load(c))
}

/// Applies metadata changes of one identity: each key set is written
/// (replacing its value), each key deleted is removed.
pub fn change_metadata(
    conn: &mut WriteConn<'_>,
    app_id: &AppId,
    identity_id: &IdentityId,
    changes: &MetadataChanges,
) -> QueryResult<()> {
    let keys: Vec<&String> = changes.0.keys().collect();
    if keys.is_empty() {
        return Ok(());
    }
    diesel::delete(
        identity_metadata::table
            .filter(identity_metadata::identity_id.eq(identity_id))
            .filter(identity_metadata::meta_key.eq_any(&keys)),
    )
    .execute(&mut **conn)?;
    for (key, value) in &changes.0 {
        if let Some(value) = value {
            diesel::insert_into(identity_metadata::table)
                .values((
                    identity_metadata::identity_id.eq(identity_id),
                    identity_metadata::app_id.eq(app_id),
                    identity_metadata::meta_key.eq(key),
                    identity_metadata::meta_value.eq(value),
                ))
                .execute(&mut **conn)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::list_query::IDENTITY_LIST;
    use proptest::prelude::*;

    proptest! {
        /// A birthday is written as `NaiveDate`'s text and read back with
        /// its `FromStr`; both are the `%Y-%m-%d` the API shows, for every
        /// date a birthday can be.
        #[test]
        fn a_stored_birthday_is_its_iso_date(days in 0i64..3_652_059) {
            let date = NaiveDate::from_ymd_opt(1, 1, 1).unwrap() + chrono::Days::new(days as u64);
            let stored = date.to_string();
            prop_assert_eq!(&stored, &date.format("%Y-%m-%d").to_string());
            prop_assert_eq!(stored.parse::<NaiveDate>().ok(), Some(date));
        }
    }

    /// Counting takes the candidates below 1/12 of the identities stored;
    /// a page without a count takes them while they cost less than the walk
    /// to its rows, and never more than counting would.
    #[test]
    fn candidates_are_taken_while_cheaper_than_the_walk() {
        assert_eq!(candidates_worth_taking(1_000_000, None), 83_333);
        // A page of 30: 32 matches; sqrt(32 * 1,000,000 / 12).
        assert_eq!(candidates_worth_taking(1_000_000, Some(32)), 1_632);
        // 20,000 matches spread through 1,000,000: the walk passes ~1,600
        // identities for a page, the candidates cost ~240,000.
        assert!(candidates_worth_taking(1_000_000, Some(32)) < 20_000);
        // A deep page needs more of the walk, so more candidates pay.
        assert!(
            candidates_worth_taking(1_000_000, Some(30_002))
                > candidates_worth_taking(1_000_000, Some(32))
        );
        assert_eq!(candidates_worth_taking(1_000_000, Some(10_000_000)), 83_333);
        assert_eq!(candidates_worth_taking(0, Some(32)), 0);
        assert_eq!(candidates_worth_taking(11, None), 0);
    }

    /// Every filter and operator the list's spec offers has a query.
    #[test]
    fn every_offered_filter_builds_a_query() {
        let app = AppId::new();
        for filter in IDENTITY_LIST.every_offered_filter() {
            assert!(
                apply_filters(
                    &app,
                    std::slice::from_ref(&filter),
                    &SubstringIndex::Planner
                )
                .is_ok(),
                "{filter:?}"
            );
        }
    }
}
